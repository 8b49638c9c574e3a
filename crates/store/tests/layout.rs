//! The crate's layout rules (issue 15), checked on its sources: no import cycle between its
//! top-level modules, and no source file over 800 lines outside test files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 800;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to: `src/etl.rs` and `src/etl/…` are `etl`; `lib.rs`
/// is the crate root (`None`).
fn top_module(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (name != "lib").then_some(name)
}

/// The first path segments after every `crate::` outside comments: `crate::rows::X` gives
/// `rows`, `crate::{a::X, b}` gives `a` and `b`.
fn crate_refs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let before = rest[..i].chars().next_back();
            rest = &rest[i + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // e.g. `so_crate::`
            }
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let seg: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !seg.is_empty() {
                        out.push(seg);
                    }
                }
            } else {
                let seg: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                out.push(seg);
            }
        }
    }
    out
}

#[test]
fn top_level_modules_import_each_other_one_way_only() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut through_root = Vec::new();
    for f in &files {
        let Some(from) = top_module(f) else { continue };
        let text = std::fs::read_to_string(f).unwrap();
        for to in crate_refs(&text) {
            if modules.contains(&to) {
                if to != from {
                    edges.entry(from.clone()).or_default().insert(to);
                }
            } else {
                // An item the crate root re-exports: a hidden edge to whichever module
                // defines it, so modules name the defining module instead.
                through_root.push(format!("{}: crate::{to}", f.strip_prefix(src()).unwrap().display()));
            }
        }
    }
    assert!(through_root.is_empty(), "imports through the crate root's re-exports: {through_root:#?}");

    // Depth-first search for a cycle, reporting its path.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == m) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        stack.push(m.to_string());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in &modules {
        if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
            panic!("import cycle between top-level modules: {}\nall edges: {edges:#?}", cycle.join(" -> "));
        }
    }
}

#[test]
fn no_source_file_is_over_the_limit_outside_tests() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter(|f| f.file_name().is_none_or(|n| n != "tests.rs"))
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.strip_prefix(src()).unwrap().display()))
        })
        .collect();
    assert!(long.is_empty(), "source files over {MAX_LINES} lines (move tests to `<module>/tests.rs`): {long:?}");
}
