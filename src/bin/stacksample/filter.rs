//! `report`'s filters, applied to the profile before any writer sees it, so every format
//! shows the same selection. A stack is rewritten frame by frame (root first) and its
//! locations rebuilt: a location keeps the address and module of the one it came from, with
//! only the frames that are left.

use std::collections::HashMap;

use regex::Regex;
use stacksample::profile::{Location, Profile, Selection, Stack};
use stacksample::StopReason;

use crate::failure::Failure;

#[derive(Default)]
pub struct Filters {
    /// Thread ids, or globs matched against thread names; empty: every thread.
    pub threads: Vec<ThreadFilter>,
    /// Keep samples with a frame whose function matches.
    pub include: Option<Regex>,
    /// Drop samples with a frame whose function matches.
    pub exclude: Option<Regex>,
    /// Remove matching frames from stacks (the samples stay).
    pub hide: Option<Regex>,
    /// A function calling itself, directly, shows as one frame.
    pub collapse_recursion: bool,
    /// Callers of the matching function: stacks cut below its innermost call, then inverted.
    pub callers: Option<Regex>,
    /// Leaf first: who called the functions where time was spent.
    pub invert: bool,
    /// Keep only the heaviest stacks.
    pub top_stacks: Option<usize>,
    /// The filters as the user gave them, for the report to say what it shows.
    pub described: String,
}

impl Filters {
    fn is_empty(&self) -> bool {
        self.threads.is_empty()
            && self.include.is_none()
            && self.exclude.is_none()
            && self.hide.is_none()
            && !self.collapse_recursion
            && self.callers.is_none()
            && !self.invert
            && self.top_stacks.is_none()
    }
}

pub enum ThreadFilter {
    Tid(i32),
    Name(glob::Pattern),
}

impl ThreadFilter {
    pub fn parse(text: &str) -> Result<ThreadFilter, Failure> {
        if let Ok(tid) = text.parse::<i32>() {
            return Ok(ThreadFilter::Tid(tid));
        }
        glob::Pattern::new(text)
            .map(ThreadFilter::Name)
            .map_err(|e| {
                Failure::new(format!("--thread {text:?}: {}", e.msg))
                    .hint("give a thread id or a glob of thread names such as 'worker-*'")
            })
    }

    fn matches(&self, profile: &Profile, tid: i32) -> bool {
        match self {
            ThreadFilter::Tid(wanted) => *wanted == tid,
            ThreadFilter::Name(pattern) => profile
                .thread_name(tid)
                .is_some_and(|name| pattern.matches(name)),
        }
    }
}

/// A regular expression from the command line, with the option named in the error.
pub fn regex(option: &str, text: &str) -> Result<Regex, Failure> {
    Regex::new(text).map_err(|e| {
        Failure::new(format!(
            "{option} {text:?} is not a regular expression: {e}"
        ))
        .hint("the syntax is Rust's regex crate: 'foo|bar', '^std::', 'alloc.*'")
    })
}

/// A frame of a stack being rewritten: its location and frame index in the input profile.
type Step = (usize, usize);

pub fn apply(mut profile: Profile, filters: &Filters) -> Profile {
    if filters.is_empty() {
        return profile;
    }
    let before = Selection {
        samples: profile.total_samples(),
        incomplete: profile.incomplete_samples(),
        filters: filters.described.clone(),
    };
    let mut rebuilt = Rebuilt::default();
    let mut stack_map = vec![None; profile.stacks.len()];
    for (index, stack) in profile.stacks.iter().enumerate() {
        if let Some(steps) = rewrite(&profile, stack, filters) {
            stack_map[index] = Some(rebuilt.add(&profile, stack, &steps));
        }
    }
    profile.locations = rebuilt.locations;
    profile.stacks = rebuilt.stacks;
    profile.timeline = profile
        .timeline
        .iter()
        .filter_map(|&s| stack_map[s as usize])
        .collect();
    if let Some(top) = filters.top_stacks {
        keep_heaviest(&mut profile, top);
    }
    profile.leaf_first ^= filters.invert ^ filters.callers.is_some();
    profile.header.filtered = Some(match profile.header.filtered.take() {
        Some(mut earlier) => {
            earlier.filters = format!("{} {}", earlier.filters, filters.described);
            earlier
        }
        None => before,
    });
    profile
}

