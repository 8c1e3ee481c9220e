//! How the sampler thread asks to be scheduled, so that its ticks are on time while the
//! program keeps every CPU busy.
//!
//! Deadline scheduling wakes the sampler on time where normal scheduling makes some ticks
//! late (docs/how-it-works.md has the figures). It runs the sampler ahead of every normal
//! thread but never for more than its budget in each period (the kernel enforces that), so a
//! sampler with much to do cannot take a CPU from the program. It needs privilege (root or
//! `CAP_SYS_NICE`) and an affinity that covers every CPU; without it the sampler asks for the
//! best normal scheduling it may have.

use std::sync::Mutex;
use std::time::Duration;

use crate::base::thread::pid;
use crate::stats::SamplerScheduling;
use crate::threads;

/// Share of each period the sampler may run under deadline scheduling.
const BUDGET_SHARE: u32 = 4;
/// Deadline periods: the budget is per period, not per tick, so a tick that has more to do
/// than most (a rescan, a new module map) borrows from the ticks after it instead of being
/// stopped until the next period. At least 10 ms, at most 1 s (the kernel takes 100 us to
/// 4 s).
const MIN_PERIOD: Duration = Duration::from_millis(10);
const MAX_PERIOD: Duration = Duration::from_secs(1);
/// Nice value asked for under normal scheduling (the program's threads usually run at 0).
const FAIR_NICE: libc::c_int = -5;
/// Time slice asked for under normal scheduling; the work of a tick takes tens of microseconds.
const FAIR_SLICE: Duration = Duration::from_micros(100);

/// The current sampler's scheduling, with the process it was set in: a forked child
/// inherits the parent's record, but its own sampler starts under normal scheduling.
static CURRENT: Mutex<Option<(i32, SamplerScheduling)>> = Mutex::new(None);

/// The sampler thread's scheduling, if a sampler has ticked in this process.
pub fn current() -> Option<SamplerScheduling> {
    let current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    let (set_in, scheduling) = current.as_ref()?;
    (*set_in == pid()).then(|| scheduling.clone())
}

/// Asks the kernel to wake the calling thread on time: by default a sleeping thread may be
/// woken up to 50 us late (timer slack), which at a 100 us interval loses every other tick.
pub fn wake_on_time() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only the calling thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
}

/// Schedules the calling (sampler) thread for ticks every `interval`: deadline scheduling
/// with a quarter of a CPU as its budget if the kernel allows, else nice -5 (where the
/// process may lower its nice value) with a short time slice (Linux 6.12 and later), which
/// lets it preempt a busy thread as soon as it wakes instead of at the end of that thread's
/// slice. Threads it starts begin with normal scheduling either way (`RESET_ON_FORK`).
pub fn schedule_ticks(interval: Duration) {
    let period = interval.clamp(MIN_PERIOD, MAX_PERIOD);
    let budget = period / BUDGET_SHARE;
    let scheduling = match set_attr(&deadline_attr(budget, period)) {
        Ok(()) => SamplerScheduling::Deadline { budget, period },
        Err(refused) => schedule_fair(refused),
    };
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some((pid(), scheduling));
}

/// Runs `work` under normal scheduling if the sampler is under deadline scheduling, then
/// goes back to it. For rebuilding the module snapshot after a `dlopen`, tens of
/// milliseconds of CPU: held to its budget it took four times as long, without a sample
/// meanwhile, and a short Python run lost most of its samples.
pub fn unbudgeted<T>(work: impl FnOnce() -> T) -> T {
    let Some(SamplerScheduling::Deadline { budget, period }) = current() else {
        return work();
    };
    set_fair();
    let result = work();
    let _ = set_attr(&deadline_attr(budget, period));
    result
}

fn deadline_attr(budget: Duration, period: Duration) -> libc::sched_attr {
    libc::sched_attr {
        sched_policy: libc::SCHED_DEADLINE as u32,
        sched_flags: libc::SCHED_FLAG_RESET_ON_FORK as u64,
        sched_runtime: nanos(budget),
        sched_deadline: nanos(period),
        sched_period: nanos(period),
        ..normal_attr(0)
    }
}

/// The normal policy, raised as far as the process may.
fn schedule_fair(refused: std::io::Error) -> SamplerScheduling {
    set_fair();
    SamplerScheduling::Fair {
        nice: threads::priority(),
        refused: refused.to_string(),
    }
}

fn set_fair() {
    let attr = libc::sched_attr {
        sched_flags: libc::SCHED_FLAG_RESET_ON_FORK as u64,
        sched_runtime: nanos(FAIR_SLICE),
        ..normal_attr(FAIR_NICE)
    };
    if set_attr(&attr).is_err() {
        // Not allowed to raise the nice value: keep the thread's own, with the short slice.
        let _ = set_attr(&libc::sched_attr {
            sched_runtime: nanos(FAIR_SLICE),
            ..normal_attr(threads::priority())
        });
    }
}

/// Puts the calling thread under the normal policy at `nice` with time slice `slice` (the
/// kernel's default if `None`; kernels before 6.12 ignore it). A thread the sampler starts
/// takes back the program's nice value and slice with this. A refusal leaves it as it was.
pub fn schedule_normal(nice: libc::c_int, slice: Option<Duration>) {
    let _ = set_attr(&libc::sched_attr {
        sched_runtime: slice.map_or(0, nanos),
        ..normal_attr(nice)
    });
}

fn normal_attr(nice: libc::c_int) -> libc::sched_attr {
    libc::sched_attr {
        size: std::mem::size_of::<libc::sched_attr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_flags: 0,
        sched_nice: nice,
        sched_priority: 0,
        sched_runtime: 0,
        sched_deadline: 0,
        sched_period: 0,
    }
}

fn set_attr(attr: &libc::sched_attr) -> std::io::Result<()> {
    // SAFETY: sched_setattr on the calling thread (pid 0) with a fully initialised attribute
    // of the size it states; the kernel only reads it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0,
            attr as *const libc::sched_attr,
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
