//! Counters of what was requested, taken and lost: part of every report, never silent.
//!
//! Written by the sampler and drain threads (the handler's only counter lives in the slot
//! pool), read by the drain when it writes a profile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Shared counters of one profiling session.
#[derive(Default)]
pub struct Stats {
    /// Sample requests sent to a thread.
    pub requested: AtomicU64,
    /// Samples a handler filled in and the sampler collected.
    pub taken: AtomicU64,
    /// Requests no handler answered in time (thread blocks the signal, is stopped, or busy).
    pub no_response: AtomicU64,
    /// Requests whose handler started but did not finish in time (its slot stays busy).
    pub stuck: AtomicU64,
    /// Ticks skipped for a thread because every slot was still held by a stuck handler.
    pub slots_busy: AtomicU64,
    /// Requests that could not be sent (other than the thread having exited).
    pub send_failed: AtomicU64,
    /// Deadlines the sampler missed because it fell behind.
    pub missed_deadlines: AtomicU64,
    /// Samples dropped because the drain fell behind.
    pub drain_busy: AtomicU64,
    /// Samples dropped because the table of distinct stacks was full.
    pub table_full: AtomicU64,
    /// Stacks cut at the depth limit.
    pub depth_limit: AtomicU64,
    /// Stacks whose unwinding stopped at a frame it could not unwind.
    pub unwind_error: AtomicU64,
    /// Samples whose stack pointer was in no known mapping (leaf only).
    pub unknown_stack: AtomicU64,
    /// Samples taken leaf-only because the thread's stack was nearly full.
    pub stack_too_small: AtomicU64,
    /// Samples of threads blocked in a system call, unwound without a signal.
    pub blocked_unwound: AtomicU64,
    /// Samples of threads still blocked in the same call, counted again without unwinding.
    pub blocked_repeated: AtomicU64,
    /// Wall mode: ticks a mostly blocked thread was skipped because it was between calls.
    pub between_calls: AtomicU64,
    /// CPU mode: ticks a thread was not sampled because it had used no CPU since the last.
    pub idle_skipped: AtomicU64,
    /// Threads the user asked for, and what became of them.
    pub threads: Mutex<Vec<ThreadStatus>>,
}

/// A target thread and its fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadStatus {
    pub tid: i32,
    pub state: ThreadState,
    /// Name when last seen alive.
    pub name: Option<String>,
    /// CPU time when last seen alive (read with the name, at most every 50 ms while sampled,
    /// so a thread that exits loses at most that much).
    pub cpu_nanos: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ThreadState {
    /// Not (yet) a thread of this process.
    NotFound,
    Sampling,
    /// Exited while sampled.
    Exited,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn thread_statuses(&self) -> Vec<ThreadStatus> {
        self.threads.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Records a target's new state, and its name and CPU time while it is alive.
    pub fn set_thread_state(&self, tid: i32, state: ThreadState) {
        let name = crate::threads::name(tid);
        let cpu_nanos = crate::threads::cpu_time(tid);
        if let Ok(mut threads) = self.threads.lock() {
            match threads.iter_mut().find(|t| t.tid == tid) {
                Some(status) => {
                    status.state = state;
                    status.name = name.or(status.name.take());
                    status.cpu_nanos = cpu_nanos.or(status.cpu_nanos);
                }
                None => threads.push(ThreadStatus {
                    tid,
                    state,
                    name,
                    cpu_nanos,
                }),
            }
        }
    }
}
