//! Addresses to function names, at dump time only (never in the signal handler).
//!
//! `blazesym` reads each module's ELF symbol tables (`.symtab`, so static functions too, and
//! `.dynsym`) and demangles C++ and Rust names. Where no symbol covers an address the frame is
//! named `module+0xoffset` with the file offset, stable across runs; only an address outside
//! every module is `[unknown]`. Results are cached per module and address across dumps.

use std::collections::HashMap;
use std::sync::Arc;

use blazesym::symbolize::source::{Elf, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};

use crate::modules::{ModuleInfo, ModuleMap};
use crate::profile::Frame;

/// Name cache and the symbolizer that fills it.
pub struct Symbols {
    symbolizer: Symbolizer,
    /// Keyed by module identity (its `Arc` address; maps keep every module alive) and the
    /// lookup address.
    names: HashMap<(usize, u64), Frame>,
}

impl Default for Symbols {
    fn default() -> Self {
        Symbols::new()
    }
}

impl Symbols {
    pub fn new() -> Symbols {
        Symbols {
            symbolizer: Symbolizer::builder()
                .enable_demangling(true)
                .enable_code_info(false)
                .enable_inlined_fns(false)
                .build(),
            names: HashMap::new(),
        }
    }

    /// Looks up, in one batch per module, every address not named yet.
    pub fn prepare(&mut self, map: &ModuleMap, lookups: impl Iterator<Item = u64>) {
        let mut per_module: HashMap<usize, (&Arc<ModuleInfo>, Vec<u64>)> = HashMap::new();
        for lookup in lookups {
            let Some(module) = map.find(lookup) else {
                continue;
            };
            let key = module_key(module);
            if !self.names.contains_key(&(key, lookup)) {
                per_module
                    .entry(key)
                    .or_insert_with(|| (module, Vec::new()))
                    .1
                    .push(lookup);
            }
        }
        for (key, (module, addresses)) in per_module {
            let names = self.lookup_module(module, &addresses);
            for (address, frame) in addresses.into_iter().zip(names) {
                self.names.insert((key, address), frame);
            }
        }
    }

    /// The frame for `lookup` (after `prepare`, or a fallback name).
    pub fn frame(&self, map: Option<&ModuleMap>, lookup: u64) -> Frame {
        let Some(module) = map.and_then(|m| m.find(lookup)) else {
            return Frame {
                function: "[unknown]".to_owned(),
                module: "?".to_owned(),
            };
        };
        match self.names.get(&(module_key(module), lookup)) {
            Some(frame) => frame.clone(),
            None => offset_frame(module, lookup),
        }
    }

    fn lookup_module(&self, module: &ModuleInfo, addresses: &[u64]) -> Vec<Frame> {
        let fallback = || addresses.iter().map(|&a| offset_frame(module, a)).collect();
        let Some(path) = &module.path else {
            return fallback();
        };
        let mut elf = Elf::new(path);
        elf.debug_syms = false;
        let source = Source::Elf(elf);
        let offsets: Vec<u64> = addresses.iter().map(|a| a - module.bias).collect();
        let Ok(results) = self
            .symbolizer
            .symbolize(&source, Input::VirtOffset(&offsets))
        else {
            return fallback();
        };
        addresses
            .iter()
            .zip(results)
            .map(|(&address, result)| match result {
                Symbolized::Sym(sym) => Frame {
                    function: sym.name.into_owned(),
                    module: module.name.clone(),
                },
                Symbolized::Unknown(_) => offset_frame(module, address),
            })
            .collect()
    }
}

fn module_key(module: &Arc<ModuleInfo>) -> usize {
    Arc::as_ptr(module) as usize
}

/// `module+0xoffset`, with the offset into the module's file.
fn offset_frame(module: &ModuleInfo, address: u64) -> Frame {
    let offset = module.file_offset(address).unwrap_or(address - module.bias);
    Frame {
        function: format!("{}+{:#x}", module.name, offset),
        module: module.name.clone(),
    }
}
