//! Where a consumer's samples go. The engine hands them to a small sink and knows nothing of
//! who receives them (the drain, a `Timer`'s callback thread).

use std::sync::Arc;

use crate::modules::ModuleMap;
use crate::sample::SampleBatch;

/// What the sampler delivers to one consumer, in order: each module map before any sample
/// unwound with it.
pub enum Delivery {
    /// Samples in the order they were taken.
    Samples(SampleBatch),
    /// The module map of a new generation.
    Modules(Arc<ModuleMap>),
    /// Write the profile now (the dump signal, a termination signal, `STACKSAMPLE_FLUSH`).
    Dump,
}

/// A consumer's receiving end. The sampler never waits for one: a sink that cannot take a
/// delivery now gives it back, to be offered again (maps, dumps) or dropped and counted
/// (samples).
pub trait SampleSink: Send {
    /// Hands over `delivery` without blocking; `Err` gives it back when there is no room. A
    /// receiver that is gone takes it and drops it.
    fn offer(&self, delivery: Delivery) -> Result<(), Delivery>;
}
