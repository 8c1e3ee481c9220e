//! One sampling run of the API: joins the process's sampler as a consumer, has it sample one
//! thread on the run's own schedule, and feeds the raw samples to a `Timer`'s callback thread
//! or a `Profiler`'s drain. Started and stopped on the caller's thread.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::drain::DrainMessage;
use crate::error::Error;
use crate::sampler::{Subscriber, Subscription, API_SLOTS};
use crate::settings::{Mode, MAX_INTERVAL, MAX_MAX_DEPTH, MIN_INTERVAL};
use crate::signal;
use crate::signal::slot::{SlotPool, SPARE_SLOTS};
use crate::stats::Stats;
use crate::threads::Selector;

/// Frames each slot holds when the API installs the pool: deep enough for any `max_depth`
/// a caller is likely to ask for later in the process (the pool is installed once), small
/// enough to cost little (8 KiB a slot).
const API_POOL_DEPTH: usize = 1024;

/// What to sample and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// Kernel thread id of the thread to sample.
    pub tid: i32,
    pub interval: Duration,
    /// Frames kept per stack, innermost first.
    pub max_depth: usize,
}

impl RunOptions {
    /// Thread `tid` at the seed API's defaults (50 ms, 100 frames).
    pub fn seed_defaults(tid: i32) -> RunOptions {
        RunOptions {
            tid,
            interval: super::DEFAULT_INTERVAL,
            max_depth: super::DEFAULT_MAX_DEPTH,
        }
    }

    /// Checks the options against the engine's limits.
    pub fn validate(&self) -> Result<(), Error> {
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&self.interval) {
            return Err(Error::argument(
                "interval",
                format!("{:?}", self.interval),
                "use an interval from 50 us to 60 s",
            ));
        }
        if !(1..=MAX_MAX_DEPTH).contains(&self.max_depth) {
            return Err(Error::argument(
                "max_depth",
                self.max_depth,
                "use a depth from 1 to 65536",
            ));
        }
        if self.tid <= 0 {
            return Err(Error::argument(
                "tid",
                self.tid,
                "use a kernel thread id of this process",
            ));
        }
        Ok(())
    }
}

/// One consumer's sampling: the process's sampler samples `options.tid` for it while this
/// lives.
pub struct SamplingRun {
    sampling: Option<Subscription>,
    pool: &'static SlotPool,
}

impl SamplingRun {
    /// Installs the handler (once per process) and starts sampling `options.tid`; samples
    /// and module maps go to `to_consumer`. Returns once the first sample can be taken.
    pub fn start(
        options: &RunOptions,
        stats: Arc<Stats>,
        to_consumer: Sender<DrainMessage>,
    ) -> Result<SamplingRun, Error> {
        options.validate()?;
        // A pool installed earlier (by the preloaded library, say) serves as it is: stacks
        // deeper than its frames are cut there and say so.
        let pool_depth = match signal::pool() {
            Some(pool) => options.max_depth.min(pool.max_depth()),
            None => options.max_depth.max(API_POOL_DEPTH),
        };
        let slots = API_SLOTS + SPARE_SLOTS;
        let pool = signal::install(slots, pool_depth, signal::sample_signal(), None)?;
        let subscriber = Subscriber {
            interval: options.interval,
            mode: Mode::Wall,
            flush: None,
            selector: Selector {
                fixed: vec![options.tid],
                all: false,
                pattern: None,
            },
            max_depth: options.max_depth,
            to_drain: to_consumer,
            stats,
            answers_dumps: false,
            before_first_send: None,
        };
        let sampling = Subscription::join(subscriber, pool, true)?;
        Ok(SamplingRun {
            sampling: Some(sampling),
            pool,
        })
    }

    pub fn pool(&self) -> &'static SlotPool {
        self.pool
    }

    /// Stops sampling; its last samples are on the channel when this returns.
    pub fn stop(&mut self) {
        drop(self.sampling.take());
    }
}
