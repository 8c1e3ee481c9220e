//! The interrupted thread's Python frame chain: code object and instruction of each frame,
//! innermost first, with the marks where evaluation-loop activations end.
//!
//! What may be read directly, and why it cannot fault:
//! - the thread state, when the thread's own record of it says so: CPython keeps each
//!   thread's state in a `pthread` key (`autoTSSkey`), set before the state is used and
//!   cleared before it is freed, both by the thread itself, which is the one interrupted. If
//!   that value is the state the sampler listed for the thread, the state is live and stays
//!   so while the handler runs. Otherwise (a state the thread no longer has, a layout whose
//!   key is wrong) the state is read with one `process_vm_readv` instead, where a freed
//!   state gives a failed or mismatched read, never a fault; its native thread id and
//!   interpreter must be the ones listed, and then it is live for the same reason;
//! - for the same reason the thread's frame-stack chunks are live: the state points to the
//!   newest, each to the one before, and the thread unlinks a chunk before freeing it. Only
//!   the used part of the newest chunk (below `datastack_top`) holds frames;
//! - the thread's own C stack, from the interrupted stack pointer to the end of its mapping
//!   (3.11 and 3.12 keep the `_PyCFrame`s there, 3.12+ the activations' shim frames).
//!
//! Anything else (a generator's frame in its object, a word that is no frame) is read with
//! `process_vm_readv`, as is everything when another thread's frames are read from the
//! sampler (a blocked thread may wake and change them).

use std::ops::Range;

use crate::modules::{read_memory, read_words};
use crate::python::layout::{ActivationMark, CurrentFrame, Layout};
use crate::python::PythonTarget;
use crate::sample::{PythonFrameRaw, PythonStop};

/// Frames read with a system call each before the read gives up.
const MAX_SEPARATE_READS: usize = 64;
/// Frame-stack chunks followed at most (a chunk holds 16 KB of frames or more).
const MAX_CHUNKS: usize = 16;
/// Bytes of one frame the layouts read; checked against each layout in the python module.
pub const MAX_FRAME_BYTES: usize = 128;
/// `FRAME_OWNED_BY_GENERATOR`, the same in every version.
const OWNED_BY_GENERATOR: u8 = 1;

/// Whose frames are read.
pub enum Thread {
    /// The interrupted thread, from its signal handler, with its C stack's range.
    Own { stack: Range<u64> },
    /// Another thread, from the sampler: every read is checked.
    Other,
}

/// Reads the frame chain of `target`'s thread into `out`; returns how many entries were
/// written and why the read stopped.
pub fn capture(
    target: &PythonTarget,
    thread: Thread,
    out: &mut [PythonFrameRaw],
) -> (usize, PythonStop) {
    let layout = target.layout;
    let state = if is_own_live_state(&thread, target) {
        // SAFETY: the thread's own key names this state: it is live (module docs).
        Some(unsafe { ThreadWords::read_direct(target, layout) })
    } else {
        ThreadWords::read(target, layout)
    };
    let Some(state) = state else {
        return (0, PythonStop::ReadFailed);
    };
    if state.native_id != target.tid as u64 || state.interpreter != target.interpreter {
        return (0, PythonStop::NotThisThread);
    }
    let memory = LiveMemory::of(thread, target, &state, layout);
    let Some(innermost) = state.current_frame(layout, &memory) else {
        return (0, PythonStop::ReadFailed);
    };
    let mut writer = Writer { out, depth: 0 };
    let stop = walk_frames(innermost, layout, &memory, &mut writer);
    (writer.depth, stop)
}

/// Whether the interrupted thread's own key names `target`'s state.
fn is_own_live_state(thread: &Thread, target: &PythonTarget) -> bool {
    let (Thread::Own { .. }, Some(key)) = (thread, target.tss_key) else {
        return false;
    };
    // SAFETY: glibc's pthread_getspecific reads the calling thread's key table without locks
    // or allocation (an unknown key gives null); the value is only compared here.
    let value = unsafe { libc::pthread_getspecific(key) };
    value as u64 == target.tstate
}

