//! The signal handler allocates nothing: a counting allocator sees no allocation on a thread
//! while it is sampled thousands of times, through cold and warm unwind caches.
//!
//! Its own test binary, because it installs a global allocator and the process-wide handler.
//! The `heap-stats` feature gives the library a global allocator of its own, so then the test
//! is left out.
#![cfg(not(feature = "heap-stats"))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use stacksample::settings::{Format, Settings, ThreadChoice};
use stacksample::Session;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a const-initialised thread local
// without a destructor, so counting never allocates itself.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[inline(never)]
fn recurse(depth: u32, seed: u64) -> u64 {
    if depth == 0 {
        let mut x = seed;
        for _ in 0..20_000 {
            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        x
    } else {
        black_box(recurse(depth - 1, seed ^ u64::from(depth))).wrapping_add(1)
    }
}

#[test]
fn handler_allocates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tid = stacksample::current_tid();
    let settings = Settings {
        interval: Duration::from_micros(200),
        dump_signal: None,
        formats: vec![Format::Folded],
        ..Settings::new(vec![ThreadChoice::Tid(tid)], dir.path().join("profile"))
    };
    let session = Session::start(settings).unwrap();

    let before = ALLOCATIONS.with(Cell::get);
    let started = Instant::now();
    let mut sink = 0u64;
    let mut round = 0u32;
    while started.elapsed() < Duration::from_millis(1500) {
        // Varying depth gives the unwinder new frames (cache misses) throughout.
        sink = sink.wrapping_add(recurse(round % 40, u64::from(round)));
        round += 1;
    }
    let after = ALLOCATIONS.with(Cell::get);
    black_box(sink);

    session.finish().unwrap();
    let folded = std::fs::read_to_string(dir.path().join("profile.folded")).unwrap();
    let samples: u64 = folded
        .lines()
        .map(|line| line.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    assert!(samples >= 1000, "only {samples} samples");
    assert!(folded.contains("handler_allocations::recurse"), "{folded}");
    assert_eq!(after - before, 0, "allocations on the sampled thread");
}
