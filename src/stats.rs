//! Layer 4: counters of what was requested, taken and lost, part of every report and never
//! silent; the fate of each thread asked for; how the sampler thread was scheduled.
//!
//! Written by the sampler and drain threads (the handler's only counter lives in the slot
//! pool), read by the drain when it writes a profile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::threads;

/// Declares every counter once: the shared atomics ([`Stats`]), their copy in a profile
/// ([`Counters`]), the copy itself and the sum of two profiles' counters.
macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// Shared counters of one profiling session.
        #[derive(Default)]
        pub struct Stats {
            $($(#[doc = $doc])* pub $name: AtomicU64,)*
            /// Threads the user asked for, and what became of them.
            pub threads: Mutex<Vec<ThreadStatus>>,
        }

        /// Counters copied from [`Stats`] when a profile is built (a counter missing from an
        /// older profile file reads as 0).
        #[derive(Debug, Clone, Default, Serialize, Deserialize)]
        #[serde(default)]
        pub struct Counters {
            $($(#[doc = $doc])* pub $name: u64,)*
            /// Signals whose request had been given up before their handler ran (the
            /// handler's own counter, kept in the slot pool).
            pub late_signals: u64,
        }

        impl Counters {
            /// A copy of `stats`, with the slot pool's `late_signals`.
            pub fn read(stats: &Stats, late_signals: u64) -> Counters {
                Counters {
                    $($name: Stats::get(&stats.$name),)*
                    late_signals,
                }
            }

            /// Adds `other`'s counts to these (profiles of one process tree, merged).
            pub fn add(&mut self, other: &Counters) {
                $(self.$name += other.$name;)*
                self.late_signals += other.late_signals;
            }
        }
    };
}

counters! {
    /// Signals sent to a thread to ask for a sample (a send that failed included).
    requested,
    /// Samples a handler filled in and the sampler collected, and samples of blocked threads
    /// read without a signal.
    taken,
    /// Requests no handler answered in time (thread blocks the signal, is stopped, or busy).
    no_response,
    /// Requests not sent because the thread had just exited.
    thread_gone,
    /// Requests sent and not yet answered nor given up (a gauge: up when sent, down when
    /// answered or given up).
    in_flight,
    /// Ticks a thread was not asked again because its previous request was still unanswered.
    previous_unanswered,
    /// Requests whose handler started but did not finish in time (its slot stays busy).
    stuck,
    /// Ticks skipped for a thread because every slot was still held by a stuck handler.
    slots_busy,
    /// Requests that could not be sent (other than the thread having exited).
    send_failed,
    /// Thread ticks the sampler missed because it fell behind (ticks times threads sampled).
    missed_deadlines,
    /// Samples dropped because the drain fell behind.
    drain_busy,
    /// Samples dropped because the table of distinct stacks was full.
    table_full,
    /// Stacks cut at the depth limit.
    depth_limit,
    /// Stacks whose unwinding stopped at a frame it could not unwind.
    unwind_error,
    /// Samples whose stack pointer was in no known mapping (leaf only).
    unknown_stack,
    /// Samples taken leaf-only because the library had no stack of its own to unwind on.
    no_handler_stack,
    /// Samples of threads blocked in a system call, unwound without a signal.
    blocked_unwound,
    /// Of those, unwinds that found the frame pointer on the stack (code built with frame
    /// pointers: the kernel reports only the stack and instruction pointers).
    blocked_frame_pointer_found,
    /// Samples of threads still blocked in the same call, counted again without unwinding.
    blocked_repeated,
    /// Wall mode: ticks a mostly blocked thread was skipped because it was between calls.
    between_calls,
    /// CPU mode: ticks a thread was not sampled because it had used no CPU since the last.
    idle_skipped,
    /// Samples of CPython threads whose Python frames all found their place in the stack.
    python_whole,
    /// Samples of CPython threads with some Python frames missing: the chain changed under
    /// the read, or its activations did not pair with the native stack's.
    python_partial,
    /// Python frames whose code object was gone before the sampler named it.
    python_freed,
}

impl Counters {
    /// Thread ticks due: each either taken or missed.
    pub fn ticks(&self) -> u64 {
        self.requested
            + self.blocked_unwound
            + self.blocked_repeated
            + self.slots_busy
            + self.previous_unanswered
            + self.missed_deadlines
            + self.between_calls
    }

    /// Thread ticks that produced no sample, for any reason.
    pub fn missed(&self) -> u64 {
        self.no_response
            + self.stuck
            + self.send_failed
            + self.thread_gone
            + self.in_flight
            + self.slots_busy
            + self.previous_unanswered
            + self.missed_deadlines
            + self.between_calls
    }

    /// Samples taken but left out of the profile; `in_profiler` is the profile's
    /// `profiler_samples`.
    pub fn dropped(&self, in_profiler: u64) -> u64 {
        self.drain_busy + self.table_full + in_profiler
    }

    /// Samples taken by a signal handler (the others were blocked threads read from outside).
    pub fn taken_by_signal(&self) -> u64 {
        self.taken
            .saturating_sub(self.blocked_unwound + self.blocked_repeated)
    }
}

/// How the sampler thread is scheduled, as the report states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SamplerScheduling {
    /// `SCHED_DEADLINE`: ahead of the program's threads, at most `budget` of CPU per `period`.
    Deadline { budget: Duration, period: Duration },
    /// The normal policy at `nice`, because deadline scheduling was `refused` (the reason).
    Fair { nice: libc::c_int, refused: String },
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

    /// Lowers a gauge ([`Stats::in_flight`]).
    pub fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn thread_statuses(&self) -> Vec<ThreadStatus> {
        self.threads.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Records a target's new state, and its name and CPU time while it is alive.
    pub fn set_thread_state(&self, tid: i32, state: ThreadState) {
        let name = threads::name(tid);
        let cpu_nanos = threads::cpu_time(tid);
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
