//! The Grafana dashboard in `deploy/grafana`, as the tests see it: the JSON grafyaml makes of
//! the YAML (its panels' queries and its template variables), queries made runnable against
//! Prometheus (variables given every value), and grafyaml itself, in the venv `cargo xtask
//! setup` makes.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

/// The window a query's `$__rate_interval` becomes: what Grafana would pick for a short time
/// range over a 1 s scrape interval (at least four scrapes), with room for a late scrape.
pub const RATE_WINDOW: &str = "15s";

/// `deploy/grafana` of the workspace.
pub fn dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana");
    dir.canonicalize().unwrap_or(dir)
}

/// The dashboard JSON (`sfc.json`), parsed; panics when it cannot be read.
pub fn json() -> serde_json::Value {
    let path = dir().join("sfc.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One query of a panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub panel: String,
    pub ref_id: String,
    pub expr: String,
}

/// Every query of every panel (grafyaml's layout: `rows[].panels[].targets[]`).
pub fn targets(dashboard: &serde_json::Value) -> Vec<Target> {
    let list = |v: &serde_json::Value| v.as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for row in list(&dashboard["rows"]) {
        for panel in list(&row["panels"]) {
            for t in list(&panel["targets"]) {
                out.push(Target {
                    panel: panel["title"].as_str().unwrap_or_default().to_owned(),
                    ref_id: t["refId"].as_str().unwrap_or_default().to_owned(),
                    expr: t["expr"].as_str().unwrap_or_default().to_owned(),
                });
            }
        }
    }
    out
}

/// A template variable: its name, type (`datasource`, `query`, ...) and query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub name: String,
    pub kind: String,
    pub query: String,
}

pub fn variables(dashboard: &serde_json::Value) -> Vec<Variable> {
    let list = dashboard["templating"]["list"].as_array().cloned();
    list.unwrap_or_default()
        .iter()
        .map(|v| Variable {
            name: v["name"].as_str().unwrap_or_default().to_owned(),
            kind: v["type"].as_str().unwrap_or_default().to_owned(),
            query: v["query"].as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

/// `expr` as Prometheus can run it: `$__rate_interval` becomes [`RATE_WINDOW`], and each
/// query variable (`$name` or `${name}`) `.*`, what its "All" selects through `=~`. Any other
/// `$` is an error: a variable this does not know how to fill.
pub fn runnable(expr: &str, variables: &[Variable]) -> Result<String> {
    let mut out = expr.replace("$__rate_interval", RATE_WINDOW);
    // Longest names first, so that `$chain` cannot eat the start of `$chains`.
    let mut names: Vec<&str> = variables
        .iter()
        .filter(|v| v.kind == "query")
        .map(|v| v.name.as_str())
        .collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        out = out
            .replace(&format!("${{{name}}}"), ".*")
            .replace(&format!("${name}"), ".*");
    }
    if out.contains('$') {
        bail!("{expr}: a variable that is neither $__rate_interval nor a query variable");
    }
    Ok(out)
}

/// The selector and label of a `label_values(selector, label)` variable query.
pub fn label_values(query: &str) -> Result<(String, String)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .with_context(|| format!("{query}: not label_values(selector, label)"))?;
    let (selector, label) = inner
        .rsplit_once(',')
        .with_context(|| format!("{query}: no label"))?;
    Ok((selector.trim().to_owned(), label.trim().to_owned()))
}

/// grafyaml's venv: `$SFC_GRAFYAML` (set by `cargo xtask test`), else `<target>/grafyaml`, where
/// `cargo xtask setup` makes it. Panics when it has no `grafana-dashboard`: a test that cannot
/// run must fail loudly.
pub fn grafyaml_venv() -> PathBuf {
    let venv = std::env::var_os("SFC_GRAFYAML").map_or_else(
        || {
            std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(
                    || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
                    PathBuf::from,
                )
                .join("grafyaml")
        },
        PathBuf::from,
    );
    let venv = venv.canonicalize().unwrap_or(venv);
    assert!(
        venv.join("bin/grafana-dashboard").is_file(),
        "no grafyaml in {}: `cargo xtask setup` installs it (or set SFC_GRAFYAML to its venv)",
        venv.display()
    );
    venv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(name: &str, kind: &str) -> Variable {
        Variable {
            name: name.into(),
            kind: kind.into(),
            query: String::new(),
        }
    }

    #[test]
    fn fills_rate_interval_and_query_variables() {
        let vars = [
            var("datasource", "datasource"),
            var("chain", "query"),
            var("chains", "query"),
        ];
        let expr = r#"rate(x{chain=~"$chain",c=~"${chains}"}[$__rate_interval])"#;
        assert_eq!(
            runnable(expr, &vars).unwrap(),
            r#"rate(x{chain=~".*",c=~".*"}[15s])"#
        );
        assert!(runnable("x{a=~\"$datasource\"}", &vars).is_err());
        assert!(runnable("x[$__interval]", &vars).is_err());
    }

    #[test]
    fn reads_label_values_queries() {
        assert_eq!(
            label_values(r#"label_values(m{i=~"$i"}, chain)"#).unwrap(),
            (r#"m{i=~"$i"}"#.to_owned(), "chain".to_owned())
        );
        assert!(label_values("query_result(up)").is_err());
    }
}
