//! The files of one `record` run. Without `-o`, a run writes into its own directory,
//! `stacksample-<pid>/` (the pid of `record`): each process's files inside, and, when more
//! than one process took samples, the merged profile of the whole tree beside them as
//! `merged.<ext>` in every requested format. Processes that took no sample leave nothing
//! (the one the run started keeps its files, so an empty run still says what happened);
//! a run that wrote nothing leaves no directory.

use std::path::{Path, PathBuf};

use stacksample::output::{self, profile_file};
use stacksample::profile::Profile;
use stacksample::settings::Format;

use crate::failure::Failure;
use crate::merge;

/// The directory of a run without `-o`, created now.
pub fn create_dir(cwd: &Path) -> Result<PathBuf, Failure> {
    let dir = cwd.join(format!("stacksample-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| {
        Failure::new(format!(
            "cannot create the run directory {}: {e}",
            dir.display()
        ))
        .hint("run from a writable directory, or give -o PREFIX")
    })?;
    Ok(dir)
}

/// A finished run: its profile and the files that hold it.
pub struct Written {
    /// All processes that took samples, merged (`None`: no profile could be read).
    pub profile: Option<Profile>,
    /// The files a reader opens first: the merged files, else those of the one process.
    pub files: Vec<PathBuf>,
    /// Processes whose files are in the run.
    pub processes: usize,
}

/// Reads the profiles of `prefixes` (the process `record` started first), removes the
/// files of processes that took no sample, and writes the merged profile into `dir` when
/// the run has one and more than one process is left.
pub fn finish(prefixes: &[PathBuf], formats: &[Format], dir: Option<&Path>) -> Written {
    let mut kept: Vec<(&PathBuf, Profile)> = Vec::new();
    for (index, prefix) in prefixes.iter().enumerate() {
        match profile_file::read(&output::with_extension(prefix, profile_file::EXTENSION)) {
            Ok(profile) if profile.total_samples() == 0 && index > 0 => {
                remove_files(prefix, formats)
            }
            Ok(profile) => kept.push((prefix, profile)),
            Err(error) => eprintln!("{error}"),
        }
    }
    let processes = kept.len();
    let mut files: Vec<PathBuf> = kept
        .iter()
        .flat_map(|(prefix, _)| files_of(prefix, formats))
        .collect();
    let profile = merge::merge(kept.into_iter().map(|(_, profile)| profile).collect());
    if let (Some(dir), Some(profile)) = (dir, &profile) {
        if processes > 1 {
            let merged = dir.join("merged");
            if let Err(error) = output::write_all(&merged, formats, profile) {
                eprintln!("{error}");
            }
            files = files_of(&merged, formats);
        }
    }
    if let Some(dir) = dir {
        remove_if_empty(dir);
    }
    Written {
        profile,
        files,
        processes,
    }
}

/// Removes the run directory when nothing was written into it (the command could not be
/// started, or the library never loaded), so a failed run leaves nothing behind.
pub fn remove_if_empty(dir: &Path) {
    // Fails, as it should, when the directory holds anything.
    let _ = std::fs::remove_dir(dir);
}

/// The files of `formats` that exist for `prefix`.
fn files_of(prefix: &Path, formats: &[Format]) -> Vec<PathBuf> {
    formats
        .iter()
        .map(|&f| output::with_extension(prefix, output::extension(f)))
        .filter(|path| path.is_file())
        .collect()
}

fn remove_files(prefix: &Path, formats: &[Format]) {
    for file in files_of(prefix, formats) {
        if let Err(error) = std::fs::remove_file(&file) {
            eprintln!("stacksample: cannot remove {}: {error}", file.display());
        }
    }
}
