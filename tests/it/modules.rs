//! The library's modules depend on each other one way: no module reaches, through `crate::` or
//! `super::` paths, a module that reaches it back. A module is a file (`src/a.rs` or
//! `src/a/mod.rs` is `a`, `src/a/b.rs` is `a::b`); a module using its parent or its child does
//! not count, since that is how Rust nests modules. The binary (`src/bin/`) is left out: it may
//! use anything, and nothing may use it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

#[test]
fn library_modules_have_no_import_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules_in(&src);
    assert!(
        modules.contains_key("store") && modules.contains_key("http"),
        "found no modules under {}",
        src.display()
    );
    let graph = dependencies(&modules);
    let cycles = cycles(&graph);
    let mut text = String::new();
    for cycle in &cycles {
        text.push_str(&format!("cycle: {}\n", cycle.join(" -> ")));
        for pair in cycle.windows(2) {
            let paths = &graph[&pair[0]][&pair[1]];
            text.push_str(&format!("  {} -> {}: {paths:?}\n", pair[0], pair[1]));
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{text}");
}

/// Module path → source text with line comments removed.
fn modules_in(src: &Path) -> BTreeMap<String, String> {
    let mut modules = BTreeMap::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path != src.join("bin") {
                    pending.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] {
                parts.clear();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code: Vec<&str> = text
                .lines()
                .map(|line| line.find("//").map_or(line, |at| &line[..at]))
                .collect();
            modules.insert(parts.join("::"), code.join("\n"));
        }
    }
    modules
}

/// For each module, the unrelated modules it names, with the paths that name them.
fn dependencies(modules: &BTreeMap<String, String>) -> Graph {
    let resolve = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|candidate| modules.contains_key(candidate))
    };
    let related = |a: &str, b: &str| {
        a == b
            || a.is_empty()
            || b.is_empty()
            || a.starts_with(&format!("{b}::"))
            || b.starts_with(&format!("{a}::"))
    };
    let mut graph = Graph::new();
    for (module, code) in modules {
        for (base, rest) in paths_in(code) {
            let full = if base == "super" {
                match module.rsplit_once("::") {
                    Some((parent, _)) => format!("{parent}::{rest}"),
                    None => rest.clone(),
                }
            } else {
                rest.clone()
            };
            if let Some(target) = resolve(&full).filter(|t| !related(module, t)) {
                graph
                    .entry(module.clone())
                    .or_default()
                    .entry(target)
                    .or_default()
                    .insert(format!("{base}::{rest}"));
            }
        }
    }
    graph
}

/// Every `crate::a::b` / `super::a` path in `code` as (base, "a::b"), `use crate::{a, b::c}`
/// groups expanded.
fn paths_in(code: &str) -> Vec<(&'static str, String)> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut found = Vec::new();
    for base in ["crate", "super"] {
        let marker = format!("{base}::");
        let mut at = 0;
        while let Some(offset) = code[at..].find(&marker) {
            let start = at + offset;
            at = start + marker.len();
            if code[..start].chars().next_back().is_some_and(ident) {
                continue;
            }
            let rest = &code[at..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find("};").or_else(|| group.find('}')).unwrap_or(0);
                for item in group[..end].split(',') {
                    let item: String = item
                        .split("::{")
                        .next()
                        .unwrap()
                        .split(" as ")
                        .next()
                        .unwrap()
                        .split_whitespace()
                        .collect();
                    if !item.is_empty() {
                        found.push((base, item));
                    }
                }
                continue;
            }
            let mut len = 0;
            loop {
                len += rest[len..]
                    .find(|c: char| !ident(c))
                    .unwrap_or(rest.len() - len);
                let next = &rest[len..];
                if next.starts_with("::") && next[2..].starts_with(ident) {
                    len += 2;
                } else {
                    break;
                }
            }
            let path = &rest[..len];
            if !path.is_empty() {
                found.push((base, path.to_owned()));
            }
        }
    }
    found
}

/// Each cycle found by a depth-first search, as the modules along it (first repeated at the end).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            found.push(cycle);
            return;
        }
        if !done.insert(node.to_owned()) {
            return;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(|edges| edges.keys()) {
            visit(next, graph, done, path, found);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    let mut found = Vec::new();
    for node in graph.keys() {
        visit(node, graph, &mut done, &mut Vec::new(), &mut found);
    }
    found
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let modules: BTreeMap<String, String> = [
        ("a", "use crate::b::Thing;"),
        ("b", "use crate::{c, d::Other};"),
        ("c", "fn f() { crate::a::g() }"),
        ("d", "use super::a;"),
        ("d::e", "use super::Other;"),
    ]
    .into_iter()
    .map(|(m, code)| (m.to_owned(), code.to_owned()))
    .collect();
    let graph = dependencies(&modules);
    assert_eq!(
        graph["b"].keys().collect::<Vec<_>>(),
        ["c", "d"],
        "a use group names both modules"
    );
    assert!(
        !graph.contains_key("d::e"),
        "a child using its parent is no edge"
    );
    let cycles = cycles(&graph);
    assert!(
        cycles.iter().any(|c| c == &["a", "b", "c", "a"]),
        "{cycles:?}"
    );
    assert!(
        cycles.iter().any(|c| c.contains(&"d".to_owned())),
        "{cycles:?}"
    );
}
