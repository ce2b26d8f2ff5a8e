//! The library's layers (README, Layout): each top-level module of `sfc-user/src` imports only
//! from the layers before it, so no import circle between layers can exist. Read from the source
//! text: every `crate::<module>` path, grouped imports (`use crate::{a, b::c}`) included.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// Layers in order; modules in one layer do not import each other.
const LAYERS: &[&[&str]] = &[&["config", "maglev"], &["model"], &["compile"], &["datapath"], &["view", "etcd"], &["metrics"], &["cli"]];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())).flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules a source text names through `crate::`.
fn crate_imports(text: &str) -> BTreeSet<String> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The items of the group at depth 1: `a`, `b::c`, `d::{e, f}`.
            let (mut depth, mut start) = (0usize, 0usize);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.insert(ident(group[start..j].trim_start()));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(group[start..j].trim_start()));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

#[test]
fn each_layer_imports_only_the_layers_before_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut checked = 0;
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap_or(f);
        let top = rel.components().next().map(|c| c.as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned()).unwrap_or_default();
        let Some(own) = layer_of(&top) else {
            assert!(["lib", "main"].contains(&top.as_str()), "{}: module '{top}' is in no layer; add it to LAYERS and the README", rel.display());
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
        for m in crate_imports(&text) {
            match layer_of(&m) {
                Some(l) if l < own || m == top => {}
                Some(_) => wrong.push(format!("{}: imports crate::{m}, a later layer than {top}", rel.display())),
                None => wrong.push(format!("{}: imports crate::{m}, which is in no layer", rel.display())),
            }
        }
        checked += 1;
    }
    assert!(checked > 40, "only {checked} files read from {}", src.display());
    assert!(wrong.is_empty(), "imports against the layers:\n{}", wrong.join("\n"));
}

#[test]
fn grouped_and_plain_imports_are_read() {
    let text = "use crate::{\n    compile::{self, Ids},\n    model::Model,\n};\nfn f() { crate::view::stats::x(); }\n";
    assert_eq!(crate_imports(text), BTreeSet::from(["compile".to_owned(), "model".to_owned(), "view".to_owned()]));
    assert!(crate_imports("use super::x;").is_empty());
}
