//! The handler's half of a module generation: the unwinder and the writable mappings that
//! bound every stack read. Built on an ordinary thread, read-only afterwards.

use std::sync::Arc;

use framehop::x86_64::UnwinderX86_64;
use framehop::MustNotAllocateDuringUnwind;

use std::ops::Range;

use super::maps::{read_maps, writable_regions};

/// What the signal handler unwinds with. Built on an ordinary thread, read-only afterwards.
pub struct UnwindSnapshot {
    pub generation: u32,
    /// Shared by snapshots that differ only in their memory map, so the unwinder's
    /// generation (and every slot's rule cache) survives a re-read of the map.
    pub unwinder: Arc<UnwinderX86_64<Arc<[u8]>, MustNotAllocateDuringUnwind>>,
    /// Sorted, non-overlapping readable+writable mappings: stacks live in these.
    pub(super) writable: Vec<Range<u64>>,
}

impl UnwindSnapshot {
    /// The same modules with the writable mappings read again: for stacks of threads
    /// created since, and mappings that went away.
    pub fn with_fresh_regions(&self) -> Box<UnwindSnapshot> {
        Box::new(UnwindSnapshot {
            generation: self.generation,
            unwinder: self.unwinder.clone(),
            writable: writable_regions(&read_maps()),
        })
    }
}

impl UnwindSnapshot {
    /// End of the writable mapping that contains `address`. Async-signal-safe.
    pub fn writable_region_end(&self, address: u64) -> Option<u64> {
        self.writable_region(address).map(|r| r.end)
    }

    fn writable_region(&self, address: u64) -> Option<&Range<u64>> {
        let after = self.writable.partition_point(|r| r.start <= address);
        let region = self.writable.get(after.checked_sub(1)?)?;
        (address < region.end).then_some(region)
    }
}
