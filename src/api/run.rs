//! One sampling run of the API: claims the process's sampler, samples one thread on the
//! engine's schedule, and feeds the raw samples to a consumer (a `Timer`'s callback thread
//! or a `Profiler`'s drain). Started and stopped on the caller's thread.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};

use crate::drain::DrainMessage;
use crate::error::Error;
use crate::sampler::{Owner, Sampler, SamplerClaim};
use crate::settings::{Mode, MAX_INTERVAL, MAX_MAX_DEPTH, MIN_INTERVAL};
use crate::signal::slot::{SlotPool, SPARE_SLOTS};
use crate::signal::{self, Control, CONTROL};
use crate::stats::Stats;
use crate::threads::Selector;

/// Frames each slot holds when the API installs the pool: deep enough for any `max_depth`
/// a caller is likely to ask for later in the process (the pool is installed once), small
/// enough to cost little (8 KiB a slot).
const API_POOL_DEPTH: usize = 1024;

/// How long `start` waits for the first module snapshot; past this it returns and sampling
/// begins once the snapshot is there.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

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

/// A running sampler thread and the claim that makes it the process's only one.
pub struct SamplingRun {
    sampler: Option<JoinHandle<()>>,
    _claim: SamplerClaim,
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
        let claim = SamplerClaim::take(Owner::Api, "start sampling")?;
        let pool_depth = match signal::pool() {
            Some(_) => options.max_depth,
            None => options.max_depth.max(API_POOL_DEPTH),
        };
        let pool = signal::install(1 + SPARE_SLOTS, pool_depth, signal::sample_signal(), None)?;
        let selector = Selector {
            fixed: vec![options.tid],
            all: false,
            pattern: None,
        };
        let mut sampler = Sampler::new(
            options.interval,
            Mode::Wall,
            None,
            selector,
            pool,
            to_consumer,
            stats,
        );
        let (ready, sampling) = bounded(1);
        sampler.notify_ready(ready);
        let sampler = crate::session::spawn("stacksample-api", move || sampler.run())?;
        // Code profiled right after `start` is sampled from its first instruction on.
        let _ = sampling.recv_timeout(READY_TIMEOUT);
        Ok(SamplingRun {
            sampler: Some(sampler),
            _claim: claim,
            pool,
        })
    }

    pub fn pool(&self) -> &'static SlotPool {
        self.pool
    }

    /// Stops the sampler and waits for it; its last samples are on the channel by then.
    pub fn stop(&mut self) {
        let Some(sampler) = self.sampler.take() else {
            return;
        };
        CONTROL.request(Control::STOP);
        let _ = sampler.join();
    }
}

impl Drop for SamplingRun {
    fn drop(&mut self) {
        self.stop();
    }
}
