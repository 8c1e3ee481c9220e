//! `/proc/self/maps`: the writable mappings stacks live in, and the files mapped.

use std::ops::Range;
use std::path::PathBuf;

use crate::base::file;

/// One line of `/proc/self/maps`.
pub(super) struct Mapping {
    pub(super) range: Range<u64>,
    readable: bool,
    writable: bool,
    pub(super) offset: u64,
    /// What is mapped: a file's absolute path (as the kernel resolved it at `open`), a
    /// pseudo name such as `[stack]`, or nothing for anonymous memory.
    pub(super) path: Option<PathBuf>,
}

/// The readable+writable mappings, in address order.
pub(super) fn writable_regions(maps: &[Mapping]) -> Vec<Range<u64>> {
    maps.iter()
        .filter(|m| m.readable && m.writable)
        .map(|m| m.range.clone())
        .collect()
}

pub(super) fn read_maps() -> Vec<Mapping> {
    let text = file::read_to_string("/proc/self/maps").unwrap_or_default();
    text.lines().filter_map(parse_maps_line).collect()
}

/// The absolute path of the file mapped at `address`, if a file is.
pub(super) fn mapped_file(maps: &[Mapping], address: u64) -> Option<PathBuf> {
    let mapping = maps.iter().find(|m| m.range.contains(&address))?;
    mapping.path.clone().filter(|path| path.is_absolute())
}

fn parse_maps_line(line: &str) -> Option<Mapping> {
    // Fields are separated by one space; the path, which may hold spaces, is padded.
    let mut fields = line.splitn(6, ' ');
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?.as_bytes();
    let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
    let path = fields.nth(2).map(str::trim_start).filter(|p| !p.is_empty());
    Some(Mapping {
        range: u64::from_str_radix(start, 16).ok()?..u64::from_str_radix(end, 16).ok()?,
        readable: perms.first() == Some(&b'r'),
        writable: perms.get(1) == Some(&b'w'),
        offset,
        path: path.map(PathBuf::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let m = parse_maps_line("7ffd1000-7ffd3000 rw-p 00001000 00:00 0   [stack]").unwrap();
        assert_eq!(m.range, 0x7ffd1000..0x7ffd3000);
        assert!(m.readable && m.writable);
        assert_eq!(m.offset, 0x1000);
        let code = parse_maps_line("55d0a000-55d2b000 r-xp 00000000 00:00 0").unwrap();
        assert_eq!(code.path, None);
        let file = parse_maps_line("7f01000-7f02000 r-xp 00001000 08:01 1234     /opt/my plug.so")
            .unwrap();
        let maps = [m, code, file];
        assert_eq!(
            mapped_file(&maps, 0x7f01800),
            Some(PathBuf::from("/opt/my plug.so"))
        );
        assert_eq!(mapped_file(&maps, 0x7ffd1000), None, "[stack] is no file");
        assert_eq!(mapped_file(&maps, 0x55d0a000), None, "anonymous");
        assert_eq!(writable_regions(&maps), vec![0x7ffd1000..0x7ffd3000]);
    }
}
