//! One sampling run of the API: joins the process's sampler as a consumer, has it sample one
//! thread on the run's own schedule, and feeds the raw samples to a `Timer`'s callback thread
//! or a `Profiler`'s drain. Started and stopped on the caller's thread.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::base::error::Error;
use crate::engine::handler::{self, SlotPool};
use crate::engine::{self, ConsumerHandle, ConsumerOptions};
use crate::run::DrainMessage;
use crate::settings::{INTERVAL_RANGE, MAX_DEPTH_RANGE};
use crate::stats::Stats;
use crate::threads::Selector;

/// Frames each slot holds when the API installs the pool: deep enough for any `max_depth`
/// a caller is likely to ask for later in the process (the pool is installed once), small
/// enough to cost little (8 KiB a slot).
const API_POOL_DEPTH: usize = 1024;

/// The seed API's defaults: 20 Hz, 100 frames.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(50);
pub const DEFAULT_MAX_DEPTH: usize = 100;

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
            interval: DEFAULT_INTERVAL,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }

    /// Checks the options against the engine's limits.
    pub fn validate(&self) -> Result<(), Error> {
        if !INTERVAL_RANGE.contains(&self.interval) {
            let (shortest, longest) = (INTERVAL_RANGE.start(), INTERVAL_RANGE.end());
            return Err(Error::argument(
                "interval",
                format!("{:?}", self.interval),
                format!("use an interval from {shortest:?} to {longest:?}"),
            ));
        }
        if !MAX_DEPTH_RANGE.contains(&self.max_depth) {
            let (least, most) = (MAX_DEPTH_RANGE.start(), MAX_DEPTH_RANGE.end());
            return Err(Error::argument(
                "max_depth",
                self.max_depth,
                format!("use a depth from {least} to {most}"),
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

/// The setters `Timer` and `Profiler` share: both keep their [`RunOptions`] in `options`.
macro_rules! run_option_setters {
    ($owner:ty) => {
        impl $owner {
            /// Time between samples (50 us to 60 s, `settings::INTERVAL_RANGE`); takes effect
            /// at the next `start`.
            pub fn interval(&mut self, interval: std::time::Duration) -> &mut Self {
                self.options.interval = interval;
                self
            }

            /// Frames kept per stack, innermost first (1 to 65536,
            /// `settings::MAX_DEPTH_RANGE`); takes effect at the next `start` (a `Profiler`
            /// keeps the depth of its first).
            pub fn max_depth(&mut self, max_depth: usize) -> &mut Self {
                self.options.max_depth = max_depth;
                self
            }
        }
    };
}
pub(super) use run_option_setters;

/// The error of `start` on a `Timer` or `Profiler` (`what`) that is running already.
pub(super) fn already_running(what: &'static str) -> Error {
    Error::argument(
        what,
        "running",
        format!("join() the {what} before starting it again"),
    )
}

/// One consumer's sampling: the process's sampler samples `options.tid` for it while this
/// lives.
pub struct SamplingRun {
    sampling: Option<ConsumerHandle>,
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
        let pool_depth = match handler::pool() {
            Some(pool) => options.max_depth.min(pool.max_depth()),
            None => options.max_depth.max(API_POOL_DEPTH),
        };
        let pool = engine::install(0, pool_depth, handler::sample_signal(), None)?;
        let selector = Selector {
            fixed: vec![options.tid],
            all: false,
            pattern: None,
        };
        let sink = Box::new(to_consumer);
        let consumer =
            ConsumerOptions::new(selector, options.interval, options.max_depth, sink, stats);
        let sampling = ConsumerHandle::join(consumer, pool, true)?;
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
