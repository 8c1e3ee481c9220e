//! Layer 11: the wiring of a profiling run. `session` joins the sampler with a drain and
//! writes the final profile; `drain` is the thread that aggregates samples and writes
//! profiles.

mod drain;
mod session;

pub use drain::{spawn_drain, DrainMessage, DumpContext};
pub use session::Session;
