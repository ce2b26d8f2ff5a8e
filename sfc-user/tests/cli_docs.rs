//! The man pages and shell completions under `deploy/` (what the Debian package installs) are
//! generated from the command line's clap definitions; this test fails when they drift. After
//! changing an option or a help text: `SFC_BLESS=1 cargo test -p sfc-user --test cli_docs`
//! rewrites them (commit the result).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use clap_complete::Shell;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every file the clap definitions generate: `man/sfc.1`, `man/sfc-apply.1`, ...,
/// `completions/sfc.bash`, `completions/_sfc`, `completions/sfc.fish`.
fn generated() -> BTreeMap<PathBuf, Vec<u8>> {
    // The version without the git revision and object hash, which change with every commit.
    let cmd = sfc::cli::command().version(env!("CARGO_PKG_VERSION")).long_version(env!("CARGO_PKG_VERSION"));
    let dir = tempfile::tempdir().expect("tempdir");
    clap_mangen::generate_to(cmd, dir.path()).expect("generating the man pages");
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir.path()).expect("read_dir") {
        let p = e.expect("entry").path();
        let name = p.file_name().expect("name").to_owned();
        out.insert(Path::new("man").join(name), std::fs::read(&p).expect("read"));
    }
    for (shell, file) in [(Shell::Bash, "sfc.bash"), (Shell::Zsh, "_sfc"), (Shell::Fish, "sfc.fish")] {
        out.insert(Path::new("completions").join(file), sfc::cli::completion_script(shell).into_bytes());
    }
    out
}

#[test]
fn man_pages_and_completions_match_the_command_line() {
    let want = generated();
    assert!(want.contains_key(Path::new("man/sfc.1")) && want.contains_key(Path::new("man/sfc-apply.1")), "{:?}", want.keys());
    let bless = std::env::var_os("SFC_BLESS").is_some();
    let mut stale = Vec::new();
    for (rel, body) in &want {
        let path = deploy().join(rel);
        if std::fs::read(&path).ok().as_ref() != Some(body) {
            if bless {
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                std::fs::write(&path, body).expect("write");
            } else {
                stale.push(rel.display().to_string());
            }
        }
    }
    // A page of a command that no longer exists is stale too.
    for sub in ["man", "completions"] {
        for e in std::fs::read_dir(deploy().join(sub)).into_iter().flatten().flatten() {
            let rel = Path::new(sub).join(e.file_name());
            if !want.contains_key(&rel) {
                if bless {
                    std::fs::remove_file(e.path()).expect("remove");
                } else {
                    stale.push(format!("{} (no such command)", rel.display()));
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "deploy/ differs from the clap definitions: {}; regenerate with `SFC_BLESS=1 cargo test -p sfc-user --test cli_docs` and commit",
        stale.join(", ")
    );
}

#[test]
fn completions_know_every_command() {
    let bash = sfc::cli::completion_script(Shell::Bash);
    for sub in sfc::cli::command().get_subcommands() {
        assert!(bash.contains(sub.get_name()), "bash completion lacks `{}`", sub.get_name());
    }
    let fish = sfc::cli::completion_script(Shell::Fish);
    assert!(fish.contains("-a \"apply\"") || fish.contains("-a apply") || fish.contains("\"apply\""), "{fish}");
}
