//! Code objects to names: `co_qualname`, `co_filename` and the line an instruction belongs
//! to, read with checked reads by the sampler as it collects the sample (within a tick or
//! two: a module's code is freed once it ran, and the address reused), once per code object
//! and tick. A code object that is gone by then is said to be.

use std::collections::HashMap;
use std::sync::Arc;

use super::layout::{Layout, BYTES_DATA, OB_SIZE, OB_TYPE, UNICODE_LENGTH, UNICODE_STATE};
use super::runtime::Interpreter;
use crate::modules::{read_memory, read_words};
use crate::sample::{PythonCode, PythonEntry, PythonFrameRaw, PythonStack, PythonStop};

/// Longest name or file name read; longer ones are cut.
const MAX_STRING_CHARS: u64 = 1024;
/// Code objects remembered at most.
const MAX_CODE_OBJECTS: usize = 100_000;
/// Largest line table read.
const MAX_LINE_TABLE: u64 = 1 << 20;

/// What a code object says of itself.
#[derive(Debug, PartialEq, Eq)]
pub struct CodeInfo {
    pub names: Arc<PythonCode>,
    first_line: i64,
    /// Instructions before this index set a new frame up: a frame there has not begun.
    first_traceable: u64,
    line_table: Vec<u8>,
    /// Its type, names, line table and first line: the same code object still has them.
    identity: Identity,
}

type Identity = [u64; 5];

impl CodeInfo {
    /// The line of instruction `index` (in code units); `None` for an instruction without
    /// one, or an index past the table.
    fn line(&self, index: u64) -> Option<u32> {
        line_of(&self.line_table, self.first_line, index).and_then(|l| u32::try_from(l).ok())
    }

    fn first_line(&self) -> Option<u32> {
        u32::try_from(self.first_line).ok()
    }
}

/// Code objects read so far, keyed by address; each is checked again once per tick.
pub struct CodeCache {
    types: Types,
    entries: HashMap<u64, Entry>,
    tick: u64,
}

struct Entry {
    info: Option<Arc<CodeInfo>>,
    checked_in_tick: u64,
}

impl CodeCache {
    pub fn new(interpreter: &Interpreter) -> CodeCache {
        CodeCache {
            types: Types {
                layout: interpreter.layout,
                code: interpreter.code_type,
                unicode: interpreter.unicode_type,
            },
            entries: HashMap::new(),
            tick: 0,
        }
    }

    /// A new tick: every code object is checked again at its next use.
    pub fn start_tick(&mut self) {
        self.tick += 1;
    }

    /// The code object at `address`; `None` when no code object is there now (freed, or
    /// the frame was read mid-change).
    pub fn get(&mut self, address: u64) -> Option<Arc<CodeInfo>> {
        if self.entries.len() >= MAX_CODE_OBJECTS {
            // A program that makes code all the time: start over rather than grow.
            self.entries.clear();
        }
        let (types, tick) = (&self.types, self.tick);
        let entry = self.entries.entry(address).or_insert_with(|| Entry {
            info: read_code(types, address).map(Arc::new),
            checked_in_tick: tick,
        });
        if entry.checked_in_tick != tick {
            entry.checked_in_tick = tick;
            let same = entry
                .info
                .as_ref()
                .is_some_and(|info| identity(types.layout, address) == Some(info.identity));
            if !same {
                entry.info = read_code(types, address).map(Arc::new);
            }
        }
        entry.info.clone()
    }
}

