//! Errors outside signal context: what went wrong, where, and how to fix it.
//!
//! `Display` renders the single `stacksample: ...` line that the library prints on stderr;
//! errors are printed in one place (`preload::lifecycle`), never deep inside the engine.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Everything that can stop the profiler from starting or from writing a profile.
#[derive(Debug)]
pub enum Error {
    /// A `STACKSAMPLE_*` variable holds a value we cannot use.
    Setting {
        name: &'static str,
        value: String,
        problem: String,
        hint: String,
    },
    /// A `STACKSAMPLE_*` variable that no version of the library reads.
    UnknownSetting { name: String, known: String },
    /// A file or directory could not be read or written.
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A system call needed to start sampling failed.
    System {
        action: &'static str,
        source: io::Error,
    },
    /// An argument of an API call that cannot be used.
    Argument {
        name: &'static str,
        value: String,
        hint: String,
    },
}

impl Error {
    pub(crate) fn setting(
        name: &'static str,
        value: &str,
        problem: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Error::Setting {
            name,
            value: value.to_owned(),
            problem: problem.into(),
            hint: hint.into(),
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn argument(
        name: &'static str,
        value: impl fmt::Display,
        hint: impl Into<String>,
    ) -> Self {
        Error::Argument {
            name,
            value: value.to_string(),
            hint: hint.into(),
        }
    }

    /// Wraps the current `errno` of a failed system call.
    pub(crate) fn last_os(action: &'static str) -> Self {
        Error::System {
            action,
            source: io::Error::last_os_error(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Setting {
                name,
                value,
                problem,
                hint,
            } => write!(f, "stacksample: {name}={value:?}: {problem}; {hint}"),
            Error::UnknownSetting { name, known } => write!(
                f,
                "stacksample: unknown setting {name}; known settings are {known} (check the spelling)"
            ),
            Error::Io {
                action,
                path,
                source,
            } => write!(f, "stacksample: cannot {action} {}: {source}", path.display()),
            Error::System { action, source } => {
                write!(f, "stacksample: cannot {action}: {source}")
            }
            Error::Argument { name, value, hint } => {
                write!(f, "stacksample: {name}={value}: {hint}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::System { source, .. } => Some(source),
            _ => None,
        }
    }
}
