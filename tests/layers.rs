//! The module arrows, read from the source: the queue core uses nothing above it, the tablo
//! app nothing of the surfaces, and no two modules (at any level, among siblings) use each
//! other, directly or round a longer circle.
//!
//! It reads `src/**/*.rs` as text: every `crate::`, `$crate::`, `super::` and `self::` path (in
//! `use` trees too), with comments and literals left out, resolved against the module the
//! file (or an inline `mod`) defines. A path through a crate-root re-export (`crate::Client`)
//! counts as a use of the module that defines it. `cargo test --test layers -- --nocapture`
//! prints the arrows between top-level modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom up. A module may use its own layer (without circles) and those below.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "the queue core",
        &[
            "error",
            "job",
            "worker",
            "store",
            "workflow",
            "batch",
            "client",
            "events",
            "runtime",
            "maintenance",
            "testing",
            "jobs",
        ],
    ),
    ("the tablo app", &["app"]),
    ("the surfaces", &["http", "bench", "cli"]),
];

/// Circles among submodules that are known and being taken apart: (parent module, the
/// modules on the circle). The test fails on any other circle, and says when one of these is
/// gone (then delete its line), so this list only shrinks.
const KNOWN_CIRCLES: &[(&str, &[&str])] = &[];

#[test]
fn layers_point_down_and_modules_form_no_circle() {
    let graph = Graph::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let top = graph.top_level();
    println!("module arrows (top level):");
    for (from, tos) in &top {
        let tos: Vec<&str> = tos.keys().map(String::as_str).collect();
        println!("  {from} -> {}", tos.join(", "));
    }

    let mut problems = Vec::new();
    let layer_of = |m: &str| LAYERS.iter().position(|(_, ms)| ms.contains(&m));
    for module in &graph.top_modules {
        if layer_of(module).is_none() {
            problems.push(format!(
                "top-level module `{module}` is in no layer: add it to LAYERS in tests/layers.rs"
            ));
        }
    }
    for (from, tos) in &top {
        for (to, evidence) in tos {
            if let (Some(a), Some(b)) = (layer_of(from), layer_of(to)) {
                if b > a {
                    problems.push(format!(
                        "{from} ({}) uses {to} ({}), a layer above it: {evidence}",
                        LAYERS[a].0, LAYERS[b].0
                    ));
                }
            }
        }
    }
    let mut known: BTreeSet<(String, BTreeSet<String>)> = KNOWN_CIRCLES
        .iter()
        .map(|(p, ms)| (p.to_string(), ms.iter().map(|m| m.to_string()).collect()))
        .collect();
    for (parent, edges) in &graph.sibling_edges {
        for circle in circles(edges) {
            let key = (parent.join("::"), circle.iter().cloned().collect());
            if known.remove(&key) {
                continue;
            }
            let within = if parent.is_empty() {
                "the crate".to_string()
            } else {
                parent.join("::")
            };
            let steps: Vec<String> = circle
                .windows(2)
                .map(|w| format!("{} -> {} ({})", w[0], w[1], edges[&w[0]][&w[1]]))
                .collect();
            problems.push(format!("a circle in {within}: {}", steps.join("; ")));
        }
    }
    for (parent, modules) in known {
        // Not a failure: whoever took it apart need not know this list.
        println!("the circle of {modules:?} in {parent} is gone: delete it from KNOWN_CIRCLES");
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// The reader itself: paths resolve as rustc resolves them, comments and strings do not count.
#[test]
fn the_reader_resolves_paths_as_rustc_does() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let write = |path: &str, text: &str| {
        let path = src.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "lib.rs",
        "mod a; mod b; mod c; mod d;\npub use d::{Thing, other::More};\n",
    );
    write(
        "a/mod.rs",
        "mod inner;\nuse crate::{b::{X, Y}, c};\n// crate::d::in_a_comment\nconst S: &str = \"crate::d::in_a_string\";\n",
    );
    write(
        "a/inner.rs",
        "use super::super::c::Z;\nfn f() { crate::Thing::new(); }\n",
    );
    write("b.rs", "mod tests { use super::*; use crate::a; }\n");
    write("c.rs", "fn f() -> char { '\"' } // crate::d\n");
    write("d/mod.rs", "pub mod other;\n");
    write("d/other.rs", "use self::super::super::b;\n");
    let graph = Graph::read(src);
    let top = graph.top_level();
    let arrows: Vec<(String, String)> = top
        .iter()
        .flat_map(|(from, tos)| tos.keys().map(move |to| (from.clone(), to.clone())))
        .collect();
    let expected: Vec<(String, String)> =
        [("a", "b"), ("a", "c"), ("a", "d"), ("b", "a"), ("d", "b")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
    assert_eq!(arrows, expected);
    let names = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        circles(&graph.sibling_edges[&Vec::new()]),
        vec![names(&["a", "b", "a"]), names(&["a", "d", "b", "a"])],
        "a -> b -> a, and a -> d -> b -> a"
    );
}

/// Which module uses which, read from the source.
struct Graph {
    /// The crate's top-level modules (files under src/, lib.rs and main.rs aside).
    top_modules: BTreeSet<String>,
    /// For each parent module (`[]` for the crate), its children's arrows:
    /// from -> to -> one place that shows it.
    sibling_edges: BTreeMap<Vec<String>, BTreeMap<String, BTreeMap<String, String>>>,
}

impl Graph {
    fn read(src: &Path) -> Graph {
        let mut files = Vec::new();
        collect_rs(src, &mut files);
        files.sort();
        let modules: Vec<(PathBuf, Vec<String>)> = files
            .iter()
            .filter_map(|f| module_of(src, f).map(|m| (f.clone(), m)))
            .collect();
        let known: BTreeSet<Vec<String>> = modules.iter().map(|(_, m)| m.clone()).collect();
        let reexports = root_reexports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
        let mut graph = Graph {
            top_modules: known
                .iter()
                .filter(|m| m.len() == 1)
                .map(|m| m[0].clone())
                .collect(),
            sibling_edges: BTreeMap::new(),
        };
        for (file, module) in &modules {
            if module.is_empty() {
                continue; // lib.rs: declares and re-exports, uses nothing
            }
            let text = std::fs::read_to_string(file).unwrap();
            let shown = file.strip_prefix(src.parent().unwrap()).unwrap_or(file);
            for (from, path) in paths_in(&tokens(&strip(&text)), module) {
                let Some(to) = resolve(&path, &known, &reexports) else {
                    continue;
                };
                let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
                if common == from.len() || common == to.len() {
                    continue; // a module and its own ancestor or descendant
                }
                graph
                    .sibling_edges
                    .entry(from[..common].to_vec())
                    .or_default()
                    .entry(from[common].clone())
                    .or_default()
                    .entry(to[common].clone())
                    .or_insert_with(|| format!("{} uses {}", shown.display(), path.join("::")));
            }
        }
        graph
    }

    fn top_level(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.sibling_edges
            .get(&Vec::new())
            .cloned()
            .unwrap_or_default()
    }
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file defines: `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `lib.rs` is the
/// crate; `main.rs` (the binary, a crate of its own) is left out.
fn module_of(src: &Path, file: &Path) -> Option<Vec<String>> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    match (parts.is_empty(), stem) {
        (true, "lib") => Some(Vec::new()),
        (true, "main") => None,
        (_, "mod") => Some(parts),
        _ => {
            parts.push(stem.to_string());
            Some(parts)
        }
    }
}

/// lib.rs's `pub use m::...::{A, B}`: each name to its top-level module.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let toks = tokens(&strip(lib));
    for (i, t) in toks.iter().enumerate() {
        if t == "use" {
            let mut j = i + 1;
            let mut trees = Vec::new();
            parse_tree(&toks, &mut j, &mut Vec::new(), &mut trees);
            for path in trees {
                if path.len() >= 2 {
                    map.insert(path.last().unwrap().clone(), path[0].clone());
                }
            }
        }
    }
    map
}

/// Source text with comments, string and char literals blanked out (lifetimes kept apart
/// from char literals).
fn strip(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c[i] == 'r'
            && matches!(c.get(i + 1), Some('"') | Some('#'))
            && !ident_char_before(&c, i)
        {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= c.len() {
                    break;
                }
                if c[j] == '"' && (0..hashes).all(|h| c.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
            out.push_str("\"\"");
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c[i] == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if c.get(i + 1) == Some(&'\\') {
                let mut j = i + 2;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
                out.push_str("' '");
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c[i]);
                i += 1;
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn ident_char_before(c: &[char], i: usize) -> bool {
    i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_')
}

/// Identifiers (with `$crate` as one), `::`, and single punctuation characters.
fn tokens(text: &str) -> Vec<String> {
    let c: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if c[i].is_alphabetic() || c[i] == '_' || (c[i] == '$' && c.get(i + 1) == Some(&'c')) {
            let start = i;
            i += 1;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(
                c[start..i]
                    .iter()
                    .collect::<String>()
                    .replace("$crate", "crate"),
            );
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else if c[i].is_whitespace() {
            i += 1;
        } else {
            out.push(c[i].to_string());
            i += 1;
        }
    }
    out
}

/// Every `crate::`/`super::`/`self::` path in a file of module `module`, resolved to an
/// absolute path (from the crate root), with the module (file or inline `mod`) it is in.
fn paths_in(toks: &[String], module: &[String]) -> Vec<(Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    // Inline modules: (name, brace depth inside them).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i].as_str();
        match t {
            "{" => depth += 1,
            "}" => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            "mod" if toks.get(i + 2).is_some_and(|t| t == "{") => {
                inline.push((toks[i + 1].clone(), depth + 1));
            }
            _ => {}
        }
        let starts_path = matches!(t, "crate" | "super" | "self")
            && toks.get(i + 1).is_some_and(|t| t == "::")
            && !(i > 0 && toks[i - 1] == "::");
        if !starts_path {
            i += 1;
            continue;
        }
        let mut here: Vec<String> = module.to_vec();
        here.extend(inline.iter().map(|(n, _)| n.clone()));
        let mut base = if t == "crate" {
            Vec::new()
        } else {
            here.clone()
        };
        let mut j = i;
        // Leading `crate::`, `self::`, `super::` segments.
        while j < toks.len() && matches!(toks[j].as_str(), "crate" | "super" | "self") {
            if toks[j] == "super" {
                base.pop();
            }
            if toks.get(j + 1).is_some_and(|t| t == "::") {
                j += 2;
            } else {
                break;
            }
        }
        let mut trees = Vec::new();
        parse_tree(toks, &mut j, &mut Vec::new(), &mut trees);
        if trees.is_empty() {
            trees.push(Vec::new()); // `super::*`: the module itself
        }
        for tail in trees {
            let mut path = base.clone();
            path.extend(tail);
            out.push((here.clone(), path));
        }
        i = j.max(i + 1);
    }
    out
}

/// Parses a path or a use tree from `toks[*j]`: `a::b::C`, `a::{b, c::{D, E}}`, `a::*`.
/// Pushes every leaf path (prefixed with `prefix`) onto `out`.
fn parse_tree(
    toks: &[String],
    j: &mut usize,
    prefix: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) {
    let start_len = prefix.len();
    loop {
        match toks.get(*j).map(String::as_str) {
            Some("{") => {
                *j += 1;
                loop {
                    match toks.get(*j).map(String::as_str) {
                        Some("}") => {
                            *j += 1;
                            break;
                        }
                        Some(",") => *j += 1,
                        None => break,
                        _ => {
                            let before = *j;
                            parse_tree(toks, j, prefix, out);
                            if *j == before {
                                *j += 1;
                            }
                        }
                    }
                }
                break;
            }
            Some(t) if is_ident(t) => {
                prefix.push(t.to_string());
                *j += 1;
                if toks.get(*j).is_some_and(|t| t == "::") {
                    *j += 1;
                    continue;
                }
                // `as alias` ends the path.
                if toks.get(*j).is_some_and(|t| t == "as") {
                    *j += 2;
                }
                out.push(prefix.clone());
                break;
            }
            _ => {
                // `*`, `<` (generics), or nothing: the path so far.
                if !prefix.is_empty() {
                    out.push(prefix.clone());
                }
                break;
            }
        }
    }
    prefix.truncate(start_len);
}

fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && t != "self"
}

/// The module an absolute path lands in: its longest prefix that is a module of the crate,
/// or, for a crate-root name, the module lib.rs re-exports it from.
fn resolve(
    path: &[String],
    known: &BTreeSet<Vec<String>>,
    reexports: &BTreeMap<String, String>,
) -> Option<Vec<String>> {
    if let Some(n) = (1..=path.len()).rev().find(|&n| known.contains(&path[..n])) {
        return Some(path[..n].to_vec());
    }
    reexports.get(path.first()?).map(|m| vec![m.clone()])
}

/// Every circle among `edges`' nodes, once each (from its smallest node), closing on itself.
fn circles(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    let mut found = BTreeSet::new();
    for start in edges.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((node, path)) = stack.pop() {
            for next in edges.get(&node).map(|m| m.keys()).into_iter().flatten() {
                if next == start {
                    let mut circle = path.clone();
                    circle.push(start.clone());
                    if path.iter().min() == Some(start) {
                        found.insert(circle);
                    }
                } else if !path.contains(next) && next > start {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    found.into_iter().collect()
}
