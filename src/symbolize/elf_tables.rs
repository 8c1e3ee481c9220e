//! What the symbolizer reads itself from an ELF file on disk, at dump time on the thread that
//! writes the profile: the function symbols at given addresses, to pick the name a person
//! calls a function among its aliases (`free`, not `__libc_free` or `cfree`), and the size
//! of a section (whether the file holds its own DWARF, and how much).
//!
//! Only 64-bit little-endian files are read; anything else, or a table that does not fit
//! the file, reads as no symbols and no sections, and the names stay blazesym's.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::base::file::CheckedFile;

const SHT_SYMTAB: u32 = 2;
const SHT_DYNSYM: u32 = 11;
const SHT_GNU_VERSYM: u32 = 0x6fff_ffff;
const STT_FUNC: u8 = 2;
const STT_GNU_IFUNC: u8 = 10;
const STB_LOCAL: u8 = 0;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;
/// In a `.gnu.version` entry: the symbol's version is not the default one (`cfree@GLIBC_2.2.5`
/// rather than `free@@GLIBC_2.2.5`).
const VERSYM_HIDDEN: u16 = 0x8000;
const SECTION_HEADER_SIZE: usize = 64;
const SYMBOL_SIZE: usize = 24;
/// Section headers read at most; real files have well under a hundred.
const MAX_SECTIONS: usize = 4096;
/// A symbol or string table read at most (libc's debug file: 240 KB of symbols).
const MAX_TABLE_BYTES: u64 = 256 << 20;

struct Section {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
}

/// An ELF file's section headers, and the file to read its tables from.
pub struct ElfTables {
    file: CheckedFile,
    sections: Vec<Section>,
    section_names: Vec<u8>,
}

impl ElfTables {
    pub fn open(path: &Path) -> Option<ElfTables> {
        let file = CheckedFile::open(path).ok()?;
        let header = read_exact(&file, 0, 64)?;
        if header.get(..4)? != b"\x7fELF" || header.get(4..6)? != [2, 1] {
            return None;
        }
        let table = u64_at(&header, 0x28)?;
        let entry_size = usize::from(u16_at(&header, 0x3a)?);
        let count = usize::from(u16_at(&header, 0x3c)?);
        let names_index = usize::from(u16_at(&header, 0x3e)?);
        if entry_size < SECTION_HEADER_SIZE || count > MAX_SECTIONS {
            return None;
        }
        let bytes = read_exact(&file, table, (entry_size * count) as u64)?;
        let sections: Vec<Section> = bytes
            .chunks_exact(entry_size)
            .map(|h| {
                Some(Section {
                    name: u32_at(h, 0)?,
                    kind: u32_at(h, 4)?,
                    offset: u64_at(h, 24)?,
                    size: u64_at(h, 32)?,
                    link: u32_at(h, 40)?,
                })
            })
            .collect::<Option<_>>()?;
        let section_names = match sections.get(names_index) {
            Some(names) => read_section(&file, names)?,
            None => Vec::new(),
        };
        Some(ElfTables {
            file,
            sections,
            section_names,
        })
    }

    /// The size in bytes of the section called `name` (`.debug_info`), 0 if there is none.
    pub fn section_size(&self, name: &str) -> u64 {
        let named = |section: &&Section| {
            string_at(&self.section_names, section.name) == Some(name.as_bytes())
        };
        self.sections.iter().find(named).map_or(0, |s| s.size)
    }

