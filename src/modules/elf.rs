//! What the registry reads out of a loaded ELF object: the unwind sections (copied, so a
//! `dlclose` cannot take them away) and the GNU build id.

use std::ops::Range;
use std::sync::Arc;

use framehop::ExplicitModuleSectionInfo;

use super::loader::read_memory;
use super::map::MappedSegment;

/// `.eh_frame_hdr` and `.eh_frame`, copied, with their stated addresses.
pub(super) fn unwind_sections(
    bias: u64,
    loads: &[Range<u64>],
    code: &[MappedSegment],
    eh_frame_hdr: Option<Range<u64>>,
) -> ExplicitModuleSectionInfo<Arc<[u8]>> {
    let mut info = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: code.first().map(|s| s.avma.start - bias..s.avma.end - bias),
        ..Default::default()
    };
    let Some(hdr) = eh_frame_hdr else {
        return info;
    };
    let Some(hdr_bytes) = copy_mapped(loads, hdr.clone()) else {
        return info;
    };
    if let Some(eh_frame) = eh_frame_range(loads, &hdr_bytes, hdr.start) {
        info.eh_frame_svma = Some(eh_frame.start - bias..eh_frame.end - bias);
        info.eh_frame = copy_mapped(loads, eh_frame);
    }
    info.eh_frame_hdr_svma = Some(hdr.start - bias..hdr.end - bias);
    info.eh_frame_hdr = Some(hdr_bytes);
    info
}

/// Copies `range` if it lies inside one loaded segment.
fn copy_mapped(loads: &[Range<u64>], range: Range<u64>) -> Option<Arc<[u8]>> {
    let inside = loads
        .iter()
        .any(|l| l.start <= range.start && range.end <= l.end && range.start <= range.end);
    if !inside {
        return None;
    }
    let mut bytes = vec![0u8; (range.end - range.start) as usize];
    read_memory(range.start, &mut bytes).then(|| Arc::from(bytes))
}

/// The GNU build ID from a `PT_NOTE` segment, if it has one.
pub(super) fn gnu_build_id(notes: Range<u64>) -> Option<Vec<u8>> {
    const NT_GNU_BUILD_ID: u32 = 3;
    const MAX_NOTES: u64 = 64 * 1024;
    let mut bytes = vec![0u8; notes.end.checked_sub(notes.start)?.min(MAX_NOTES) as usize];
    if !read_memory(notes.start, &mut bytes) {
        return None;
    }
    let word = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let align = |n: usize| n.checked_add(3).map(|n| n & !3);
    let mut at = 0;
    while at + 12 <= bytes.len() {
        let (name_size, desc_size, kind) =
            (word(at)? as usize, word(at + 4)? as usize, word(at + 8)?);
        let name_start = at + 12;
        let desc_start = name_start.checked_add(align(name_size)?)?;
        let desc_end = desc_start.checked_add(desc_size)?;
        if kind == NT_GNU_BUILD_ID && bytes.get(name_start..name_start + name_size)? == b"GNU\0" {
            return Some(bytes.get(desc_start..desc_end)?.to_vec());
        }
        at = desc_start.checked_add(align(desc_size)?)?;
    }
    None
}

/// Finds `.eh_frame` from the header's `eh_frame_ptr`, and its end by walking the CIE/FDE
/// length words to the zero terminator or the end of its segment (no program header records
/// its length).
fn eh_frame_range(loads: &[Range<u64>], hdr: &[u8], hdr_avma: u64) -> Option<Range<u64>> {
    const DW_EH_PE_SDATA4_PCREL: u8 = 0x1b;
    const DW_EH_PE_UDATA4: u8 = 0x03;
    const DW_EH_PE_SDATA4: u8 = 0x0b;
    const DW_EH_PE_UDATA8: u8 = 0x04;
    let (&version, rest) = hdr.split_first()?;
    let (&encoding, _) = rest.split_first()?;
    if version != 1 {
        return None;
    }
    let field = hdr.get(4..)?;
    let start = match encoding {
        DW_EH_PE_SDATA4_PCREL => {
            let delta = i32::from_le_bytes(field.get(..4)?.try_into().ok()?);
            (hdr_avma + 4).checked_add_signed(i64::from(delta))?
        }
        DW_EH_PE_UDATA4 | DW_EH_PE_SDATA4 => {
            u64::from(u32::from_le_bytes(field.get(..4)?.try_into().ok()?))
        }
        DW_EH_PE_UDATA8 => u64::from_le_bytes(field.get(..8)?.try_into().ok()?),
        _ => return None,
    };
    let segment = loads.iter().find(|l| l.contains(&start))?;
    let mut reader = SegmentReader::new(segment.clone());
    let mut cursor = start;
    loop {
        // ld.so's `.eh_frame` has no terminator: it ends where its segment ends.
        if cursor == segment.end {
            return Some(start..cursor);
        }
        let length = u32::from_le_bytes(reader.bytes(cursor)?);
        cursor += 4;
        match length {
            0 => return Some(start..cursor),
            0xffff_ffff => {
                let long = u64::from_le_bytes(reader.bytes(cursor)?);
                cursor = cursor.checked_add(8)?.checked_add(long)?;
            }
            n => cursor = cursor.checked_add(u64::from(n))?,
        }
    }
}

/// Reads one loaded segment ahead in large pieces: walking `.eh_frame` entry by entry with a
/// read each costs a system call per entry, about 3,600 for this library's own, in every
/// process and every forked child.
struct SegmentReader {
    segment: Range<u64>,
    window_start: u64,
    window: Vec<u8>,
}

impl SegmentReader {
    const WINDOW: u64 = 64 * 1024;

    fn new(segment: Range<u64>) -> SegmentReader {
        SegmentReader {
            segment,
            window_start: 0,
            window: Vec::new(),
        }
    }

    /// The `N` bytes at `at`, if they lie inside the segment and can be read.
    fn bytes<const N: usize>(&mut self, at: u64) -> Option<[u8; N]> {
        let end = at.checked_add(N as u64)?;
        if at < self.segment.start || end > self.segment.end {
            return None;
        }
        let window_end = self.window_start + self.window.len() as u64;
        if at < self.window_start || end > window_end {
            self.fill(at, N as u64)?;
        }
        let offset = usize::try_from(at - self.window_start).ok()?;
        self.window.get(offset..offset + N)?.try_into().ok()
    }

    /// Reads a window from `at`; only `need` bytes if the larger read fails (a page of the
    /// segment gone since it was listed).
    fn fill(&mut self, at: u64, need: u64) -> Option<()> {
        self.window_start = at;
        for length in [Self::WINDOW.max(need).min(self.segment.end - at), need] {
            self.window.resize(usize::try_from(length).ok()?, 0);
            if read_memory(at, &mut self.window) {
                return Some(());
            }
        }
        self.window.clear();
        None
    }
}
