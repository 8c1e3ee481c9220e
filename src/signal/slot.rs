//! Sample slots: preallocated memory the handler writes one stack into, and the atomic state
//! machine that decides who owns it.
//!
//! A slot's state is one `AtomicU32` (also the futex word the sampler sleeps on):
//! `sequence << 2 | phase`. Phases and their owner:
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
//! The handler side (`claim`, `publish`) is async-signal-safe: atomics and a futex wake only.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use framehop::x86_64::CacheX86_64;
use framehop::MustNotAllocateDuringUnwind;

use super::futex;

/// Requests in flight at once: one normally, more only while a handler is stuck (a thread
/// stopped mid-sample keeps its slot until it resumes).
pub const SLOT_COUNT: usize = 4;

const IDLE: u32 = 0;
const ARMED: u32 = 1;
const WRITING: u32 = 2;
const DONE: u32 = 3;
const PHASE_MASK: u32 = 3;

/// Unwinder cache that never allocates; made on an ordinary thread, used in the handler.
pub type UnwindCache = CacheX86_64<MustNotAllocateDuringUnwind>;

/// Why the handler stopped unwinding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
}

/// What the handler writes; owned by the handler while WRITING, by the sampler otherwise.
pub struct SlotData {
    pub frames: Box<[u64]>,
    pub depth: usize,
    pub stop: StopReason,
    pub handler_nanos: u64,
    /// Generation of the module snapshot the stack was unwound with.
    pub generation: u32,
    pub cache: UnwindCache,
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
    pub late_signals: AtomicU64,
}

/// Outcome of waiting for a handler.
#[derive(Debug, PartialEq, Eq)]
pub enum Wait {
    Done,
    /// No handler claimed the request in time; it is cancelled and the slot is idle again.
    NoResponse,
    /// A handler claimed the request but has not finished; the slot stays with it.
    Stuck,
}

impl SlotPool {
    /// Allocates every slot with room for `max_depth` frames.
    pub fn new(max_depth: usize) -> SlotPool {
        let slots = (0..SLOT_COUNT)
            .map(|_| SampleSlot {
                state: AtomicU32::new(IDLE),
                data: UnsafeCell::new(SlotData {
                    frames: vec![0; max_depth].into_boxed_slice(),
                    depth: 0,
                    stop: StopReason::Complete,
                    handler_nanos: 0,
                    generation: 0,
                    cache: UnwindCache::new_in(),
                }),
            })
            .collect();
        SlotPool {
            slots,
            max_depth,
            late_signals: AtomicU64::new(0),
        }
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

    /// True when no handler holds or may claim any slot.
    pub fn all_idle(&self) -> bool {
        self.slots.iter().all(|slot| slot.phase() == IDLE)
    }
}

impl SampleSlot {
    fn phase(&self) -> u32 {
        self.state.load(Ordering::Acquire) & PHASE_MASK
    }

    // ---- sampler side -------------------------------------------------------------------

    /// Arms an idle slot for a new request; returns the word the signal must carry.
    pub fn arm(&self) -> Option<u32> {
        let current = self.state.load(Ordering::Acquire);
        if current & PHASE_MASK != IDLE {
            return None;
        }
        let armed = (current & !PHASE_MASK).wrapping_add(1 << 2) | ARMED;
        self.state.store(armed, Ordering::Release);
        Some(armed)
    }

    /// Waits up to `timeout` for the handler of request `armed`, then cancels it if unclaimed.
    pub fn wait(&self, armed: u32, timeout: Duration) -> Wait {
        let deadline = futex::monotonic_after(timeout);
        loop {
            let current = self.state.load(Ordering::Acquire);
            if current == with_phase(armed, DONE) {
                return Wait::Done;
            }
            let now = futex::monotonic_nanos();
            if now >= nanos_of(&deadline) {
                return self.give_up(armed);
            }
            futex::wait_until(&self.state, current, &deadline);
        }
    }

    fn give_up(&self, armed: u32) -> Wait {
        let idle = with_phase(armed, IDLE);
        match self
            .state
            .compare_exchange(armed, idle, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Wait::NoResponse,
            Err(now) if now == with_phase(armed, DONE) => Wait::Done,
            Err(_) => Wait::Stuck,
        }
    }

    /// Whether a stuck request has finished since.
    pub fn is_done(&self, armed: u32) -> bool {
        self.state.load(Ordering::Acquire) == with_phase(armed, DONE)
    }

    /// The finished sample of request `armed`. Call only after `Wait::Done` / `is_done`.
    pub fn finished(&self, armed: u32) -> Option<&SlotData> {
        if !self.is_done(armed) {
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
        self.state
            .compare_exchange(
                armed,
                with_phase(armed, WRITING),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .ok()?;
        // SAFETY: the successful exchange made this handler the slot's only owner.
        Some(unsafe { &mut *self.data.get() })
    }

    /// Hands the written sample to the sampler and wakes it.
    pub fn publish(&self, armed: u32) {
        self.state.store(with_phase(armed, DONE), Ordering::Release);
        futex::wake(&self.state);
    }
}

fn with_phase(word: u32, phase: u32) -> u32 {
    (word & !PHASE_MASK) | phase
}

fn nanos_of(time: &libc::timespec) -> u64 {
    (time.tv_sec as u64) * 1_000_000_000 + time.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_handler_cannot_claim_a_cancelled_request() {
        let pool = SlotPool::new(8);
        let slot = &pool.slots[0];
        let armed = slot.arm().unwrap();
        assert_eq!(slot.wait(armed, Duration::from_millis(1)), Wait::NoResponse);
        // SAFETY: test stands in for the handler.
        assert!(unsafe { slot.claim(armed) }.is_none());
        let next = slot.arm().unwrap();
        assert_ne!(next, armed);
        // SAFETY: as above.
        assert!(unsafe { slot.claim(armed) }.is_none());
        // SAFETY: as above.
        assert!(unsafe { slot.claim(next) }.is_some());
        assert_eq!(slot.wait(next, Duration::from_millis(1)), Wait::Stuck);
        slot.publish(next);
        assert!(slot.finished(next).is_some());
        slot.release(next);
        assert!(pool.all_idle());
    }
}
