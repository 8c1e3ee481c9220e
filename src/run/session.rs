//! A profiling session: wires settings, module registry, signal handlers, sampler and drain
//! together, and takes them down again with a final profile.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};

use super::drain::{DrainMessage, DumpContext, LazyDrain};
use crate::base::error::Error;
use crate::base::thread::pid;
use crate::engine::handler::{SlotPool, SPARE_SLOTS};
use crate::engine::{self, ConsumerHandle, ConsumerOptions, MAX_SLOTS};
use crate::settings::{Settings, ThreadChoice};
use crate::stats::Stats;
use crate::threads::{self, Selector};

/// Batches of samples the drain may be behind by before new ones are dropped (and counted).
const CHANNEL_CAPACITY: usize = 64;
/// Threads sampled at once with `all` or a name pattern; more are counted as `slots busy`.
const MAX_DYNAMIC_THREADS: usize = MAX_SLOTS - SPARE_SLOTS;
/// How long the exiting program waits for its final profile. Symbolizing a large binary for
/// the first time can take seconds.
const FINAL_DUMP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running profiler.
pub struct Session {
    pid: i32,
    settings: Settings,
    selector: Selector,
    pool: &'static SlotPool,
    stats: Arc<Stats>,
    /// Its place with the process's sampler while sampling.
    sampling: Option<ConsumerHandle>,
    to_drain: Sender<DrainMessage>,
    drain: Arc<LazyDrain>,
}

impl Session {
    /// Installs the handlers and starts sampling (the drain's thread starts once the
    /// sampler has something for it).
    pub fn start(settings: Settings) -> Result<Session, Error> {
        let pid = pid();
        let selector = selector(&settings, pid);
        let (to_drain, from_sampler) = bounded(CHANNEL_CAPACITY);
        let targets = if selector.is_dynamic() {
            MAX_DYNAMIC_THREADS
        } else {
            selector.fixed.len()
        };
        let pool = engine::install(
            targets,
            settings.max_depth,
            settings.sample_signal,
            settings.dump_signal,
        )?;
        let stats = Arc::new(Stats::default());
        let mut context = DumpContext::new(settings.clone(), stats.clone(), pool);
        context.answers_dumps = true;
        let drain = LazyDrain::new(context, from_sampler);
        let mut session = Session {
            pid,
            settings,
            selector,
            pool,
            stats,
            sampling: None,
            to_drain,
            drain,
        };
        session.resume()?;
        Ok(session)
    }

    /// Starts (again) sampling; samples add to what the drain already holds.
    pub fn resume(&mut self) -> Result<(), Error> {
        if self.sampling.is_some() {
            return Ok(());
        }
        let consumer = ConsumerOptions {
            mode: self.settings.mode,
            flush: self.settings.flush,
            answers_dumps: true,
            python: self.settings.python,
            before_first_send: Some(self.drain.starter()),
            ..ConsumerOptions::new(
                self.selector.clone(),
                self.settings.interval,
                self.settings.max_depth,
                Box::new(self.to_drain.clone()),
                self.stats.clone(),
            )
        };
        self.sampling = Some(ConsumerHandle::join(consumer, self.pool, false)?);
        Ok(())
    }

    /// Stops sampling and writes the profile; `resume` goes on from there (a failed exec).
    pub fn pause(&mut self) -> Result<(), Error> {
        // Leaving waits until the last samples are on the drain's channel.
        drop(self.sampling.take());
        if let Some(written) = self.drain.dump_if_unstarted() {
            return written;
        }
        let (done, written) = bounded(1);
        let _ = self.to_drain.send(DrainMessage::Dump { done });
        match written.recv_timeout(FINAL_DUMP_TIMEOUT) {
            Ok(result) => result,
            Err(_) => Err(Error::System {
                action: "write the final profile in time",
                source: std::io::Error::from(std::io::ErrorKind::TimedOut),
            }),
        }
    }

    /// The process that started the session; a forked child must not finish it.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Stops sampling and writes the final profile.
    pub fn finish(mut self) -> Result<(), Error> {
        self.pause()
    }
}

/// The threads the settings choose; says so on stderr when a thread id does not exist (yet).
fn selector(settings: &Settings, pid: i32) -> Selector {
    let mut selector = Selector {
        fixed: Vec::new(),
        all: false,
        pattern: settings.thread_pattern.clone(),
    };
    for choice in &settings.threads {
        match *choice {
            ThreadChoice::Main => selector.fixed.push(pid),
            ThreadChoice::All => selector.all = true,
            ThreadChoice::Tid(tid) => {
                if !threads::exists(tid) {
                    eprintln!(
                        "stacksample: thread {tid} is not a thread of process {pid} (yet); it will be sampled if it appears"
                    );
                }
                selector.fixed.push(tid);
            }
        }
    }
    selector
}