    /// For each address in `starts` where function symbols begin, their names, the one a
    /// person calls the function first: a symbol with a size before one without, global
    /// before weak before local, the default version before others, fewer leading
    /// underscores, the longer name, then the one first in the file. Mangled names (`_Z`,
    /// `_R`) are left out: those blazesym demangles, and aliases among them demangle alike.
    pub fn aliases(&self, starts: &HashSet<u64>) -> HashMap<u64, Vec<String>> {
        let mut found: HashMap<u64, Vec<(Rank, String)>> = HashMap::new();
        for (index, table) in self.sections.iter().enumerate() {
            if table.kind != SHT_SYMTAB && table.kind != SHT_DYNSYM {
                continue;
            }
            let versions = self.versions_of(index);
            let Some(symbols) = read_section(&self.file, table) else {
                continue;
            };
            let Some(strings) = self
                .sections
                .get(table.link as usize)
                .and_then(|strings| read_section(&self.file, strings))
            else {
                continue;
            };
            for (number, symbol) in symbols.chunks_exact(SYMBOL_SIZE).enumerate() {
                let Some(symbol) = Symbol::parse(symbol) else {
                    continue;
                };
                if !symbol.is_function() || !starts.contains(&symbol.value) {
                    continue;
                }
                let Some(name) = string_at(&strings, symbol.name) else {
                    continue;
                };
                let name = String::from_utf8_lossy(name);
                if name.is_empty() || name.starts_with("_Z") || name.starts_with("_R") {
                    continue;
                }
                let hidden = match &versions {
                    Some(versions) => u16_at(versions, number * 2)
                        .is_some_and(|version| version & VERSYM_HIDDEN != 0),
                    None => name.contains('@') && !name.contains("@@"),
                };
                let rank = Rank::of(&symbol, hidden, &name, (index, number));
                found
                    .entry(symbol.value)
                    .or_default()
                    .push((rank, name.into_owned()));
            }
        }
        found
            .into_iter()
            .map(|(start, mut names)| {
                names.sort();
                let mut seen = HashSet::new();
                names.retain(|(_, name)| seen.insert(name.clone()));
                (start, names.into_iter().map(|(_, name)| name).collect())
            })
            .collect()
    }

    /// The `.gnu.version` entries that go with the dynamic symbol table at `index`.
    fn versions_of(&self, index: usize) -> Option<Vec<u8>> {
        if self.sections.get(index)?.kind != SHT_DYNSYM {
            return None;
        }
        let versions = self
            .sections
            .iter()
            .find(|section| section.kind == SHT_GNU_VERSYM && section.link as usize == index)?;
        read_section(&self.file, versions)
    }
}

struct Symbol {
    name: u32,
    info: u8,
    section: u16,
    value: u64,
    size: u64,
}

impl Symbol {
    fn parse(bytes: &[u8]) -> Option<Symbol> {
        Some(Symbol {
            name: u32_at(bytes, 0)?,
            info: *bytes.get(4)?,
            section: u16_at(bytes, 6)?,
            value: u64_at(bytes, 8)?,
            size: u64_at(bytes, 16)?,
        })
    }

    fn is_function(&self) -> bool {
        let kind = self.info & 0xf;
        (kind == STT_FUNC || kind == STT_GNU_IFUNC) && self.section != 0
    }
}

/// Sorts the name a person calls a function first (see [`ElfTables::aliases`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    sizeless: bool,
    binding: u8,
    hidden_version: bool,
    leading_underscores: usize,
    /// The longer name first, as perf chooses: memmove's code, which memcpy shares, is
    /// `__memmove_avx512_unaligned_erms`, not `__memcpy_avx512_unaligned_erms`.
    length: Reverse<usize>,
    /// Section and symbol number: of two names equal in all else, the first in the file, as
    /// perf chooses.
    position: (usize, usize),
}

impl Rank {
    fn of(symbol: &Symbol, hidden_version: bool, name: &str, position: (usize, usize)) -> Rank {
        let binding = match symbol.info >> 4 {
            STB_GLOBAL => 0,
            STB_WEAK => 1,
            STB_LOCAL => 2,
            _ => 3,
        };
        Rank {
            sizeless: symbol.size == 0,
            binding,
            hidden_version,
            leading_underscores: name.len() - name.trim_start_matches('_').len(),
            length: Reverse(name.len()),
            position,
        }
    }
}

fn read_section(file: &CheckedFile, section: &Section) -> Option<Vec<u8>> {
    if section.size > MAX_TABLE_BYTES {
        return None;
    }
    read_exact(file, section.offset, section.size)
}

fn read_exact(file: &CheckedFile, offset: u64, length: u64) -> Option<Vec<u8>> {
    let mut buffer = vec![0u8; usize::try_from(length).ok()?];
    let mut done = 0;
    while done < buffer.len() {
        let read = file
            .read_at(buffer.get_mut(done..)?, offset + done as u64)
            .ok()?;
        if read == 0 {
            return None;
        }
        done += read;
    }
    Some(buffer)
}

/// The NUL-terminated string at `offset` of a string table.
fn string_at(table: &[u8], offset: u32) -> Option<&[u8]> {
    let rest = table.get(offset as usize..)?;
    rest.split(|&b| b == 0).next()
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}
