//! What went wrong, and what to do about it: the one error type of the command line.

use std::fmt;
use std::process::ExitCode;

#[derive(Debug)]
pub struct Failure {
    /// What went wrong, with the file, process or option concerned.
    what: String,
    /// What the user can do.
    hint: Option<String>,
    /// Exit status: 1 in general, 126/127 for a command that cannot run (the shell's codes).
    code: u8,
}

impl Failure {
    pub fn new(what: impl Into<String>) -> Failure {
        Failure {
            what: what.into(),
            hint: None,
            code: 1,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    pub fn code(mut self, code: u8) -> Failure {
        self.code = code;
        self
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }
}

/// Library errors already say what and how to fix; their `stacksample: ` prefix is ours too.
impl From<stacksample::Error> for Failure {
    fn from(error: stacksample::Error) -> Failure {
        let text = error.to_string();
        Failure::new(text.trim_start_matches("stacksample: "))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stacksample: {}", self.what)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}
