//! The one trait every output format implements.

use std::io::{self, Write};

use crate::profile::Profile;

/// Renders a profile in one format.
pub trait Writer {
    fn write(&self, profile: &Profile, out: &mut dyn Write) -> io::Result<()>;
}
