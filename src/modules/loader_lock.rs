//! `dl_iterate_phdr` as the program calls it (C++ exceptions, backtraces, the program itself):
//! counted while it runs. glibc does not reinitialise the lock it holds across a `fork`, so a
//! child forked while another thread was inside it can never list its objects: the child's
//! sampler would wait for good. The count, inherited by the child, tells it not to try.
//! The library's own listings run under the fork guard, so no fork happens during them.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::base::glibc;

type IteratePhdr = unsafe extern "C" fn(
    Option<unsafe extern "C" fn(*mut libc::dl_phdr_info, usize, *mut libc::c_void) -> libc::c_int>,
    *mut libc::c_void,
) -> libc::c_int;

/// glibc's `dl_iterate_phdr`, looked up at load time (`dlsym` is not safe in a forked child).
static GLIBC_DL_ITERATE_PHDR: AtomicUsize = AtomicUsize::new(0);
/// Calls of `dl_iterate_phdr` in progress.
static INSIDE: AtomicUsize = AtomicUsize::new(0);

#[ctor::ctor]
fn resolve_at_load() {
    glibc::next_definition(&GLIBC_DL_ITERATE_PHDR, c"dl_iterate_phdr");
}

/// Whether the loader's lock may be held by a thread that does not exist here: true in a
/// child forked while another thread was inside `dl_iterate_phdr`.
pub fn loader_lock_may_be_held() -> bool {
    INSIDE.load(Ordering::Acquire) > 0
}

/// Interposed `dl_iterate_phdr(3)`.
///
/// # Safety
/// As for `dl_iterate_phdr(3)`.
#[no_mangle]
pub unsafe extern "C" fn dl_iterate_phdr(
    callback: Option<
        unsafe extern "C" fn(*mut libc::dl_phdr_info, usize, *mut libc::c_void) -> libc::c_int,
    >,
    data: *mut libc::c_void,
) -> libc::c_int {
    let glibc = glibc::next_definition(&GLIBC_DL_ITERATE_PHDR, c"dl_iterate_phdr");
    if glibc == 0 {
        return 0;
    }
    // SAFETY: the address is glibc's dl_iterate_phdr, which has this signature.
    let glibc: IteratePhdr = unsafe { std::mem::transmute::<usize, IteratePhdr>(glibc) };
    INSIDE.fetch_add(1, Ordering::AcqRel);
    // SAFETY: forwarded preconditions.
    let result = unsafe { glibc(callback, data) };
    INSIDE.fetch_sub(1, Ordering::AcqRel);
    result
}
