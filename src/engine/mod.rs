//! Layer 7: the engine. `handler` (layer 6) is the code that runs in signal context; around
//! it, on ordinary threads: `install` puts the handlers in place, `sampler` decides when and
//! whom to ask for a sample and hands samples to each consumer's `sink`, `thread_start`
//! learns of new threads as they start, and `fork` forgets the parent's state in a child.

mod fork;
pub mod handler;
mod install;
mod sampler;
mod sink;
mod thread_start;

pub use fork::reset_after_fork;
pub use install::{install, MAX_SLOTS};
pub use sampler::{
    current_scheduling, hold_requests, schedule_normal, ConsumerHandle, ConsumerOptions,
};
pub use sink::{Delivery, SampleSink};
