//! `/tmp/perf-<pid>.map`: lines of `START SIZE name` (hex) that JIT compilers (V8, LuaJIT,
//! the JVM's agents) write to name the code they generate in anonymous memory.
//!
//! Runs on the drain thread. A JIT may delete or rewrite its map before the program exits, so
//! the map is read while the program runs, not only when a profile is written: whenever a new
//! stack holds an address outside every module that no entry names yet, the file is looked at
//! again, at most every [`LOOK_INTERVAL_NANOS`]. A look is one `stat`; the file is read only
//! when it changed since it was last read. What was read stays known: a later read replaces
//! only the entries its own overlap, so the names of code that ran stay when the file is gone.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;

use crate::base::file;

/// Shortest time between two looks at the file while addresses wait for a name: a JIT that
/// writes its entry just after it first runs the code gets its name within this time, and an
/// address that is never named costs one `stat` per interval.
const LOOK_INTERVAL_NANOS: u64 = 100_000_000;

/// Addresses waiting for a name that are remembered; more only keep the looks going.
const MAX_UNNAMED: usize = 1024;

/// One line of the map: code at `start..start + size` is `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    start: u64,
    size: u64,
    name: String,
}

impl Entry {
    fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }
}

/// What tells a changed file from the one read: device, inode, size, modification time.
type Identity = (u64, u64, u64, i64, i64);

/// The names read so far, and when to read again.
#[derive(Default)]
pub(super) struct PerfMap {
    /// Sorted by start; on equal starts the later read or line last.
    entries: Vec<Entry>,
    /// The file as last read; `None` before the first read or after it was gone.
    read_as: Option<Identity>,
    /// When the file was last looked at (monotonic nanoseconds).
    looked_at: Option<u64>,
    /// Addresses outside every module that no entry named at the last look.
    unnamed: BTreeSet<u64>,
}

impl PerfMap {
    /// The name of the code at `address`.
    pub(super) fn find(&self, address: u64) -> Option<&str> {
        covering(&self.entries, address).map(|e| e.name.as_str())
    }

    /// Remembers an address outside every module until an entry names it.
    pub(super) fn note_unnamed(&mut self, address: u64) {
        if self.unnamed.len() < MAX_UNNAMED && covering(&self.entries, address).is_none() {
            self.unnamed.insert(address);
        }
    }

    /// Looks at the file if addresses wait for a name and the last look is old enough.
    pub(super) fn look_if_due(&mut self, now_nanos: u64) {
        let due = self
            .looked_at
            .is_none_or(|at| now_nanos.saturating_sub(at) >= LOOK_INTERVAL_NANOS);
        if !self.unnamed.is_empty() && due {
            self.look();
            self.looked_at = Some(now_nanos);
        }
    }

    /// Reads the file if it changed since it was last read, and keeps what it names.
    pub(super) fn look(&mut self) {
        let path = PathBuf::from(format!("/tmp/perf-{}.map", std::process::id()));
        let identity = std::fs::metadata(&path)
            .ok()
            .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()));
        match identity {
            // Read after the `stat`: a change while it is read shows at the next look. A
            // failed read is tried again at the next look.
            Some(_) if identity != self.read_as => {
                if let Ok(bytes) = file::read(&path) {
                    let text = String::from_utf8_lossy(&bytes);
                    self.merge(text.lines().filter_map(parse_line).collect());
                    self.read_as = identity;
                }
            }
            Some(_) => {}
            None => self.read_as = None,
        }
        let entries = &self.entries;
        self.unnamed.retain(|&a| covering(entries, a).is_none());
    }

    /// Adds the entries of a fresh read; earlier entries stay unless a fresh one overlaps them.
    fn merge(&mut self, mut fresh: Vec<Entry>) {
        fresh.sort_by_key(|e| e.start);
        // The furthest end among the fresh entries up to each one.
        let reach: Vec<u64> = fresh
            .iter()
            .scan(0, |furthest, e| {
                *furthest = e.end().max(*furthest);
                Some(*furthest)
            })
            .collect();
        let overlapped = |old: &Entry| {
            let before_end = fresh.partition_point(|e| e.start < old.end());
            before_end
                .checked_sub(1)
                .and_then(|last| reach.get(last))
                .is_some_and(|&end| end > old.start)
        };
        let mut entries: Vec<Entry> = std::mem::take(&mut self.entries);
        entries.retain(|old| !overlapped(old));
        entries.append(&mut fresh);
        entries.sort_by_key(|e| e.start);
        self.entries = entries;
    }
}

/// The entry of sorted `entries` that holds `address`.
fn covering(entries: &[Entry], address: u64) -> Option<&Entry> {
    let after = entries.partition_point(|e| e.start <= address);
    let entry = entries.get(after.checked_sub(1)?)?;
    (address < entry.end()).then_some(entry)
}

fn parse_line(line: &str) -> Option<Entry> {
    let mut parts = line.splitn(3, ' ');
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let start = hex(parts.next()?)?;
    let size = hex(parts.next()?)?;
    let name = parts.next()?.trim();
    (!name.is_empty()).then(|| Entry {
        start,
        size,
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(lines: &[&str]) -> Vec<Entry> {
        lines.iter().filter_map(|l| parse_line(l)).collect()
    }

    #[test]
    fn lines() {
        let mut map = PerfMap::default();
        map.merge(read(&[
            "7f0000001000 40 LazyCompile:~add foo.js:1",
            "0x7f0000002000 0x10 stub",
            "junk",
        ]));
        assert_eq!(map.find(0x7f0000001010), Some("LazyCompile:~add foo.js:1"));
        assert_eq!(map.find(0x7f000000200f), Some("stub"));
        assert_eq!(map.find(0x7f0000001040), None);
        assert_eq!(map.find(0x10), None);
    }

    #[test]
    fn a_later_read_keeps_what_it_does_not_overlap() {
        let mut map = PerfMap::default();
        map.merge(read(&[
            "1000 100 first",
            "2000 100 second",
            "3000 10 third",
        ]));
        // Rewritten: `second`'s code replaced by two functions, `first` and `third` left out.
        map.merge(read(&["2080 100 later", "1f00 100 earlier"]));
        assert_eq!(map.find(0x1010), Some("first"));
        assert_eq!(map.find(0x1f10), Some("earlier"));
        assert_eq!(map.find(0x2010), None, "second is gone");
        assert_eq!(map.find(0x2100), Some("later"));
        assert_eq!(map.find(0x3000), Some("third"));
        assert_eq!(map.entries.len(), 4);
        map.merge(Vec::new());
        assert_eq!(map.entries.len(), 4, "an empty read forgets nothing");
    }
}
