//! Which frames belong to the CPython interpreter, for `is_python` and the folding of
//! `show_python = false`.
//!
//! A frame is an interpreter frame when its code lies in the object that defines the CPython
//! C API: the one where `Py_IsInitialized`, looked up in the process's global scope, resolves
//! (`libpython3.X.so`, or the `python` executable itself when it is built without a shared
//! library). No list of interpreter function names is kept, so nothing goes stale when
//! CPython renames its internals. An interpreter loaded with `RTLD_LOCAL` by an embedding
//! program is not seen; its frames are then ordinary frames.

use std::sync::OnceLock;

use crate::modules::ModuleInfo;

/// An exported function every CPython since 2.x defines.
const PYTHON_API_SYMBOL: &std::ffi::CStr = c"Py_IsInitialized";

/// Address of the CPython marker function, looked up once.
fn python_api_address() -> Option<u64> {
    static ADDRESS: OnceLock<Option<u64>> = OnceLock::new();
    *ADDRESS.get_or_init(|| {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads loader state.
        let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, PYTHON_API_SYMBOL.as_ptr()) };
        (!address.is_null()).then_some(address as u64)
    })
}

/// Whether `module` is the CPython interpreter of this process.
pub fn is_interpreter(module: &ModuleInfo) -> bool {
    module
        .code
        .iter()
        .any(|segment| is_interpreter_code(&segment.avma))
}

/// Whether the code at run-time addresses `code` is (part of) the CPython interpreter.
pub fn is_interpreter_code(code: &std::ops::Range<u64>) -> bool {
    python_api_address().is_some_and(|address| code.contains(&address))
}
