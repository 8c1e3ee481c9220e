//! Raw samples to [`StackEntry`] lists, on a `Timer`'s callback thread (never in the
//! handler). Names come from the engine's symbolizer; each distinct address is named once
//! and kept, so a stack of already seen addresses costs a few hash lookups.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::modules::ModuleMap;
use crate::profile::lookup_addresses;
use crate::sample::RawSample;
use crate::symbolize::{SymbolOptions, Symbols};

use super::python;

/// Named addresses kept before the cache starts afresh (a JIT can make addresses unbounded).
const MAX_CACHED_ADDRESSES: usize = 200_000;
/// Name of an address nothing at all is known about (the seed API's convention).
pub const UNKNOWN: &str = "?";

/// The seed API's name of a function: [`UNKNOWN`] for code nothing names (`[anon]`).
pub(super) fn api_name(function: &str) -> &str {
    if function == "[anon]" {
        UNKNOWN
    } else {
        function
    }
}

/// A symbol's run-time start: its address in the file plus its module's load bias.
pub(super) fn runtime_start(start: Option<u64>, bias: Option<u64>) -> Option<u64> {
    start
        .zip(bias)
        .map(|(start, bias)| start.wrapping_add(bias))
}

/// One frame of a sampled stack, innermost first in a stack.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StackEntry {
    /// The instruction address: where the thread was (innermost), else a return address.
    pub address: u64,
    /// Symbol (demangled), `module+0xoffset` when the module has no symbol there, a JIT's
    /// name from its perf map, or `?` when nothing is known.
    pub name: Arc<str>,
    /// Bytes from the start of the symbol to `address`; 0 when there is no symbol.
    pub offset: u64,
    /// File name of the module, `[vdso]`, `[jit]` or `[anon]`.
    pub module: Arc<str>,
    /// Code of the CPython interpreter (see the `python` module docs).
    pub is_python: bool,
}

impl StackEntry {
    /// The entry that stands for `count` folded interpreter frames.
    pub fn skipped_python(count: usize) -> StackEntry {
        StackEntry {
            address: 0,
            name: format!("<skipped {count} Python entries>").into(),
            offset: 0,
            module: "".into(),
            is_python: true,
        }
    }
}

impl fmt::Display for StackEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:#018x} {}+{:#x} ({})",
            self.address, self.name, self.offset, self.module
        )
    }
}

/// Replaces each run of interpreter entries by one `<skipped N Python entries>` entry.
pub fn fold_python(entries: Vec<StackEntry>) -> Vec<StackEntry> {
    let mut folded = Vec::with_capacity(entries.len());
    let mut run = 0;
    for entry in entries {
        if entry.is_python {
            run += 1;
            continue;
        }
        if run > 0 {
            folded.push(StackEntry::skipped_python(run));
            run = 0;
        }
        folded.push(entry);
    }
    if run > 0 {
        folded.push(StackEntry::skipped_python(run));
    }
    folded
}

/// Names raw samples; owns a symbolizer, so it lives on one thread.
pub struct EntryNamer {
    symbols: Symbols,
    maps: HashMap<u32, Arc<ModuleMap>>,
    /// Keyed by module generation and lookup address: the entry, and the run-time start of
    /// its symbol if one covers it.
    named: HashMap<(u32, u64), (StackEntry, Option<u64>)>,
}

impl Default for EntryNamer {
    fn default() -> Self {
        EntryNamer {
            symbols: Symbols::new(&SymbolOptions::default()),
            maps: HashMap::new(),
            named: HashMap::new(),
        }
    }
}

impl EntryNamer {
    /// Module map of a new generation; arrives before any sample of it.
    pub fn add_map(&mut self, map: Arc<ModuleMap>) {
        self.maps.insert(map.generation, map);
    }

    /// The entries of `sample`, innermost first.
    pub fn entries(&mut self, sample: &RawSample) -> Vec<StackEntry> {
        let generation = sample.generation;
        let map = self.maps.get(&generation).cloned();
        if self.named.len() > MAX_CACHED_ADDRESSES {
            self.named.clear();
        }
        let missing: Vec<u64> = lookup_addresses(&sample.frames)
            .filter(|&lookup| !self.named.contains_key(&(generation, lookup)))
            .collect();
        if let (Some(map), false) = (&map, missing.is_empty()) {
            self.symbols.prepare(map, missing.iter().copied());
        }
        for lookup in missing {
            let entry = self.name(map.as_deref(), lookup);
            self.named.insert((generation, lookup), entry);
        }
        sample
            .frames
            .iter()
            .zip(lookup_addresses(&sample.frames))
            .filter_map(|(&address, lookup)| {
                let (named, start) = self.named.get(&(generation, lookup))?;
                Some(StackEntry {
                    address,
                    offset: start.map_or(0, |start| address.wrapping_sub(start)),
                    ..named.clone()
                })
            })
            .collect()
    }

    /// The entry of one lookup address, and the run-time start of its symbol.
    fn name(&self, map: Option<&ModuleMap>, lookup: u64) -> (StackEntry, Option<u64>) {
        let frames = self.symbols.frames(map, lookup);
        let module = map.and_then(|m| m.find(lookup));
        let outermost = frames.first();
        let start = runtime_start(outermost.and_then(|f| f.start), module.map(|m| m.bias));
        let name = outermost.map_or(UNKNOWN, |frame| api_name(&frame.function));
        let entry = StackEntry {
            address: lookup,
            name: name.into(),
            offset: start.map_or(0, |start| lookup.wrapping_sub(start)),
            module: outermost.map_or("[anon]", |f| f.module.as_str()).into(),
            is_python: module.is_some_and(|m| python::is_interpreter(m)),
        };
        (entry, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, is_python: bool) -> StackEntry {
        StackEntry {
            address: 1,
            name: name.into(),
            offset: 0,
            module: "m".into(),
            is_python,
        }
    }

    #[test]
    fn runs_of_interpreter_frames_fold_into_one_entry_each() {
        let stack = vec![
            entry("leaf", false),
            entry("a", true),
            entry("b", true),
            entry("c_ext", false),
            entry("d", true),
        ];
        let names: Vec<String> = fold_python(stack)
            .iter()
            .map(|e| e.name.to_string())
            .collect();
        assert_eq!(
            names,
            [
                "leaf",
                "<skipped 2 Python entries>",
                "c_ext",
                "<skipped 1 Python entries>"
            ]
        );
    }
}
