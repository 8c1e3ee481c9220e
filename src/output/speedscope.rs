//! `<prefix>.speedscope.json`: speedscope's file format, one sampled profile per thread with
//! the samples in the order they were taken, so its timeline view shows when each function
//! ran. Samples beyond the kept timeline are appended per stack at the end.

use std::collections::HashMap;
use std::io::{self, Write};

use serde::Serialize;

use super::writer::Writer;
use crate::profile::Profile;

const SCHEMA: &str = "https://www.speedscope.app/file-format-schema.json";

pub struct Speedscope;

#[derive(Serialize)]
struct File<'p> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    name: String,
    exporter: String,
    #[serde(rename = "activeProfileIndex")]
    active_profile_index: usize,
    shared: Shared<'p>,
    profiles: Vec<SampledProfile>,
}

#[derive(Serialize)]
struct Shared<'p> {
    frames: Vec<FrameEntry<'p>>,
}

#[derive(Serialize)]
struct FrameEntry<'p> {
    name: &'p str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'p str>,
}

#[derive(Serialize)]
struct SampledProfile {
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
    unit: &'static str,
    #[serde(rename = "startValue")]
    start_value: u64,
    #[serde(rename = "endValue")]
    end_value: u64,
    /// Indices into the shared frames, root first.
    samples: Vec<Vec<usize>>,
    weights: Vec<u64>,
}

impl Writer for Speedscope {
    fn write(&self, profile: &Profile, out: &mut dyn Write) -> io::Result<()> {
        let frames = profile
            .functions
            .iter()
            .map(|f| FrameEntry {
                name: &f.name,
                file: f.file.as_deref(),
            })
            .collect();
        let weight = profile.header.interval.as_nanos() as u64;
        let mut per_thread: Vec<(i32, SampledProfile)> = Vec::new();
        let mut thread_index: HashMap<i32, usize> = HashMap::new();
        let order = profile
            .timeline
            .iter()
            .map(|&s| s as usize)
            .chain(leftovers(profile, &profile.timeline));
        for stack_index in order {
            let stack = &profile.stacks[stack_index];
            let index = *thread_index.entry(stack.tid).or_insert_with(|| {
                let name = profile.thread_label(stack.tid);
                per_thread.push((
                    stack.tid,
                    SampledProfile {
                        kind: "sampled",
                        name,
                        unit: "nanoseconds",
                        start_value: 0,
                        end_value: 0,
                        samples: Vec::new(),
                        weights: Vec::new(),
                    },
                ));
                per_thread.len() - 1
            });
            let sampled = &mut per_thread[index].1;
            sampled
                .samples
                .push(profile.stack_frames(stack).map(|f| f.function).collect());
            sampled.weights.push(weight);
            sampled.end_value += weight;
        }
        let file = File {
            schema: SCHEMA,
            name: profile.header.command.clone(),
            exporter: format!("stacksample {}", env!("CARGO_PKG_VERSION")),
            active_profile_index: 0,
            shared: Shared { frames },
            profiles: per_thread.into_iter().map(|(_, p)| p).collect(),
        };
        serde_json::to_writer(&mut *out, &file).map_err(io::Error::other)?;
        writeln!(out)
    }
}

/// Samples not on the timeline (it has a length cap): each stack's remaining count.
fn leftovers<'p>(profile: &'p Profile, timeline: &'p [u32]) -> impl Iterator<Item = usize> + 'p {
    let mut on_timeline = vec![0u64; profile.stacks.len()];
    for &s in timeline {
        on_timeline[s as usize] += 1;
    }
    profile
        .stacks
        .iter()
        .enumerate()
        .flat_map(move |(i, stack)| {
            let rest = stack.count.saturating_sub(on_timeline[i]);
            std::iter::repeat_n(i, rest as usize)
        })
}
