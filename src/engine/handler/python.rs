//! The interrupted thread's Python frame chain: code object and instruction of each frame,
//! innermost first, with the marks where evaluation-loop activations end. Every read of
//! the interpreter's memory goes through `process_vm_readv` (a freed thread state or a frame
//! popped under the read gives a failed read, never a fault), in as few calls as the layout
//! allows: the thread state's words in one, then the used part of the thread's current
//! frame stack in one, where nearly all frames are; only frames outside it (generators,
//! coroutines, older chunks) cost a call each.

use crate::modules::{read_memory, read_words};
use crate::python::layout::{ActivationMark, CurrentFrame, Layout};
use crate::python::PythonTarget;
use crate::sample::{PythonFrameRaw, PythonStop};

/// Frames read one call each (outside the copied stack) before the read gives up.
const MAX_SEPARATE_READS: usize = 64;
/// Bytes of one frame the layouts read; checked against each layout in the python module.
pub const MAX_FRAME_BYTES: usize = 128;

/// Reads the frame chain of `target`'s thread into `out`, using `window` to copy its frame
/// stack; returns how many entries were written and why the read stopped.
pub fn capture(
    target: &PythonTarget,
    window: &mut [u8],
    out: &mut [PythonFrameRaw],
) -> (usize, PythonStop) {
    let layout = target.layout;
    let Some(state) = ThreadWords::read(target, layout) else {
        return (0, PythonStop::ReadFailed);
    };
    if state.native_id != target.tid as u64 {
        return (0, PythonStop::NotThisThread);
    }
    let Some(innermost) = state.current_frame(layout) else {
        return (0, PythonStop::ReadFailed);
    };
    let copied = CopiedStack::copy(window, &state, layout);
    let mut writer = Writer { out, depth: 0 };
    let stop = walk_frames(innermost, layout, &copied, &mut writer);
    (writer.depth, stop)
}

/// The words of a thread state the read needs, read in one call.
struct ThreadWords {
    native_id: u64,
    /// `cframe` (3.11, 3.12) or `current_frame` (3.13).
    frame_link: u64,
    chunk: u64,
    top: u64,
}

impl ThreadWords {
    fn read(target: &PythonTarget, layout: &Layout) -> Option<ThreadWords> {
        let link = match layout.current_frame {
            CurrentFrame::ThroughCFrame { cframe, .. } => cframe,
            CurrentFrame::Direct { current_frame } => current_frame,
        };
        let at = |offset: u32| target.tstate.checked_add(u64::from(offset));
        let addresses = [
            at(layout.thread_native_id)?,
            at(link)?,
            at(layout.thread_datastack_chunk)?,
            at(layout.thread_datastack_top)?,
        ];
        let mut words = [0u64; 4];
        if !read_words(&addresses, &mut words) {
            return None;
        }
        let [native_id, frame_link, chunk, top] = words;
        Some(ThreadWords {
            native_id,
            frame_link,
            chunk,
            top,
        })
    }

    /// The innermost frame (0 when the thread runs no Python code).
    fn current_frame(&self, layout: &Layout) -> Option<u64> {
        match layout.current_frame {
            CurrentFrame::Direct { .. } => Some(self.frame_link),
            CurrentFrame::ThroughCFrame { current_frame, .. } => {
                let mut word = [0u64; 1];
                let at = self.frame_link.checked_add(u64::from(current_frame))?;
                read_words(&[at], &mut word).then_some(word[0])
            }
        }
    }
}

/// The used part of the thread's current frame-stack chunk, up to `window.len()` bytes
/// below its top.
struct CopiedStack<'w> {
    start: u64,
    bytes: &'w [u8],
}

impl<'w> CopiedStack<'w> {
    fn copy(window: &'w mut [u8], state: &ThreadWords, layout: &Layout) -> CopiedStack<'w> {
        let data = state.chunk.saturating_add(u64::from(layout.chunk_data));
        let start = data.max(state.top.saturating_sub(window.len() as u64));
        let len = state.top.saturating_sub(start) as usize;
        let bytes = match window.get_mut(..len) {
            Some(part) if state.chunk != 0 => {
                if read_memory(start, part) {
                    &*part
                } else {
                    &[]
                }
            }
            _ => &[],
        };
        CopiedStack { start, bytes }
    }

    /// `len` bytes at `address`, if all were copied.
    fn get(&self, address: u64, len: usize) -> Option<&[u8]> {
        let from = usize::try_from(address.checked_sub(self.start)?).ok()?;
        self.bytes.get(from..from.checked_add(len)?)
    }
}

struct Writer<'o> {
    out: &'o mut [PythonFrameRaw],
    depth: usize,
}

impl Writer<'_> {
    fn push(&mut self, entry: PythonFrameRaw) -> bool {
        match self.out.get_mut(self.depth) {
            Some(slot) => {
                *slot = entry;
                self.depth += 1;
                true
            }
            None => false,
        }
    }
}

/// Follows `previous` from `frame` to the end of the chain.
fn walk_frames(
    mut frame: u64,
    layout: &Layout,
    copied: &CopiedStack<'_>,
    writer: &mut Writer<'_>,
) -> PythonStop {
    let len = layout.frame_bytes as usize;
    let mut separate = [0u8; MAX_FRAME_BYTES];
    let mut separate_reads = 0;
    while frame != 0 {
        if frame % 8 != 0 {
            return PythonStop::ReadFailed;
        }
        let bytes = match copied.get(frame, len) {
            Some(bytes) => bytes,
            None => {
                separate_reads += 1;
                let Some(buffer) = separate.get_mut(..len) else {
                    return PythonStop::ReadFailed;
                };
                if separate_reads > MAX_SEPARATE_READS || !read_memory(frame, buffer) {
                    return PythonStop::ReadFailed;
                }
                &*buffer
            }
        };
        let Some(fields) = FrameFields::parse(bytes, layout) else {
            return PythonStop::ReadFailed;
        };
        if !fields.shim && fields.code == 0 {
            // A frame being set up, or memory that is no frame.
            return PythonStop::ReadFailed;
        }
        if !fields.record(writer) {
            return PythonStop::DepthLimit;
        }
        frame = fields.previous;
    }
    PythonStop::Complete
}

/// What one frame says.
struct FrameFields {
    code: u64,
    instr: u64,
    previous: u64,
    /// A shim of the C stack (3.12+): the activation above it ends here.
    shim: bool,
    /// The first frame of its activation (3.11).
    entry: bool,
}

impl FrameFields {
    fn parse(bytes: &[u8], layout: &Layout) -> Option<FrameFields> {
        let word = |offset: u32| {
            let at = offset as usize;
            Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
        };
        let byte = |offset: u32| bytes.get(offset as usize).copied();
        let (shim, entry) = match layout.activation {
            ActivationMark::IsEntry { offset } => (false, byte(offset)? != 0),
            ActivationMark::ShimOwner { value } => (byte(layout.frame_owner)? == value, false),
        };
        Some(FrameFields {
            code: word(layout.frame_code)?,
            instr: word(layout.frame_instr)?,
            previous: word(layout.frame_previous)?,
            shim,
            entry,
        })
    }

    /// Writes the frame (and the end of its activation, if it is the first).
    fn record(&self, writer: &mut Writer<'_>) -> bool {
        if self.shim {
            return writer.push(PythonFrameRaw::ACTIVATION_END);
        }
        let frame = PythonFrameRaw {
            code: self.code,
            instr: self.instr,
        };
        writer.push(frame) && (!self.entry || writer.push(PythonFrameRaw::ACTIVATION_END))
    }
}
