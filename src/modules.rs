//! The loaded objects of the process: unwind data for the handler, names for the drain.
//!
//! Runs on the sampler thread, at its first tick and after libraries come or go. From the
//! loader's list (`dl_iterate_phdr`, with nothing allocated under its lock) it takes the
//! executable, the shared libraries, ld.so and the vdso; from each it copies `.eh_frame_hdr`
//! and `.eh_frame` (with checked reads) into memory it owns, so a `dlclose` cannot unmap what
//! the handler reads. The result is published twice per generation:
//! - an [`UnwindSnapshot`] for the signal handler (framehop unwinder, writable mappings that
//!   bound stack reads);
//! - a [`ModuleMap`] for the drain, kept per generation so samples taken before an unload
//!   still get names.

use std::collections::HashMap;
use std::ops::Range;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::Arc;

use framehop::x86_64::UnwinderX86_64;
use framehop::{ExplicitModuleSectionInfo, Module, MustNotAllocateDuringUnwind, Unwinder as _};
use gimli::{BaseAddresses, EhFrame, EhFrameHdr, LittleEndian, UnwindSection as _};

type UnwindModule = Module<Arc<[u8]>>;

/// What the signal handler unwinds with. Built on an ordinary thread, read-only afterwards.
pub struct UnwindSnapshot {
    pub generation: u32,
    /// Shared by snapshots that differ only in their memory map, so the unwinder's
    /// generation (and every slot's rule cache) survives a re-read of the map.
    pub unwinder: Arc<UnwinderX86_64<Arc<[u8]>, MustNotAllocateDuringUnwind>>,
    /// Sorted, non-overlapping readable+writable mappings: stacks live in these.
    writable: Vec<WritableRegion>,
}

/// A readable+writable mapping and the lowest address a stack in it can reach.
struct WritableRegion {
    range: Range<u64>,
    /// The mapping's start, or for the main thread's stack, which the kernel grows on demand,
    /// its top minus the stack size limit.
    floor: u64,
}

impl UnwindSnapshot {
    /// The same modules with the writable mappings read again: for stacks of threads
    /// created since, and mappings that went away.
    pub fn with_fresh_regions(&self) -> Box<UnwindSnapshot> {
        Box::new(UnwindSnapshot {
            generation: self.generation,
            unwinder: self.unwinder.clone(),
            writable: writable_regions(&read_maps()),
        })
    }
}

impl UnwindSnapshot {
    /// End of the writable mapping that contains `address`. Async-signal-safe.
    pub fn writable_region_end(&self, address: u64) -> Option<u64> {
        self.writable_region(address).map(|r| r.range.end)
    }

    /// Lowest address a stack holding `address` can grow down to. Async-signal-safe.
    pub fn stack_floor(&self, address: u64) -> Option<u64> {
        self.writable_region(address).map(|r| r.floor)
    }

    fn writable_region(&self, address: u64) -> Option<&WritableRegion> {
        let after = self.writable.partition_point(|r| r.range.start <= address);
        let region = self.writable.get(after.checked_sub(1)?)?;
        (address < region.range.end).then_some(region)
    }
}

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
    fn new(sections: &ExplicitModuleSectionInfo<Arc<[u8]>>) -> Option<FunctionTable> {
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
    modules: Vec<(Range<u64>, Arc<ModuleInfo>)>,
}

impl ModuleMap {
    /// The module whose code contains `address`.
    pub fn find(&self, address: u64) -> Option<&Arc<ModuleInfo>> {
        let after = self.modules.partition_point(|(r, _)| r.start <= address);
        let (range, module) = self.modules.get(after.checked_sub(1)?)?;
        range.contains(&address).then_some(module)
    }

    #[cfg(test)]
    pub fn modules(&self) -> impl Iterator<Item = &Arc<ModuleInfo>> {
        self.modules.iter().map(|(_, m)| m)
    }
}

