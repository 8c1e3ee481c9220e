//! `<prefix>.folded`: one line per distinct stack, `root;...;leaf count`, the input format of
//! flamegraph.pl, inferno and speedscope. Inlined functions are frames of their own. A stack
//! cut at the depth limit starts with a `[truncated]` frame, so the loss shows in the flame
//! graph. With `STACKSAMPLE_PER_THREAD=1` every stack starts with a `name (tid)` frame.

use std::collections::HashMap;
use std::io::{self, Write};

use super::writer::Writer;
use crate::profile::Profile;

pub struct Folded;

impl Writer for Folded {
    fn write(&self, profile: &Profile, out: &mut dyn Write) -> io::Result<()> {
        for line in folded_lines(profile) {
            writeln!(out, "{line}")?;
        }
        Ok(())
    }
}

/// The folded lines of `profile`, largest count first. Stacks that differ only in source
/// lines fold into one line.
pub fn folded_lines(profile: &Profile) -> Vec<String> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for stack in &profile.stacks {
        let mut frames: Vec<String> = Vec::with_capacity(stack.locations.len() + 1);
        if profile.header.per_thread {
            frames.push(profile.thread_label(stack.tid).replace(';', ":"));
        }
        if stack.truncated() {
            frames.push("[truncated]".to_owned());
        }
        frames.extend(
            profile
                .stack_names(stack)
                .map(|name| name.replace(';', ":")),
        );
        *counts.entry(frames.join(";")).or_insert(0) += stack.count;
    }
    let mut lines: Vec<(String, u64)> = counts.into_iter().collect();
    lines.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    lines
        .into_iter()
        .map(|(stack, count)| format!("{stack} {count}"))
        .collect()
}
