//! The library's own heap use, for the report: with the `heap-stats` feature, the library's
//! global allocator is the system allocator wrapped in counters of the bytes it holds. A
//! long run can then tell the profiler's memory from the program's and from the allocator's
//! (`scripts/soak.sh` uses it). Off by default: a Rust program using the library would
//! otherwise have its global allocator chosen for it.

use serde::{Deserialize, Serialize};

/// Bytes the library holds on the heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeapUsage {
    pub live: usize,
    pub peak: usize,
}

/// The library's heap use so far; `None` unless built with the `heap-stats` feature.
pub fn usage() -> Option<HeapUsage> {
    #[cfg(feature = "heap-stats")]
    return Some(counting::usage());
    #[cfg(not(feature = "heap-stats"))]
    None
}

#[cfg(feature = "heap-stats")]
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::base::heap::HeapUsage;

    static LIVE: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);

    pub fn usage() -> HeapUsage {
        HeapUsage {
            live: LIVE.load(Ordering::Relaxed),
            peak: PEAK.load(Ordering::Relaxed),
        }
    }

    fn grew(bytes: usize) {
        let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }

    fn shrank(bytes: usize) {
        LIVE.fetch_sub(bytes, Ordering::Relaxed);
    }

    struct CountingAllocator;

    // SAFETY: every call is forwarded to the system allocator unchanged; the counters are
    // plain atomics, which neither allocate nor block.
    unsafe impl GlobalAlloc for CountingAllocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded with the caller's guarantees.
            let ptr = unsafe { System.alloc(layout) };
            if !ptr.is_null() {
                grew(layout.size());
            }
            ptr
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded with the caller's guarantees.
            let ptr = unsafe { System.alloc_zeroed(layout) };
            if !ptr.is_null() {
                grew(layout.size());
            }
            ptr
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.dealloc(ptr, layout) };
            shrank(layout.size());
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: forwarded with the caller's guarantees.
            let moved = unsafe { System.realloc(ptr, layout, new_size) };
            if !moved.is_null() {
                shrank(layout.size());
                grew(new_size);
            }
            moved
        }
    }

    #[global_allocator]
    static ALLOCATOR: CountingAllocator = CountingAllocator;
}