/// A module as first seen; reused while it stays loaded.
struct Loaded {
    unwind: UnwindModule,
    info: Arc<ModuleInfo>,
}

/// Tracks loads and unloads and builds new snapshots when they happen.
pub struct ModuleRegistry {
    loaded: HashMap<(PathBuf, u64), Loaded>,
    generation: u32,
    dl_counts: (u64, u64),
}

/// A fresh generation: the handler's half and the drain's half.
pub struct Generation {
    pub snapshot: Box<UnwindSnapshot>,
    pub map: Arc<ModuleMap>,
}

impl ModuleRegistry {
    pub fn new() -> ModuleRegistry {
        ModuleRegistry {
            loaded: HashMap::new(),
            generation: 0,
            dl_counts: (u64::MAX, u64::MAX),
        }
    }

    /// Builds a new generation the first time, and again whenever a library was loaded or
    /// unloaded since the last one.
    /// Whether objects were loaded or unloaded since the last snapshot (cheap).
    pub fn changed(&self) -> bool {
        dl_counts() != self.dl_counts
    }

    pub fn refresh(&mut self) -> Option<Generation> {
        crate::threads::with_fork_guard(|| {
            let counts = dl_counts();
            if counts == self.dl_counts {
                return None;
            }
            self.dl_counts = counts;
            Some(self.build())
        })
    }

    fn build(&mut self) -> Generation {
        let maps = read_maps();
        let mut seen = HashMap::new();
        for (index, object) in loaded_objects().into_iter().enumerate() {
            let key = (object.path.clone(), object.bias);
            // The loader lists the executable first.
            let loaded = match self.loaded.remove(&key) {
                Some(loaded) => loaded,
                None => load_module(object, &maps, index == 0),
            };
            seen.insert(key, loaded);
        }
        self.loaded = seen;
        self.generation = self.generation.wrapping_add(1);

        let mut unwinder = UnwinderX86_64::new();
        let mut modules = Vec::new();
        for loaded in self.loaded.values() {
            unwinder.add_module(loaded.unwind.clone());
            for segment in &loaded.info.code {
                modules.push((segment.avma.clone(), loaded.info.clone()));
            }
        }
        modules.sort_by_key(|(r, _)| r.start);
        let writable = writable_regions(&maps);
        Generation {
            snapshot: Box::new(UnwindSnapshot {
                generation: self.generation,
                unwinder: Arc::new(unwinder),
                writable,
            }),
            map: Arc::new(ModuleMap {
                generation: self.generation,
                modules,
            }),
        }
    }
}

impl Default for ModuleRegistry {
    fn default() -> Self {
        ModuleRegistry::new()
    }
}

/// An object the loader lists, as read outside its lock (see [`loaded_objects`]).
struct LoadedObject {
    path: PathBuf,
    bias: u64,
    headers: Vec<libc::Elf64_Phdr>,
}

/// Where the loader describes one object: valid while the object stays loaded.
#[derive(Clone, Copy)]
struct ObjectAddresses {
    bias: u64,
    name: u64,
    headers: u64,
    header_count: usize,
}

/// Rounds of listing before the last list is used even though a library was unloaded
/// meanwhile (every read of it was checked, so a stale entry costs names, not a fault).
const LISTING_ATTEMPTS: usize = 4;

/// The objects the loader lists, the executable first.
///
/// Nothing is allocated while the loader's lock is held: an allocator that holds its own
/// lock while it asks the loader (tcmalloc records a stack with libunwind when its heap grows,
/// and libunwind calls `dl_iterate_phdr`) would otherwise deadlock with us. Under the lock
/// only addresses are recorded, into room reserved before; names and program headers are read
/// afterwards with `process_vm_readv`, which fails instead of faulting if a `dlclose` unmapped
/// them meanwhile, and the list is taken again if the loader's unload count moved.
fn loaded_objects() -> Vec<LoadedObject> {
    let mut capacity = 64;
    let mut objects = Vec::new();
    for _ in 0..LISTING_ATTEMPTS {
        let (_, unloads_before) = dl_counts();
        let addresses = loop {
            match object_addresses(capacity) {
                Some(addresses) => break addresses,
                None => capacity *= 4,
            }
        };
        objects = addresses
            .iter()
            .enumerate()
            .filter_map(|(index, object)| read_object(object, index == 0))
            .collect();
        if dl_counts().1 == unloads_before {
            break;
        }
    }
    objects
}