/// The words of a thread state the read needs, read in one call.
struct ThreadWords {
    native_id: u64,
    interpreter: u64,
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
            at(layout.thread_interpreter)?,
            at(link)?,
            at(layout.thread_datastack_chunk)?,
            at(layout.thread_datastack_top)?,
        ];
        let mut words = [0u64; 5];
        if !read_words(&addresses, &mut words) {
            return None;
        }
        let [native_id, interpreter, frame_link, chunk, top] = words;
        Some(ThreadWords {
            native_id,
            interpreter,
            frame_link,
            chunk,
            top,
        })
    }

    /// The same words, read directly.
    ///
    /// # Safety
    /// `target.tstate` must be a live thread state.
    unsafe fn read_direct(target: &PythonTarget, layout: &Layout) -> ThreadWords {
        let link = match layout.current_frame {
            CurrentFrame::ThroughCFrame { cframe, .. } => cframe,
            CurrentFrame::Direct { current_frame } => current_frame,
        };
        let at = |offset: u32| target.tstate.wrapping_add(u64::from(offset));
        // SAFETY: every offset lies inside the live state (`Layout::thread_size`).
        unsafe {
            ThreadWords {
                native_id: read_direct(at(layout.thread_native_id)),
                interpreter: read_direct(at(layout.thread_interpreter)),
                frame_link: read_direct(at(link)),
                chunk: read_direct(at(layout.thread_datastack_chunk)),
                top: read_direct(at(layout.thread_datastack_top)),
            }
        }
    }

    /// The innermost frame (0 when the thread runs no Python code).
    fn current_frame(&self, layout: &Layout, memory: &LiveMemory) -> Option<u64> {
        match layout.current_frame {
            CurrentFrame::Direct { .. } => Some(self.frame_link),
            CurrentFrame::ThroughCFrame { current_frame, .. } => {
                let at = self.frame_link.checked_add(u64::from(current_frame))?;
                memory.word(at)
            }
        }
    }
}

/// Where direct reads are safe (see the module docs); empty when reading another thread.
struct LiveMemory {
    direct: bool,
    /// The thread's C stack, its state, the used part of its newest chunk, older chunks.
    ranges: [Range<u64>; MAX_CHUNKS + 2],
    count: usize,
    /// The newest chunk whole: a frame in it at or above the top was popped.
    newest_chunk: Range<u64>,
}

impl LiveMemory {
    fn of(
        thread: Thread,
        target: &PythonTarget,
        state: &ThreadWords,
        layout: &Layout,
    ) -> LiveMemory {
        let mut memory = LiveMemory {
            direct: false,
            ranges: Default::default(),
            count: 0,
            newest_chunk: 0..0,
        };
        let Thread::Own { stack } = thread else {
            return memory;
        };
        memory.direct = true;
        memory.add(stack);
        let state_end = target.tstate.saturating_add(u64::from(layout.thread_size));
        memory.add(target.tstate..state_end);
        memory.add_chunks(state.chunk, state.top, layout);
        memory
    }

    fn add(&mut self, range: Range<u64>) {
        if let Some(slot) = self.ranges.get_mut(self.count) {
            *slot = range;
            self.count += 1;
        }
    }

    /// The newest chunk up to `top`, then the older ones whole; each header is read directly,
    /// inside the chunk the state or a newer chunk points to.
    fn add_chunks(&mut self, newest: u64, top: u64, layout: &Layout) {
        let data = u64::from(layout.chunk_data);
        let mut chunk = newest;
        for index in 0..MAX_CHUNKS {
            if chunk == 0 || !chunk.is_multiple_of(8) {
                return;
            }
            // SAFETY: a chunk the live state (or a live newer chunk) links to is mapped, for
            // at least its header (see the module docs).
            let (previous, size) = unsafe { (read_direct(chunk), read_direct(chunk + 8)) };
            let end = chunk.saturating_add(size);
            if index == 0 {
                self.newest_chunk = chunk..end;
                if (chunk.saturating_add(data)..end).contains(&top) || top == end {
                    self.add(chunk.saturating_add(data)..top);
                }
            } else {
                self.add(chunk.saturating_add(data)..end);
            }
            chunk = previous;
        }
    }

    /// Whether `len` bytes at `address` lie inside one live range.
    fn covers(&self, address: u64, len: u64) -> bool {
        let Some(end) = address.checked_add(len) else {
            return false;
        };
        self.ranges
            .iter()
            .take(self.count)
            .any(|r| r.start <= address && end <= r.end)
    }

    /// A frame in the newest chunk at or above its top: popped, stale.
    fn is_popped(&self, address: u64) -> bool {
        self.direct && self.newest_chunk.contains(&address) && !self.covers(address, 8)
    }

