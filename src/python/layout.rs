//! Where CPython keeps what the profiler reads, per minor version (x86_64). The numbers were
//! printed by `offsetof` against each version's own headers (internal ones included) of
//! 3.11.2 (Debian), 3.11.7, 3.12.1 and 3.13.0; a patch release does not move them. 3.13
//! publishes most of them itself (`_Py_DebugOffsets` at the start of `_PyRuntime`), and the
//! runtime check compares ours with it before use.

/// How a thread state leads to its innermost frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurrentFrame {
    /// 3.11, 3.12: `tstate->cframe->current_frame`.
    ThroughCFrame { cframe: u32, current_frame: u32 },
    /// 3.13: `tstate->current_frame`.
    Direct { current_frame: u32 },
}

/// How the frame chain marks where an evaluation-loop activation begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationMark {
    /// 3.11: the `is_entry` byte of the activation's first frame.
    IsEntry { offset: u32 },
    /// 3.12+: a shim frame, owned by the C stack, below the activation's first frame.
    ShimOwner { value: u8 },
}

/// Field offsets of one CPython minor version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub major: u8,
    pub minor: u8,
    /// `_PyRuntimeState.interpreters.head`, and its `autoTSSkey` (a `Py_tss_t`: an int
    /// saying it is set up, then the `pthread_key_t`).
    pub runtime_interpreters_head: u32,
    pub runtime_tss_key: u32,
    /// `PyInterpreterState.next`, `.threads.head`.
    pub interpreter_next: u32,
    pub interpreter_threads_head: u32,
    /// `PyThreadState.next`, `.interp`, `.native_thread_id`, `.datastack_chunk`,
    /// `.datastack_top`, and its size.
    pub thread_next: u32,
    pub thread_interpreter: u32,
    pub thread_native_id: u32,
    pub thread_datastack_chunk: u32,
    pub thread_datastack_top: u32,
    pub thread_size: u32,
    pub current_frame: CurrentFrame,
    /// `_PyStackChunk.data`: where a chunk's frames begin.
    pub chunk_data: u32,
    /// `_PyInterpreterFrame`: code object (`f_code`, `f_executable`), `previous`, the
    /// instruction (`prev_instr`, `instr_ptr`), `owner`; the bytes read per frame reach past
    /// all of them (up to `localsplus`).
    pub frame_code: u32,
    pub frame_previous: u32,
    pub frame_instr: u32,
    pub frame_owner: u32,
    pub frame_bytes: u32,
    pub activation: ActivationMark,
    /// `PyCodeObject`: `co_filename`, `co_name`, `co_qualname`, `co_linetable`,
    /// `co_firstlineno`, `_co_firsttraceable` (the index of the first instruction a frame
    /// has begun once it reached it), `co_code_adaptive` (the first instruction).
    pub code_filename: u32,
    pub code_name: u32,
    pub code_qualname: u32,
    pub code_linetable: u32,
    pub code_firstlineno: u32,
    pub code_first_traceable: u32,
    pub code_instructions: u32,
    /// `sizeof(PyASCIIObject)`, `sizeof(PyCompactUnicodeObject)`: where a compact string's
    /// characters begin, ASCII or not.
    pub ascii_size: u32,
    pub compact_size: u32,
}

/// Common to every version here: `ob_type`, `ob_size`, `PyASCIIObject.length`, `.state`,
/// `PyBytesObject.ob_sval`.
pub const OB_TYPE: u32 = 8;
pub const OB_SIZE: u32 = 16;
pub const UNICODE_LENGTH: u32 = 16;
pub const UNICODE_STATE: u32 = 32;
pub const BYTES_DATA: u32 = 32;

const V3_11: Layout = Layout {
    major: 3,
    minor: 11,
    runtime_interpreters_head: 40,
    runtime_tss_key: 592,
    interpreter_next: 0,
    interpreter_threads_head: 16,
    thread_next: 8,
    thread_interpreter: 16,
    thread_native_id: 160,
    thread_datastack_chunk: 296,
    thread_datastack_top: 304,
    thread_size: 360,
    current_frame: CurrentFrame::ThroughCFrame {
        cframe: 56,
        current_frame: 8,
    },
    chunk_data: 24,
    frame_code: 32,
    frame_previous: 48,
    frame_instr: 56,
    frame_owner: 69,
    frame_bytes: 72,
    activation: ActivationMark::IsEntry { offset: 68 },
    code_filename: 112,
    code_name: 120,
    code_qualname: 128,
    code_linetable: 136,
    code_firstlineno: 72,
    code_first_traceable: 168,
    code_instructions: 184,
    ascii_size: 48,
    compact_size: 72,
};

const V3_12: Layout = Layout {
    major: 3,
    minor: 12,
    runtime_interpreters_head: 40,
    runtime_tss_key: 1544,
    interpreter_next: 0,
    interpreter_threads_head: 72,
    thread_next: 8,
    thread_interpreter: 16,
    thread_native_id: 144,
    thread_datastack_chunk: 232,
    thread_datastack_top: 240,
    thread_size: 288,
    current_frame: CurrentFrame::ThroughCFrame {
        cframe: 56,
        current_frame: 0,
    },
    chunk_data: 24,
    frame_code: 0,
    frame_previous: 8,
    frame_instr: 56,
    frame_owner: 70,
    frame_bytes: 72,
    activation: ActivationMark::ShimOwner { value: 3 },
    code_filename: 112,
    code_name: 120,
    code_qualname: 128,
    code_linetable: 136,
    code_firstlineno: 68,
    code_first_traceable: 176,
    code_instructions: 192,
    ascii_size: 40,
    compact_size: 56,
};

const V3_13: Layout = Layout {
    major: 3,
    minor: 13,
    runtime_interpreters_head: 632,
    runtime_tss_key: 2160,
    interpreter_next: 7264,
    interpreter_threads_head: 7344,
    thread_next: 8,
    thread_interpreter: 16,
    thread_native_id: 160,
    thread_datastack_chunk: 232,
    thread_datastack_top: 240,
    thread_size: 304,
    current_frame: CurrentFrame::Direct { current_frame: 72 },
    chunk_data: 24,
    frame_code: 0,
    frame_previous: 8,
    frame_instr: 56,
    frame_owner: 70,
    frame_bytes: 72,
    activation: ActivationMark::ShimOwner { value: 3 },
    code_filename: 112,
    code_name: 120,
    code_qualname: 128,
    code_linetable: 136,
    code_firstlineno: 68,
    code_first_traceable: 184,
    code_instructions: 200,
    ascii_size: 40,
    compact_size: 56,
};

/// Every layout this build knows.
pub const KNOWN: [&Layout; 3] = [&V3_11, &V3_12, &V3_13];

/// The layout of CPython `major.minor`, if known.
pub fn for_version(major: u8, minor: u8) -> Option<&'static Layout> {
    KNOWN
        .into_iter()
        .find(|l| l.major == major && l.minor == minor)
}

impl Layout {
    /// 3.11 and 3.12 count instructions from `prev_instr`, the one being executed; 3.13's
    /// `instr_ptr` is the same instruction, so both give the index of the running one.
    pub fn instruction_index(&self, code: u64, instr: u64) -> Option<u64> {
        let first = code.checked_add(u64::from(self.code_instructions))?;
        Some(instr.checked_sub(first)? / 2)
    }
}