/// The loader's list as addresses; `None` if it has `capacity` objects or more.
fn object_addresses(capacity: usize) -> Option<Vec<ObjectAddresses>> {
    unsafe extern "C" fn record(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        out: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid info; `out` is the vector passed below.
        let (info, addresses) = unsafe { (&*info, &mut *(out as *mut Vec<ObjectAddresses>)) };
        if addresses.len() + 1 >= addresses.capacity() {
            return 1;
        }
        // Within the reserved capacity: no allocation under the loader's lock.
        addresses.push(ObjectAddresses {
            bias: info.dlpi_addr,
            name: info.dlpi_name as u64,
            headers: info.dlpi_phdr as u64,
            header_count: usize::from(info.dlpi_phnum),
        });
        0
    }
    let mut addresses: Vec<ObjectAddresses> = Vec::with_capacity(capacity);
    // SAFETY: the callback only pushes into `addresses` within its capacity.
    unsafe { libc::dl_iterate_phdr(Some(record), &mut addresses as *mut _ as *mut _) };
    (addresses.len() + 1 < capacity).then_some(addresses)
}

/// Reads an object's name and program headers; `None` if they are gone or it has none.
fn read_object(object: &ObjectAddresses, executable: bool) -> Option<LoadedObject> {
    if object.headers == 0 {
        return None;
    }
    let mut headers = vec![
        libc::Elf64_Phdr {
            p_type: 0,
            p_flags: 0,
            p_offset: 0,
            p_vaddr: 0,
            p_paddr: 0,
            p_filesz: 0,
            p_memsz: 0,
            p_align: 0,
        };
        object.header_count
    ];
    // SAFETY: the vector's memory holds `header_count` program headers, plain integers for
    // which every byte pattern is valid.
    let bytes = unsafe {
        std::slice::from_raw_parts_mut(
            headers.as_mut_ptr() as *mut u8,
            std::mem::size_of_val(headers.as_slice()),
        )
    };
    if !read_memory(object.headers, bytes) {
        return None;
    }
    let name = read_c_string(object.name).unwrap_or_default();
    let path = if name.is_empty() && executable {
        std::env::current_exe().unwrap_or_default()
    } else {
        PathBuf::from(std::ffi::OsString::from_vec(name))
    };
    Some(LoadedObject {
        path,
        bias: object.bias,
        headers,
    })
}

/// A NUL-terminated string of this process, read with checks, at most `PATH_MAX` bytes.
fn read_c_string(address: u64) -> Option<Vec<u8>> {
    const CHUNK: usize = 256;
    if address == 0 {
        return None;
    }
    let mut text = Vec::new();
    let mut chunk = [0u8; CHUNK];
    while text.len() < libc::PATH_MAX as usize {
        let at = address.checked_add(text.len() as u64)?;
        // A chunk may cross into an unmapped page: read up to the page end first.
        let to_page_end = (4096 - (at % 4096)) as usize;
        let want = chunk.get_mut(..CHUNK.min(to_page_end))?;
        if !read_memory(at, want) {
            return None;
        }
        match want.iter().position(|&b| b == 0) {
            Some(end) => {
                text.extend_from_slice(want.get(..end)?);
                return Some(text);
            }
            None => text.extend_from_slice(want),
        }
    }
    None
}

