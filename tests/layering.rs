//! The module layering of `manhole/src`, as ARCHITECTURE.md writes it down, holds in the code.
//!
//! ARCHITECTURE.md's module table says, for every module of the runtime crate (a file, or a
//! directory counted as one), which modules it may use. This test reads that table and every
//! `crate::` path in `manhole/src` (`use` lines and paths in code; comments and string literals
//! skipped), and fails on:
//! - a use the table does not allow (the knot growing back),
//! - a cycle in the table itself (the layering must stay a DAG),
//! - a module in the tree the table does not list, or one it lists that is gone,
//! - a `crate::` path it cannot resolve to a module, a glob of the crate root, the root under
//!   another name, or a `#[path]` module (so the check cannot be sidestepped); `super::` chains
//!   that climb to the root and spaces or line breaks around `::` are seen through.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The module table: module → modules it may use, parsed from ARCHITECTURE.md's rows
/// `| `name` | … | `a`, `b` |` between the `<!-- layering -->` markers.
fn allowed(doc: &str) -> BTreeMap<String, BTreeSet<String>> {
    let start = doc
        .find("<!-- layering:begin -->")
        .expect("ARCHITECTURE.md has the layering table");
    let end = doc
        .find("<!-- layering:end -->")
        .expect("the layering table ends");
    let mut table = BTreeMap::new();
    for line in doc[start..end].lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | module | layer | owns | may use |
        if cells.len() < 6 || !cells[1].starts_with('`') {
            continue;
        }
        let name = cells[1].trim_matches('`').trim_end_matches('/').to_owned();
        let uses: BTreeSet<String> = cells[4]
            .split(',')
            .map(|u| u.trim().trim_matches('`').trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty() && u != "—")
            .collect();
        assert!(
            table.insert(name.clone(), uses).is_none(),
            "{name} is listed twice"
        );
    }
    table
}

