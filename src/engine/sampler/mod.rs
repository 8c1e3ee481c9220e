//! The process's one sampler thread and its consumers. `handle` is how consumers join and
//! leave; `thread` is the tick loop; `consumer` is one consumer's threads, schedule, counters
//! and sink; `blocked` samples threads blocked in a system call without a signal, and
//! `frame_pointer` finds on their stacks the frame pointer the kernel does not report;
//! `python` names the sampled thread's Python state in each request;
//! `scheduling` asks the kernel to run the sampler on time.

mod blocked;
mod consumer;
mod frame_pointer;
mod handle;
mod python;
mod scheduling;
mod thread;

pub use consumer::ConsumerOptions;
pub use handle::{forget_after_fork, hold_requests, ConsumerHandle};
pub use scheduling::{current as current_scheduling, schedule_normal};