/// Copies memory of this process at `address` into `out` with `process_vm_readv`: an address
/// that is not mapped gives `false`, not a fault.
pub fn read_memory(address: u64, out: &mut [u8]) -> bool {
    let local = libc::iovec {
        iov_base: out.as_mut_ptr() as *mut libc::c_void,
        iov_len: out.len(),
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: out.len(),
    };
    // SAFETY: `local` describes `out`; the kernel validates `remote`. getpid has no
    // preconditions; both calls are async-signal-safe.
    let copied = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    copied >= 0 && copied as usize == out.len()
}

/// Copies one module's unwind sections and describes it.
fn load_module(object: LoadedObject, maps: &[Mapping], executable: bool) -> Loaded {
    let LoadedObject {
        path,
        bias,
        headers,
    } = object;
    let mut loads = Vec::new();
    let mut code = Vec::new();
    let mut eh_frame_hdr_avma = None;
    let mut notes = Vec::new();
    for header in &headers {
        let start = bias.wrapping_add(header.p_vaddr);
        let range = start..start.saturating_add(header.p_memsz);
        match header.p_type {
            libc::PT_LOAD => loads.push(range.clone()),
            libc::PT_GNU_EH_FRAME => eh_frame_hdr_avma = Some(range.clone()),
            libc::PT_NOTE => notes.push(range.clone()),
            _ => {}
        }
        if header.p_type == libc::PT_LOAD && header.p_flags & libc::PF_X != 0 {
            let file_offset = maps
                .iter()
                .find(|m| m.range.contains(&start))
                .map_or(start - bias, |m| start - m.range.start + m.offset);
            code.push(MappedSegment {
                avma: range,
                file_offset,
            });
        }
    }
    let is_file = path.is_absolute() && path.is_file();
    let name = if is_file {
        path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    } else if path.to_string_lossy().contains("vdso") {
        "[vdso]".to_owned()
    } else {
        format!("[{}]", path.display())
    };
    let build_id = notes.into_iter().find_map(gnu_build_id);
    let avma_range = loads.iter().map(|r| r.start).min().unwrap_or(0)
        ..loads.iter().map(|r| r.end).max().unwrap_or(0);
    let sections = unwind_sections(bias, &loads, &code, eh_frame_hdr_avma);
    let functions = FunctionTable::new(&sections);
    Loaded {
        unwind: Module::new(name.clone(), avma_range, bias, sections),
        info: Arc::new(ModuleInfo {
            path: is_file.then_some(path),
            name,
            bias,
            profiler: !executable && code.iter().any(|c| c.avma.contains(&own_code_address())),
            code,
            build_id,
            executable,
            functions,
        }),
    }
}

/// An address inside this library's code.
fn own_code_address() -> u64 {
    own_code_address as *const () as u64
}

/// `.eh_frame_hdr` and `.eh_frame`, copied, with their stated addresses.
fn unwind_sections(
    bias: u64,
    loads: &[Range<u64>],
    code: &[MappedSegment],
    eh_frame_hdr: Option<Range<u64>>,
) -> ExplicitModuleSectionInfo<Arc<[u8]>> {
    let mut info = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: code.first().map(|s| s.avma.start - bias..s.avma.end - bias),
        ..Default::default()
    };
    let Some(hdr) = eh_frame_hdr else {
        return info;
    };
    let Some(hdr_bytes) = copy_mapped(loads, hdr.clone()) else {
        return info;
    };
    if let Some(eh_frame) = eh_frame_range(loads, &hdr_bytes, hdr.start) {
        info.eh_frame_svma = Some(eh_frame.start - bias..eh_frame.end - bias);
        info.eh_frame = copy_mapped(loads, eh_frame);
    }
    info.eh_frame_hdr_svma = Some(hdr.start - bias..hdr.end - bias);
    info.eh_frame_hdr = Some(hdr_bytes);
    info
}

