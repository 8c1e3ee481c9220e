//! Layer 1: what every other layer uses and that knows nothing of profiling: errors, the
//! clock, futexes, files checked against descriptors the program closes, glibc look-ups,
//! the library's own heap use, its threads and `pid()`.

pub mod clock;
pub mod error;
pub mod file;
pub mod futex;
pub mod glibc;
pub mod heap;
pub mod thread;
