//! Output formats, one module each behind [`Writer`]. This module writes every file the same
//! way: to a temporary name in the target directory, then renamed, so a reader never sees
//! half a file.

mod folded;
mod json;
pub mod naming;
mod pprof;
pub mod profile_file;
mod speedscope;
mod svg;
mod text;
mod writer;

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::base::error::Error;
use crate::base::file::CheckedFile;
use crate::profile::Profile;
use crate::settings::Format;

pub use folded::folded_lines;
pub use naming::{extension, with_extension};
pub use pprof::PprofProfile;
pub use text::{lost_summary, write_function_tables};
pub use writer::Writer;

/// The writer of `format`; `top` limits the rows of the text report's table.
fn writer(format: Format, top: Option<usize>) -> Box<dyn Writer> {
    match format {
        Format::Txt => Box::new(text::Text {
            rows: top.unwrap_or(usize::MAX),
        }),
        Format::Folded => Box::new(folded::Folded),
        Format::Svg => Box::new(svg::Svg),
        Format::Pprof => Box::new(pprof::Pprof),
        Format::Json => Box::new(json::Json),
        Format::Speedscope => Box::new(speedscope::Speedscope),
        Format::Profile => Box::new(profile_file::ProfileFile),
    }
}

/// Writes `<prefix>.<extension>` for each of `formats`; the first failure is returned after
/// the other formats were tried.
pub fn write_all(prefix: &Path, formats: &[Format], profile: &Profile) -> Result<(), Error> {
    let mut first_error = None;
    for &format in formats {
        let path = with_extension(prefix, extension(format));
        if let Err(error) = write_file(&path, format, None, profile) {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Writes `profile` in `format` to `path`, replacing it atomically.
pub fn write_file(
    path: &Path,
    format: Format,
    top: Option<usize>,
    profile: &Profile,
) -> Result<(), Error> {
    write_atomically(path, |out| writer(format, top).write(profile, out))
}

/// Renders `profile` in `format` to `out` (a pipe, standard output).
pub fn render(
    format: Format,
    top: Option<usize>,
    profile: &Profile,
    out: &mut dyn Write,
) -> io::Result<()> {
    writer(format, top).write(profile, out)
}

fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), Error> {
    let (temporary, file) =
        create_temporary(path).map_err(|error| Error::io("write profile", path, error))?;
    let mut out = BufWriter::new(file);
    let result = fill(&mut out)
        .and_then(|()| out.flush())
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = result {
        let _ = std::fs::remove_file(&temporary);
        return Err(Error::io("write profile", path, error));
    }
    Ok(())
}

/// Attempts at a fresh temporary name before giving up: another file already holding the
/// name is never opened, so a planted one costs an attempt, not the profile.
const TEMPORARY_ATTEMPTS: u32 = 8;

/// Creates a new file `<path>.tmp<pid>.<n>` beside `path`: exclusively (`O_EXCL`), never
/// through a symbolic link (`O_NOFOLLOW`), with mode 0644 less the umask, its descriptor
/// checked before each write (the program may close it under us). Renaming it over
/// `path` later replaces whatever entry is there (a symbolic link itself, not its target).
fn create_temporary(path: &Path) -> io::Result<(PathBuf, CheckedFile)> {
    let mut last_error = None;
    for attempt in 0..TEMPORARY_ATTEMPTS {
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(format!(".tmp{}.{attempt}", std::process::id()));
        let temporary = PathBuf::from(temporary);
        match CheckedFile::create_new(&temporary, 0o644) {
            Ok(file) => return Ok((temporary, file)),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => last_error = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_text(path: &Path, text: &str) -> Result<(), Error> {
        write_atomically(path, |out| out.write_all(text.as_bytes()))
    }

    #[test]
    fn a_symlink_at_the_final_path_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let path = dir.path().join("profile.txt");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_text(&path, "profile").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "profile");
    }

    #[test]
    fn planted_temporaries_are_neither_followed_nor_overwritten_nor_removed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let path = dir.path().join("profile.txt");
        let planted = |n: u32| {
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".tmp{}.{n}", std::process::id()));
            PathBuf::from(name)
        };
        std::os::unix::fs::symlink(&victim, planted(0)).unwrap();
        std::fs::write(planted(1), "theirs").unwrap();
        write_text(&path, "profile").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(planted(1)).unwrap(), "theirs");
        assert!(std::fs::symlink_metadata(planted(0)).unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "profile");

        for n in 2..TEMPORARY_ATTEMPTS {
            std::fs::write(planted(n), "theirs").unwrap();
        }
        std::fs::remove_file(&path).unwrap();
        let error = write_text(&path, "profile").unwrap_err().to_string();
        assert!(error.contains("profile.txt"), "{error}");
        assert!(!path.exists());
        for n in 1..TEMPORARY_ATTEMPTS {
            assert_eq!(std::fs::read_to_string(planted(n)).unwrap(), "theirs");
        }
    }
}
