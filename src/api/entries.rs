//! Raw samples to [`StackEntry`] lists, on a `Timer`'s callback thread (never in the
//! handler). Names come from the engine's symbolizer; each distinct address is named once
//! and kept, so a stack of already seen addresses costs a few hash lookups.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::modules::ModuleMap;
use crate::profile::lookup_addresses;
use crate::python::is_python_frame;
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

/// What ran at a stack entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Machine code outside the CPython interpreter.
    Native,
    /// The CPython interpreter's own C code (the seed's `is_python`): what
    /// `show_python = false` folds away.
    Interpreter,
    /// A Python function, in place of the evaluation-loop activation that ran it.
    Python,
}

/// One frame of a sampled stack, innermost first in a stack.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StackEntry {
    /// The instruction address: where the thread was (innermost), else a return address.
    /// A Python frame has an id at or above `0xffff_f000_0000_0000` instead, the same for
    /// one function and line within one `Timer` (ids of two timers do not compare).
    pub address: u64,
    /// Symbol (demangled), `module+0xoffset` when the module has no symbol there, a JIT's
    /// name from its perf map, `?` when nothing is known, or a Python frame's
    /// `qualname (file.py:line)`.
    pub name: Arc<str>,
    /// Bytes from the start of the symbol to `address`; 0 when there is no symbol.
    pub offset: u64,
    /// File name of the module, `[vdso]`, `[jit]`, `[anon]`, or `python` for a Python frame.
    pub module: Arc<str>,
    /// What ran here: native code, the interpreter's, or a Python function.
    pub kind: EntryKind,
    /// Source file (a Python frame's `co_filename`, whole), when known.
    pub file: Option<Arc<str>>,
    /// Line in `file`, when known.
    pub line: Option<u32>,
}

impl StackEntry {
    /// Code of the CPython interpreter: the seed's `is_python`.
    pub fn is_python(&self) -> bool {
        self.kind == EntryKind::Interpreter
    }

    /// The entry that stands for `count` folded interpreter frames.
    pub fn skipped_python(count: usize) -> StackEntry {
        StackEntry {
            address: 0,
            name: format!("<skipped {count} Python entries>").into(),
            offset: 0,
            module: "".into(),
            kind: EntryKind::Interpreter,
            file: None,
            line: None,
        }
    }
}

impl fmt::Display for StackEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == EntryKind::Python {
            // The name says where; the id means nothing to a reader.
            return write!(f, "{:18} {}", "[python]", self.name);
        }
        write!(
            f,
            "{:#018x} {}+{:#x} ({})",
            self.address, self.name, self.offset, self.module
        )
    }
}

/// Replaces each run of interpreter entries by one `<skipped N Python entries>` entry;
/// Python frames stay, as the program's own code.
pub fn fold_python(entries: Vec<StackEntry>) -> Vec<StackEntry> {
    let mut folded = Vec::with_capacity(entries.len());
    let mut run = 0;
    for entry in entries {
        if entry.is_python() {
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
        // An interpreter of unknown layout was told of by the sampler; its stacks stay native.
        let _ = self.symbols.python.note_map(&map);
        self.maps.insert(map.generation, map);
    }

    /// The `max_depth` innermost entries of `sample`, its Python frames spliced in.
    pub fn entries(&mut self, sample: &mut RawSample, max_depth: usize) -> Vec<StackEntry> {
        self.symbols.python.splice(sample);
        sample.truncate(max_depth);
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
        let kind = if is_python_frame(lookup) {
            EntryKind::Python
        } else if module.is_some_and(|m| python::is_interpreter(m)) {
            EntryKind::Interpreter
        } else {
            EntryKind::Native
        };
        let entry = StackEntry {
            address: lookup,
            name: name.into(),
            offset: start.map_or(0, |start| lookup.wrapping_sub(start)),
            module: outermost.map_or("[anon]", |f| f.module.as_str()).into(),
            kind,
            file: outermost.and_then(|f| f.file.as_deref()).map(Arc::from),
            line: outermost.and_then(|f| f.line),
        };
        (entry, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, kind: EntryKind) -> StackEntry {
        StackEntry {
            address: 1,
            name: name.into(),
            offset: 0,
            module: "m".into(),
            kind,
            file: None,
            line: None,
        }
    }

    #[test]
    fn runs_of_interpreter_frames_fold_into_one_entry_each() {
        use EntryKind::{Interpreter, Native, Python};
        let stack = vec![
            entry("leaf", Native),
            entry("a", Interpreter),
            entry("b", Interpreter),
            entry("f (p.py:3)", Python),
            entry("c", Interpreter),
            entry("c_ext", Native),
            entry("d", Interpreter),
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
                "f (p.py:3)",
                "<skipped 1 Python entries>",
                "c_ext",
                "<skipped 1 Python entries>"
            ]
        );
    }
}
