//! The C ABI over [`crate::api`], declared in `include/stacksample.h`: start, stop and
//! write a profile, run a timer with a C callback, take one stack. Every function returns a
//! status code (0 on success); `stacksample_last_error` gives the calling thread's last
//! message. No panic crosses into C: each entry point catches it and reports it as an error.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use crate::api::{self, EntryKind, Profiler, StackEntry, Timer};
use crate::base::error::Error;
use crate::settings::{parse_formats, INTERVAL_RANGE};
use crate::threads;

pub const STACKSAMPLE_OK: c_int = 0;
/// An argument cannot be used (bad thread id, interval, depth, format, null pointer).
pub const STACKSAMPLE_EINVAL: c_int = 1;
/// A system call or a file failed.
pub const STACKSAMPLE_ESYSTEM: c_int = 3;
/// A bug in the library (a caught panic).
pub const STACKSAMPLE_EINTERNAL: c_int = 4;

/// Names kept as C strings before the cache starts afresh.
const MAX_CACHED_NAMES: usize = 100_000;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// `kind` of an entry or symbol: machine code outside the interpreter.
pub const STACKSAMPLE_NATIVE: c_int = 0;
/// `kind`: the CPython interpreter's own C code (`is_python` is 1 for these alone).
pub const STACKSAMPLE_INTERPRETER: c_int = 1;
/// `kind`: a Python function's frame.
pub const STACKSAMPLE_PYTHON: c_int = 2;

/// One stack entry as C sees it; the strings live as long as the stack (or the callback).
/// The fields after `is_python` came later, so the seed's layout is a prefix.
#[repr(C)]
pub struct stacksample_entry {
    pub address: u64,
    pub offset: u64,
    pub name: *const c_char,
    pub module: *const c_char,
    pub is_python: c_int,
    pub kind: c_int,
    /// NULL when unknown.
    pub file: *const c_char,
    /// 0 when unknown.
    pub line: u32,
}

/// One symbol of a profile, as C sees it.
#[repr(C)]
pub struct stacksample_symbol {
    pub address: u64,
    pub count: u64,
    pub self_count: u64,
    pub name: *const c_char,
    pub module: *const c_char,
    pub is_python: c_int,
    pub kind: c_int,
    pub file: *const c_char,
    pub line: u32,
}

/// The C value of a kind.
fn c_kind(kind: EntryKind) -> c_int {
    match kind {
        EntryKind::Native => STACKSAMPLE_NATIVE,
        EntryKind::Interpreter => STACKSAMPLE_INTERPRETER,
        EntryKind::Python => STACKSAMPLE_PYTHON,
    }
}

/// C strings for entry names, reused across stacks.
#[derive(Default)]
struct CNames(HashMap<Arc<str>, CString>);

impl CNames {
    /// `name` as a C string, or NULL for none.
    fn get_or_null(&mut self, name: Option<&str>) -> *const c_char {
        name.map_or(ptr::null(), |name| self.get(name))
    }

    /// `name` as a C string, valid as long as these names are (never cleared here).
    fn get(&mut self, name: &str) -> *const c_char {
        if let Some(known) = self.0.get(name) {
            return known.as_ptr();
        }
        let string = c_string(name);
        let pointer = string.as_ptr();
        self.0.insert(Arc::from(name), string);
        pointer
    }

    /// The C entries of `stack`. A cache that grew large starts afresh first: the entries of
    /// earlier stacks (a timer's earlier callbacks) are no longer in use.
    fn entries(&mut self, stack: &[StackEntry]) -> Vec<stacksample_entry> {
        if self.0.len() > MAX_CACHED_NAMES {
            self.0.clear();
        }
        stack
            .iter()
            .map(|entry| stacksample_entry {
                address: entry.address,
                offset: entry.offset,
                name: self.get(&entry.name),
                module: self.get(&entry.module),
                is_python: c_int::from(entry.is_python()),
                kind: c_kind(entry.kind),
                file: self.get_or_null(entry.file.as_deref()),
                line: entry.line.unwrap_or(0),
            })
            .collect()
    }
}

/// A string without interior NULs (names never have them; cut there if one did).
fn c_string(text: &str) -> CString {
    let text = text.split('\0').next().unwrap_or_default();
    CString::new(text).unwrap_or_default()
}

/// Runs an entry point: its error becomes the status code and the thread's last message.
fn status(body: impl FnOnce() -> Result<(), Error>) -> c_int {
    let (code, message) = match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return STACKSAMPLE_OK,
        Ok(Err(error)) => (code_of(&error), error.to_string()),
        Err(_) => (
            STACKSAMPLE_EINTERNAL,
            "stacksample: internal error (panic)".to_owned(),
        ),
    };
    LAST_ERROR.with(|last| *last.borrow_mut() = c_string(&message));
    code
}

