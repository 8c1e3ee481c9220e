//! Python frames into native stacks: each activation of the evaluation loop in a native
//! stack is replaced by the Python frames it ran, innermost first like the native frames,
//! so native code a Python function called (zlib, a C extension) stays below it. Python
//! frames travel on as tagged addresses, above every user-space address, that name an entry
//! of [`PythonFrames`].

use std::collections::HashMap;
use std::sync::Arc;

use std::ops::Range;

use super::runtime::{Interpreter, Unsupported};
use crate::modules::ModuleMap;
use crate::sample::{PythonEntry, PythonStop, RawSample, StopReason};

/// Tagged Python frames are `PYTHON_TAG | index`: kernel addresses, never a user's.
const PYTHON_TAG: u64 = 0xffff_f000_0000_0000;

/// Whether a stack entry is a Python frame rather than an address.
pub fn is_python_frame(entry: u64) -> bool {
    entry & PYTHON_TAG == PYTHON_TAG
}

/// A Python frame as reports show it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PythonFrameName {
    pub qualname: Arc<str>,
    pub filename: Arc<str>,
    pub line: Option<u32>,
}

/// The file of a frame whose code object was freed before it was named.
const UNKNOWN_FILE: &str = "?";

impl PythonFrameName {
    /// The source file, unless the code was freed before it was named.
    pub fn file(&self) -> Option<&str> {
        Some(&*self.filename).filter(|&file| file != UNKNOWN_FILE)
    }

    /// `qualname (file.py:line)`, with the file's last path component.
    pub fn label(&self) -> String {
        let file = self.filename.rsplit('/').next().unwrap_or(&self.filename);
        match self.line {
            Some(line) => format!("{} ({file}:{line})", self.qualname),
            None => format!("{} ({file})", self.qualname),
        }
    }
}

/// What happened to one sample's Python frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spliced {
    /// No Python frames came with it.
    None,
    /// Every activation got its frames; `freed` of them had lost their code object.
    Whole { freed: u64 },
    /// The read of the frame chain stopped early, or activations and frame groups did not
    /// pair up: some activations kept their native frame.
    Partial { freed: u64 },
}

/// The drain's side: where the evaluation loop is, and the names given out.
#[derive(Default)]
pub struct PythonFrames {
    eval_loop: Option<Range<u64>>,
    names: Vec<PythonFrameName>,
    ids: HashMap<PythonFrameName, u64>,
}

impl PythonFrames {
    /// Looks for the interpreter in a new module map, until found.
    pub fn note_map(&mut self, map: &ModuleMap) -> Result<(), Unsupported> {
        if self.eval_loop.is_none() {
            self.eval_loop = Interpreter::find(map)?.map(|found| found.eval_loop);
        }
        Ok(())
    }

    /// The name behind a tagged Python frame.
    pub fn name(&self, entry: u64) -> Option<&PythonFrameName> {
        self.names.get(usize::try_from(entry & !PYTHON_TAG).ok()?)
    }

    /// Replaces the evaluation-loop activations of `sample` with its Python frames.
    pub fn splice(&mut self, sample: &mut RawSample) -> Spliced {
        let (Some(python), Some(eval_loop)) = (sample.python.take(), self.eval_loop.clone()) else {
            return Spliced::None;
        };
        if python.stop == PythonStop::NotThisThread {
            return Spliced::None;
        }
        let activations: Vec<usize> = lookup_addresses(&sample.frames)
            .enumerate()
            .filter(|(_, lookup)| eval_loop.contains(lookup))
            .map(|(depth, _)| depth)
            .collect();
        let groups = activation_groups(&python.entries);
        // Pairing from the root needs both ends: every Python frame and every native one.
        let native_whole = matches!(sample.stop, StopReason::Complete | StopReason::FiberStart);
        let from_root = python.stop == PythonStop::Complete && native_whole;
        let pairs = pair_up(&activations, groups.len(), from_root);
        let whole = from_root && activations.len() == groups.len();
        let freed = python
            .entries
            .iter()
            .filter(|e| matches!(e, PythonEntry::Frame { code: None, .. }))
            .count() as u64;
        let mut frames = Vec::with_capacity(sample.frames.len() + python.entries.len());
        for (depth, &address) in sample.frames.iter().enumerate() {
            // An activation whose frames are not there (yet) keeps its native frame.
            match pairs
                .get(&depth)
                .map(|&g| groups[g])
                .filter(|g| !g.is_empty())
            {
                Some(group) => {
                    for entry in group {
                        frames.push(self.tag(entry));
                    }
                }
                None => frames.push(address),
            }
        }
        sample.frames = frames.into();
        if whole {
            Spliced::Whole { freed }
        } else {
            Spliced::Partial { freed }
        }
    }

