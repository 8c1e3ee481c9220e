//! Sample slots: preallocated memory the handler writes one stack into, and the atomic state
//! machine that decides who owns it.
//!
//! A slot's state is one `AtomicU32`: `sequence << 2 | phase`. Phases and their owner:
//!
//! ```text
//!   IDLE ──arm (sampler)──> ARMED ──claim (handler)──> WRITING ──publish (handler)──> DONE
//!    ^                        │                                                        │
//!    └──cancel (sampler, timed out)                      release (sampler, copied) ────┘
//! ```
//!
//! `claim` and `cancel` are compare-exchanges on the same armed word, so exactly one wins: a
//! handler that runs after the sampler gave up finds the word changed and writes nothing, and
//! a sequence number from an older request never matches a newer one.
//! The handler side (`claim`, `publish`) is async-signal-safe: atomics only. The sampler does
//! not sleep on a slot; it looks at it on its next tick, so the handler never has to wake
//! another thread (a cross-CPU wake-up costs the sampled thread more than the unwinding).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use framehop::x86_64::CacheX86_64;
use framehop::MustNotAllocateDuringUnwind;

use super::own_stack::HandlerStack;
use crate::python::PythonTarget;
use crate::sample::{PythonFrameRaw, PythonStop, StopReason};

/// Slots beyond one per target thread: room for handlers that are stuck (a thread stopped
/// mid-sample keeps its slot until it resumes) while the others go on.
pub const SPARE_SLOTS: usize = 4;

const IDLE: u32 = 0;
const ARMED: u32 = 1;
const WRITING: u32 = 2;
const DONE: u32 = 3;
const PHASE_MASK: u32 = 3;

/// Unwinder cache that never allocates; made on an ordinary thread, used in the handler.
pub type UnwindCache = CacheX86_64<MustNotAllocateDuringUnwind>;

/// What the handler writes; owned by the handler while WRITING, by the sampler otherwise.
pub struct SlotData {
    pub frames: Box<[u64]>,
    pub depth: usize,
    pub stop: StopReason,
    pub handler_nanos: u64,
    /// Generation of the module snapshot the stack was unwound with.
    pub generation: u32,
    /// Made by the sampler when it first arms the slot: a process that ends before its first
    /// request does not pay for its memory and page faults.
    pub cache: Option<UnwindCache>,
    /// The stack the handler unwinds on, mapped with the cache; `None` if the kernel refused
    /// the memory (the handler then takes the leaf only).
    pub stack: Option<HandlerStack>,
    /// Set by the sampler for each request: whose Python frames to read, if any.
    pub python_target: Option<PythonTarget>,
    /// Made when a request first asks for Python frames.
    pub python: Option<PythonBuffers>,
}

/// Where the handler reads a thread's Python frames into.
pub struct PythonBuffers {
    pub frames: Box<[PythonFrameRaw]>,
    pub depth: usize,
    pub stop: PythonStop,
}

/// One preallocated sample.
pub struct SampleSlot {
    state: AtomicU32,
    data: UnsafeCell<SlotData>,
}

// SAFETY: `data` is only touched by the owner the phase in `state` names (see module docs);
// ownership moves with Acquire/Release operations on `state`.
unsafe impl Sync for SampleSlot {}

/// All slots, plus the counter of requests whose handler came too late.
pub struct SlotPool {
    pub slots: Box<[SampleSlot]>,
    max_depth: usize,
    /// Signals that arrived after the sampler had given up on them.
    late_signals: AtomicU64,
}

/// Where a request stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// The handler published the sample.
    Done,
    /// No handler has claimed it yet.
    Waiting,
    /// A handler is writing it.
    Writing,
    /// Cancelled: no handler claimed it in time; the slot is idle again.
    Cancelled,
}

impl SlotPool {
    /// Allocates `count` slots with room for `max_depth` frames each.
    pub fn new(count: usize, max_depth: usize) -> SlotPool {
        let slots = (0..count)
            .map(|_| SampleSlot {
                state: AtomicU32::new(IDLE),
                data: UnsafeCell::new(SlotData {
                    frames: vec![0; max_depth].into_boxed_slice(),
                    depth: 0,
                    stop: StopReason::Complete,
                    handler_nanos: 0,
                    generation: 0,
                    cache: None,
                    stack: None,
                    python_target: None,
                    python: None,
                }),
            })
            .collect();
        SlotPool {
            slots,
            max_depth,
            late_signals: AtomicU64::new(0),
        }
    }

    /// Counts a signal whose request had been given up. Async-signal-safe.
    pub fn count_late_signal(&self) {
        self.late_signals.fetch_add(1, Ordering::Relaxed);
    }

    /// Signals whose request had been given up before their handler ran.
    pub fn late_signals(&self) -> u64 {
        self.late_signals.load(Ordering::Relaxed)
    }

    /// Frames each slot holds.
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// An idle slot and its index, if any.
    pub fn idle_slot(&self) -> Option<(usize, &SampleSlot)> {
        self.slots
            .iter()
            .enumerate()
            .find(|(_, slot)| slot.phase() == IDLE)
    }

    /// Returns every slot to IDLE. Only in a forked child, whose single thread cannot be
    /// inside a handler while it runs this.
    pub fn reset_after_fork(&self) {
        for slot in self.slots.iter() {
            let word = slot.state.load(Ordering::Acquire);
            slot.state.store(with_phase(word, IDLE), Ordering::Release);
        }
    }

