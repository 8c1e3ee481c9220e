//! The layering test: every module imports only from its own layer or from layers below it,
//! never through the crate root, and no file imports itself back through others.
//!
//! The layer order is written once, as the numbered list under "Layers" in `src/lib.rs`; this
//! test reads it. A file's module path comes from where it lies under `src/` (`mod.rs` is its
//! folder's module); its imports are the `crate::` and `super::` paths in its code, comments
//! aside. A path names the deepest module file it reaches, so `crate::engine::handler::Progress`
//! is an import of `engine/handler/mod.rs`, which in turn declares and re-exports its files:
//! a file that imports through its own folder's `mod.rs` closes a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Modules by path (`engine::handler::walk`; the crate root is ``), with their file's code.
fn module_files() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    let mut pending = vec![src.clone()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("read src/") {
            let path = entry.expect("read src/").path();
            if path.is_dir() {
                // The command line is a crate of its own, on top of the library.
                if path != src.join("bin") {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let code = fs::read_to_string(&path).expect("read a source file");
                files.insert(module_path(&src, &path), code);
            }
        }
    }
    files
}

fn module_path(src: &Path, file: &Path) -> String {
    let relative: PathBuf = file
        .strip_prefix(src)
        .expect("under src/")
        .with_extension("");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// The numbered list under "Layers" in the crate docs: module path -> layer.
fn layer_list(lib: &str) -> BTreeMap<String, usize> {
    let mut layers = BTreeMap::new();
    for line in lib.lines() {
        let Some(item) = line.strip_prefix("//! ") else {
            continue;
        };
        let Some((number, rest)) = item.split_once(". ") else {
            continue;
        };
        let Ok(number) = number.parse::<usize>() else {
            continue;
        };
        // "`a`, `b`: what they do": the names stand before the first "`: ".
        let names = rest.split("`: ").next().unwrap_or_default();
        for name in names.split('`').skip(1).step_by(2) {
            layers.insert(name.to_owned(), number);
        }
    }
    layers
}

/// The layer of `module`: that of the longest listed path it starts with.
fn layer_of(layers: &BTreeMap<String, usize>, module: &str) -> Option<usize> {
    layers
        .iter()
        .filter(|(listed, _)| module == *listed || module.starts_with(&format!("{listed}::")))
        .max_by_key(|(listed, _)| listed.len())
        .map(|(_, &layer)| layer)
}

/// Code without comments and without its unit tests (string literals are kept; none of
/// ours spells an import). A `mod tests` block's `super` is its file, not the file's parent.
fn code_lines(code: &str) -> String {
    let library = code.split("#[cfg(test)]").next().unwrap_or_default();
    library
        .lines()
        .map(|line| match line.find("//") {
            Some(comment) => &line[..comment],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path in `code` that starts with `crate::` or `super::`, with `use` groups
/// (`use crate::a::{b, c::d}`) expanded, as absolute module paths: `crate::` is stripped,
/// and `super::` resolved from `module`.
fn imported_paths(module: &str, code: &str) -> Vec<String> {
    let code = code_lines(code);
    let mut paths = Vec::new();
    let bytes = code.as_bytes();
    for start in (0..code.len()).filter(|&i| code.is_char_boundary(i)) {
        let rest = &code[start..];
        if !(rest.starts_with("crate::") || rest.starts_with("super::")) {
            continue;
        }
        let preceded_by_word =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let preceded_by_path = start >= 2 && &code[start - 2..start] == "::";
        if preceded_by_word || preceded_by_path {
            continue;
        }
        for path in expand(path_text(rest)) {
            if let Some(absolute) = absolute(module, &path) {
                paths.push(absolute);
            }
        }
    }
    paths
}

/// The path at the start of `text`, with any `{...}` group it ends in.
fn path_text(text: &str) -> &str {
    let mut depth = 0usize;
    for (index, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    return &text[..=index];
                }
            }
            c if depth == 0 && !(c.is_alphanumeric() || c == '_' || c == ':') => {
                return &text[..index];
            }
            _ => {}
        }
    }
    text
}

/// `a::{b, c::{d, e}}` -> `a::b`, `a::c::d`, `a::c::e` (whitespace removed).
fn expand(path: &str) -> Vec<String> {
    let path: String = path.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = path.find('{') else {
        return vec![path.trim_end_matches("::").to_owned()];
    };
    let prefix = &path[..open];
    let inner = &path[open + 1..path.len() - 1];
    let mut items = Vec::new();
    let (mut depth, mut from) = (0usize, 0);
    for (index, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[from..index]);
                from = index + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[from..]);
    items
        .into_iter()
        .filter(|item| !item.is_empty())
        .flat_map(|item| expand(&format!("{prefix}{item}")))
        .map(|p| p.trim_end_matches("::self").to_owned())
        .collect()
}

/// `path` as seen from `module`, from the crate root. A file's `super` is its folder's
/// module, and a `mod.rs`'s the folder's parent: either way one step up its module path.
fn absolute(module: &str, path: &str) -> Option<String> {
    if let Some(rest) = path.strip_prefix("crate::") {
        return Some(rest.to_owned());
    }
    let mut base: Vec<&str> = module.split("::").filter(|p| !p.is_empty()).collect();
    base.pop()?;
    let mut rest = path;
    while let Some(after) = rest.strip_prefix("super::") {
        rest = after;
        if rest.starts_with("super::") {
            base.pop()?;
        }
    }
    let joined = base.join("::");
    Some(if joined.is_empty() {
        rest.to_owned()
    } else {
        format!("{joined}::{rest}")
    })
}

