//! The definitions our interposers replace, found with `dlsym(RTLD_NEXT)` once and cached.
//! Looked up at load time by the interposing modules' constructors, or at the first call if
//! that comes earlier (another library's constructor, or ours starting threads).

use std::ffi::CStr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The next definition of `name` after this library, cached in `cache`; 0 if there is none.
pub fn next_definition(cache: &AtomicUsize, name: &CStr) -> usize {
    let known = cache.load(Ordering::Acquire);
    if known != 0 {
        return known;
    }
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name has no other preconditions.
    let address = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
    cache.store(address, Ordering::Release);
    address
}