/// Names a frame chain as the handler read it. Frames that have not begun (pushed, not yet
/// at their first instruction, such as 3.13's cleanup frame of `__init__` calls) are left
/// out, as the interpreter's own tracebacks leave them out.
pub fn name_chain(
    layout: &Layout,
    cache: &mut CodeCache,
    frames: &[PythonFrameRaw],
    stop: PythonStop,
) -> PythonStack {
    let entries = frames
        .iter()
        .filter_map(|raw| {
            if raw.is_activation_end() {
                return Some(PythonEntry::ActivationEnd);
            }
            let Some(info) = cache.get(raw.code) else {
                return Some(PythonEntry::Frame {
                    code: None,
                    line: None,
                });
            };
            // Before the first instruction (`prev_instr` of a new frame in 3.11 and 3.12).
            let Some(index) = layout.instruction_index(raw.code, raw.instr) else {
                let line = info.first_line();
                return Some(PythonEntry::Frame {
                    code: Some(info.names.clone()),
                    line,
                });
            };
            if index < info.first_traceable && !raw.generator {
                return None;
            }
            Some(PythonEntry::Frame {
                code: Some(info.names.clone()),
                line: info.line(index),
            })
        })
        .collect();
    PythonStack { entries, stop }
}

/// The type, names, line table and first line of the object at `address`.
fn identity(layout: &Layout, address: u64) -> Option<Identity> {
    let at = |offset: u32| address.checked_add(u64::from(offset));
    let addresses = [
        at(OB_TYPE)?,
        at(layout.code_qualname)?,
        at(layout.code_filename)?,
        at(layout.code_linetable)?,
        at(layout.code_firstlineno)?,
    ];
    let mut words = [0u64; 5];
    read_words(&addresses, &mut words).then_some(words)
}

/// The interpreter's layout and the addresses of the types read objects must have.
struct Types {
    layout: &'static Layout,
    code: u64,
    unicode: u64,
}

fn read_code(types: &Types, address: u64) -> Option<CodeInfo> {
    let layout = types.layout;
    let identity = identity(layout, address)?;
    let [object_type, qualname, filename, line_table, first_line_word] = identity;
    if object_type != types.code {
        return None;
    }
    let at = |offset: u32| address.checked_add(u64::from(offset));
    let mut words = [0u64; 2];
    if !read_words(
        &[at(layout.code_name)?, at(layout.code_first_traceable)?],
        &mut words,
    ) {
        return None;
    }
    let [name, first_traceable] = words;
    // `co_firstlineno` and `_co_firsttraceable` are ints: the low half of the word.
    let first_line = i64::from(first_line_word as u32 as i32);
    let qualname = read_string(types, qualname).or_else(|| read_string(types, name))?;
    let names = PythonCode {
        qualname: qualname.into(),
        filename: read_string(types, filename)?.into(),
    };
    Some(CodeInfo {
        names: Arc::new(names),
        first_line,
        first_traceable: u64::from(first_traceable as u32),
        line_table: read_bytes(line_table).unwrap_or_default(),
        identity,
    })
}

/// A `str` object's text: compact strings only (every name and file name the compiler
/// makes is one). `None` for anything else, and for text no name has (empty, or with
/// control characters): memory that changed under the read.
fn read_string(types: &Types, address: u64) -> Option<String> {
    const KIND_SHIFT: u32 = 2;
    const COMPACT: u32 = 1 << 5;
    const ASCII: u32 = 1 << 6;
    let layout = types.layout;
    let mut words = [0u64; 3];
    let addresses = [
        address.checked_add(u64::from(OB_TYPE))?,
        address.checked_add(u64::from(UNICODE_LENGTH))?,
        address.checked_add(u64::from(UNICODE_STATE))?,
    ];
    if !read_words(&addresses, &mut words) {
        return None;
    }
    let [object_type, length, state] = words;
    let state = state as u32;
    let kind = (state >> KIND_SHIFT) & 7;
    if object_type != types.unicode
        || length == 0
        || state & COMPACT == 0
        || !matches!(kind, 1 | 2 | 4)
    {
        return None;
    }
    let data = if state & ASCII != 0 {
        layout.ascii_size
    } else {
        layout.compact_size
    };
    let chars = length.min(MAX_STRING_CHARS);
    let mut bytes = vec![0u8; (chars * u64::from(kind)) as usize];
    if !read_memory(address.checked_add(u64::from(data))?, &mut bytes) {
        return None;
    }
    let text = decode(&bytes, kind);
    (!text.chars().any(char::is_control)).then_some(text)
}