/// The deepest module file `path` reaches (`` for an item of the crate root).
fn target_module<'m>(modules: &'m BTreeMap<String, String>, path: &str) -> &'m str {
    let parts: Vec<&str> = path.split("::").collect();
    (0..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find_map(|candidate| modules.get_key_value(&candidate).map(|(k, _)| k.as_str()))
        .unwrap_or("")
}

/// Import edges between module files, and the `mod` declarations of each folder.
fn edges(modules: &BTreeMap<String, String>) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (module, code) in modules {
        let targets = edges.entry(module.as_str()).or_default();
        for path in imported_paths(module, code) {
            let target = target_module(modules, &path);
            if target != module {
                targets.insert(target);
            }
        }
        for child in declared_children(module, code) {
            if let Some((key, _)) = modules.get_key_value(&child) {
                targets.insert(key.as_str());
            }
        }
    }
    edges
}

/// Modules that `module`'s file declares with `mod name;`.
fn declared_children(module: &str, code: &str) -> Vec<String> {
    code_lines(code)
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("pub ").unwrap_or(line);
            let name = line.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(if module.is_empty() {
                name.to_owned()
            } else {
                format!("{module}::{name}")
            })
        })
        .collect()
}

/// Cycles among the import edges, each as the path that closes it.
fn cycles<'m>(edges: &BTreeMap<&'m str, BTreeSet<&'m str>>) -> Vec<Vec<&'m str>> {
    fn visit<'m>(
        node: &'m str,
        edges: &BTreeMap<&'m str, BTreeSet<&'m str>>,
        stack: &mut Vec<&'m str>,
        done: &mut BTreeSet<&'m str>,
        found: &mut Vec<Vec<&'m str>>,
    ) {
        if let Some(at) = stack.iter().position(|&n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node);
            found.push(cycle);
            return;
        }
        if !done.insert(node) {
            return;
        }
        stack.push(node);
        for &next in edges.get(node).into_iter().flatten() {
            visit(next, edges, stack, done, found);
        }
        stack.pop();
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for &node in edges.keys() {
        visit(node, edges, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

/// What breaks the layering in `modules`, one line each.
fn violations(modules: &BTreeMap<String, String>) -> Vec<String> {
    let layers = layer_list(modules.get("").expect("src/lib.rs"));
    let mut problems = Vec::new();
    let name = |m: &str| {
        if m.is_empty() {
            "the crate root".to_owned()
        } else {
            m.to_owned()
        }
    };
    let edges = edges(modules);
    for (&from, targets) in &edges {
        if from.is_empty() || from == "layers" {
            continue;
        }
        let Some(from_layer) = layer_of(&layers, from) else {
            problems.push(format!("{from} is in no layer of the list in src/lib.rs"));
            continue;
        };
        for &to in targets {
            if to.is_empty() {
                problems.push(format!("{from} imports through the crate root"));
                continue;
            }
            let Some(to_layer) = layer_of(&layers, to) else {
                continue;
            };
            if to_layer > from_layer {
                problems.push(format!(
                    "{} (layer {from_layer}) imports {} (layer {to_layer})",
                    name(from),
                    name(to)
                ));
            }
        }
    }
    let without_root: BTreeMap<&str, BTreeSet<&str>> = edges
        .into_iter()
        .filter(|(from, _)| !from.is_empty())
        .map(|(from, to)| (from, to.into_iter().filter(|t| !t.is_empty()).collect()))
        .collect();
    for cycle in cycles(&without_root) {
        problems.push(format!("import cycle: {}", cycle.join(" -> ")));
    }
    problems
}

#[test]
fn every_module_imports_only_from_its_layer_or_below_without_cycles() {
    let modules = module_files();
    assert!(
        modules.contains_key("engine::handler::entry"),
        "{:?}",
        modules.keys()
    );
    let problems = violations(&modules);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_layer_list_covers_every_top_level_module() {
    let modules = module_files();
    let layers = layer_list(&modules[""]);
    assert_eq!(layers.get("engine::handler"), Some(&6));
    let unlisted: Vec<&String> = modules
        .keys()
        .filter(|m| !m.is_empty() && m.as_str() != "layers")
        .filter(|m| layer_of(&layers, m).is_none())
        .collect();
    assert!(unlisted.is_empty(), "not in the layer list: {unlisted:?}");
}

#[test]
fn an_upward_import_a_root_import_and_a_cycle_are_caught() {
    let mut modules = module_files();
    let clock = modules.get_mut("base::clock").expect("base/clock.rs");
    clock.push_str("\nuse crate::run::DrainMessage;\nuse crate::Error;\n");
    let problems = violations(&modules).join("\n");
    assert!(
        problems.contains("base::clock (layer 1) imports run (layer 11)"),
        "{problems}"
    );
    assert!(
        problems.contains("base::clock imports through the crate root"),
        "{problems}"
    );
    assert!(problems.contains("import cycle"), "{problems}");
}

#[test]
fn use_groups_and_super_paths_resolve_to_modules() {
    assert_eq!(
        expand("crate::a::{b, c::{d, e}, f::self}"),
        [
            "crate::a::b",
            "crate::a::c::d",
            "crate::a::c::e",
            "crate::a::f"
        ]
    );
    assert_eq!(
        absolute("engine::handler::walk", "super::slots::X").as_deref(),
        Some("engine::handler::slots::X")
    );
    assert_eq!(
        absolute("engine::sampler", "super::handler::Y").as_deref(),
        Some("engine::handler::Y")
    );
    assert_eq!(
        absolute("engine::sampler::thread", "super::super::install").as_deref(),
        Some("engine::install")
    );
}
