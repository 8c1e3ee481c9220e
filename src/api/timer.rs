//! [`Timer`]: samples one thread at an interval and hands each stack to a callback, which
//! runs on a thread of its own (never in the signal handler).

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver};

use crate::base::error::Error;
use crate::base::thread::spawn;
use crate::engine::Delivery;
use crate::run::DrainMessage;

use super::entries::{fold_python, EntryNamer, StackEntry};
use super::run::{already_running, run_option_setters, RunOptions, SamplingRun};

/// Batches of samples the callback thread may be behind by before new ones are dropped.
const CALLBACK_BACKLOG: usize = 64;
/// What a timer calls with each stack, innermost entry first.
pub type Callback = Box<dyn FnMut(&[StackEntry]) + Send>;

/// Samples a thread repeatedly and passes each stack to a callback.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::{Duration, Instant};
/// use stacksample::api::Timer;
///
/// let stacks = Arc::new(Mutex::new(Vec::new()));
/// let seen = stacks.clone();
/// let mut timer = Timer::new(stacksample::current_tid(), move |stack| {
///     seen.lock().unwrap().push(stack.to_vec());
/// });
/// timer.interval(Duration::from_millis(1));
/// timer.start()?;
/// let started = Instant::now();
/// let mut x = 1u64;
/// while started.elapsed() < Duration::from_millis(100) {
///     x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
/// }
/// timer.join()?;
/// assert!(!stacks.lock().unwrap().is_empty());
/// # Ok::<(), stacksample::Error>(())
/// ```
pub struct Timer {
    options: RunOptions,
    show_python: bool,
    /// Held here while stopped; the callback thread owns it while running.
    callback: Option<Callback>,
    running: Option<Running>,
}

struct Running {
    run: SamplingRun,
    callbacks: JoinHandle<Callback>,
}

impl Timer {
    /// A timer for kernel thread `tid` (see [`super::kernel_tid`] for `pthread_t` values),
    /// at the seed API's defaults: every 50 ms, 100 frames, interpreter frames shown.
    pub fn new(tid: i32, callback: impl FnMut(&[StackEntry]) + Send + 'static) -> Timer {
        Timer {
            options: RunOptions::seed_defaults(tid),
            show_python: true,
            callback: Some(Box::new(callback)),
            running: None,
        }
    }

    /// With `false`, each run of CPython interpreter frames becomes one
    /// `<skipped N Python entries>` entry.
    pub fn show_python(&mut self, show: bool) -> &mut Timer {
        self.show_python = show;
        self
    }

    /// Starts sampling; an error if it runs already.
    pub fn start(&mut self) -> Result<(), Error> {
        if self.running.is_some() {
            return Err(already_running("timer"));
        }
        let Some(callback) = self.callback.take() else {
            return Err(Error::argument(
                "timer",
                "no callback",
                "create a new Timer",
            ));
        };
        let (to_callbacks, samples) = bounded(CALLBACK_BACKLOG);
        let run = match SamplingRun::start(&self.options, Arc::default(), to_callbacks) {
            Ok(run) => run,
            Err(error) => {
                self.callback = Some(callback);
                return Err(error);
            }
        };
        let max_depth = self.options.max_depth;
        let show_python = self.show_python;
        let callbacks = spawn("stacksample-cb", move || {
            call_back(samples, callback, max_depth, show_python)
        })?;
        self.running = Some(Running { run, callbacks });
        Ok(())
    }

    /// Whether the timer samples now.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Stops sampling and waits until the callback has seen every stack taken.
    pub fn join(&mut self) -> Result<(), Error> {
        let Some(mut running) = self.running.take() else {
            return Ok(());
        };
        running.run.stop();
        drop(running.run);
        match running.callbacks.join() {
            Ok(callback) => {
                self.callback = Some(callback);
                Ok(())
            }
            Err(_) => Err(Error::System {
                action: "run the timer's callback to the end",
                source: std::io::Error::other("it panicked (see the message above)"),
            }),
        }
    }
}

run_option_setters!(Timer);

impl Drop for Timer {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// The callback thread: names each sample and calls `callback`, until the sampler is gone.
fn call_back(
    samples: Receiver<DrainMessage>,
    mut callback: Callback,
    max_depth: usize,
    show_python: bool,
) -> Callback {
    let mut namer = EntryNamer::default();
    for message in samples {
        match message {
            DrainMessage::Engine(Delivery::Modules(map)) => namer.add_map(map),
            DrainMessage::Engine(Delivery::Samples(mut samples)) => {
                for sample in samples.iter_mut() {
                    let entries = namer.entries(sample, max_depth);
                    let entries = if show_python {
                        entries
                    } else {
                        fold_python(entries)
                    };
                    callback(&entries);
                }
            }
            // Only the session is asked for profiles.
            DrainMessage::Engine(Delivery::Dump)
            | DrainMessage::Dump { .. }
            | DrainMessage::Profile { .. } => {}
        }
    }
    callback
}
