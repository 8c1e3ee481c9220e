//! `/proc/self/maps`: the writable mappings stacks live in, and how far the main thread's
//! stack may grow.

use std::ops::Range;

use crate::base::file;

/// A readable+writable mapping and the lowest address a stack in it can reach.
pub(super) struct WritableRegion {
    pub(super) range: Range<u64>,
    /// The mapping's start, or for the main thread's stack, which the kernel grows on demand,
    /// its top minus the stack size limit.
    pub(super) floor: u64,
}

/// One line of `/proc/self/maps`.
pub(super) struct Mapping {
    pub(super) range: Range<u64>,
    readable: bool,
    writable: bool,
    pub(super) offset: u64,
    /// The main thread's stack (`[stack]`), which the kernel extends as it is used.
    grows_down: bool,
}

pub(super) fn writable_regions(maps: &[Mapping]) -> Vec<WritableRegion> {
    let stack_limit = main_stack_limit();
    maps.iter()
        .filter(|m| m.readable && m.writable)
        .map(|m| WritableRegion {
            range: m.range.clone(),
            floor: match stack_limit.filter(|_| m.grows_down) {
                Some(limit) => m.range.end.saturating_sub(limit).min(m.range.start),
                None => m.range.start,
            },
        })
        .collect()
}

/// Size the main thread's stack may grow to (`RLIMIT_STACK`); unlimited reads as `u64::MAX`.
fn main_stack_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut limit) } != 0 {
        return None;
    }
    Some(limit.rlim_cur)
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
        grows_down: fields.nth(2) == Some("[stack]"),
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
        assert!(m.grows_down);
        let heap = parse_maps_line("55d0a000-55d2b000 rw-p 00000000 00:00 0   [heap]").unwrap();
        assert!(!heap.grows_down);
    }

    #[test]
    fn main_stack_floor_is_below_its_mapping_other_floors_are_their_start() {
        let maps = [
            parse_maps_line("1000-5000 rw-p 00000000 00:00 0").unwrap(),
            parse_maps_line("7ffd1000-7ffd3000 rw-p 00000000 00:00 0 [stack]").unwrap(),
        ];
        let regions = writable_regions(&maps);
        assert_eq!(regions[0].floor, 0x1000);
        assert!(regions[1].floor < 0x7ffd1000);
    }
}
