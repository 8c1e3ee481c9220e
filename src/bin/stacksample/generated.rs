//! `completions` and `man`: shell completion scripts and manual pages, generated from the same
//! clap definitions that parse the command line, so they cannot fall behind its options.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use clap_complete::Shell;

use crate::failure::Failure;

#[derive(Args)]
#[command(
    about = "Print the shell completion script for bash, zsh, fish, elvish or powershell",
    after_help = "Examples:\n  stacksample completions bash > ~/.local/share/bash-completion/completions/stacksample\n  stacksample completions zsh > ~/.zfunc/_stacksample\n  stacksample completions fish > ~/.config/fish/completions/stacksample.fish"
)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    shell: Shell,
}

#[derive(Args)]
#[command(
    about = "Print the manual page (roff), or write one page per command into a directory",
    after_help = "Examples:\n  stacksample man | man -l -\n  stacksample man --dir ~/.local/share/man/man1"
)]
pub struct ManArgs {
    /// Writes stacksample.1 and a stacksample-SUBCOMMAND.1 page for each subcommand here.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs, mut command: clap::Command) -> Result<(), Failure> {
    // Into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "stacksample", &mut script);
    print(&script, &format!("the {} completions", args.shell))
}

pub fn man(args: ManArgs, command: clap::Command) -> Result<(), Failure> {
    match args.dir {
        Some(dir) => clap_mangen::generate_to(command, &dir).map_err(|error| {
            Failure::new(format!(
                "cannot write the manual pages into {}: {error}",
                dir.display()
            ))
            .hint("give --dir an existing directory you can write to")
        }),
        None => {
            let mut page = Vec::new();
            // As generate_to does: `help` has no page of its own.
            clap_mangen::Man::new(command.disable_help_subcommand(true))
                .render(&mut page)
                .map_err(|error| Failure::new(format!("cannot render the manual page: {error}")))?;
            print(&page, "the manual page")
        }
    }
}

fn print(bytes: &[u8], what: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|error| Failure::new(format!("cannot write {what} to stdout: {error}")))
}
