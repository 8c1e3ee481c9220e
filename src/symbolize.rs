//! Addresses to source-level frames, at dump time only (never in the signal handler).
//!
//! `blazesym` reads each module's ELF symbol tables (`.symtab`, so static functions too, and
//! `.dynsym`), its DWARF for file, line and inlined functions when asked, and separate debug
//! files found by `.gnu_debuglink` or build id under the debug directories; it demangles C++
//! and Rust names. Where no symbol covers an address the frame is `module+0xoffset`, the file
//! offset of the start of its function as the unwind tables record it (stable across runs,
//! one frame per function). Code outside every module is named from the perf map
//! the program wrote (`/tmp/perf-<pid>.map`, the convention of JITs; read while the program
//! runs too, see `perf_map`), else `[anon]`.
//! Results are cached per module and address across dumps; the files read for them are
//! closed at the end of each dump.

mod elf_tables;
mod perf_map;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use blazesym::symbolize::source::{Elf, Source};
use blazesym::symbolize::{CodeInfo, Input, Sym, Symbolized, Symbolizer};

use crate::base::clock::monotonic_nanos;
use crate::modules::{ModuleInfo, ModuleMap};
use crate::python::{is_python_frame, PythonFrames};
use elf_tables::ElfTables;
use perf_map::PerfMap;

/// The module column of Python frames.
pub const PYTHON_MODULE: &str = "python";

/// Where separate debug files are looked for, besides beside the binary itself.
const SYSTEM_DEBUG_DIRS: [&str; 2] = ["/usr/lib/debug", "/lib/debug"];

/// The most DWARF (`.debug_info` bytes) an object may hold in itself for its inlined functions
/// to be named without `STACKSAMPLE_LINES=1`. A -g C++ program with 1.6 MB took 10-25 ms more
/// to name 140 addresses, 30-70 ms more for 1,400 (docs/output.md): a larger file costs more.
const MAX_OWN_DWARF: u64 = 4 << 20;

/// One source-level frame: a function, and where in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceFrame {
    pub function: String,
    /// File name of the module, `[vdso]`, `[jit]` or `[anon]`.
    pub module: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// Inlined into the frame before it (its caller).
    pub inlined: bool,
    /// Start of the function as stated in the module (ELF virtual address), when known.
    pub start: Option<u64>,
}

impl SourceFrame {
    fn named(function: String, module: &str) -> SourceFrame {
        SourceFrame {
            function,
            module: module.to_owned(),
            file: None,
            line: None,
            inlined: false,
            start: None,
        }
    }
}

/// The frames at one address, outermost (the real function) first, inlined callees after.
pub type Frames = Arc<[SourceFrame]>;

/// What the symbolizer looks for.
#[derive(Debug, Clone, Default)]
pub struct SymbolOptions {
    /// File, line and inlined functions from DWARF.
    pub lines: bool,
    /// Extra directories to search for separate debug files.
    pub debug_dirs: Vec<PathBuf>,
}

/// A symbolizer that demangles and, from sources whose DWARF it is asked to read, gives lines
/// and inlined functions.
fn symbolizer(debug_dirs: &[PathBuf]) -> Symbolizer {
    Symbolizer::builder()
        .enable_demangling(true)
        .enable_code_info(true)
        .enable_inlined_fns(true)
        .set_debug_dirs(Some(debug_dirs.to_vec()))
        .build()
}

/// Name cache and the symbolizer that fills it.
pub struct Symbols {
    symbolizer: Symbolizer,
    lines: bool,
    debug_dirs: Vec<PathBuf>,
    /// Keyed by module identity (its `Arc` address; maps keep every module alive) and the
    /// lookup address.
    names: HashMap<(usize, u64), Frames>,
    perf_map: PerfMap,
    /// Python frames spliced into stacks, and their names.
    pub python: PythonFrames,
}

impl Symbols {
    pub fn new(options: &SymbolOptions) -> Symbols {
        let mut debug_dirs: Vec<PathBuf> = options.debug_dirs.clone();
        debug_dirs.extend(SYSTEM_DEBUG_DIRS.iter().map(PathBuf::from));
        Symbols {
            symbolizer: symbolizer(&debug_dirs),
            lines: options.lines,
            debug_dirs,
            names: HashMap::new(),
            perf_map: PerfMap::default(),
            python: PythonFrames::default(),
        }
    }