    /// The tagged entry of one Python frame.
    fn tag(&mut self, entry: &PythonEntry) -> u64 {
        let name = match entry {
            PythonEntry::Frame {
                code: Some(code),
                line,
            } => PythonFrameName {
                qualname: code.qualname.clone(),
                filename: code.filename.clone(),
                line: *line,
            },
            _ => PythonFrameName {
                qualname: "[code object freed]".into(),
                filename: UNKNOWN_FILE.into(),
                line: None,
            },
        };
        let next = self.names.len() as u64;
        let id = *self.ids.entry(name.clone()).or_insert(next);
        if id == next {
            self.names.push(name);
        }
        PYTHON_TAG | id
    }
}

/// The leaf as is, return addresses minus one: the call instruction's address.
fn lookup_addresses(frames: &[u64]) -> impl Iterator<Item = u64> + '_ {
    frames.iter().enumerate().map(|(depth, &address)| {
        if depth == 0 {
            address
        } else {
            address.wrapping_sub(1)
        }
    })
}

/// The frames of each activation, innermost activation first. A chain read to its end ends
/// with an activation's end, after which nothing is left; a partial read keeps what it has
/// (nothing after an activation's end it read last).
fn activation_groups(entries: &[PythonEntry]) -> Vec<&[PythonEntry]> {
    let mut groups: Vec<&[PythonEntry]> = entries
        .split(|entry| *entry == PythonEntry::ActivationEnd)
        .collect();
    if groups.last().is_some_and(|g| g.is_empty()) {
        groups.pop();
    }
    groups
}

/// Which group each activation (a native depth) gets. With both stacks whole, pairing starts
/// at the root, where activations are settled (the innermost may be starting or ending);
/// when either was cut, only the innermost are there to pair, from the leaf.
fn pair_up(activations: &[usize], groups: usize, from_root: bool) -> HashMap<usize, usize> {
    let paired = activations.len().min(groups);
    if from_root {
        (0..paired)
            .map(|k| (activations[activations.len() - 1 - k], groups - 1 - k))
            .collect()
    } else {
        (0..paired).map(|k| (activations[k], k)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(line: u32) -> PythonEntry {
        PythonEntry::Frame {
            code: None,
            line: Some(line),
        }
    }

    #[test]
    fn complete_chains_pair_activations_from_the_root() {
        let end = PythonEntry::ActivationEnd;
        let frames = [frame(1), frame(2), end.clone(), frame(3), end];
        let groups = activation_groups(&frames);
        assert_eq!(groups, vec![&frames[0..2], &frames[3..4]]);
        // Three activations in the native stack, the innermost just entered.
        let pairs = pair_up(&[1, 4, 9], groups.len(), true);
        assert_eq!(pairs, HashMap::from([(9, 1), (4, 0)]));
    }

    #[test]
    fn partial_chains_pair_from_the_leaf() {
        let frames = [frame(1), PythonEntry::ActivationEnd, frame(2)];
        let groups = activation_groups(&frames);
        assert_eq!(groups.len(), 2);
        let pairs = pair_up(&[2, 5, 7], groups.len(), false);
        assert_eq!(pairs, HashMap::from([(2, 0), (5, 1)]));
    }
}