/// Copies `range` if it lies inside one loaded segment.
fn copy_mapped(loads: &[Range<u64>], range: Range<u64>) -> Option<Arc<[u8]>> {
    let inside = loads
        .iter()
        .any(|l| l.start <= range.start && range.end <= l.end && range.start <= range.end);
    if !inside {
        return None;
    }
    let mut bytes = vec![0u8; (range.end - range.start) as usize];
    read_memory(range.start, &mut bytes).then(|| Arc::from(bytes))
}

/// The GNU build ID from a `PT_NOTE` segment, if it has one.
fn gnu_build_id(notes: Range<u64>) -> Option<Vec<u8>> {
    const NT_GNU_BUILD_ID: u32 = 3;
    const MAX_NOTES: u64 = 64 * 1024;
    let mut bytes = vec![0u8; notes.end.checked_sub(notes.start)?.min(MAX_NOTES) as usize];
    if !read_memory(notes.start, &mut bytes) {
        return None;
    }
    let word = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let align = |n: usize| n.checked_add(3).map(|n| n & !3);
    let mut at = 0;
    while at + 12 <= bytes.len() {
        let (name_size, desc_size, kind) =
            (word(at)? as usize, word(at + 4)? as usize, word(at + 8)?);
        let name_start = at + 12;
        let desc_start = name_start.checked_add(align(name_size)?)?;
        let desc_end = desc_start.checked_add(desc_size)?;
        if kind == NT_GNU_BUILD_ID && bytes.get(name_start..name_start + name_size)? == b"GNU\0" {
            return Some(bytes.get(desc_start..desc_end)?.to_vec());
        }
        at = desc_start.checked_add(align(desc_size)?)?;
    }
    None
}

/// Finds `.eh_frame` from the header's `eh_frame_ptr`, and its end by walking the CIE/FDE
/// length words to the zero terminator (no program header records its length).
fn eh_frame_range(loads: &[Range<u64>], hdr: &[u8], hdr_avma: u64) -> Option<Range<u64>> {
    const DW_EH_PE_SDATA4_PCREL: u8 = 0x1b;
    const DW_EH_PE_UDATA4: u8 = 0x03;
    const DW_EH_PE_SDATA4: u8 = 0x0b;
    const DW_EH_PE_UDATA8: u8 = 0x04;
    let (&version, rest) = hdr.split_first()?;
    let (&encoding, _) = rest.split_first()?;
    if version != 1 {
        return None;
    }
    let field = hdr.get(4..)?;
    let start = match encoding {
        DW_EH_PE_SDATA4_PCREL => {
            let delta = i32::from_le_bytes(field.get(..4)?.try_into().ok()?);
            (hdr_avma + 4).checked_add_signed(i64::from(delta))?
        }
        DW_EH_PE_UDATA4 | DW_EH_PE_SDATA4 => {
            u64::from(u32::from_le_bytes(field.get(..4)?.try_into().ok()?))
        }
        DW_EH_PE_UDATA8 => u64::from_le_bytes(field.get(..8)?.try_into().ok()?),
        _ => return None,
    };
    let segment = loads.iter().find(|l| l.contains(&start))?;
    let read = |at: u64, out: &mut [u8]| {
        at.checked_add(out.len() as u64)
            .is_some_and(|end| end <= segment.end)
            && read_memory(at, out)
    };
    let mut cursor = start;
    loop {
        let mut length = [0u8; 4];
        if !read(cursor, &mut length) {
            return None;
        }
        cursor += 4;
        match u32::from_le_bytes(length) {
            0 => return Some(start..cursor),
            0xffff_ffff => {
                let mut long = [0u8; 8];
                if !read(cursor, &mut long) {
                    return None;
                }
                cursor = cursor
                    .checked_add(8)?
                    .checked_add(u64::from_le_bytes(long))?;
            }
            n => cursor += u64::from(n),
        }
    }
}