fn code_of(error: &Error) -> c_int {
    match error {
        Error::Argument { .. } | Error::Setting { .. } | Error::UnknownSetting { .. } => {
            STACKSAMPLE_EINVAL
        }
        Error::Io { .. } | Error::System { .. } => STACKSAMPLE_ESYSTEM,
    }
}

fn null_argument(name: &'static str) -> Error {
    Error::argument(name, "NULL", "pass a valid pointer")
}

fn interval(seconds: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        let (shortest, longest) = (INTERVAL_RANGE.start(), INTERVAL_RANGE.end());
        let hint = format!(
            "use seconds from {} to {}",
            shortest.as_secs_f64(),
            longest.as_secs_f64()
        );
        Error::argument("interval", seconds, hint)
    })
}

/// The kernel id of `thread` (a kernel id or a `pthread_t`); 0 means the calling thread.
fn kernel_tid(thread: u64) -> Result<i32, Error> {
    match thread {
        0 => Ok(threads::current_tid()),
        id => api::kernel_tid(id),
    }
}

/// Writes `value` to `out` (checked non-null) as a leaked box the caller frees.
///
/// # Safety
/// `out` is null or valid for a pointer write.
unsafe fn hand_out<T>(out: *mut *mut T, value: T) -> Result<(), Error> {
    if out.is_null() {
        return Err(null_argument("out"));
    }
    // SAFETY: non-null and valid for writes, per the contract.
    unsafe { *out = Box::into_raw(Box::new(value)) };
    Ok(())
}

/// Version of the entry and symbol layouts; 2 added `kind`, `file` and `line`.
pub const STACKSAMPLE_ABI_VERSION: c_int = 2;

/// The layout version this library was built with ([`STACKSAMPLE_ABI_VERSION`]): a caller
/// built against another header must not read its lists.
#[no_mangle]
pub extern "C" fn stacksample_abi_version() -> c_int {
    STACKSAMPLE_ABI_VERSION
}

/// The message of the calling thread's last failed call ("" if none); valid until its next
/// failed call.
#[no_mangle]
pub extern "C" fn stacksample_last_error() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}

/// The kernel thread id of `thread`, a kernel id or a `pthread_t` of this process.
///
/// # Safety
/// `tid` is null or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn stacksample_kernel_tid(thread: u64, tid: *mut i32) -> c_int {
    status(|| {
        let found = kernel_tid(thread)?;
        if tid.is_null() {
            return Err(null_argument("tid"));
        }
        // SAFETY: non-null and valid for writes, per the contract.
        unsafe { *tid = found };
        Ok(())
    })
}

/// Called with each stack, innermost entry first, on the timer's own thread.
pub type stacksample_callback = Option<
    unsafe extern "C" fn(entries: *const stacksample_entry, count: usize, data: *mut c_void),
>;

/// A running timer.
pub struct stacksample_timer(Timer);

/// The caller's data pointer, handed back to its callback on the timer's thread.
struct CallbackData(*mut c_void);
// SAFETY: the header documents that the callback runs on another thread with this pointer;
// making that safe is the caller's part of the contract.
unsafe impl Send for CallbackData {}

/// Starts a timer on `thread` (0: the calling thread) that calls `callback` with each stack.
///
/// # Safety
/// `callback` is callable from any thread with `data` until `stacksample_timer_join`
/// returns; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn stacksample_timer_start(
    thread: u64,
    interval_seconds: f64,
    max_depth: usize,
    show_python: c_int,
    callback: stacksample_callback,
    data: *mut c_void,
    out: *mut *mut stacksample_timer,
) -> c_int {
    status(|| {
        let callback = callback.ok_or_else(|| null_argument("callback"))?;
        let data = CallbackData(data);
        let mut names = CNames::default();
        let mut timer = Timer::new(kernel_tid(thread)?, move |stack| {
            let data = &data;
            let entries = names.entries(stack);
            // SAFETY: the caller promised `callback` accepts these arguments from any
            // thread; `entries` and its strings outlive the call.
            unsafe { callback(entries.as_ptr(), entries.len(), data.0) };
        });
        timer
            .interval(interval(interval_seconds)?)
            .max_depth(max_depth)
            .show_python(show_python != 0);
        timer.start()?;
        // SAFETY: `out` is valid for writes, per the contract.
        unsafe { hand_out(out, stacksample_timer(timer)) }
    })
}

/// Stops the timer, waits for its last callback, and frees it.
///
/// # Safety
/// `timer` is null or came from `stacksample_timer_start` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn stacksample_timer_join(timer: *mut stacksample_timer) -> c_int {
    status(|| {
        if timer.is_null() {
            return Err(null_argument("timer"));
        }
        // SAFETY: made by Box::into_raw in `hand_out`; ownership returns here, once.
        let mut timer = unsafe { Box::from_raw(timer) };
        timer.0.join()
    })
}