fn decode(bytes: &[u8], kind: u32) -> String {
    match kind {
        1 => bytes.iter().map(|&b| char::from(b)).collect(),
        2 => bytes
            .chunks_exact(2)
            .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
            .map(|c| char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .map(|c| char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect(),
    }
}

/// A `bytes` object's contents.
fn read_bytes(address: u64) -> Option<Vec<u8>> {
    let mut size = [0u64; 1];
    if !read_words(&[address.checked_add(u64::from(OB_SIZE))?], &mut size) {
        return None;
    }
    if size[0] > MAX_LINE_TABLE {
        return None;
    }
    let mut bytes = vec![0u8; size[0] as usize];
    read_memory(address.checked_add(u64::from(BYTES_DATA))?, &mut bytes).then_some(bytes)
}

/// The line of instruction `index` in a 3.11+ location table (`Objects/locations.md` of
/// CPython): entries of a header byte (`1`, a 4-bit kind, then the number of code units
/// minus one in 3 bits) and a kind-dependent body that moves the line.
fn line_of(table: &[u8], first_line: i64, index: u64) -> Option<i64> {
    const NONE: u8 = 15;
    const LONG: u8 = 14;
    const NO_COLUMNS: u8 = 13;
    const ONE_LINE_FIRST: u8 = 10;
    let mut reader = TableReader { table, at: 0 };
    let mut line = first_line;
    let mut start = 0u64;
    while let Some(header) = reader.byte() {
        if header & 0x80 == 0 {
            return None;
        }
        let kind = (header >> 3) & 15;
        let units = u64::from(header & 7) + 1;
        match kind {
            NONE => {}
            LONG => {
                line += reader.signed()?;
                for _ in 0..3 {
                    reader.unsigned()?;
                }
            }
            NO_COLUMNS => line += reader.signed()?,
            ONE_LINE_FIRST..=12 => {
                line += i64::from(kind - ONE_LINE_FIRST);
                reader.skip(2)?;
            }
            _ => reader.skip(1)?,
        }
        if index < start + units {
            return (kind != NONE).then_some(line);
        }
        start += units;
    }
    None
}

struct TableReader<'t> {
    table: &'t [u8],
    at: usize,
}

impl TableReader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let byte = *self.table.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn skip(&mut self, count: usize) -> Option<()> {
        (self.at + count <= self.table.len()).then(|| self.at += count)
    }

    /// Six bits a byte, least significant first; bit 6 says another byte follows.
    fn unsigned(&mut self) -> Option<u64> {
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let byte = self.byte()?;
            value |= u64::from(byte & 63).checked_shl(shift)?;
            if byte & 64 == 0 {
                return Some(value);
            }
            shift += 6;
        }
    }

    /// The sign in the lowest bit.
    fn signed(&mut self) -> Option<i64> {
        let value = self.unsigned()?;
        let magnitude = (value >> 1) as i64;
        Some(if value & 1 != 0 {
            -magnitude
        } else {
            magnitude
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_location_table() {
        // Two units without columns at +1, three one-line units at +2, one without a line,
        // then a long entry of -2 (zigzag 5) with three more numbers.
        let table = [
            0x80 | (13 << 3) | 1,
            2,
            0x80 | (12 << 3) | 2,
            0,
            4,
            0x80 | (15 << 3),
            0x80 | (14 << 3),
            5,
            0,
            1,
            2,
        ];
        let lines: Vec<_> = (0..8).map(|i| line_of(&table, 10, i)).collect();
        assert_eq!(
            lines,
            [
                Some(11),
                Some(11),
                Some(13),
                Some(13),
                Some(13),
                None,
                Some(11),
                None
            ]
        );
    }

    #[test]
    fn long_varints_carry_six_bits_a_byte() {
        // +100 is zigzag 200: 200 & 63 = 8 with the continuation bit, then 200 >> 6 = 3.
        let table = [0x80 | (13 << 3), 64 | 8, 3];
        assert_eq!(line_of(&table, 1, 0), Some(101));
    }
}
