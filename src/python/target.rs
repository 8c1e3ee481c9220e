//! What a sample request names for the handler to read a thread's Python frames.

use super::layout::Layout;

/// A thread whose Python frames a sample request asks for.
#[derive(Debug, Clone, Copy)]
pub struct PythonTarget {
    /// Its `PyThreadState`.
    pub tstate: u64,
    /// The thread the state must belong to (`native_thread_id`) and the interpreter it was
    /// listed under, both checked in the handler.
    pub tid: i32,
    pub interpreter: u64,
    /// The `pthread` key each thread keeps its own state under, when known.
    pub tss_key: Option<libc::pthread_key_t>,
    pub layout: &'static Layout,
}
