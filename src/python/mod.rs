//! Layer 5 (beside `modules`): CPython's own frames, read from the interpreter's memory
//! without its API, its lock or ptrace.
//!
//! - `layout`: where each supported version keeps what is read (data, chosen by version);
//! - `runtime`: the interpreter among the loaded objects, and its thread states by native
//!   thread id (the sampler keeps these, and puts the sampled thread's in each request);
//! - the signal handler reads the frame chain (`engine::handler::python`);
//! - `splice`: the drain replaces each evaluation-loop activation of a native stack by the
//!   Python frames it ran;
//! - `code`: code objects to qualified names, files and lines, with checked reads.

mod code;
pub mod layout;
mod runtime;
mod splice;

pub use code::{name_chain, CodeCache};
pub use runtime::Interpreter;
pub use splice::{is_python_frame, PythonFrames, Spliced};

use layout::Layout;

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
