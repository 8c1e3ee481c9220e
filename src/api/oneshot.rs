//! One stack, now: of another thread, or of the calling thread (the seed API's
//! `get_thread_stack`, `print_thread_stack`, `print_stack`).
//!
//! Each call is a short [`Timer`] run that keeps its first stack, so the stack is taken by
//! the same handler and named by the same symbolizer as every other sample. The calling
//! thread is sampled while it waits for that stack, so the frames of the wait (this module
//! and what it calls) are cut off. It waits spinning, not blocked: a running thread is
//! sampled by the signal handler from its full registers.

use std::io::Write;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver};

use crate::base::error::Error;
use crate::threads;

use super::entries::{EntryKind, StackEntry};
use super::timer::Timer;

/// A first sample needs the module snapshot to be built; on a large program that takes a
/// moment, and a thread blocked in a call may need a few ticks to be caught.
const FIRST_STACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the short run asks for a stack.
const ONE_SHOT_INTERVAL: Duration = Duration::from_millis(1);
/// Function names of this crate start so (Rust symbols, demangled without hash).
const OWN_PREFIX: &str = "stacksample::";
/// Functions of the C ABI (`capi`), through which C and Python call.
const C_ABI_PREFIX: &str = "stacksample_";

/// The stack of kernel thread `tid` of this process, innermost first, up to `max_depth`.
pub fn thread_stack(tid: i32, max_depth: usize) -> Result<Vec<StackEntry>, Error> {
    if tid == threads::current_tid() {
        return current_stack(max_depth);
    }
    first_stack(tid, max_depth, Wait::Block)
}

/// The stack of the calling thread, innermost first: its caller's frame first.
pub fn current_stack(max_depth: usize) -> Result<Vec<StackEntry>, Error> {
    // Our own frames are cut off, so ask for room for them too.
    let own_frames_allowance = 64;
    let stack = first_stack(
        threads::current_tid(),
        max_depth + own_frames_allowance,
        Wait::Spin,
    )?;
    let mut callers = without_own_frames(stack);
    callers.truncate(max_depth);
    Ok(callers)
}

/// Prints the calling thread's stack on stdout, one entry a line.
pub fn print_stack(max_depth: usize) -> Result<(), Error> {
    print(&current_stack(max_depth)?)
}

/// Prints thread `tid`'s stack on stdout, one entry a line.
pub fn print_thread_stack(tid: i32, max_depth: usize) -> Result<(), Error> {
    print(&thread_stack(tid, max_depth)?)
}

fn print(stack: &[StackEntry]) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    stack
        .iter()
        .try_for_each(|entry| writeln!(out, "{entry}"))
        .map_err(|source| Error::System {
            action: "print the stack",
            source,
        })
}

/// How the caller waits for the first stack.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Block,
    /// The caller is the sampled thread.
    Spin,
}

fn first_stack(tid: i32, max_depth: usize, wait: Wait) -> Result<Vec<StackEntry>, Error> {
    let (to_caller, first) = bounded(1);
    let mut timer = Timer::new(tid, move |stack| {
        let _ = to_caller.try_send(stack.to_vec());
    });
    timer.interval(ONE_SHOT_INTERVAL).max_depth(max_depth);
    timer.start()?;
    let stack = match wait {
        Wait::Block => wait_while_alive(tid, &first),
        Wait::Spin => spin_for(&first),
    };
    timer.join()?;
    if stack.is_none() && !threads::exists(tid) {
        return Err(ended(tid));
    }
    stack.ok_or_else(|| Error::System {
        action: "take a stack of the thread",
        source: std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("thread {tid} gave no sample in {FIRST_STACK_TIMEOUT:?} (ended, or blocks the sampling signal)"),
        ),
    })
}

/// How often a blocked wait looks whether the thread is still there.
const ALIVE_CHECK: Duration = Duration::from_millis(10);

/// Waits for the first stack while thread `tid` lives, so a thread that ends is told at
/// once, not after the timeout.
fn wait_while_alive(tid: i32, first: &Receiver<Vec<StackEntry>>) -> Option<Vec<StackEntry>> {
    let started = Instant::now();
    while started.elapsed() < FIRST_STACK_TIMEOUT {
        if let Ok(stack) = first.recv_timeout(ALIVE_CHECK) {
            return Some(stack);
        }
        if !threads::exists(tid) {
            return first.try_recv().ok();
        }
    }
    None
}

/// The error of a stack asked of a thread that ended before it gave one.
fn ended(tid: i32) -> Error {
    Error::argument(
        "thread id",
        tid,
        "the thread ended before its stack was taken",
    )
}

fn spin_for(first: &Receiver<Vec<StackEntry>>) -> Option<Vec<StackEntry>> {
    let started = Instant::now();
    while started.elapsed() < FIRST_STACK_TIMEOUT {
        if let Ok(stack) = first.try_recv() {
            return Some(stack);
        }
        std::hint::spin_loop();
    }
    None
}

/// Drops the innermost frames up to and including the outermost native frame of this crate
/// below the caller's first Python frame (a Python caller may itself run on a thread of
/// this crate, a `Timer`'s callback thread).
fn without_own_frames(stack: Vec<StackEntry>) -> Vec<StackEntry> {
    let first_python = stack
        .iter()
        .position(|entry| entry.kind == EntryKind::Python)
        .unwrap_or(stack.len());
    let outermost_own = stack[..first_python].iter().rposition(|entry| {
        entry.name.starts_with(OWN_PREFIX) || entry.name.starts_with(C_ABI_PREFIX)
    });
    match outermost_own {
        Some(index) => stack.into_iter().skip(index + 1).collect(),
        None => stack,
    }
}