    /// Looks up, in one batch per module, every address not named yet; reads the perf map
    /// again if an address lies outside every module and the file changed.
    pub fn prepare(&mut self, map: &ModuleMap, lookups: impl Iterator<Item = u64>) {
        let mut per_module: HashMap<usize, (&Arc<ModuleInfo>, Vec<u64>)> = HashMap::new();
        let mut outside = false;
        for lookup in lookups.filter(|&l| !is_python_frame(l)) {
            let Some(module) = map.find(lookup) else {
                outside = true;
                continue;
            };
            let key = module_key(module);
            if !self.names.contains_key(&(key, lookup)) {
                per_module
                    .entry(key)
                    .or_insert_with(|| (module, Vec::new()))
                    .1
                    .push(lookup);
            }
        }
        if outside {
            self.perf_map.look();
        }
        if per_module.is_empty() {
            return;
        }
        for (key, (module, addresses)) in per_module {
            let names = self.lookup_module(module, &addresses);
            for (address, frames) in addresses.into_iter().zip(names) {
                self.names.insert((key, address), frames);
            }
        }
        // The symbolizer keeps the files it read open; the program may close those
        // descriptors and reuse the numbers, which a later close of ours would then take
        // from it. A fresh one per dump closes them now; the names stay in `names`.
        self.symbolizer = symbolizer(&self.debug_dirs);
    }

    /// Takes note of a new stack's lookup addresses while the program runs: those outside
    /// every module that the perf map does not name yet wait for its next look.
    pub fn note_stack(&mut self, map: &ModuleMap, lookups: impl Iterator<Item = u64>) {
        for lookup in lookups.filter(|&l| !is_python_frame(l) && map.find(l).is_none()) {
            self.perf_map.note_unnamed(lookup);
        }
    }

    /// Looks at the perf map again if addresses wait for a name and the last look is old
    /// enough (the drain calls this for every batch of samples).
    pub fn look_at_perf_map_if_due(&mut self) {
        self.perf_map.look_if_due(monotonic_nanos());
    }

    /// The frames at `lookup` (named by `prepare`, or a fallback name).
    pub fn frames(&self, map: Option<&ModuleMap>, lookup: u64) -> Frames {
        if is_python_frame(lookup) {
            return Arc::new([self.python_frame(lookup)]);
        }
        let Some(module) = map.and_then(|m| m.find(lookup)) else {
            let frame = match self.perf_map.find(lookup) {
                Some(name) => SourceFrame::named(name.to_owned(), "[jit]"),
                None => SourceFrame::named("[anon]".to_owned(), "[anon]"),
            };
            return Arc::new([frame]);
        };
        match self.names.get(&(module_key(module), lookup)) {
            Some(frames) => frames.clone(),
            None => offset_frames(module, lookup),
        }
    }

    /// A Python frame: `qualname (file.py:line)`, with the whole file name and the line
    /// apart for the formats that keep them (pprof).
    fn python_frame(&self, entry: u64) -> SourceFrame {
        match self.python.name(entry) {
            Some(name) => SourceFrame {
                file: name.file().map(str::to_owned),
                line: name.line,
                ..SourceFrame::named(name.label(), PYTHON_MODULE)
            },
            None => SourceFrame::named("[python]".to_owned(), PYTHON_MODULE),
        }
    }

    /// Names from the ELF symbol tables (full demangled names, `ns::Class::method`); inlined
    /// callees from DWARF (whose names are short) in the file itself, if it holds at most
    /// [`MAX_OWN_DWARF`]; with lines on, files and lines too, and the DWARF of separate debug
    /// files.
    fn lookup_module(&self, module: &ModuleInfo, addresses: &[u64]) -> Vec<Frames> {
        let Some(path) = &module.path else {
            return addresses
                .iter()
                .map(|&a| offset_frames(module, a))
                .collect();
        };
        let offsets: Vec<u64> = addresses.iter().map(|a| a - module.bias).collect();
        // blazesym follows build ids only from a debuglink; a stripped file without one
        // still has its debug file under <debug dir>/.build-id/xx/yyyy.debug.
        let debug_file = self.build_id_debug_file(module);
        let symbolize = |file: &PathBuf, debug_syms: bool, offsets: &[u64]| {
            let mut elf = Elf::new(file);
            elf.debug_syms = debug_syms;
            let source = Source::Elf(elf);
            let results = self
                .symbolizer
                .symbolize(&source, Input::VirtOffset(offsets));
            let mut results = results.unwrap_or_else(|_| {
                let unknown = || Symbolized::Unknown(blazesym::symbolize::Reason::IgnoredError);
                offsets.iter().map(|_| unknown()).collect()
            });
            if !debug_syms {
                prefer_usual_names(&mut results, file);
            }
            results
        };
        let mut symbols = symbolize(path, false, &offsets);
        if let Some(debug_file) = &debug_file {
            // A stripped library's static functions (`_int_malloc`, `start_thread`) are in
            // the symbol table of its debug file: read that table, not its DWARF.
            let unnamed: Vec<usize> = (0..symbols.len())
                .filter(|&i| matches!(symbols[i], Symbolized::Unknown(_)))
                .collect();
            if !unnamed.is_empty() {
                let wanted: Vec<u64> = unnamed.iter().map(|&i| offsets[i]).collect();
                let found = symbolize(debug_file, false, &wanted);
                for (index, symbol) in unnamed.into_iter().zip(found) {
                    symbols[index] = symbol;
                }
            }
        }
        let debug = match (&debug_file, self.lines) {
            (Some(debug_file), true) => symbolize(debug_file, true, &offsets),
            (None, true) => symbolize(path, true, &offsets),
            (_, false) if has_own_dwarf(path) => symbolize(path, true, &offsets),
            (_, false) => Vec::new(),
        };
        let lines = self.lines;
        let mut debug = debug.into_iter();
        addresses
            .iter()
            .zip(symbols)
            .map(|(&address, symbol)| {
                let from_debug = debug.next();
                match (symbol, from_debug) {
                    (Symbolized::Sym(symbol), Some(Symbolized::Sym(debug))) => {
                        let mut frames = sym_frames(&debug, &module.name, lines);
                        frames[0].function = symbol.name.to_string();
                        frames[0].start = Some(symbol.addr);
                        frames.into()
                    }
                    (_, Some(Symbolized::Sym(debug))) => {
                        sym_frames(&debug, &module.name, lines).into()
                    }
                    (Symbolized::Sym(symbol), _) => sym_frames(&symbol, &module.name, lines).into(),
                    (Symbolized::Unknown(_), _) => offset_frames(module, address),
                }
            })
            .collect()
    }
}

