//! The sampler's part in Python frames: it finds the interpreter when the module map
//! changes, keeps the thread states by native thread id, names the sampled thread's state
//! in each request, so the handler reads its frames without searching, and names the
//! frames the handler read as it collects them, before their code can be freed.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::engine::handler::{read_python_frames, PythonThread as Thread};
use crate::modules::ModuleMap;
use crate::python::{name_chain, CodeCache, Interpreter, PythonTarget};
use crate::sample::{PythonFrameRaw, PythonStack, PythonStop};

/// Thread states are listed again this often, and for a thread without one at most this
/// often (a new thread makes its state before it runs Python code).
const STATES_MAX_AGE: Duration = Duration::from_millis(100);
const MISSING_RETRY: Duration = Duration::from_millis(10);

#[derive(Default)]
pub(super) struct PythonThreads {
    interpreter: Option<(Interpreter, CodeCache)>,
    /// Where the frames of a thread blocked in a system call are read, from this thread.
    blocked_frames: Vec<PythonFrameRaw>,
    /// An interpreter of unknown layout was reported; nothing more is looked for.
    unsupported: bool,
    /// Thread state and interpreter by native thread id.
    states: HashMap<i32, (u64, u64)>,
    /// The key threads keep their own state under, once the runtime made it.
    tss_key: Option<libc::pthread_key_t>,
    listed_at: u64,
    /// Threads missing from the list that had it made again for them since the last full
    /// listing: a thread's first miss lists at once (it may have started a moment ago),
    /// later ones wait for [`MISSING_RETRY`].
    retried: HashSet<i32>,
}

impl PythonThreads {
    /// Looks for the interpreter in a new module map, until found.
    pub(super) fn note_map(&mut self, map: &ModuleMap) {
        if self.interpreter.is_some() || self.unsupported {
            return;
        }
        match Interpreter::find(map) {
            Ok(found) => {
                self.interpreter = found.map(|found| {
                    let cache = CodeCache::new(&found);
                    (found, cache)
                })
            }
            Err(unsupported) => {
                self.unsupported = true;
                eprintln!("stacksample: {}", unsupported.0);
            }
        }
    }

    /// Whose Python frames a request to `tid` reads, if it is a Python thread.
    pub(super) fn target(&mut self, tid: i32, now: u64) -> Option<PythonTarget> {
        let (interpreter, _) = self.interpreter.as_ref()?;
        let age = now.saturating_sub(self.listed_at);
        let stale = age >= STATES_MAX_AGE.as_nanos() as u64;
        if stale {
            self.retried.clear();
        }
        let missing = !self.states.contains_key(&tid);
        let retry = missing && (self.retried.insert(tid) || age >= MISSING_RETRY.as_nanos() as u64);
        if stale || retry {
            self.states = interpreter.thread_states();
            self.tss_key = self.tss_key.or_else(|| interpreter.tss_key());
            self.listed_at = now;
        }
        let state = *self.states.get(&tid)?;
        Some(interpreter.target(tid, state, self.tss_key))
    }
}

impl PythonThreads {
    /// A new tick: code objects are checked again at their next use.
    pub(super) fn start_tick(&mut self) {
        if let Some((_, cache)) = &mut self.interpreter {
            cache.start_tick();
        }
    }

    /// The Python frames of thread `tid`, blocked in a system call (so its frames stay as
    /// they are while this reads them, with the same checked reads as the handler's).
    pub(super) fn read_blocked(&mut self, tid: i32, now: u64) -> Option<PythonStack> {
        const MAX_FRAMES: usize = 1024;
        let target = self.target(tid, now)?;
        self.blocked_frames
            .resize(MAX_FRAMES, PythonFrameRaw::default());
        let (depth, stop) = read_python_frames(&target, Thread::Other, &mut self.blocked_frames);
        let frames = std::mem::take(&mut self.blocked_frames);
        let named = self.name_chain(&frames[..depth], stop);
        self.blocked_frames = frames;
        Some(named)
    }

    /// Names the frames the handler read. A thread whose state was not its own any more
    /// has the states listed again at its next request.
    pub(super) fn name_chain(
        &mut self,
        frames: &[PythonFrameRaw],
        stop: PythonStop,
    ) -> PythonStack {
        if stop == PythonStop::NotThisThread {
            self.listed_at = 0;
        }
        match &mut self.interpreter {
            Some((interpreter, cache)) => name_chain(interpreter.layout, cache, frames, stop),
            None => PythonStack {
                entries: Box::new([]),
                stop: PythonStop::ReadFailed,
            },
        }
    }
}