/// A profiler, running or stopped.
pub struct stacksample_profiler(Profiler);

/// Starts profiling `thread` (0: the calling thread).
///
/// # Safety
/// `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn stacksample_profiler_start(
    thread: u64,
    interval_seconds: f64,
    max_depth: usize,
    out: *mut *mut stacksample_profiler,
) -> c_int {
    status(|| {
        let mut profiler = Profiler::new(kernel_tid(thread)?);
        profiler
            .interval(interval(interval_seconds)?)
            .max_depth(max_depth);
        profiler.start()?;
        // SAFETY: `out` is valid for writes, per the contract.
        unsafe { hand_out(out, stacksample_profiler(profiler)) }
    })
}

/// Borrows a profiler handed out by `stacksample_profiler_start`.
///
/// # Safety
/// `profiler` is null or a live profiler not used by another thread meanwhile.
unsafe fn profiler_mut<'p>(profiler: *mut stacksample_profiler) -> Result<&'p mut Profiler, Error> {
    // SAFETY: per the contract.
    unsafe { profiler.as_mut() }
        .map(|p| &mut p.0)
        .ok_or_else(|| null_argument("profiler"))
}

/// Stops sampling; results stay until `stacksample_profiler_free`.
///
/// # Safety
/// `profiler` is null or a live profiler.
#[no_mangle]
pub unsafe extern "C" fn stacksample_profiler_stop(profiler: *mut stacksample_profiler) -> c_int {
    status(|| {
        // SAFETY: per the contract.
        unsafe { profiler_mut(profiler) }?.join();
        Ok(())
    })
}

/// Starts sampling again after `stacksample_profiler_stop`; counts add up.
///
/// # Safety
/// `profiler` is null or a live profiler.
#[no_mangle]
pub unsafe extern "C" fn stacksample_profiler_resume(profiler: *mut stacksample_profiler) -> c_int {
    status(|| {
        // SAFETY: per the contract.
        unsafe { profiler_mut(profiler) }?.start()
    })
}

/// Writes `<prefix>.<extension>` for each format in `formats` ("txt,folded,svg,pprof,json,
/// speedscope", as `STACKSAMPLE_FORMAT` takes them).
///
/// # Safety
/// `profiler` is null or a live profiler; `prefix` and `formats` are null or
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn stacksample_profiler_write(
    profiler: *mut stacksample_profiler,
    prefix: *const c_char,
    formats: *const c_char,
) -> c_int {
    status(|| {
        // SAFETY: per the contract.
        let profiler = unsafe { profiler_mut(profiler) }?;
        // SAFETY: per the contract.
        let prefix = unsafe { text(prefix, "prefix") }?;
        // SAFETY: per the contract.
        let formats = parse_formats(unsafe { text(formats, "formats") }?)?;
        profiler.write(Path::new(prefix), &formats)
    })
}

/// Reads a C string argument.
///
/// # Safety
/// `value` is null or a NUL-terminated string that outlives `'a`.
unsafe fn text<'a>(value: *const c_char, name: &'static str) -> Result<&'a str, Error> {
    if value.is_null() {
        return Err(null_argument(name));
    }
    // SAFETY: per the contract.
    unsafe { CStr::from_ptr(value) }
        .to_str()
        .map_err(|_| Error::argument(name, "not UTF-8", "pass a UTF-8 string"))
}

/// Stops (if running) and frees a profiler.
///
/// # Safety
/// `profiler` is null or came from `stacksample_profiler_start` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn stacksample_profiler_free(profiler: *mut stacksample_profiler) {
    if profiler.is_null() {
        return;
    }
    // SAFETY: made by Box::into_raw in `hand_out`; ownership returns here, once.
    let profiler = unsafe { Box::from_raw(profiler) };
    // Dropping joins the profiler's threads; a panic there must not unwind into C.
    let _ = panic::catch_unwind(AssertUnwindSafe(|| drop(profiler)));
}

/// Items handed to C together with the strings they point to, freed together.
pub struct CList<T> {
    items: Vec<T>,
    _strings: CNames,
}

impl<T> CList<T> {
    /// Number of items (0 for NULL).
    ///
    /// # Safety
    /// `list` is null or a live list.
    unsafe fn len(list: *const CList<T>) -> usize {
        // SAFETY: per the contract.
        unsafe { list.as_ref() }.map_or(0, |list| list.items.len())
    }