    /// Slots a handler is writing now, with their state words.
    pub fn writing(&self) -> Vec<(usize, u32)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                let word = slot.state.load(Ordering::SeqCst);
                (word & PHASE_MASK == WRITING).then_some((index, word))
            })
            .collect()
    }

    /// Whether slot `index` is still in the writing state `word`.
    pub fn still_writing(&self, index: usize, word: u32) -> bool {
        self.slots
            .get(index)
            .is_some_and(|slot| slot.state.load(Ordering::SeqCst) == word)
    }
}

impl SampleSlot {
    fn phase(&self) -> u32 {
        self.state.load(Ordering::Acquire) & PHASE_MASK
    }

    // ---- sampler side -------------------------------------------------------------------

    /// Arms an idle slot for a new request, for Python frames too if `python` is given;
    /// returns the word the signal must carry.
    pub fn arm(&self, python: Option<PythonTarget>, max_depth: usize) -> Option<u32> {
        let current = self.state.load(Ordering::Acquire);
        if current & PHASE_MASK != IDLE {
            return None;
        }
        // SAFETY: an idle slot's data belongs to the sampler, the only caller of `arm`; the
        // Release store below hands the cache and stack to the handler that claims the request.
        let data = unsafe { &mut *self.data.get() };
        data.cache.get_or_insert_with(UnwindCache::new_in);
        if data.stack.is_none() {
            data.stack = HandlerStack::map();
        }
        if python.is_some() && data.python.is_none() {
            data.python = Some(PythonBuffers {
                frames: vec![PythonFrameRaw::default(); max_depth].into_boxed_slice(),
                depth: 0,
                stop: PythonStop::Complete,
            });
        }
        if let Some(buffers) = data.python.as_mut() {
            // Until the handler reads them: a handler that cannot (leaf only) leaves none.
            buffers.depth = 0;
            buffers.stop = PythonStop::ReadFailed;
        }
        data.python_target = python;
        let armed = (current & !PHASE_MASK).wrapping_add(1 << 2) | ARMED;
        self.state.store(armed, Ordering::Release);
        Some(armed)
    }

    /// Where request `armed` stands.
    pub fn progress(&self, armed: u32) -> Progress {
        let current = self.state.load(Ordering::Acquire);
        if current == with_phase(armed, DONE) {
            Progress::Done
        } else if current == with_phase(armed, WRITING) {
            Progress::Writing
        } else if current == armed {
            Progress::Waiting
        } else {
            Progress::Cancelled
        }
    }

    /// Gives up on request `armed` unless a handler has claimed it already.
    pub fn cancel(&self, armed: u32) -> Progress {
        let idle = with_phase(armed, IDLE);
        match self
            .state
            .compare_exchange(armed, idle, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Progress::Cancelled,
            Err(_) => self.progress(armed),
        }
    }

    /// The finished sample of request `armed`, once it is done.
    pub fn finished(&self, armed: u32) -> Option<&SlotData> {
        if self.progress(armed) != Progress::Done {
            return None;
        }
        // SAFETY: phase DONE means the handler published and will not touch the data again;
        // only the sampler (the caller) owns it until `release`.
        Some(unsafe { &*self.data.get() })
    }

    /// Returns a DONE slot to IDLE once its sample is copied.
    pub fn release(&self, armed: u32) {
        let _ = self.state.compare_exchange(
            with_phase(armed, DONE),
            with_phase(armed, IDLE),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    // ---- handler side (async-signal-safe) ----------------------------------------------

    /// Claims request `armed` for writing; `None` when the sampler gave up or moved on.
    ///
    /// # Safety
    /// Call only from the handler of the signal that carried `armed`; the returned data is
    /// exclusively the caller's until `publish`.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn claim(&self, armed: u32) -> Option<&mut SlotData> {
        // SeqCst: see `publish_snapshot`.
        self.state
            .compare_exchange(
                armed,
                with_phase(armed, WRITING),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .ok()?;
        // SAFETY: the successful exchange made this handler the slot's only owner.
        Some(unsafe { &mut *self.data.get() })
    }

    /// Hands the written sample to the sampler, which collects it on its next tick.
    pub fn publish(&self, armed: u32) {
        self.state.store(with_phase(armed, DONE), Ordering::Release);
    }
}

fn with_phase(word: u32, phase: u32) -> u32 {
    (word & !PHASE_MASK) | phase
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn late_handler_cannot_claim_a_cancelled_request() {
        let pool = SlotPool::new(1, 8);
        let slot = &pool.slots[0];
        let armed = slot.arm(None, 8).unwrap();
        assert_eq!(slot.progress(armed), Progress::Waiting);
        assert_eq!(slot.cancel(armed), Progress::Cancelled);
        // SAFETY: the test stands in for the handler.
        assert!(unsafe { slot.claim(armed) }.is_none());
        let next = slot.arm(None, 8).unwrap();
        assert_ne!(next, armed);
        // SAFETY: as above.
        assert!(unsafe { slot.claim(armed) }.is_none());
        // SAFETY: as above.
        assert!(unsafe { slot.claim(next) }.is_some());
        assert_eq!(slot.cancel(next), Progress::Writing);
        assert!(
            slot.arm(None, 8).is_none(),
            "a slot being written cannot be re-armed"
        );
        slot.publish(next);
        assert!(slot.finished(next).is_some());
        slot.release(next);
        assert!(pool.writing().is_empty());
        assert!(
            slot.arm(None, 8).is_some(),
            "released slots can be armed again"
        );
    }
}
