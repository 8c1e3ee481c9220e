//! Tracks the objects the loader lists and builds a new generation (snapshot and map) when
//! one is loaded or unloaded; an object that stays loaded is read once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use framehop::x86_64::UnwinderX86_64;
use framehop::{Module, Unwinder as _};

use super::elf::{gnu_build_id, unwind_sections};
use super::loader::{dl_counts, loaded_objects, LoadedObject};
use super::map::{FunctionTable, MappedSegment, ModuleInfo, ModuleMap};
use super::maps::{mapped_file, read_maps, writable_regions, Mapping};
use super::snapshot::UnwindSnapshot;
use crate::threads;

type UnwindModule = Module<Arc<[u8]>>;

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

    /// Whether objects were loaded or unloaded since the last snapshot (cheap).
    pub fn changed(&self) -> bool {
        dl_counts() != self.dl_counts
    }

    /// Builds a new generation the first time, and again whenever a library was loaded or
    /// unloaded since the last one.
    pub fn refresh(&mut self) -> Option<Generation> {
        threads::with_fork_guard(|| {
            let counts = dl_counts();
            if counts == self.dl_counts {
                return None;
            }
            self.dl_counts = counts;
            Some(self.build())
        })
    }

    fn build(&mut self) -> Generation {
        let objects = loaded_objects();
        // Read after the list, so that every object listed and still loaded is in it.
        let maps = read_maps();
        let mut seen = HashMap::new();
        for (index, object) in objects.into_iter().enumerate() {
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
    // The loader keeps a library's name as the program spelled it (`./plug.so`), which the
    // program's next `chdir` makes wrong; the kernel's map names the file it opened.
    let path = match loads.first() {
        Some(first) if !path.is_absolute() => mapped_file(maps, first.start).unwrap_or(path),
        _ => path,
    };
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
}
