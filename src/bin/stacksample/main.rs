//! `stacksample`: the command line around `libstacksample.so`.
//!
//! - `record`: runs a command with the library preloaded, forwards termination signals, exits
//!   as the command did, writes the run's files into one place and prints a summary
//!   (`record.rs`, `signals.rs`, `progress_line.rs`, `run_files.rs`, `summary.rs`).
//! - `report`: renders profiles in any format with filters (`report.rs`, `input.rs`,
//!   `merge.rs`, `filter.rs`).
//! - `dump`: asks a running process to write its profile now (`dump.rs`).
//! - `completions`, `man`: shell completions and manual pages from these definitions
//!   (`generated.rs`).
//!
//! `library.rs` finds the `.so`; `failure.rs` is the error every subcommand returns.

mod dump;
mod failure;
mod filter;
mod generated;
mod input;
mod library;
mod merge;
mod progress_line;
mod record;
mod report;
mod run_files;
mod signals;
mod summary;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "stacksample",
    version,
    about = "Sampling profiler for native call stacks of any dynamically linked Linux program",
    after_help = "Examples:\n  stacksample record -- make -j4\n  stacksample report --format svg -o flame.svg stacksample.1234.profile.json.gz\n  stacksample dump 1234"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Record(record::RecordArgs),
    Report(report::ReportArgs),
    Dump(dump::DumpArgs),
    Completions(generated::CompletionsArgs),
    Man(generated::ManArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Record(args) => record::run(args),
        Command::Report(args) => report::run(args).map(|()| ExitCode::SUCCESS),
        Command::Dump(args) => dump::run(args).map(|()| ExitCode::SUCCESS),
        Command::Completions(args) => {
            generated::completions(args, Cli::command()).map(|()| ExitCode::SUCCESS)
        }
        Command::Man(args) => generated::man(args, Cli::command()).map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|failure| {
        eprintln!("{failure}");
        failure.exit_code()
    })
}
