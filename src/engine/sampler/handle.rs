//! How consumers reach the process's one sampler thread: joining and leaving as a
//! consumer, holding every request across an exec, and forgetting the parent's sampler in a
//! forked child.

use std::sync::Mutex;
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded, Sender};

use super::consumer::{Consumer, ConsumerOptions};
use super::thread::{Command, Sampler};
use crate::base::error::Error;
use crate::base::thread::{pid, spawn};
use crate::engine::handler::{Control, SlotPool, CONTROL};
use crate::threads;

/// How long a caller waits for the sampler to answer a command; it answers within a
/// consumer's response timeout unless it is itself stopped.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// The process's sampler, once started: how to reach it.
static SAMPLER: Mutex<Option<SamplerHandle>> = Mutex::new(None);

struct SamplerHandle {
    /// The process that started it: a forked child has no sampler thread.
    pid: i32,
    commands: Sender<Command>,
    next_id: u64,
}

/// A consumer's place with the sampler; dropping it stops its sampling.
#[derive(Debug)]
pub struct ConsumerHandle {
    id: u64,
    /// The process it belongs to: a copy inherited by a forked child has no sampler.
    pid: i32,
    commands: Sender<Command>,
}

impl ConsumerHandle {
    /// Starts sampling for `options`, with the sampler thread if it is not running yet.
    /// With `wait_ready`, returns once the module snapshot exists (built now if need be), so
    /// code right after this is sampled from its first instruction.
    pub fn join(
        options: ConsumerOptions,
        pool: &'static SlotPool,
        wait_ready: bool,
    ) -> Result<ConsumerHandle, Error> {
        /// How long to wait for the first snapshot; past this sampling begins once it is there.
        const READY_TIMEOUT: Duration = Duration::from_secs(10);
        let (ready, readiness) = bounded(1);
        threads::install_fork_handlers();
        let (id, commands) = threads::with_fork_guard(|| {
            let mut sampler = SAMPLER.lock().unwrap_or_else(|e| e.into_inner());
            let handle = match sampler.as_mut() {
                Some(handle) if handle.pid == pid() => handle,
                _ => sampler.insert(start_sampler(pool)?),
            };
            let id = handle.next_id;
            handle.next_id += 1;
            let consumer = Box::new(Consumer::new(id, options));
            let ready = wait_ready.then_some(ready);
            let command = Command::Join { consumer, ready };
            handle.commands.send(command).map_err(|_| Error::System {
                action: "reach the sampler thread",
                source: std::io::Error::from(std::io::ErrorKind::BrokenPipe),
            })?;
            Ok::<_, Error>((id, handle.commands.clone()))
        })?;
        CONTROL.request(Control::COMMAND);
        if wait_ready {
            let _ = readiness.recv_timeout(READY_TIMEOUT);
        }
        Ok(ConsumerHandle {
            id,
            pid: pid(),
            commands,
        })
    }
}

impl Drop for ConsumerHandle {
    /// Stops sampling for this consumer and waits until its last samples are on its channel.
    fn drop(&mut self) {
        if self.pid == pid() {
            let id = self.id;
            command(&self.commands, |done| Command::Leave { id, done });
        }
    }
}

/// Sends `make(done)` to the sampler and waits until it is carried out.
fn command(commands: &Sender<Command>, make: impl FnOnce(Sender<()>) -> Command) {
    let (done, carried_out) = bounded(1);
    if commands.send(make(done)).is_ok() {
        CONTROL.request(Control::COMMAND);
        let _ = carried_out.recv_timeout(COMMAND_TIMEOUT);
    }
}

/// Stops (`true`) or restarts every request of this process's sampler. Before the process
/// image is replaced no request may be left to arrive after it; returns once none can.
/// False if this process has no sampler.
pub fn hold_requests(held: bool) -> bool {
    let commands = threads::with_fork_guard(|| {
        let sampler = SAMPLER.lock().unwrap_or_else(|e| e.into_inner());
        sampler
            .as_ref()
            .filter(|handle| handle.pid == pid())
            .map(|handle| handle.commands.clone())
    });
    let Some(commands) = commands else {
        return false;
    };
    command(&commands, |done| Command::Hold { held, done });
    true
}

/// In a forked child: the parent's sampler thread does not exist here.
pub fn forget_after_fork() {
    threads::with_fork_guard(|| {
        // Its channel may be in any state the parent's threads left it in: never touched.
        let parent = SAMPLER.lock().unwrap_or_else(|e| e.into_inner()).take();
        std::mem::forget(parent);
    });
}

/// Starts the process's sampler thread. In a forked child the slots the parent's handlers
/// and requests were using are idle again first: none of those threads exists here.
fn start_sampler(pool: &'static SlotPool) -> Result<SamplerHandle, Error> {
    pool.reset_after_fork();
    CONTROL.take();
    let (commands, incoming) = unbounded();
    let sampler = Sampler::new(pool, incoming);
    spawn("stacksample-samp", move || sampler.run())?;
    Ok(SamplerHandle {
        pid: pid(),
        commands,
        next_id: 0,
    })
}
