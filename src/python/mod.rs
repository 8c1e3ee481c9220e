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
mod target;

pub use code::{name_chain, CodeCache};
pub use runtime::Interpreter;
pub use splice::{is_python_frame, PythonFrames, Spliced};
pub use target::PythonTarget;
