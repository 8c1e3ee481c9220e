//! Output formats, one module each behind [`Writer`]. This module writes every file the same
//! way: to a temporary name in the target directory, then renamed, so a reader never sees
//! half a file.

mod folded;
mod json;
pub mod lossless;
mod pprof;
mod speedscope;
mod svg;
mod text;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::profile::Profile;
use crate::settings::Format;

pub use folded::folded_lines;
pub use pprof::PprofProfile;

/// Renders a profile in one format.
pub trait Writer {
    fn write(&self, profile: &Profile, out: &mut dyn Write) -> io::Result<()>;
}

/// The file name suffix of each format.
pub fn extension(format: Format) -> &'static str {
    match format {
        Format::Txt => "txt",
        Format::Folded => "folded",
        Format::Svg => "svg",
        Format::Pprof => "pb.gz",
        Format::Json => "json",
        Format::Speedscope => "speedscope.json",
        Format::Profile => lossless::EXTENSION,
    }
}

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
        Format::Profile => Box::new(lossless::Lossless),
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

/// `prefix` with `.extension` appended.
pub fn with_extension(prefix: &Path, extension: &str) -> PathBuf {
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
