//! Integration tests: real C programs from `programs/` run under `LD_PRELOAD`, with
//! assertions on what a user reads: stacks, counts, files, exit codes, stderr.

mod cli;
mod dump;
mod endings;
mod exec;
mod formats;
mod gauntlet;
mod host;
mod python;
mod settings;
mod signals;
mod stacks;
mod support;
mod symbols;
mod threads;
mod unwinding;