/// `dlpi_adds`/`dlpi_subs`: the loader's counts of loads and unloads, a cheap change check.
fn dl_counts() -> (u64, u64) {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        out: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid info; `out` is the tuple passed below.
        unsafe {
            let info = &*info;
            *(out as *mut (u64, u64)) = (info.dlpi_adds, info.dlpi_subs);
        }
        1
    }
    let mut counts = (0u64, 0u64);
    // SAFETY: the callback only writes `counts`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(first), &mut counts as *mut (u64, u64) as *mut _) };
    counts
}

/// One line of `/proc/self/maps`.
struct Mapping {
    range: Range<u64>,
    readable: bool,
    writable: bool,
    offset: u64,
    /// The main thread's stack (`[stack]`), which the kernel extends as it is used.
    grows_down: bool,
}

fn writable_regions(maps: &[Mapping]) -> Vec<WritableRegion> {
    let stack_limit = main_stack_limit();
    maps.iter()
        .filter(|m| m.readable && m.writable)
        .map(|m| WritableRegion {
            range: m.range.clone(),
            floor: match stack_limit.filter(|_| m.grows_down) {
                Some(limit) => m.range.end.saturating_sub(limit).min(m.range.start),
                None => m.range.start,
            },
        })
        .collect()
}

/// Size the main thread's stack may grow to (`RLIMIT_STACK`); unlimited reads as `u64::MAX`.
fn main_stack_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut limit) } != 0 {
        return None;
    }
    Some(limit.rlim_cur)
}

fn read_maps() -> Vec<Mapping> {
    let text = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    text.lines().filter_map(parse_maps_line).collect()
}

fn parse_maps_line(line: &str) -> Option<Mapping> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?.as_bytes();
    let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
    Some(Mapping {
        range: u64::from_str_radix(start, 16).ok()?..u64::from_str_radix(end, 16).ok()?,
        readable: perms.first() == Some(&b'r'),
        writable: perms.get(1) == Some(&b'w'),
        offset,
        grows_down: fields.nth(2) == Some("[stack]"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_knows_this_stack_and_test_binary() {
        let generation = ModuleRegistry::new().build();
        let local = 0u64;
        let sp = &local as *const u64 as u64;
        assert!(generation.snapshot.writable_region_end(sp).unwrap() > sp);
        let here = snapshot_knows_this_stack_and_test_binary as *const () as u64;
        let module = generation.map.find(here).expect("test binary not found");
        assert!(module.path.is_some());
        assert!(module.file_offset(here).is_some());
        assert_eq!(module.function_start(here + 4), Some(here));
        let libc = generation
            .map
            .modules()
            .find(|m| m.name.starts_with("libc.so"))
            .expect("libc not found");
        assert_eq!(
            libc.build_id.as_ref().map(Vec::len),
            Some(20),
            "GNU build id"
        );
        assert!(libc.path.as_ref().is_some_and(|p| p.is_absolute()));
    }

    #[test]
    fn maps_lines() {
        let m = parse_maps_line("7ffd1000-7ffd3000 rw-p 00001000 00:00 0   [stack]").unwrap();
        assert_eq!(m.range, 0x7ffd1000..0x7ffd3000);
        assert!(m.readable && m.writable);
        assert_eq!(m.offset, 0x1000);
        assert!(m.grows_down);
        let heap = parse_maps_line("55d0a000-55d2b000 rw-p 00000000 00:00 0   [heap]").unwrap();
        assert!(!heap.grows_down);
    }

    #[test]
    fn main_stack_floor_is_below_its_mapping_other_floors_are_their_start() {
        let maps = [
            parse_maps_line("1000-5000 rw-p 00000000 00:00 0").unwrap(),
            parse_maps_line("7ffd1000-7ffd3000 rw-p 00000000 00:00 0 [stack]").unwrap(),
        ];
        let regions = writable_regions(&maps);
        assert_eq!(regions[0].floor, 0x1000);
        assert!(regions[1].floor < 0x7ffd1000);
    }
}
