//! Files the profiler opens in a program that may close descriptors it does not know.
//!
//! Daemons, and children before an exec, close every descriptor but their own (a loop over
//! 3..1024, `close_range`) and then reuse the numbers. A descriptor of ours closed that way
//! may name the program's next file by the time we use or close it. So every use and the
//! close first check that the number still names the file we opened (device, inode, and our
//! close-on-exec flag): a read then fails, and the number, now the program's, is left open.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A descriptor of ours, checked before each use.
pub struct CheckedFile {
    fd: libc::c_int,
    device: u64,
    inode: u64,
}

impl CheckedFile {
    /// Opens `path` read-only (a directory too), close-on-exec.
    pub fn open(path: &Path) -> io::Result<CheckedFile> {
        Self::open_mode(path, libc::O_RDONLY, 0)
    }

    /// Creates `path`, which must not exist, for writing with `mode` (less the umask); never
    /// through a symbolic link.
    pub fn create_new(path: &Path, mode: libc::mode_t) -> io::Result<CheckedFile> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        Self::open_mode(path, flags, mode)
    }

    fn open_mode(path: &Path, flags: libc::c_int, mode: libc::mode_t) -> io::Result<CheckedFile> {
        let path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `path` is NUL-terminated; open only reads it.
        let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        match identity(fd) {
            Some((device, inode)) => Ok(CheckedFile { fd, device, inode }),
            None => {
                let error = io::Error::last_os_error();
                // SAFETY: we opened `fd` just now and nothing else knows it yet.
                unsafe { libc::close(fd) };
                Err(error)
            }
        }
    }

    /// Whether the descriptor still names the file we opened, with our close-on-exec flag.
    fn still_ours(&self) -> bool {
        // SAFETY: F_GETFD only reads the descriptor's flags; a closed one gives -1.
        let flags = unsafe { libc::fcntl(self.fd, libc::F_GETFD) };
        flags >= 0
            && flags & libc::FD_CLOEXEC != 0
            && identity(self.fd) == Some((self.device, self.inode))
    }

    fn checked(&self) -> io::Result<()> {
        if self.still_ours() {
            Ok(())
        } else {
            Err(io::Error::other("the program closed this descriptor"))
        }
    }

    /// Reads at `offset`, as `pread`.
    pub fn read_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
        self.checked()?;
        // SAFETY: the kernel writes at most `buffer.len()` bytes into `buffer`.
        let read = unsafe {
            libc::pread(
                self.fd,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                offset as libc::off_t,
            )
        };
        if read < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(read as usize)
        }
    }

    /// The whole file from its start (a `/proc` file is made anew on each read).
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        let mut contents = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let read = self.read_at(&mut chunk, contents.len() as u64)?;
            if read == 0 {
                return Ok(contents);
            }
            contents.extend_from_slice(&chunk[..read]);
        }
    }

    /// The names in a directory opened with [`CheckedFile::open`], `.` and `..` left out.
    pub fn entry_names(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            self.checked()?;
            // SAFETY: the kernel writes at most `buffer.len()` bytes of directory entries.
            let filled = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    self.fd,
                    buffer.as_mut_ptr(),
                    buffer.len(),
                )
            };
            if filled < 0 {
                return Err(io::Error::last_os_error());
            }
            if filled == 0 {
                return Ok(names);
            }
            names.extend(directory_entries(&buffer[..filled as usize]));
        }
    }
}

impl io::Write for CheckedFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.checked()?;
        // SAFETY: the kernel reads at most `bytes.len()` bytes from `bytes`.
        let written = unsafe { libc::write(self.fd, bytes.as_ptr().cast(), bytes.len()) };
        if written < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(written as usize)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for CheckedFile {
    fn drop(&mut self) {
        // A number the program closed and reused is its own now: never close it.
        if self.still_ours() {
            // SAFETY: the descriptor is ours (checked just now) and not used after this.
            unsafe { libc::close(self.fd) };
        }
    }
}

/// Device and inode of what `fd` names.
fn identity(fd: libc::c_int) -> Option<(u64, u64)> {
    // SAFETY: `stat` is plain data; fstat only writes it.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `stat` is a valid out-pointer.
    (unsafe { libc::fstat(fd, &mut stat) } == 0).then_some((stat.st_dev, stat.st_ino))
}

/// The names in a buffer of `linux_dirent64` records: inode (8 bytes), offset (8), record
/// length (2), type (1), then the NUL-terminated name.
fn directory_entries(buffer: &[u8]) -> Vec<String> {
    const NAME_AT: usize = 19;
    let mut names = Vec::new();
    let mut at = 0;
    while let Some(length) = buffer.get(at + 16..at + 18) {
        let length = u16::from_ne_bytes([length[0], length[1]]) as usize;
        let Some(record) = buffer.get(at..at + length).filter(|_| length > NAME_AT) else {
            break;
        };
        let name = &record[NAME_AT..];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        if name != b"." && name != b".." {
            names.push(String::from_utf8_lossy(name).into_owned());
        }
        at += length;
    }
    names
}

/// Reads a whole file, as `std::fs::read`, through a checked descriptor.
pub fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    CheckedFile::open(path.as_ref())?.read_all()
}

/// Reads a whole text file, as `std::fs::read_to_string`, through a checked descriptor.
pub fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// The names in directory `path`, through a checked descriptor.
pub fn list_directory(path: impl AsRef<Path>) -> io::Result<Vec<String>> {
    CheckedFile::open(path.as_ref())?.entry_names()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "hello").unwrap();
        std::fs::write(dir.path().join("b"), "").unwrap();
        assert_eq!(read_to_string(dir.path().join("a")).unwrap(), "hello");
        let mut names = list_directory(dir.path()).unwrap();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        assert!(read_to_string("/proc/self/status")
            .unwrap()
            .contains("Pid:"));
    }

    #[test]
    fn a_descriptor_closed_and_reused_by_the_program_is_neither_read_nor_closed() {
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ours");
        std::fs::write(&ours, "ours").unwrap();
        let file = CheckedFile::open(&ours).unwrap();
        // The program closes every descriptor it does not know and opens a file of its own,
        // which gets the same number.
        // SAFETY: closing our own descriptor behind the CheckedFile's back, as a program would.
        unsafe { libc::close(file.fd) };
        let theirs = std::fs::File::create(dir.path().join("theirs")).unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(theirs.as_raw_fd(), file.fd, "the number was reused");
        assert!(file.read_all().is_err());
        drop(file);
        // Still open: writing through it works.
        use std::io::Write;
        (&theirs).write_all(b"theirs").unwrap();
        drop(theirs);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("theirs")).unwrap(),
            "theirs"
        );
    }
}