/// The module a file of `manhole/src` belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("a file under src");
    let first = rel
        .components()
        .next()
        .expect("a path")
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The source without comments, string and char literals (their contents blanked).
fn code_only(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &source[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').map_or(source.len(), |n| i + n);
            i = end;
        } else if rest.starts_with("/*") {
            let mut depth = 0;
            while i < bytes.len() {
                if source[i..].starts_with("/*") {
                    depth += 1;
                    i += 2;
                } else if source[i..].starts_with("*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some(after) = raw_string_start(rest) {
            // r"…", r#"…"#, br"…"
            let hashes = &rest[..after].chars().filter(|c| *c == '#').count();
            let close = format!("\"{}", "#".repeat(*hashes));
            let end = rest[after..]
                .find(&close)
                .map_or(rest.len(), |n| after + n + close.len());
            out.push_str("\"\"");
            i += end;
        } else if bytes[i] == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if bytes[i] == b'\'' && is_char_literal(rest) {
            let len = rest[1..].find('\'').map_or(1, |n| n + 2);
            i += len;
            out.push_str("' '");
        } else {
            let c = rest.chars().next().expect("not at the end");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn raw_string_start(rest: &str) -> Option<usize> {
    let body = rest.strip_prefix('b').unwrap_or(rest).strip_prefix('r')?;
    let hashes = body.len() - body.trim_start_matches('#').len();
    body[hashes..]
        .starts_with('"')
        .then_some(rest.len() - body.len() + hashes + 1)
}

/// `'x'`, `'\n'`, `'\u{1f}'` (and not a lifetime `'a`).
fn is_char_literal(rest: &str) -> bool {
    let mut chars = rest.chars().skip(1);
    matches!(
        (chars.next(), chars.next()),
        (Some('\\'), _) | (Some(_), Some('\''))
    )
}

/// How deep a file's module is below the crate root: `a.rs` and `a/mod.rs` 1, `a/b.rs` 2.
fn depth_of(src: &Path, file: &Path) -> usize {
    let parts: Vec<_> = file
        .strip_prefix(src)
        .expect("a file under src")
        .components()
        .collect();
    parts.len() - usize::from(parts.last().is_some_and(|p| p.as_os_str() == "mod.rs"))
}

/// `code` with the spaces around `::` gone, and every `super::` chain that climbs to the crate
/// root (from a file `depth` deep, counting the inline `mod x { … }` it sits in) written as
/// `crate::`, so that [`crate_paths`] sees those uses too.
fn rooted(code: &str, depth: usize) -> String {
    let mut tight = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("::") {
        tight.push_str(rest[..at].trim_end());
        tight.push_str("::");
        rest = rest[at + 2..].trim_start();
    }
    tight.push_str(rest);

    let mut out = String::with_capacity(tight.len());
    let mut braces = 0usize;
    let mut inline_mods: Vec<usize> = Vec::new();
    let mut i = 0;
    let bytes = tight.as_bytes();
    while i < bytes.len() {
        let rest = &tight[i..];
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if boundary && rest.starts_with("super::") {
            let mut chain = 0usize;
            let mut j = i;
            while tight[j..].starts_with("super::") {
                chain += 1;
                j += "super::".len();
            }
            let up = chain.saturating_sub(inline_mods.len());
            if up >= depth && depth > 0 {
                out.push_str("crate::");
            } else {
                out.push_str(&tight[i..j]);
            }
            i = j;
            continue;
        }
        if boundary && rest.starts_with("mod ") {
            let after = rest["mod ".len()..].trim_start();
            let name_len = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if name_len > 0 && after[name_len..].trim_start().starts_with('{') {
                inline_mods.push(braces);
            }
        }
        match bytes[i] {
            b'{' => braces += 1,
            b'}' => {
                braces = braces.saturating_sub(1);
                if inline_mods.last() == Some(&braces) {
                    inline_mods.pop();
                }
            }
            _ => {}
        }
        let c = rest.chars().next().expect("not at the end");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Ways of naming the crate that hide which module is used: a glob of the root, the crate
/// under another name, a file included from elsewhere.
fn evasions(code: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    if code.contains("crate::*") {
        found.push("a glob import of the crate root (crate::*)");
    }
    if code.contains("use crate as") || code.contains("use crate;") || code.contains("crate::{self") {
        found.push("the crate root imported under a name");
    }
    if code.contains("#[path") {
        found.push("a #[path] module (counted where it is declared, not where it sits)");
    }
    found
}

/// The first path segment after each `crate::` (and `$crate::`), with `use crate::{a, b::c}`
/// giving `a` and `b`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + "crate::".len()..];
        rest = after;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `foo_crate::`
        }
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        found.extend(first_ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                // Only an item's first segment counts: nested groups ride along.
                item.push(c);
            }
            found.extend(first_ident(&item));
        } else {
            found.extend(first_ident(after));
        }
    }
    found
}

fn first_ident(s: &str) -> Option<String> {
    let s = s.trim_start();
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (end > 0).then(|| s[..end].to_owned())
}

/// The root's re-exports (`pub use module::{Name, …};` in lib.rs): a `crate::Name` path is a
/// use of the module that defines `Name`.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for line in code_only(lib).lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.trim_end_matches(';').split_once("::") else {
            continue;
        };
        for name in names.trim_matches(|c| c == '{' || c == '}').split(',') {
            let name = name.trim();
            if !name.is_empty() {
                map.insert(name.to_owned(), module.to_owned());
            }
        }
    }
    map
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("a dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// One use: `(module, used module, the file it is in)`.
type Edge = (String, String, PathBuf);

/// Every module's uses, the paths that resolve to no module, and the modules.
fn uses(src: &Path) -> (Vec<Edge>, Vec<String>, BTreeSet<String>) {
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let roots = reexports(&lib);
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    // lib.rs is the facade: it may use anything, and nothing may use it.
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(src, f))
        .filter(|m| m != "lib")
        .collect();
    let mut edges = Vec::new();
    let mut unresolved = Vec::new();
    for file in &files {
        let module = module_of(src, file);
        let code = rooted(
            &code_only(&std::fs::read_to_string(file).expect("readable file")),
            depth_of(src, file),
        );
        if module != "lib" {
            for evasion in evasions(&code) {
                unresolved.push(format!("{}: {evasion}", file.display()));
            }
        }
        for first in crate_paths(&code) {
            let target = if modules.contains(&first) {
                first.clone()
            } else if let Some(defining) = roots.get(&first) {
                defining.clone()
            } else {
                // Items the facade defines itself (`dump_stacktraces`, `__private`…): modules
                // must not reach up to the facade.
                "lib".to_owned()
            };
            if target == "lib" && module != "lib" {
                unresolved.push(format!("{}: crate::{first} (defined in lib.rs?)", file.display()));
            }
            if target != module {
                edges.push((module.clone(), target, file.clone()));
            }
        }
    }
    (edges, unresolved, modules)
}