    /// The first item (NULL for NULL); valid until the list is freed.
    ///
    /// # Safety
    /// `list` is null or a live list.
    unsafe fn first(list: *const CList<T>) -> *const T {
        // SAFETY: per the contract.
        unsafe { list.as_ref() }.map_or(ptr::null(), |list| list.items.as_ptr())
    }

    /// Frees a list.
    ///
    /// # Safety
    /// `list` is null or came from `hand_out`, and is not used afterwards.
    unsafe fn free(list: *mut CList<T>) {
        if !list.is_null() {
            // SAFETY: made by Box::into_raw in `hand_out`; ownership returns here, once.
            drop(unsafe { Box::from_raw(list) });
        }
    }
}

/// A profile's symbols, largest count first.
pub type stacksample_symbols = CList<stacksample_symbol>;

/// The profile so far: each symbol's run-time start address, counts, name and module,
/// largest count first.
///
/// # Safety
/// `profiler` is null or a live profiler; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn stacksample_profiler_symbols(
    profiler: *mut stacksample_profiler,
    out: *mut *mut stacksample_symbols,
) -> c_int {
    status(|| {
        // SAFETY: per the contract.
        let sorted = unsafe { profiler_mut(profiler) }?.sorted()?;
        let mut strings = CNames::default();
        let items = sorted
            .into_iter()
            .map(|(address, symbol)| stacksample_symbol {
                address,
                count: symbol.count,
                self_count: symbol.self_count,
                name: strings.get(&symbol.name),
                module: strings.get(&symbol.module),
                is_python: c_int::from(symbol.is_python()),
                kind: c_kind(symbol.kind),
                file: strings.get_or_null(symbol.file.as_deref()),
                line: symbol.line.unwrap_or(0),
            })
            .collect();
        let list = CList {
            items,
            _strings: strings,
        };
        // SAFETY: `out` is valid for writes, per the contract.
        unsafe { hand_out(out, list) }
    })
}

/// Number of symbols in `symbols` (0 for NULL).
///
/// # Safety
/// `symbols` is null or a live list.
#[no_mangle]
pub unsafe extern "C" fn stacksample_symbols_count(symbols: *const stacksample_symbols) -> usize {
    // SAFETY: per the contract.
    unsafe { CList::len(symbols) }
}

/// The first of the list's symbols (NULL for NULL); valid until the list is freed.
///
/// # Safety
/// `symbols` is null or a live list.
#[no_mangle]
pub unsafe extern "C" fn stacksample_symbols_get(
    symbols: *const stacksample_symbols,
) -> *const stacksample_symbol {
    // SAFETY: per the contract.
    unsafe { CList::first(symbols) }
}

/// Frees a symbol list.
///
/// # Safety
/// `symbols` is null or came from `stacksample_profiler_symbols`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn stacksample_symbols_free(symbols: *mut stacksample_symbols) {
    // SAFETY: per the contract.
    unsafe { CList::free(symbols) }
}

/// One stack's entries, innermost first.
pub type stacksample_stack = CList<stacksample_entry>;

/// Takes one stack of `thread` (0: the calling thread, without this call's own frames);
/// with `show_python` 0, runs of interpreter frames are folded as a timer folds them.
///
/// # Safety
/// `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn stacksample_thread_stack(
    thread: u64,
    max_depth: usize,
    show_python: c_int,
    out: *mut *mut stacksample_stack,
) -> c_int {
    status(|| {
        let stack = match thread {
            0 => api::current_stack(max_depth)?,
            id => api::thread_stack(api::kernel_tid(id)?, max_depth)?,
        };
        let stack = if show_python == 0 {
            api::fold_python(stack)
        } else {
            stack
        };
        let mut strings = CNames::default();
        let items = strings.entries(&stack);
        let stack = CList {
            items,
            _strings: strings,
        };
        // SAFETY: `out` is valid for writes, per the contract.
        unsafe { hand_out(out, stack) }
    })
}

/// Number of entries of `stack` (0 for NULL).
///
/// # Safety
/// `stack` is null or a live stack.
#[no_mangle]
pub unsafe extern "C" fn stacksample_stack_len(stack: *const stacksample_stack) -> usize {
    // SAFETY: per the contract.
    unsafe { CList::len(stack) }
}

/// The entries of `stack`, innermost first (NULL for NULL); valid until it is freed.
///
/// # Safety
/// `stack` is null or a live stack.
#[no_mangle]
pub unsafe extern "C" fn stacksample_stack_entries(
    stack: *const stacksample_stack,
) -> *const stacksample_entry {
    // SAFETY: per the contract.
    unsafe { CList::first(stack) }
}

/// Frees a stack.
///
/// # Safety
/// `stack` is null or came from `stacksample_thread_stack`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn stacksample_stack_free(stack: *mut stacksample_stack) {
    // SAFETY: per the contract.
    unsafe { CList::free(stack) }
}
