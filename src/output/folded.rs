//! `<prefix>.folded`: one line per distinct stack, `root;...;leaf count`, the input format of
//! flamegraph.pl, inferno and speedscope. A stack cut at the depth limit starts with a
//! `[truncated]` frame, so the loss shows in the flame graph.

use std::io::{self, Write};

use super::Format;
use crate::profile::Profile;

pub struct Folded;

impl Format for Folded {
    fn extension(&self) -> &'static str {
        "folded"
    }

    fn write(&self, profile: &Profile, out: &mut dyn Write) -> io::Result<()> {
        for stack in &profile.stacks {
            let names = stack
                .frames
                .iter()
                .map(|&id| profile.frames[id].function.replace(';', ":"));
            let mut line: Vec<String> = Vec::with_capacity(stack.frames.len() + 1);
            if stack.truncated() {
                line.push("[truncated]".to_owned());
            }
            line.extend(names);
            writeln!(out, "{} {}", line.join(";"), stack.count)?;
        }
        Ok(())
    }
}
