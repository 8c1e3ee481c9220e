//! Finds `libstacksample.so` for `record`: `STACKSAMPLE_LIB`, then beside the executable
//! (cargo's `target/release`, or a copy), then `../lib` and `../lib/stacksample` (what
//! `scripts/install.sh --prefix DIR` lays out), then cargo's `deps/` beside the executable.

use std::path::{Path, PathBuf};

use crate::failure::Failure;

const FILE_NAME: &str = "libstacksample.so";
/// Overrides the search with the path of the library.
pub const OVERRIDE: &str = "STACKSAMPLE_LIB";

/// The library to preload, as an absolute path (the command may change directory).
pub fn find() -> Result<PathBuf, Failure> {
    if let Some(path) = std::env::var_os(OVERRIDE) {
        let path = PathBuf::from(path);
        return match std::fs::canonicalize(&path) {
            Ok(path) if path.is_file() => Ok(path),
            _ => Err(
                Failure::new(format!("{OVERRIDE}={} is not a file", path.display()))
                    .hint(format!("point {OVERRIDE} at {FILE_NAME}, or unset it")),
            ),
        };
    }
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| Failure::new(format!("cannot locate the stacksample executable: {e}")))?;
    let candidates = candidates(exe.parent().unwrap_or(Path::new("/")));
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or_else(|| not_found(&candidates))
}

fn candidates(exe_dir: &Path) -> Vec<PathBuf> {
    let prefix = exe_dir.parent().unwrap_or(exe_dir);
    vec![
        exe_dir.join(FILE_NAME),
        prefix.join("lib").join(FILE_NAME),
        prefix.join("lib/stacksample").join(FILE_NAME),
        exe_dir.join("deps").join(FILE_NAME),
    ]
}

fn not_found(looked: &[PathBuf]) -> Failure {
    let places: Vec<String> = std::iter::once(format!("${OVERRIDE} (not set)"))
        .chain(looked.iter().map(|p| p.display().to_string()))
        .collect();
    Failure::new(format!(
        "cannot find {FILE_NAME}; looked in: {}",
        places.join(", ")
    ))
    .hint(format!(
        "install both with scripts/install.sh --prefix DIR, build it with `cargo build --release`, or set {OVERRIDE}=/path/to/{FILE_NAME}"
    ))
}
