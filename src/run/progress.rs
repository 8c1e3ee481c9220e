//! The samples of a run so far, for `stacksample record` to show while the command runs:
//! one 64-bit count in a small file (`STACKSAMPLE_PROGRESS`) that every process of the run
//! maps shared and adds to as its drain receives samples. `record` reads the same mapping.

use std::fs::OpenOptions;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::base::error::Error;

/// A count shared by the processes that map the same file.
pub struct ProgressCounter {
    count: NonNull<AtomicU64>,
}

// SAFETY: the mapping is only accessed through the atomic, which is Sync.
unsafe impl Send for ProgressCounter {}
// SAFETY: as above.
unsafe impl Sync for ProgressCounter {}

const SIZE: usize = std::mem::size_of::<AtomicU64>();

impl ProgressCounter {
    /// Creates the file at zero and maps it (the `record` side).
    pub fn create(path: &Path) -> Result<ProgressCounter, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io("create the progress file", path, e))?;
        file.set_len(SIZE as u64)
            .map_err(|e| Error::io("size the progress file", path, e))?;
        Self::map(&file, path)
    }

    /// Maps an existing file (the library side).
    pub fn open(path: &Path) -> Result<ProgressCounter, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("open the progress file", path, e))?;
        let long_enough = file.metadata().is_ok_and(|m| m.len() >= SIZE as u64);
        if !long_enough {
            let short = std::io::Error::other("shorter than 8 bytes");
            return Err(Error::io("map the progress file", path, short));
        }
        Self::map(&file, path)
    }

    fn map(file: &std::fs::File, path: &Path) -> Result<ProgressCounter, Error> {
        use std::os::fd::AsRawFd;
        // SAFETY: a new shared mapping of SIZE bytes of a file at least that long; the
        // mapping outlives the descriptor, and nothing else is mapped at the address.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if address == libc::MAP_FAILED {
            let error = std::io::Error::last_os_error();
            return Err(Error::io("map the progress file", path, error));
        }
        let count = NonNull::new(address.cast::<AtomicU64>()).ok_or_else(|| {
            Error::io("map the progress file", path, std::io::Error::other("null"))
        })?;
        Ok(ProgressCounter { count })
    }

    fn count(&self) -> &AtomicU64 {
        // SAFETY: mapped, page-aligned and SIZE bytes long until drop.
        unsafe { self.count.as_ref() }
    }

    pub fn add(&self, samples: u64) {
        self.count().fetch_add(samples, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.count().load(Ordering::Relaxed)
    }
}

impl Drop for ProgressCounter {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping this value made; no reference outlives self.
        unsafe { libc::munmap(self.count.as_ptr().cast(), SIZE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_of_a_run_add_to_one_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress");
        let shown = ProgressCounter::create(&path).unwrap();
        let (a, b) = (
            ProgressCounter::open(&path).unwrap(),
            ProgressCounter::open(&path).unwrap(),
        );
        a.add(3);
        b.add(4);
        assert_eq!(shown.get(), 7);
        std::fs::write(dir.path().join("short"), "x").unwrap();
        assert!(ProgressCounter::open(&dir.path().join("short")).is_err());
    }
}
