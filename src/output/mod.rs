//! Output formats, one module each behind [`Format`]. This module writes every file the same
//! way: to a temporary name in the target directory, then renamed, so a reader never sees
//! half a file.

mod folded;
mod text;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::profile::Profile;

pub use folded::Folded;
pub use text::Text;

/// A profile format.
pub trait Format {
    /// File name extension, appended to the output prefix.
    fn extension(&self) -> &'static str;
    fn write(&self, profile: &Profile, out: &mut dyn Write) -> io::Result<()>;
}

/// Writes `<prefix>.txt` and `<prefix>.folded`.
pub fn write_all(prefix: &Path, profile: &Profile) -> Result<(), Error> {
    let formats: [&dyn Format; 2] = [&Text, &Folded];
    for format in formats {
        let path = with_extension(prefix, format.extension());
        write_atomically(&path, |out| format.write(profile, out))?;
    }
    Ok(())
}

fn with_extension(prefix: &Path, extension: &str) -> PathBuf {
    let mut path = prefix.as_os_str().to_owned();
    path.push(".");
    path.push(extension);
    PathBuf::from(path)
}

fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), Error> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let result = File::create(&temporary).and_then(|file| {
        let mut out = BufWriter::new(file);
        fill(&mut out)?;
        out.flush()
    });
    if let Err(error) = result.and_then(|()| std::fs::rename(&temporary, path)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(Error::io("write profile", path, error));
    }
    Ok(())
}