/// The frames `stack` keeps, root first; `None` when the sample is filtered out.
fn rewrite(profile: &Profile, stack: &Stack, filters: &Filters) -> Option<Vec<Step>> {
    if !filters.threads.is_empty()
        && !filters
            .threads
            .iter()
            .any(|t| t.matches(profile, stack.tid))
    {
        return None;
    }
    let name = |&(_, frame): &Step| {
        let function = profile.frames[frame].function;
        profile.functions[function].name.as_str()
    };
    let mut steps: Vec<Step> = stack
        .locations
        .iter()
        .flat_map(|&l| profile.locations[l].frames.iter().map(move |&f| (l, f)))
        .collect();
    let any = |re: &Option<Regex>, steps: &[Step]| {
        re.as_ref()
            .map(|re| steps.iter().any(|s| re.is_match(name(s))))
    };
    if any(&filters.include, &steps) == Some(false) || any(&filters.exclude, &steps) == Some(true) {
        return None;
    }
    if let Some(hide) = &filters.hide {
        steps.retain(|s| !hide.is_match(name(s)));
    }
    if filters.collapse_recursion {
        steps.dedup_by(|inner, outer| name(inner) == name(outer));
    }
    if let Some(callers) = &filters.callers {
        let innermost = steps.iter().rposition(|s| callers.is_match(name(s)))?;
        steps.truncate(innermost + 1);
        steps.reverse();
    }
    if filters.invert {
        steps.reverse();
    }
    (!steps.is_empty()).then_some(steps)
}

/// Locations and stacks of the filtered profile; stacks that became equal are merged.
#[derive(Default)]
struct Rebuilt {
    locations: Vec<Location>,
    location_ids: HashMap<(usize, Vec<usize>), usize>,
    stacks: Vec<Stack>,
    stack_ids: HashMap<(i32, StopReason, Vec<usize>), u32>,
}

impl Rebuilt {
    /// Adds the rewritten `stack` and returns its index.
    fn add(&mut self, profile: &Profile, stack: &Stack, steps: &[Step]) -> u32 {
        let mut locations = Vec::new();
        for group in steps.chunk_by(|a, b| a.0 == b.0) {
            let source = &profile.locations[group[0].0];
            let frames: Vec<usize> = group.iter().map(|&(_, f)| f).collect();
            let next_id = self.locations.len();
            let id = *self
                .location_ids
                .entry((group[0].0, frames.clone()))
                .or_insert(next_id);
            if id == next_id {
                self.locations.push(Location {
                    address: source.address,
                    module: source.module,
                    frames,
                });
            }
            locations.push(id);
        }
        let next_id = self.stacks.len() as u32;
        let key = (stack.tid, stack.stop, locations);
        let id = *self.stack_ids.entry(key.clone()).or_insert(next_id);
        if id == next_id {
            self.stacks.push(Stack {
                tid: stack.tid,
                locations: key.2,
                count: 0,
                stop: stack.stop,
            });
        }
        self.stacks[id as usize].count += stack.count;
        id
    }
}

/// Keeps the stacks of the `top` heaviest call paths, as the folded output names them (by
/// function, and by thread when it starts each stack with one), heaviest first.
fn keep_heaviest(profile: &mut Profile, top: usize) {
    let path = |stack: &Stack| {
        let tid = profile.header.per_thread.then_some(stack.tid);
        let functions: Vec<usize> = profile.stack_frames(stack).map(|f| f.function).collect();
        (tid, stack.truncated(), functions)
    };
    let mut weights: HashMap<_, u64> = HashMap::new();
    for stack in &profile.stacks {
        *weights.entry(path(stack)).or_default() += stack.count;
    }
    let mut ranked: Vec<_> = weights.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let rank: HashMap<_, usize> = ranked
        .into_iter()
        .take(top)
        .enumerate()
        .map(|(rank, (path, _))| (path, rank))
        .collect();
    let mut order: Vec<(usize, usize)> = profile
        .stacks
        .iter()
        .enumerate()
        .filter_map(|(index, stack)| Some((*rank.get(&path(stack))?, index)))
        .collect();
    order.sort();
    let mut new_index = vec![None; profile.stacks.len()];
    for (new, &(_, old)) in order.iter().enumerate() {
        new_index[old] = Some(new as u32);
    }
    profile.stacks = order
        .iter()
        .map(|&(_, i)| profile.stacks[i].clone())
        .collect();
    profile.timeline = profile
        .timeline
        .iter()
        .filter_map(|&s| new_index[s as usize])
        .collect();
}