impl Symbols {
    fn build_id_debug_file(&self, module: &ModuleInfo) -> Option<PathBuf> {
        let id: String = module
            .build_id
            .as_ref()?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let (first, rest) = id.split_at_checked(2)?;
        let relative = format!(".build-id/{first}/{rest}.debug");
        self.debug_dirs
            .iter()
            .map(|dir| dir.join(&relative))
            .find(|candidate| candidate.is_file())
    }
}

/// Renames each symbol that `file`'s symbol tables gave to the alias a person calls the
/// function by (blazesym names any of the symbols at an address: `__libc_free`, `cfree`).
fn prefer_usual_names(symbols: &mut [Symbolized<'_>], file: &Path) {
    let starts: HashSet<u64> = symbols
        .iter()
        .filter_map(|symbol| match symbol {
            Symbolized::Sym(sym) => Some(sym.addr),
            Symbolized::Unknown(_) => None,
        })
        .collect();
    if starts.is_empty() {
        return;
    }
    let Some(tables) = ElfTables::open(file) else {
        return;
    };
    let aliases = tables.aliases(&starts);
    for symbol in symbols {
        let Symbolized::Sym(sym) = symbol else {
            continue;
        };
        let Some(names) = aliases.get(&sym.addr) else {
            continue;
        };
        // A demangled name is none of the table's names: it is kept.
        if let (true, Some(usual)) = (names.iter().any(|n| *n == sym.name), names.first()) {
            sym.name = Cow::Owned(usual.clone());
        }
    }
}

/// Whether `file` holds DWARF of its own (a `-g` build), no more than [`MAX_OWN_DWARF`].
fn has_own_dwarf(file: &Path) -> bool {
    ElfTables::open(file)
        .map(|tables| tables.section_size(".debug_info"))
        .is_some_and(|size| size > 0 && size <= MAX_OWN_DWARF)
}

/// The symbol's function, then each inlined function, outermost first, with files and lines
/// if `lines`. In blazesym each frame's code info is where it calls the next one; the
/// innermost's is the address itself.
fn sym_frames(sym: &Sym<'_>, module: &str, lines: bool) -> Vec<SourceFrame> {
    let mut frames = Vec::with_capacity(1 + sym.inlined.len());
    let place = |info| if lines { location(info) } else { (None, None) };
    let (file, line) = place(sym.code_info.as_deref());
    frames.push(SourceFrame {
        function: sym.name.to_string(),
        module: module.to_owned(),
        file,
        line,
        inlined: false,
        start: Some(sym.addr),
    });
    for inlined in sym.inlined.iter() {
        let (file, line) = place(inlined.code_info.as_ref());
        frames.push(SourceFrame {
            function: inlined.name.to_string(),
            module: module.to_owned(),
            file,
            line,
            inlined: true,
            start: None,
        });
    }
    frames
}

fn location(info: Option<&CodeInfo<'_>>) -> (Option<String>, Option<u32>) {
    match info {
        Some(info) => {
            let path = match &info.dir {
                Some(dir) => dir.join(&info.file),
                None => PathBuf::from(&info.file),
            };
            (Some(path.to_string_lossy().into_owned()), info.line)
        }
        None => (None, None),
    }
}

fn module_key(module: &Arc<ModuleInfo>) -> usize {
    Arc::as_ptr(module) as usize
}

/// `module+0xoffset`, with the offset into the module's file of the function that holds the
/// address (from the unwind tables), so that all of a function's addresses are one frame;
/// of the address itself where the tables have no entry for it.
fn offset_frames(module: &ModuleInfo, address: u64) -> Frames {
    let address = module.function_start(address).unwrap_or(address);
    let offset = module.file_offset(address).unwrap_or(address - module.bias);
    let name = format!("{}+{:#x}", module.name, offset);
    Arc::new([SourceFrame::named(name, &module.name)])
}
