//! `/proc/self/maps`: the writable mappings stacks live in.

use std::ops::Range;

use crate::base::file;

/// One line of `/proc/self/maps`.
pub(super) struct Mapping {
    pub(super) range: Range<u64>,
    readable: bool,
    writable: bool,
    pub(super) offset: u64,
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

fn parse_maps_line(line: &str) -> Option<Mapping> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?.as_bytes();
    let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
    Some(Mapping {
        range: u64::from_str_radix(start, 16).ok()?..u64::from_str_radix(end, 16).ok()?,
        readable: perms.first() == Some(&b'r'),
        writable: perms.get(1) == Some(&b'w'),
        offset,
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
        assert_eq!(writable_regions(&[m, code]), vec![0x7ffd1000..0x7ffd3000]);
    }
}