/// Whether the table's "may use" relation has a cycle; returns one if so.
fn cycle(table: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        table: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|n| n == node).unwrap_or(0);
                let mut found = path[start..].to_vec();
                found.push(node.to_owned());
                return Some(found);
            }
            _ => {}
        }
        state.insert(node.to_owned(), 1);
        path.push(node.to_owned());
        for next in table.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, table, state, path) {
                return Some(found);
            }
        }
        path.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in table.keys() {
        if let Some(found) = visit(node, table, &mut state, &mut Vec::new()) {
            return Some(found);
        }
    }
    None
}

fn violations(table: &BTreeMap<String, BTreeSet<String>>, edges: &[Edge]) -> BTreeSet<String> {
    edges
        .iter()
        .filter(|(from, to, _)| from != "lib" && !table.get(from).is_some_and(|may| may.contains(to)))
        .map(|(from, to, file)| format!("{from} -> {to} (in {})", file.display()))
        .collect()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_runtime_crate_keeps_to_its_layering() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let table = allowed(&doc);
    let src = root().join("manhole/src");
    let (edges, unresolved, modules) = uses(&src);
    assert!(
        unresolved.is_empty(),
        "paths that name no module:\n{}",
        unresolved.join("\n")
    );

    let listed: BTreeSet<String> = table.keys().cloned().collect();
    let missing: Vec<_> = modules.difference(&listed).collect();
    let gone: Vec<_> = listed.difference(&modules).collect();
    assert!(
        missing.is_empty() && gone.is_empty(),
        "ARCHITECTURE.md's module table does not match manhole/src: not listed {missing:?}, \
         listed but not in the tree {gone:?}"
    );
    for (module, may) in &table {
        for used in may {
            assert!(
                listed.contains(used),
                "{module} may use {used}, which is not a module"
            );
        }
    }
    assert_eq!(cycle(&table), None, "the layering must be a DAG");

    let bad = violations(&table, &edges);
    assert!(
        bad.is_empty(),
        "uses the layering in ARCHITECTURE.md does not allow (move the code down, or pass a \
         trait or a fn in from above):\n{}",
        bad.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// The check itself can fail: today's layering, fed the back-edges the crate had before it was
/// layered (console reaching the server, stacks the console, options activation, fork the
/// installer), reports each of them; and it sees through grouped imports, `$crate`, and
/// re-exports, but not into comments and strings.
#[test]
fn the_check_catches_back_edges() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let table = allowed(&doc);
    let roots = reexports("pub use install::{Handle, install};\npub use error::Error;\n");
    let sources = [
        ("console", "use crate::server::Server;"),
        ("stacks", "use crate::{sys, console::Json};"),
        ("session", "fn f() { crate::install::forget_inherited(); }"),
        ("logging", "macro_rules! m { () => { $crate::session::serve() } }"),
        ("sys", "fn f() -> crate::Handle { todo!() }"),
    ];
    for (module, source) in sources {
        let firsts = crate_paths(&code_only(source));
        let edges: Vec<_> = firsts
            .iter()
            .map(|first| {
                let to = roots.get(first).cloned().unwrap_or_else(|| first.clone());
                (module.to_owned(), to, PathBuf::from("example.rs"))
            })
            .filter(|(from, to, _)| from != to)
            .collect();
        assert!(!violations(&table, &edges).is_empty(), "{module}: {source}");
    }
    // Spaces, line breaks and `super::` chains that climb to the root are seen through; a
    // `super::` inside the file's own inline module is not a use of anything else.
    let sneaky = [
        (1, "use super::install::Handle;"),
        (1, "use crate :: server :: Server;"),
        (1, "fn f() -> Option<crate\n    ::install::Handle> { None }"),
        (2, "use super::super::server::Server;"),
    ];
    for (depth, source) in sneaky {
        let firsts = crate_paths(&rooted(&code_only(source), depth));
        assert!(
            firsts.iter().any(|f| f == "install" || f == "server"),
            "{source}: {firsts:?}"
        );
    }
    let own = rooted("mod tests { use super::*; fn f() { super::helper(); } }", 1);
    assert!(crate_paths(&own).is_empty(), "{own}");
    for source in ["use crate::*;", "use crate as root;", "#[path = \"x.rs\"] mod x;"] {
        assert!(!evasions(source).is_empty(), "{source}");
    }
    let quiet = code_only("// use crate::server::Server;\nconst S: &str = \"crate::server\";\n");
    assert!(crate_paths(&quiet).is_empty(), "{quiet}");
    let mut with_cycle = table.clone();
    with_cycle
        .entry("sys".to_owned())
        .or_default()
        .insert("install".to_owned());
    assert!(cycle(&with_cycle).is_some());
}
