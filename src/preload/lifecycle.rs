//! Constructor and destructor of the preloaded library: start from the environment, finish
//! at exit (and before an exec, see `exec`). Every error ends here as one
//! `stacksample: ...` line; the program runs on as it would without us.

use std::ffi::CStr;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use crate::base::error::Error;
use crate::base::thread::pid;
use crate::engine::{self, handler};
use crate::modules;
use crate::run::Session;
use crate::settings::Settings;
use crate::threads;

static SESSION: Mutex<Option<Session>> = Mutex::new(None);
/// The settings this process started with; forked children derive theirs from them.
static SETTINGS: OnceLock<Settings> = OnceLock::new();

#[ctor::ctor]
fn on_load() {
    if secure_execution() || !loaded_by_ld_preload() {
        return;
    }
    guarded(|| {
        if let Err(error) = start() {
            eprintln!("{error}");
        }
    });
}

#[ctor::dtor]
fn on_exit() {
    guarded(|| {
        finish_own_session();
    });
}

/// Called before the process image is replaced or the process ends without running
/// destructors (`_exit`): pauses the session and writes its profile, holds every request of
/// the process's sampler, and drops any request of ours still pending. True if there was
/// anything to resume should the exec fail.
pub(super) fn stop_before_image_ends() -> bool {
    let mut paused = false;
    guarded(|| {
        paused = with_own_session(|session| {
            if let Err(error) = session.pause() {
                eprintln!("{error}");
            }
        });
        // The API's timers and profilers must not signal the next image either.
        let held = engine::hold_requests(true);
        handler::discard_pending_requests();
        paused |= held;
    });
    paused
}

/// Called when an exec returned (failed) after `stop_before_image_ends`: sampling goes on,
/// adding to the same profile.
pub(super) fn resume_after_failed_exec() {
    guarded(|| {
        engine::hold_requests(false);
        with_own_session(|session| {
            if let Err(error) = session.resume() {
                eprintln!("{error}");
            }
        });
    });
}

/// Finishes the session this process started, if any.
fn finish_own_session() {
    let Some(session) = take_own_session() else {
        return;
    };
    if let Err(error) = session.finish() {
        eprintln!("{error}");
    }
}

/// Runs `action` on the session this process started; false if there is none. A forked
/// child (or a vfork child, which shares our memory) never touches its parent's session.
fn with_own_session(action: impl FnOnce(&mut Session)) -> bool {
    let Ok(mut slot) = SESSION.try_lock() else {
        return false;
    };
    match slot.as_mut().filter(|session| session.pid() == pid()) {
        Some(session) => {
            action(session);
            true
        }
        None => false,
    }
}

/// Takes the session this process started out of its slot.
fn take_own_session() -> Option<Session> {
    let mut slot = SESSION.try_lock().ok()?;
    if slot.as_ref()?.pid() != pid() {
        return None;
    }
    slot.take()
}

fn start() -> Result<(), Error> {
    let start_dir = std::env::current_dir()
        .map_err(|source| Error::io("read the current directory", ".", source))?;
    let settings = Settings::from_env(pid(), &start_dir)?;
    let _ = SETTINGS.set(settings.clone());
    run(settings)?;
    threads::set_fork_child_hook(after_fork_in_child);
    threads::install_fork_handlers();
    Ok(())
}

fn run(settings: Settings) -> Result<(), Error> {
    let session = Session::start(settings)?;
    if let Ok(mut slot) = SESSION.try_lock() {
        // A session left from before a fork belongs to the parent, whose threads do not
        // exist here: forgotten, never joined or dropped.
        if let Some(parent) = slot.replace(session) {
            std::mem::forget(parent);
        }
    }
    Ok(())
}

/// In a forked child: with `STACKSAMPLE_FOLLOW` (the default) the child profiles itself into
/// its own files; otherwise it stays inert and never touches the parent's session.
extern "C" fn after_fork_in_child() {
    guarded(|| {
        let Some(settings) = SETTINGS.get().filter(|s| s.follow) else {
            return;
        };
        engine::reset_after_fork();
        let pid = pid();
        if modules::loader_lock_may_be_held() {
            eprintln!(
                "stacksample: process {pid} was forked while another thread was listing the loaded libraries, whose lock it can never take; not profiling it"
            );
            return;
        }
        match settings.for_child(pid) {
            Some(child) => {
                if let Err(error) = run(child) {
                    eprintln!("{error}");
                }
            }
            None => eprintln!(
                "stacksample: forked process {pid} has none of the chosen threads; not profiling it"
            ),
        }
    });
}

/// Runs `body`, turning a panic into one stderr line instead of unwinding into C.
fn guarded(body: impl FnOnce()) {
    if panic::catch_unwind(AssertUnwindSafe(body)).is_err() {
        eprintln!("stacksample: internal error (panic); profiling is off");
    }
}

/// True in a secure-execution process (set-user-ID, set-group-ID, file capabilities): its
/// environment was chosen by a less privileged user, so the library reads no setting from it,
/// starts no thread and writes no file.
fn secure_execution() -> bool {
    // SAFETY: getauxval has no preconditions; it returns 0 for an absent entry.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
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
