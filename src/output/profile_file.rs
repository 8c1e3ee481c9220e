//! `<prefix>.profile.json.gz`: the whole symbolized [`Profile`] (header and counters, functions,
//! frames with lines, modules with build ids and addresses, locations, stacks, the order samples
//! were taken in), gzip-compressed JSON. `stacksample report` renders every other format from
//! it, with filters; the `.folded` file cannot carry time order, modules or addresses.
//! `stacksample record` always asks for it.

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::Path;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};

use super::writer::Writer;
use crate::base::error::Error;
use crate::profile::Profile;

pub const EXTENSION: &str = "profile.json.gz";

/// Names the document, so that another JSON file is refused with a clear message.
const KIND: &str = "stacksample-profile";
/// Raised when a field changes meaning; readers refuse versions they do not know.
const VERSION: u32 = 2;

pub struct ProfileFile;

#[derive(Serialize)]
struct Document<'p> {
    kind: &'static str,
    version: u32,
    profile: &'p Profile,
}

#[derive(Deserialize)]
struct OwnedDocument {
    kind: String,
    version: u32,
    profile: Profile,
}

impl Writer for ProfileFile {
    fn write(&self, profile: &Profile, out: &mut dyn Write) -> io::Result<()> {
        // Fast compression: the profile is written at the program's exit.
        let mut encoder = GzEncoder::new(out, Compression::fast());
        let document = Document {
            kind: KIND,
            version: VERSION,
            profile,
        };
        serde_json::to_writer(&mut encoder, &document).map_err(io::Error::other)?;
        encoder.finish()?;
        Ok(())
    }
}

/// Reads a profile written by [`ProfileFile`].
pub fn read(path: &Path) -> Result<Profile, Error> {
    let file = File::open(path).map_err(|e| Error::io("read profile", path, e))?;
    let decoder = GzDecoder::new(BufReader::new(file));
    let document: OwnedDocument = serde_json::from_reader(decoder).map_err(|e| {
        let problem = format!("not a stacksample profile ({e})");
        Error::io("read profile", path, io::Error::other(problem))
    })?;
    if document.kind != KIND || document.version != VERSION {
        let problem = format!(
            "{} version {} is not a {KIND} version {VERSION}; render it with the stacksample that wrote it",
            document.kind, document.version
        );
        return Err(Error::io("read profile", path, io::Error::other(problem)));
    }
    Ok(document.profile)
}
