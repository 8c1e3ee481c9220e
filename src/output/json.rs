//! `<prefix>.json`: the seed API's `get_result()` for scripts: every function with its start
//! address (as stated in its module), name, module, total and self counts, largest total
//! first; every distinct stack (root first) with its thread, count and why its unwinding
//! ended; and every module
//! with its path and build id.

use std::io::{self, Write};

use serde::Serialize;

use super::writer::Writer;
use crate::profile::Profile;

pub struct Json;

#[derive(Serialize)]
struct Document<'p> {
    pid: i32,
    command: &'p str,
    interval_ns: u128,
    samples: u64,
    functions: Vec<FunctionEntry<'p>>,
    stacks: Vec<StackEntry<'p>>,
    modules: Vec<ModuleEntry<'p>>,
}

#[derive(Serialize)]
struct ModuleEntry<'p> {
    name: &'p str,
    path: Option<&'p str>,
    build_id: Option<&'p str>,
}

#[derive(Serialize)]
struct FunctionEntry<'p> {
    address: Option<u64>,
    name: &'p str,
    module: &'p str,
    file: Option<&'p str>,
    total: u64,
    #[serde(rename = "self")]
    self_count: u64,
}

#[derive(Serialize)]
struct StackEntry<'p> {
    thread: i32,
    frames: Vec<&'p str>,
    count: u64,
    /// Cut at the depth limit (kept for scripts written against earlier files).
    truncated: bool,
    /// Why unwinding ended: anything but "complete" means outer frames are missing.
    stop: &'static str,
}

impl Writer for Json {
    fn write(&self, profile: &Profile, out: &mut dyn Write) -> io::Result<()> {
        let functions = profile
            .function_counts(None)
            .into_iter()
            .map(|row| {
                let function = &profile.functions[row.function];
                FunctionEntry {
                    address: function.start,
                    name: &function.name,
                    module: &function.module,
                    file: function.file.as_deref(),
                    total: row.total,
                    self_count: row.self_count,
                }
            })
            .collect();
        let stacks = profile
            .stacks
            .iter()
            .map(|stack| StackEntry {
                thread: stack.tid,
                frames: profile.stack_names(stack).collect(),
                count: stack.count,
                truncated: stack.truncated(),
                stop: stack.stop.label(),
            })
            .collect();
        let document = Document {
            pid: profile.header.pid,
            command: &profile.header.command,
            interval_ns: profile.header.interval.as_nanos(),
            samples: profile.total_samples(),
            functions,
            stacks,
            modules: profile
                .modules
                .iter()
                .map(|m| ModuleEntry {
                    name: &m.name,
                    path: m.path.as_deref(),
                    build_id: m.build_id.as_deref(),
                })
                .collect(),
        };
        serde_json::to_writer(&mut *out, &document).map_err(io::Error::other)?;
        writeln!(out)
    }
}
