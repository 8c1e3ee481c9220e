//! Layer 11: the wiring of a profiling run. `session` joins the sampler with a drain and
//! writes the final profile; `drain` is the thread that aggregates samples and writes
//! profiles; `progress` the run's sample count that `stacksample record` shows.

mod drain;
pub mod progress;
mod session;

pub use drain::{spawn_drain, DrainMessage, DumpContext};
pub use session::Session;
