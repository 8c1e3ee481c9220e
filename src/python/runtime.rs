//! The CPython interpreter of this process, if there is one: found in the loaded objects by
//! its exported symbols, its version read from `Py_Version`, its layout chosen by version
//! (and, on 3.13+, checked against the offsets the interpreter publishes); then its thread
//! states, matched to threads by native id.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use blazesym::inspect::source::{Elf, Source};
use blazesym::inspect::Inspector;

use super::layout::{self, CurrentFrame, Layout};
use super::target::PythonTarget;
use crate::modules::{read_words, ModuleInfo, ModuleMap};

/// Steps through the lists of interpreters and thread states at most, so a corrupt or
/// changing list cannot loop.
const MAX_THREAD_STATES: usize = 100_000;

/// A CPython interpreter found in the process.
#[derive(Debug, Clone)]
pub struct Interpreter {
    pub layout: &'static Layout,
    runtime: u64,
    /// `_PyEval_EvalFrameDefault`: each activation in a native stack ran Python frames.
    pub eval_loop: Range<u64>,
    /// `PyCode_Type` and `PyUnicode_Type`, the types of code objects and of their names.
    pub code_type: u64,
    pub unicode_type: u64,
}

/// Why a process that has an interpreter gets no Python frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl Interpreter {
    /// Looks for an interpreter among the objects of `map` whose file name says Python.
    pub fn find(map: &ModuleMap) -> Result<Option<Interpreter>, Unsupported> {
        for module in map.modules().filter(|m| is_python_object(&m.name)) {
            if let Some(found) = Interpreter::in_module(module).transpose() {
                return found.map(Some);
            }
        }
        Ok(None)
    }

    fn in_module(module: &ModuleInfo) -> Result<Option<Interpreter>, Unsupported> {
        let Some(path) = module.path.as_deref() else {
            return Ok(None);
        };
        let Some(symbols) = Symbols::read(path) else {
            return Ok(None);
        };
        let at = |svma: u64| svma.wrapping_add(module.bias);
        let mut version = [0u64; 1];
        if !read_words(&[at(symbols.version)], &mut version) {
            return Ok(None);
        }
        let hex = version[0] as u32;
        let (major, minor, micro) = ((hex >> 24) as u8, (hex >> 16) as u8, (hex >> 8) as u8);
        let version = format!("{major}.{minor}.{micro}");
        let Some(layout) = layout::for_version(major, minor) else {
            return Err(Unsupported(format!(
                "Python {version} in {} has a layout this build does not know (it knows 3.11 \
                 to 3.13); its stacks show the interpreter's C functions only",
                module.name
            )));
        };
        let runtime = at(symbols.runtime);
        check_published_offsets(layout, runtime).map_err(|field| {
            Unsupported(format!(
                "Python {version} in {} places {field} elsewhere than this build expects; its \
                 stacks show the interpreter's C functions only",
                module.name
            ))
        })?;
        Ok(Some(Interpreter {
            layout,
            runtime,
            eval_loop: at(symbols.eval_loop.start)..at(symbols.eval_loop.end),
            code_type: at(symbols.code_type),
            unicode_type: at(symbols.unicode_type),
        }))
    }

    /// Every thread state of every interpreter, by native thread id, with its interpreter.
    /// Where two states name one thread, the older wins: 3.11 gives a state made for a new
    /// thread its creator's id until the thread starts, and lists new states first.
    pub fn thread_states(&self) -> HashMap<i32, (u64, u64)> {
        let layout = self.layout;
        let mut states = HashMap::new();
        let mut steps = 0;
        let mut interpreter = word(self.runtime, layout.runtime_interpreters_head);
        while let Some(current) = interpreter.filter(|&i| i != 0) {
            let mut thread = word(current, layout.interpreter_threads_head);
            while let Some(tstate) = thread.filter(|&t| t != 0) {
                // The lists are read while threads change them: a cycle must end too.
                steps += 1;
                if steps > MAX_THREAD_STATES {
                    return states;
                }
                if let Some(tid) = word(tstate, layout.thread_native_id) {
                    states.insert(tid as i32, (tstate, current));
                }
                thread = word(tstate, layout.thread_next);
            }
            steps += 1;
            if steps > MAX_THREAD_STATES {
                break;
            }
            interpreter = word(current, layout.interpreter_next);
        }
        states
    }

    /// The `pthread` key of `autoTSSkey`, once the runtime has set it up (it may not have
    /// when the interpreter is first seen).
    pub fn tss_key(&self) -> Option<libc::pthread_key_t> {
        const KEYS_MAX: u64 = 1024;
        let word = word(self.runtime, self.layout.runtime_tss_key)?;
        let (initialized, key) = (word as u32, word >> 32);
        (initialized == 1 && key < KEYS_MAX).then_some(key as libc::pthread_key_t)
    }

    /// What the handler needs to read thread `tid`'s frames from `tstate`.
    pub fn target(
        &self,
        tid: i32,
        (tstate, interpreter): (u64, u64),
        tss_key: Option<libc::pthread_key_t>,
    ) -> PythonTarget {
        PythonTarget {
            tstate,
            tid,
            interpreter,
            tss_key,
            layout: self.layout,
        }
    }
}

