//! The drain's half of a module generation: which object holds an address, where it is on
//! disk, its build id, and its function ranges for code without symbols.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use framehop::ExplicitModuleSectionInfo;
use gimli::{BaseAddresses, EhFrame, EhFrameHdr, LittleEndian, UnwindSection as _};

/// One mapped range of a module and where it starts in the file.
#[derive(Debug, Clone)]
pub struct MappedSegment {
    pub avma: Range<u64>,
    pub file_offset: u64,
}

/// A loaded object as symbolization needs it.
#[derive(Debug)]
pub struct ModuleInfo {
    /// File on disk; `None` for the vdso and objects without a file.
    pub path: Option<PathBuf>,
    /// Short name for reports: the file name, or `[vdso]`.
    pub name: String,
    /// Load bias: runtime address minus the address stated in the ELF file.
    pub bias: u64,
    /// Executable segments.
    pub code: Vec<MappedSegment>,
    pub build_id: Option<Vec<u8>>,
    /// The program's executable (not a shared library).
    pub executable: bool,
    /// This library, when preloaded: its frames (the thread-start trampoline, interposers)
    /// are left out of stacks, which show the program's own calls.
    pub profiler: bool,
    /// The unwind tables, shared with the unwinder: function ranges for code without symbols.
    pub functions: Option<FunctionTable>,
}

impl ModuleInfo {
    /// Offset of `address` in the file, for `module+0xoffset` names.
    pub fn file_offset(&self, address: u64) -> Option<u64> {
        let segment = self.code.iter().find(|s| s.avma.contains(&address))?;
        Some(address - segment.avma.start + segment.file_offset)
    }

    /// Start of the function that holds `address`, as the unwind tables record it.
    pub fn function_start(&self, address: u64) -> Option<u64> {
        let table = self.functions.as_ref()?;
        let start = table.function_start(address.checked_sub(self.bias)?)?;
        start.checked_add(self.bias)
    }
}

/// `.eh_frame_hdr` and `.eh_frame` of a module, at their addresses in the ELF file.
pub struct FunctionTable {
    eh_frame_hdr: Arc<[u8]>,
    eh_frame_hdr_svma: u64,
    eh_frame: Arc<[u8]>,
    eh_frame_svma: u64,
}

impl FunctionTable {
    pub(super) fn new(sections: &ExplicitModuleSectionInfo<Arc<[u8]>>) -> Option<FunctionTable> {
        Some(FunctionTable {
            eh_frame_hdr: sections.eh_frame_hdr.clone()?,
            eh_frame_hdr_svma: sections.eh_frame_hdr_svma.as_ref()?.start,
            eh_frame: sections.eh_frame.clone()?,
            eh_frame_svma: sections.eh_frame_svma.as_ref()?.start,
        })
    }

    /// The first address of the FDE (function) that covers `svma`.
    fn function_start(&self, svma: u64) -> Option<u64> {
        let bases = BaseAddresses::default()
            .set_eh_frame_hdr(self.eh_frame_hdr_svma)
            .set_eh_frame(self.eh_frame_svma);
        let header = EhFrameHdr::new(&self.eh_frame_hdr, LittleEndian)
            .parse(&bases, 8)
            .ok()?;
        let eh_frame = EhFrame::new(&self.eh_frame, LittleEndian);
        let fde = header
            .table()?
            .fde_for_address(&eh_frame, &bases, svma, EhFrame::cie_from_offset)
            .ok()?;
        Some(fde.initial_address())
    }
}

impl std::fmt::Debug for FunctionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FunctionTable({} bytes)", self.eh_frame.len())
    }
}

/// The modules of one generation, sorted by address.
#[derive(Debug)]
pub struct ModuleMap {
    pub generation: u32,
    pub(super) modules: Vec<(Range<u64>, Arc<ModuleInfo>)>,
}

impl ModuleMap {
    /// The module whose code contains `address`.
    pub fn find(&self, address: u64) -> Option<&Arc<ModuleInfo>> {
        let after = self.modules.partition_point(|(r, _)| r.start <= address);
        let (range, module) = self.modules.get(after.checked_sub(1)?)?;
        range.contains(&address).then_some(module)
    }

    /// Every module, once per code range (an object with two code segments twice).
    pub fn modules(&self) -> impl Iterator<Item = &Arc<ModuleInfo>> {
        self.modules.iter().map(|(_, m)| m)
    }
}
