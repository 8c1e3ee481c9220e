//! Which threads a consumer samples: fixed ids, every thread, threads by name.

use super::own::is_own_thread;
use super::proc::name;
use crate::base::file;

/// Which threads to sample: fixed ids, and/or every thread, and/or threads by name.
#[derive(Debug, Clone)]
pub struct Selector {
    pub fixed: Vec<i32>,
    pub all: bool,
    pub pattern: Option<glob::Pattern>,
}

impl Selector {
    /// Whether the set of threads can change while the program runs.
    pub fn is_dynamic(&self) -> bool {
        self.all || self.pattern.is_some()
    }

    /// Live threads of this process that match, other than the profiler's own.
    pub fn scan(&self) -> Vec<i32> {
        if !self.is_dynamic() {
            return Vec::new();
        }
        let Ok(tasks) = file::list_directory("/proc/self/task") else {
            return Vec::new();
        };
        tasks
            .iter()
            .filter_map(|name| name.parse::<i32>().ok())
            .filter(|&tid| !is_own_thread(tid))
            .filter(|&tid| self.all || self.name_matches(tid))
            .collect()
    }

    /// Whether thread `tid`'s current name matches the pattern.
    pub fn name_matches(&self, tid: i32) -> bool {
        match (&self.pattern, name(tid)) {
            (Some(pattern), Some(name)) => pattern.matches(&name),
            _ => false,
        }
    }
}