/// `python3.11`, `python3`, `libpython3.12.so.1.0`.
fn is_python_object(name: &str) -> bool {
    name.starts_with("python") || name.starts_with("libpython")
}

fn word(base: u64, offset: u32) -> Option<u64> {
    let mut out = [0u64; 1];
    read_words(&[base.checked_add(u64::from(offset))?], &mut out).then_some(out[0])
}

/// The interpreter's exported symbols, at their addresses in the file.
struct Symbols {
    runtime: u64,
    version: u64,
    eval_loop: Range<u64>,
    code_type: u64,
    unicode_type: u64,
}

impl Symbols {
    fn read(path: &Path) -> Option<Symbols> {
        let names = [
            "_PyRuntime",
            "Py_Version",
            "_PyEval_EvalFrameDefault",
            "PyCode_Type",
            "PyUnicode_Type",
        ];
        let source = Source::Elf(Elf {
            debug_syms: false,
            ..Elf::new(path)
        });
        let inspector = Inspector::new();
        let found = inspector.lookup(&source, &names).ok()?;
        let first = |index: usize| found.get(index)?.first().map(|s| (s.addr, s.size));
        let (eval, eval_size) = first(2)?;
        Some(Symbols {
            runtime: first(0)?.0,
            version: first(1)?.0,
            eval_loop: eval..eval + eval_size? as u64,
            code_type: first(3)?.0,
            unicode_type: first(4)?.0,
        })
    }
}

/// 3.13+ starts `_PyRuntime` with `_Py_DebugOffsets`: the offsets the interpreter was built
/// with, for tools like this one. Where it is present, each offset ours uses must match; the
/// name of the first that does not is the error.
fn check_published_offsets(layout: &Layout, runtime: u64) -> Result<(), &'static str> {
    const COOKIE: u64 = u64::from_le_bytes(*b"xdebugpy");
    if word(runtime, 0) != Some(COOKIE) {
        return if layout.minor >= 13 {
            Err("its debug offsets")
        } else {
            Ok(())
        };
    }
    let CurrentFrame::Direct { current_frame } = layout.current_frame else {
        return Err("the current frame");
    };
    // Positions inside `_Py_DebugOffsets` of 3.13.
    let expected = [
        (40, layout.runtime_interpreters_head, "the interpreter list"),
        (64, layout.interpreter_next, "the next interpreter"),
        (72, layout.interpreter_threads_head, "the thread list"),
        (168, layout.thread_next, "the next thread"),
        (184, current_frame, "the current frame"),
        (200, layout.thread_native_id, "the native thread id"),
        (208, layout.thread_datastack_chunk, "the frame stack"),
        (232, layout.frame_previous, "the previous frame"),
        (240, layout.frame_code, "a frame's code object"),
        (248, layout.frame_instr, "a frame's instruction"),
        (264, layout.frame_owner, "a frame's owner"),
        (280, layout.code_filename, "the file name"),
        (288, layout.code_name, "the name"),
        (296, layout.code_qualname, "the qualified name"),
        (304, layout.code_linetable, "the line table"),
        (312, layout.code_firstlineno, "the first line"),
        (344, layout.code_instructions, "the instructions"),
        (560, layout.ascii_size, "a string's characters"),
    ];
    for (position, ours, field) in expected {
        if word(runtime, position) != Some(u64::from(ours)) {
            return Err(field);
        }
    }
    Ok(())
}
