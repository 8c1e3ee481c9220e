//! Building a profile from the drain's aggregate: each distinct address becomes a
//! [`Location`] with one or more [`Frame`]s (inlined functions expand into frames of their
//! own), frames point at [`Function`]s, and identical symbolized stacks are merged.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Instant;

use super::model::*;
use crate::aggregate::Aggregate;
use crate::modules::{ModuleInfo, ModuleMap};
use crate::python::is_python_frame;
use crate::sample::StopReason;
use crate::symbolize::{SourceFrame, Symbols};

impl Profile {
    /// Names every distinct address of `aggregate` and merges stacks that name the same.
    pub fn build(
        mut header: Header,
        aggregate: &Aggregate,
        maps: &HashMap<u32, Arc<ModuleMap>>,
        symbols: &mut Symbols,
    ) -> Profile {
        let started = Instant::now();
        let mut by_generation: HashMap<u32, HashSet<u64>> = HashMap::new();
        for (key, _) in &aggregate.stacks {
            let lookups = by_generation.entry(key.generation).or_default();
            lookups.extend(lookup_addresses(&key.frames));
        }
        for (generation, lookups) in &by_generation {
            if let Some(map) = maps.get(generation) {
                symbols.prepare(map, lookups.iter().copied());
            }
        }
        let addresses = by_generation.values().map(HashSet::len).sum();

        let mut builder = Builder::default();
        let mut merged: HashMap<(i32, StopReason, Vec<usize>), usize> = HashMap::new();
        let mut stacks: Vec<Stack> = Vec::new();
        let mut raw_to_merged = Vec::with_capacity(aggregate.stacks.len());
        let mut profiler_samples = 0;
        for (key, count) in &aggregate.stacks {
            let map = maps.get(&key.generation).map(Arc::as_ref);
            let Some(mut locations) = program_locations(&mut builder, map, symbols, &key.frames)
            else {
                profiler_samples += count;
                raw_to_merged.push(NOT_IN_PROFILE);
                continue;
            };
            locations.reverse();
            let index = *merged
                .entry((key.tid, key.stop, locations.clone()))
                .or_insert_with(|| {
                    stacks.push(Stack {
                        tid: key.tid,
                        locations,
                        count: 0,
                        stop: key.stop,
                    });
                    stacks.len() - 1
                });
            stacks[index].count += count;
            raw_to_merged.push(index as u32);
        }
        for thread in &mut header.threads {
            thread.samples = stacks
                .iter()
                .filter(|s| s.tid == thread.tid)
                .map(|s| s.count)
                .sum();
        }
        let timeline = aggregate
            .timeline
            .iter()
            .map(|&raw| raw_to_merged[raw as usize])
            .filter(|&merged| merged != NOT_IN_PROFILE)
            .collect();
        Profile {
            header,
            functions: builder.functions.items,
            frames: builder.frames.items,
            modules: builder.modules,
            locations: builder.locations,
            stacks,
            timeline,
            profiler_samples,
            symbolize_cost: SymbolizeCost {
                addresses,
                elapsed: started.elapsed(),
            },
            leaf_first: false,
        }
    }
}

/// Marks a raw stack that is not in the profile.
const NOT_IN_PROFILE: u32 = u32::MAX;

/// The function through which threads the program creates start (see `thread_start`).
const THREAD_START_TRAMPOLINE: &str = "thread_start::announce_then_run";

/// The locations of a raw stack, leaf first, without the profiler's thread-start
/// trampoline; `None` when the thread was running the profiler's own code.
fn program_locations(
    builder: &mut Builder,
    map: Option<&ModuleMap>,
    symbols: &Symbols,
    frames: &[u64],
) -> Option<Vec<usize>> {
    let mut locations = Vec::with_capacity(frames.len());
    for lookup in lookup_addresses(frames) {
        let in_profiler = map.and_then(|m| m.find(lookup)).is_some_and(|m| m.profiler);
        if !in_profiler {
            locations.push(builder.location(map, symbols, lookup));
            continue;
        }
        let names = symbols.frames(map, lookup);
        if !names
            .iter()
            .any(|f| f.function.ends_with(THREAD_START_TRAMPOLINE))
        {
            return None;
        }
    }
    Some(locations)
}

/// Addresses to look names up at, leaf first: the leaf as is, return addresses minus one so
/// that a call at the very end of a function is not blamed on the next function. Python
/// frames are names already.
pub fn lookup_addresses(frames: &[u64]) -> impl Iterator<Item = u64> + '_ {
    frames.iter().enumerate().map(|(depth, &address)| {
        if depth == 0 || is_python_frame(address) {
            address
        } else {
            address.saturating_sub(1)
        }
    })
}

/// Items deduplicated by value, in order of first use.
struct Interned<T> {
    items: Vec<T>,
    ids: HashMap<T, usize>,
}

impl<T> Default for Interned<T> {
    fn default() -> Self {
        Interned {
            items: Vec::new(),
            ids: HashMap::new(),
        }
    }
}

impl<T: Clone + Eq + Hash> Interned<T> {
    fn id(&mut self, item: T) -> usize {
        if let Some(&id) = self.ids.get(&item) {
            return id;
        }
        self.items.push(item.clone());
        self.ids.insert(item, self.items.len() - 1);
        self.items.len() - 1
    }
}

/// Collects the functions, frames, modules and locations a profile refers to.
#[derive(Default)]
struct Builder {
    functions: Interned<Function>,
    frames: Interned<Frame>,
    /// Keyed by module object (its `Arc` address, 0 for none) and lookup address.
    location_ids: HashMap<(usize, u64), usize>,
    locations: Vec<Location>,
    module_ids: HashMap<usize, usize>,
    modules: Vec<Module>,
}

impl Builder {
    fn location(&mut self, map: Option<&ModuleMap>, symbols: &Symbols, lookup: u64) -> usize {
        let info = map.and_then(|m| m.find(lookup));
        let key = (info.map_or(0, |m| Arc::as_ptr(m) as usize), lookup);
        if let Some(&id) = self.location_ids.get(&key) {
            return id;
        }
        let module = info.map(|info| self.module(info));
        let frames = symbols
            .frames(map, lookup)
            .iter()
            .map(|source| self.frame(source))
            .collect();
        self.locations.push(Location {
            address: lookup,
            module,
            frames,
        });
        self.location_ids.insert(key, self.locations.len() - 1);
        self.locations.len() - 1
    }

    fn frame(&mut self, source: &SourceFrame) -> usize {
        let function = self.functions.id(Function {
            name: source.function.clone(),
            module: source.module.clone(),
            file: source.file.clone(),
            start: source.start,
        });
        self.frames.id(Frame {
            function,
            line: source.line,
            inlined: source.inlined,
        })
    }

    fn module(&mut self, info: &Arc<ModuleInfo>) -> usize {
        let key = Arc::as_ptr(info) as usize;
        if let Some(&id) = self.module_ids.get(&key) {
            return id;
        }
        let code = info.code.first();
        self.modules.push(Module {
            name: info.name.clone(),
            path: info.path.as_ref().map(|p| p.to_string_lossy().into_owned()),
            build_id: info.build_id.as_deref().map(hex),
            start: code.map_or(0, |c| c.avma.start),
            end: code.map_or(0, |c| c.avma.end),
            file_offset: code.map_or(0, |c| c.file_offset),
            executable: info.executable,
            bias: info.bias,
        });
        self.module_ids.insert(key, self.modules.len() - 1);
        self.modules.len() - 1
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
