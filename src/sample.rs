//! Layer 4: the plain data that crosses from the engine to whoever consumes its samples
//! (the drain, a `Timer`'s callback): one raw sample, why its unwinding stopped, and the
//! batches they travel in. Both sides import it; it imports neither.

use std::sync::Arc;

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
    /// The thread's Python frames, when it is a CPython thread and Python frames are on.
    pub python: Option<PythonStack>,
}

/// One entry of a thread's Python frame chain, as the handler read it: a frame's code
/// object and instruction pointer, or the mark that an evaluation-loop activation ends here
/// (the frames before it, toward the leaf, ran in one `_PyEval_EvalFrameDefault` call).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PythonFrameRaw {
    /// Address of the code object; 0 for an activation's end.
    pub code: u64,
    /// Address of the instruction the frame runs (or last ran).
    pub instr: u64,
    /// The frame is a generator's or coroutine's (it lives in that object).
    pub generator: bool,
}

impl PythonFrameRaw {
    pub const ACTIVATION_END: PythonFrameRaw = PythonFrameRaw {
        code: 0,
        instr: 0,
        generator: false,
    };

    pub fn is_activation_end(&self) -> bool {
        self.code == 0
    }
}

/// A thread's Python frames, innermost first, named by the sampler as it collected them
/// (code objects can be freed soon after), and why the read stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonStack {
    pub entries: Box<[PythonEntry]>,
    pub stop: PythonStop,
}

/// One entry of a named Python frame chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PythonEntry {
    /// A frame: its code object (`None` when none was there any more when the sampler
    /// looked) and the line it was at.
    Frame {
        code: Option<Arc<PythonCode>>,
        line: Option<u32>,
    },
    /// The frames before it (toward the leaf) ran in one evaluation-loop activation.
    ActivationEnd,
}

/// What names a code object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PythonCode {
    pub qualname: Arc<str>,
    pub filename: Arc<str>,
}

/// Why the read of a Python frame chain stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PythonStop {
    /// The chain's end: every frame was read.
    Complete,
    /// More frames than the slot holds.
    DepthLimit,
    /// A frame or the thread state could not be read (memory changed under the read, a
    /// frame popped mid-sample): outer frames are missing.
    ReadFailed,
    /// The thread state no longer belongs to the sampled thread (it ended its Python part,
    /// or its state was freed); no Python frames.
    NotThisThread,
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
