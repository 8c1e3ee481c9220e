//! File names: each format's extension, and the prefix a process image writes its profile
//! under. A profile file is only ever replaced by the image that wrote it: the image after
//! an `exec` (same pid), a later process that got the same pid, or another process writing
//! the same fixed name while this one runs, writes beside it as `<prefix>.<n>`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::profile_file;
use crate::settings::Format;

/// The file name suffix of each format.
pub fn extension(format: Format) -> &'static str {
    match format {
        Format::Txt => "txt",
        Format::Folded => "folded",
        Format::Svg => "svg",
        Format::Pprof => "pb.gz",
        Format::Json => "json",
        Format::Speedscope => "speedscope.json",
        Format::Profile => profile_file::EXTENSION,
    }
}

/// `prefix` with `.extension` appended.
pub fn with_extension(prefix: &Path, extension: &str) -> PathBuf {
    let mut path = prefix.as_os_str().to_owned();
    path.push(".");
    path.push(extension);
    PathBuf::from(path)
}

/// Numbered names tried before the profile goes to the last one.
const MAX_NUMBER: u32 = 999;

/// A file modified this long before the process started may still be the process's own
/// (the start time is counted in 10 ms ticks, file times lag the clock by up to a tick):
/// such a file is kept, never replaced.
const START_SLACK: Duration = Duration::from_millis(20);

/// Whose files an image may replace.
pub struct Ownership {
    /// The prefix names one process (`%p`, or a forked child's `.<pid>`): every file already
    /// there belongs to another image.
    pub per_process: bool,
    /// When the process started; with a fixed name, files modified before it are leftovers of
    /// an earlier run and are replaced. `None` when unknown: every file is kept.
    pub process_started: Option<SystemTime>,
}

impl Ownership {
    /// Whether `path` is another image's profile. Only a regular file can be: anything else
    /// there (a symbolic link) is replaced, never followed.
    fn is_others(&self, path: &Path) -> bool {
        let Ok(metadata) = std::fs::symlink_metadata(path) else {
            return false;
        };
        let Ok(modified) = metadata.modified() else {
            return false;
        };
        if !metadata.is_file() {
            return false;
        }
        if self.per_process {
            return true;
        }
        self.process_started
            .and_then(|started| started.checked_sub(START_SLACK))
            .is_none_or(|since| modified >= since)
    }
}

/// `prefix` if none of its files for `formats` is another image's, else the first
/// `<prefix>.<n>` (n = 1, 2, ...) whose files are free.
pub fn image_prefix(prefix: &Path, formats: &[Format], ownership: &Ownership) -> PathBuf {
    let taken = |candidate: &Path| {
        formats
            .iter()
            .any(|&format| ownership.is_others(&with_extension(candidate, extension(format))))
    };
    let mut candidate = prefix.to_path_buf();
    for number in 1..=MAX_NUMBER {
        if !taken(&candidate) {
            break;
        }
        candidate = numbered(prefix, number);
    }
    candidate
}

/// `<prefix>.<number>`.
pub fn numbered(prefix: &Path, number: u32) -> PathBuf {
    with_extension(prefix, &number.to_string())
}

/// Every prefix an image told to write under `prefix` may be using for `format`: `prefix`,
/// each numbered one whose file exists, and the next number, where a new image would go.
pub fn image_prefixes(prefix: &Path, format: Format) -> Vec<PathBuf> {
    let mut prefixes = vec![prefix.to_path_buf()];
    for number in 1..=MAX_NUMBER {
        let candidate = numbered(prefix, number);
        let exists = with_extension(&candidate, extension(format)).exists();
        prefixes.push(candidate);
        if !exists {
            break;
        }
    }
    prefixes
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMATS: [Format; 2] = [Format::Txt, Format::Folded];

    fn write(path: PathBuf) {
        std::fs::write(path, "x").unwrap();
    }

    #[test]
    fn a_per_process_name_already_written_goes_beside_under_the_next_free_number() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("x.42");
        let ownership = Ownership {
            per_process: true,
            process_started: Some(SystemTime::now()),
        };
        assert_eq!(image_prefix(&prefix, &FORMATS, &ownership), prefix);
        write(with_extension(&prefix, "folded"));
        write(with_extension(&numbered(&prefix, 1), "txt"));
        assert_eq!(
            image_prefix(&prefix, &FORMATS, &ownership),
            numbered(&prefix, 2)
        );
    }

    #[test]
    fn a_fixed_name_replaces_files_older_than_the_process_and_keeps_newer_ones() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("profile");
        write(with_extension(&prefix, "txt"));
        let started_later = Ownership {
            per_process: false,
            process_started: Some(SystemTime::now() + Duration::from_secs(60)),
        };
        assert_eq!(image_prefix(&prefix, &FORMATS, &started_later), prefix);
        let started_before = Ownership {
            per_process: false,
            process_started: Some(SystemTime::now() - Duration::from_secs(60)),
        };
        assert_eq!(
            image_prefix(&prefix, &FORMATS, &started_before),
            numbered(&prefix, 1)
        );
        let unknown = Ownership {
            per_process: false,
            process_started: None,
        };
        assert_eq!(
            image_prefix(&prefix, &FORMATS, &unknown),
            numbered(&prefix, 1)
        );
    }
}
