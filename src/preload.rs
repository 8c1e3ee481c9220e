//! Constructor and destructor of the preloaded library: start from the environment, finish
//! at exit. Every error ends here as one `stacksample: ...` line; the program runs on as it
//! would without us.

use std::ffi::CStr;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::Mutex;

use crate::error::Error;
use crate::session::Session;
use crate::settings::Settings;

static SESSION: Mutex<Option<Session>> = Mutex::new(None);

#[ctor::ctor]
fn on_load() {
    if !loaded_by_ld_preload() {
        return;
    }
    guarded(|| match start() {
        Ok(session) => {
            if let Ok(mut slot) = SESSION.lock() {
                *slot = Some(session);
            }
        }
        Err(error) => eprintln!("{error}"),
    });
}

#[ctor::dtor]
fn on_exit() {
    guarded(|| {
        let Some(session) = SESSION.lock().ok().and_then(|mut s| s.take()) else {
            return;
        };
        // SAFETY: getpid has no preconditions.
        if session.pid() != unsafe { libc::getpid() } {
            return; // a forked child: its parent owns the session and its threads
        }
        if let Err(error) = session.finish() {
            eprintln!("{error}");
        }
    });
}

fn start() -> Result<Session, Error> {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let start_dir = std::env::current_dir()
        .map_err(|source| Error::io("read the current directory", ".", source))?;
    let settings = Settings::from_env(pid, &start_dir)?;
    Session::start(settings)
}

/// Runs `body`, turning a panic into one stderr line instead of unwinding into C.
fn guarded(body: impl FnOnce()) {
    if panic::catch_unwind(AssertUnwindSafe(body)).is_err() {
        eprintln!("stacksample: internal error (panic); profiling is off");
    }
}

/// True when this code runs in `libstacksample*.so` and `LD_PRELOAD` names that file: the
/// same crate linked as a Rust library must not start profiling on its own.
fn loaded_by_ld_preload() -> bool {
    let Some(object) = own_object_path() else {
        return false;
    };
    let Some(file_name) = Path::new(&object).file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if !file_name.ends_with(".so") {
        return false;
    }
    std::env::var("LD_PRELOAD").is_ok_and(|preload| {
        preload
            .split([':', ' '])
            .any(|entry| Path::new(entry).file_name().and_then(|n| n.to_str()) == Some(file_name))
    })
}

/// Path of the object that holds this function.
fn own_object_path() -> Option<String> {
    // SAFETY: Dl_info is plain data; dladdr only writes it.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: any address is a valid dladdr query; this one is our own code.
    let found = unsafe { libc::dladdr(own_object_path as *const libc::c_void, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr returns a NUL-terminated string owned by the loader.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(name.to_string_lossy().into_owned())
}
