//! The house drawn from the code: which top-level module of `src/` uses which,
//! read from the source (`crate::…` paths outside comments). No circle, and the
//! HTTP floor (`src/http/`) uses neither the API, the sockets nor the state.

use std::collections::{BTreeMap, BTreeSet};

/// Names the crate root re-exports, and the module each lives in.
const ROOT_ITEMS: &[(&str, &str)] = &[
    ("Doorman", "doorman"),
    ("Builder", "doorman"),
    ("StartError", "doorman"),
    ("shutdown_signal", "doorman"),
    ("Authenticated", "extract"),
    ("MaybeAuthenticated", "extract"),
    ("init_logging", "logging"),
    ("GuardedAcceptor", "http"),
    ("Config", "config"),
    ("Application", "app"),
];

fn source_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a piece of Rust names through `crate::`.
fn used_modules(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let word = regex::Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*").unwrap();
    let mut used = BTreeSet::new();
    let mut name = |n: &str| {
        let module = ROOT_ITEMS
            .iter()
            .find(|(item, _)| *item == n)
            .map_or(n, |(_, module)| module);
        if modules.contains(module) {
            used.insert(module.to_owned());
        }
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::…, b, c::{…}}`: the first word of each top-level item.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        item_start = false;
                        if let Some(m) = word.find(&group[i..]) {
                            name(m.as_str());
                        }
                    }
                    _ => {}
                }
            }
        } else if let Some(m) = word.find(rest) {
            name(m.as_str());
        }
    }
    used
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let top = |path: &std::path::Path| {
        let rel = path.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_owned()
    };
    let modules: BTreeSet<String> = files.iter().map(|f| top(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let me = top(file);
        let code: String = std::fs::read_to_string(file)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let uses = used_modules(&code, &modules);
        let entry = graph.entry(me.clone()).or_default();
        entry.extend(uses.into_iter().filter(|m| *m != me));
    }
    // The crate root only declares and re-exports.
    graph.remove("lib");
    graph.remove("main");
    graph
}

#[test]
fn the_modules_form_no_circle() {
    let graph = graph();
    // Depth-first search; a module met again on the current path closes a circle.
    fn visit<'a>(
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        module: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(at) = path.iter().position(|m| *m == module) {
            panic!(
                "a circle: {}",
                [&path[at..], &[module]].concat().join(" → ")
            );
        }
        if !done.insert(module) {
            return;
        }
        path.push(module);
        for next in graph.get(module).into_iter().flatten() {
            visit(graph, next, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(&graph, module, &mut Vec::new(), &mut done);
    }
    // The reading finds real edges (a reader that found none would pass).
    assert!(graph["front"].contains("api") && graph["api"].contains("extract"));
}

#[test]
fn the_http_floor_uses_neither_the_api_the_sockets_nor_the_state() {
    let graph = graph();
    let http = &graph["http"];
    for above in [
        "api", "ws", "sockets", "state", "doorman", "front", "extract", "app",
    ] {
        assert!(!http.contains(above), "src/http/ uses {above}: {http:?}");
    }
    assert!(http.contains("auth"), "{http:?}");
}
