//! The loader's list of objects (`dl_iterate_phdr`), taken without allocating under its
//! lock, and checked reads of this process's memory.

use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// An object the loader lists, as read outside its lock (see [`loaded_objects`]).
pub(super) struct LoadedObject {
    pub(super) path: PathBuf,
    pub(super) bias: u64,
    pub(super) headers: Vec<libc::Elf64_Phdr>,
}

/// Where the loader describes one object: valid while the object stays loaded.
#[derive(Clone, Copy)]
struct ObjectAddresses {
    bias: u64,
    name: u64,
    headers: u64,
    header_count: usize,
}

/// Rounds of listing before the last list is used even though a library was unloaded
/// meanwhile (every read of it was checked, so a stale entry costs names, not a fault).
const LISTING_ATTEMPTS: usize = 4;

/// The objects the loader lists, the executable first.
///
/// Nothing is allocated while the loader's lock is held: an allocator that holds its own
/// lock while it asks the loader (tcmalloc records a stack with libunwind when its heap grows,
/// and libunwind calls `dl_iterate_phdr`) would otherwise deadlock with us. Under the lock
/// only addresses are recorded, into room reserved before; names and program headers are read
/// afterwards with `process_vm_readv`, which fails instead of faulting if a `dlclose` unmapped
/// them meanwhile, and the list is taken again if the loader's unload count moved.
pub(super) fn loaded_objects() -> Vec<LoadedObject> {
    let mut capacity = 64;
    let mut objects = Vec::new();
    for _ in 0..LISTING_ATTEMPTS {
        let (_, unloads_before) = dl_counts();
        let addresses = loop {
            match object_addresses(capacity) {
                Some(addresses) => break addresses,
                None => capacity *= 4,
            }
        };
        objects = addresses
            .iter()
            .enumerate()
            .filter_map(|(index, object)| read_object(object, index == 0))
            .collect();
        if dl_counts().1 == unloads_before {
            break;
        }
    }
    objects
}

/// The loader's list as addresses; `None` if it has `capacity` objects or more.
fn object_addresses(capacity: usize) -> Option<Vec<ObjectAddresses>> {
    unsafe extern "C" fn record(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        out: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid info; `out` is the vector passed below.
        let (info, addresses) = unsafe { (&*info, &mut *(out as *mut Vec<ObjectAddresses>)) };
        if addresses.len() + 1 >= addresses.capacity() {
            return 1;
        }
        // Within the reserved capacity: no allocation under the loader's lock.
        addresses.push(ObjectAddresses {
            bias: info.dlpi_addr,
            name: info.dlpi_name as u64,
            headers: info.dlpi_phdr as u64,
            header_count: usize::from(info.dlpi_phnum),
        });
        0
    }
    let mut addresses: Vec<ObjectAddresses> = Vec::with_capacity(capacity);
    // SAFETY: the callback only pushes into `addresses` within its capacity.
    unsafe { libc::dl_iterate_phdr(Some(record), &mut addresses as *mut _ as *mut _) };
    (addresses.len() + 1 < capacity).then_some(addresses)
}

/// Reads an object's name and program headers; `None` if they are gone or it has none.
fn read_object(object: &ObjectAddresses, executable: bool) -> Option<LoadedObject> {
    if object.headers == 0 {
        return None;
    }
    let mut headers = vec![
        libc::Elf64_Phdr {
            p_type: 0,
            p_flags: 0,
            p_offset: 0,
            p_vaddr: 0,
            p_paddr: 0,
            p_filesz: 0,
            p_memsz: 0,
            p_align: 0,
        };
        object.header_count
    ];
    // SAFETY: the vector's memory holds `header_count` program headers, plain integers for
    // which every byte pattern is valid.
    let bytes = unsafe {
        std::slice::from_raw_parts_mut(
            headers.as_mut_ptr() as *mut u8,
            std::mem::size_of_val(headers.as_slice()),
        )
    };
    if !read_memory(object.headers, bytes) {
        return None;
    }
    let name = read_c_string(object.name).unwrap_or_default();
    let path = if name.is_empty() && executable {
        std::env::current_exe().unwrap_or_default()
    } else {
        PathBuf::from(std::ffi::OsString::from_vec(name))
    };
    Some(LoadedObject {
        path,
        bias: object.bias,
        headers,
    })
}

/// A NUL-terminated string of this process, read with checks, at most `PATH_MAX` bytes.
fn read_c_string(address: u64) -> Option<Vec<u8>> {
    const CHUNK: usize = 256;
    if address == 0 {
        return None;
    }
    let mut text = Vec::new();
    let mut chunk = [0u8; CHUNK];
    while text.len() < libc::PATH_MAX as usize {
        let at = address.checked_add(text.len() as u64)?;
        // A chunk may cross into an unmapped page: read up to the page end first.
        let to_page_end = (4096 - (at % 4096)) as usize;
        let want = chunk.get_mut(..CHUNK.min(to_page_end))?;
        if !read_memory(at, want) {
            return None;
        }
        match want.iter().position(|&b| b == 0) {
            Some(end) => {
                text.extend_from_slice(want.get(..end)?);
                return Some(text);
            }
            None => text.extend_from_slice(want),
        }
    }
    None
}

/// Copies memory of this process at `address` into `out` with `process_vm_readv`: an address
/// that is not mapped gives `false`, not a fault.
pub fn read_memory(address: u64, out: &mut [u8]) -> bool {
    let local = libc::iovec {
        iov_base: out.as_mut_ptr() as *mut libc::c_void,
        iov_len: out.len(),
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: out.len(),
    };
    // SAFETY: `local` describes `out`; the kernel validates `remote`. getpid has no
    // preconditions; both calls are async-signal-safe.
    let copied = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    copied >= 0 && copied as usize == out.len()
}

/// Reads the 8-byte words at `addresses` (at most eight) into `out` in one
/// `process_vm_readv`; `false` unless every word could be read.
pub fn read_words(addresses: &[u64], out: &mut [u64]) -> bool {
    /// `process_vm_readv` takes at most this many remote pieces here.
    const MAX_WORDS: usize = 8;
    let count = addresses.len();
    if count == 0 || count > MAX_WORDS || out.len() < count {
        return false;
    }
    let empty = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    let mut remote = [empty; MAX_WORDS];
    for (piece, &address) in remote.iter_mut().zip(addresses) {
        piece.iov_base = address as *mut libc::c_void;
        piece.iov_len = 8;
    }
    let local = libc::iovec {
        iov_base: out.as_mut_ptr() as *mut libc::c_void,
        iov_len: count * 8,
    };
    // SAFETY: `local` describes the first `count` words of `out`; the kernel validates
    // `remote`. Both calls are async-signal-safe.
    let copied = unsafe {
        libc::process_vm_readv(libc::getpid(), &local, 1, remote.as_ptr(), count as _, 0)
    };
    copied >= 0 && copied as usize == count * 8
}

/// `dlpi_adds`/`dlpi_subs`: the loader's counts of loads and unloads, a cheap change check.
pub(super) fn dl_counts() -> (u64, u64) {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        out: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid info; `out` is the tuple passed below.
        unsafe {
            let info = &*info;
            *(out as *mut (u64, u64)) = (info.dlpi_adds, info.dlpi_subs);
        }
        1
    }
    let mut counts = (0u64, 0u64);
    // SAFETY: the callback only writes `counts`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(first), &mut counts as *mut (u64, u64) as *mut _) };
    counts
}
