//! Layer 3: the threads of this process. `proc` reads what the kernel says about them,
//! `selector` picks the ones to sample, `own` names the profiler's own, and `fork` keeps a
//! forked child free of locks the parent's threads held.

mod fork;
mod own;
mod proc;
mod selector;

pub use fork::{install_fork_handlers, set_fork_child_hook, with_fork_guard};
pub use own::{forget_own_threads, is_own_thread, register_own_thread, unregister_own_thread};
pub use proc::{
    command_line, cpu_time, current_tid, exists, name, priority, process_started, run_queue_wait,
    voluntary_switches, SyscallFile, SyscallState,
};
pub use selector::Selector;
