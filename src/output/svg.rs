//! `<prefix>.svg`: an interactive flame graph (search, zoom, tooltips) drawn by `inferno`
//! from the folded stacks, titled with the program, its threads and the sample count.

use std::io::{self, Write};

use inferno::flamegraph::{self, Options};

use super::folded::folded_lines;
use super::writer::Writer;
use crate::profile::Profile;

pub struct Svg;

impl Writer for Svg {
    fn write(&self, profile: &Profile, out: &mut dyn Write) -> io::Result<()> {
        let header = &profile.header;
        let executable = header.command.split(' ').next().unwrap_or("program");
        let program = executable.rsplit('/').next().unwrap_or(executable);
        let threads: Vec<String> = header
            .threads
            .iter()
            .map(|t| format!("{} ({})", t.tid, t.name.as_deref().unwrap_or("-")))
            .collect();
        let mut options = Options::default();
        options.title = format!("{program}: {} samples", profile.total_samples());
        options.subtitle = Some(format!(
            "pid {}, thread {}, every {:?}",
            header.pid,
            threads.join(", "),
            header.interval
        ));
        let lines = folded_lines(profile);
        if lines.is_empty() {
            // inferno refuses an empty profile; an empty graph still says what was sampled.
            return write_empty(out, &options.title);
        }
        flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)
            .map_err(io::Error::other)
    }
}

fn write_empty(out: &mut dyn Write, title: &str) -> io::Result<()> {
    let title = title.replace('&', "&amp;").replace('<', "&lt;");
    writeln!(
        out,
        r#"<?xml version="1.0" standalone="no"?><svg version="1.1" width="1200" height="60" xmlns="http://www.w3.org/2000/svg"><text x="600" y="30" text-anchor="middle">{title}</text></svg>"#
    )
}
