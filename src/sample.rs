//! Layer 4: the plain data that crosses from the engine to whoever consumes its samples
//! (the drain, a `Timer`'s callback): one raw sample, why its unwinding stopped, and the
//! batches they travel in. Both sides import it; it imports neither.

use crossbeam_channel::Sender;

/// Why the handler stopped unwinding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum StopReason {
    /// The unwinder found the end of the stack.
    Complete,
    /// The stack had more frames than `STACKSAMPLE_MAXDEPTH`.
    DepthLimit,
    /// A frame could not be unwound (no unwind info and a bad frame pointer, a read outside
    /// the stack); outer frames are missing.
    UnwindError,
    /// The stack pointer was in no memory the profiler knew; only the leaf was taken.
    UnknownStack,
    /// The library had no stack of its own to unwind on (the kernel refused the memory);
    /// only the leaf was taken.
    NoHandlerStack,
    /// The walk reached the function every `makecontext` fiber returns to: the fiber's
    /// stack ends there, complete.
    FiberStart,
}

impl StopReason {
    /// Name used in the JSON output.
    pub fn label(self) -> &'static str {
        match self {
            StopReason::Complete => "complete",
            StopReason::DepthLimit => "depth_limit",
            StopReason::UnwindError => "unwind_error",
            StopReason::UnknownStack => "unknown_stack",
            StopReason::NoHandlerStack => "no_handler_stack",
            StopReason::FiberStart => "fiber_start",
        }
    }
}

/// One sample as the handler took it.
#[derive(Debug, Clone)]
pub struct RawSample {
    pub tid: i32,
    pub generation: u32,
    /// Leaf first: the interrupted instruction, then return addresses.
    pub frames: Box<[u64]>,
    pub stop: StopReason,
    /// Time the signal handler took; `None` for a blocked thread sampled without a signal.
    pub handler_nanos: Option<u64>,
}

impl RawSample {
    /// Keeps the `max_depth` innermost frames; a stack cut here counts as cut at the limit.
    pub fn truncate(&mut self, max_depth: usize) {
        if self.frames.len() > max_depth {
            self.frames = self.frames[..max_depth].into();
            self.stop = StopReason::DepthLimit;
        }
    }
}

/// Samples sent to a drain together, in the order they were taken. The sampler thread
/// allocated them, and dropping the batch sends that memory back to it, to be freed or
/// reused there. Freed on the receiving thread instead, they took the sampler's malloc arena
/// lock: a drain that the program's busy threads preempt while holding it (it runs at the
/// program's priority) kept the sampler waiting for milliseconds, and its ticks were late.
pub struct SampleBatch {
    samples: Vec<RawSample>,
    home: Sender<Vec<RawSample>>,
}

impl SampleBatch {
    pub fn new(samples: Vec<RawSample>, home: Sender<Vec<RawSample>>) -> SampleBatch {
        SampleBatch { samples, home }
    }
}

impl std::ops::Deref for SampleBatch {
    type Target = Vec<RawSample>;

    fn deref(&self) -> &Vec<RawSample> {
        &self.samples
    }
}

impl std::ops::DerefMut for SampleBatch {
    fn deref_mut(&mut self) -> &mut Vec<RawSample> {
        &mut self.samples
    }
}

impl Drop for SampleBatch {
    fn drop(&mut self) {
        // A sampler that is gone, or has more returned batches than it took back, lets
        // this thread free the batch.
        let _ = self.home.try_send(std::mem::take(&mut self.samples));
    }
}
