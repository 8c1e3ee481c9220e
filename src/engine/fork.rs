//! A forked child, before a new session starts: no thread of the parent exists there, so
//! nothing can be writing a slot, and the parent's requests, wake-ups and threads mean
//! nothing.

use super::handler::{self, pool, CONTROL};
use super::{sampler, thread_start};
use crate::threads;

/// Forgets, in a forked child, what the parent's threads left behind.
pub fn reset_after_fork() {
    if let Some(pool) = pool() {
        pool.reset_after_fork();
    }
    CONTROL.take();
    handler::set_sampling(false);
    sampler::forget_after_fork();
    threads::forget_own_threads();
    thread_start::watch(false);
}