    fn word(&self, address: u64) -> Option<u64> {
        if !address.is_multiple_of(8) {
            return None;
        }
        if self.direct && self.covers(address, 8) {
            // SAFETY: inside a live range of the interrupted thread (module docs).
            return Some(unsafe { read_direct(address) });
        }
        let mut word = [0u64; 1];
        read_words(&[address], &mut word).then_some(word[0])
    }
}

/// # Safety
/// `address..address + 8` must be mapped and readable.
unsafe fn read_direct(address: u64) -> u64 {
    // SAFETY: the caller's promise.
    unsafe { std::ptr::read_unaligned(address as *const u64) }
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
    memory: &LiveMemory,
    writer: &mut Writer<'_>,
) -> PythonStop {
    let mut separate_reads = 0;
    while frame != 0 {
        if !frame.is_multiple_of(8) || memory.is_popped(frame) {
            return PythonStop::ReadFailed;
        }
        let fields = if memory.direct && memory.covers(frame, u64::from(layout.frame_bytes)) {
            // SAFETY: the frame lies inside a live range of the interrupted thread.
            Some(unsafe { FrameFields::read_direct(frame, layout) })
        } else {
            separate_reads += 1;
            if separate_reads > MAX_SEPARATE_READS {
                return PythonStop::ReadFailed;
            }
            FrameFields::read_checked(frame, layout)
        };
        let Some(fields) = fields else {
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
    generator: bool,
    /// A shim of the C stack (3.12+): the activation above it ends here.
    shim: bool,
    /// The first frame of its activation (3.11).
    entry: bool,
}

impl FrameFields {
    /// The fields of the frame at `frame`, each read where it is.
    ///
    /// # Safety
    /// `frame..frame + layout.frame_bytes` must be mapped and readable.
    unsafe fn read_direct(frame: u64, layout: &Layout) -> FrameFields {
        let at = |offset: u32| frame.wrapping_add(u64::from(offset));
        // SAFETY: every offset lies within `frame_bytes` of the frame (the caller's promise).
        let (code, instr, previous, owner, entry) = unsafe {
            let byte = |offset: u32| std::ptr::read(at(offset) as *const u8);
            let entry = match layout.activation {
                ActivationMark::IsEntry { offset } => byte(offset),
                ActivationMark::ShimOwner { .. } => 0,
            };
            (
                read_direct(at(layout.frame_code)),
                read_direct(at(layout.frame_instr)),
                read_direct(at(layout.frame_previous)),
                byte(layout.frame_owner),
                entry,
            )
        };
        FrameFields::new(layout, code, instr, previous, owner, entry)
    }

    /// The same, copied with one checked read.
    fn read_checked(frame: u64, layout: &Layout) -> Option<FrameFields> {
        let mut buffer = [0u8; MAX_FRAME_BYTES];
        let bytes = buffer.get_mut(..layout.frame_bytes as usize)?;
        if !read_memory(frame, bytes) {
            return None;
        }
        let word = |offset: u32| {
            let at = offset as usize;
            Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
        };
        let byte = |offset: u32| bytes.get(offset as usize).copied();
        let entry = match layout.activation {
            ActivationMark::IsEntry { offset } => byte(offset)?,
            ActivationMark::ShimOwner { .. } => 0,
        };
        Some(FrameFields::new(
            layout,
            word(layout.frame_code)?,
            word(layout.frame_instr)?,
            word(layout.frame_previous)?,
            byte(layout.frame_owner)?,
            entry,
        ))
    }

    fn new(
        layout: &Layout,
        code: u64,
        instr: u64,
        previous: u64,
        owner: u8,
        entry: u8,
    ) -> FrameFields {
        let shim =
            matches!(layout.activation, ActivationMark::ShimOwner { value } if owner == value);
        FrameFields {
            code,
            instr,
            previous,
            generator: owner == OWNED_BY_GENERATOR,
            shim,
            entry: entry != 0,
        }
    }

    /// Writes the frame (and the end of its activation, if it is the first).
    fn record(&self, writer: &mut Writer<'_>) -> bool {
        if self.shim {
            return writer.push(PythonFrameRaw::ACTIVATION_END);
        }
        let frame = PythonFrameRaw {
            code: self.code,
            instr: self.instr,
            generator: self.generator,
        };
        writer.push(frame) && (!self.entry || writer.push(PythonFrameRaw::ACTIVATION_END))
    }
}
