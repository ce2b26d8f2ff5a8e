//! The log line of an apply under `sfc run`: what changed, what it found, how long it took.

use std::fmt::Write as _;

use crate::{cli::table::list, datapath::ApplyReport};

/// `read`: how long reading and checking the configuration (the file, or etcd's value) took
/// before the apply (none for a re-apply of the running model).
pub(super) fn summary(file: &str, r: &ApplyReport, read: Option<std::time::Duration>) -> String {
    let c = &r.map_changes;
    let mut s = if r.flipped {
        format!(
            "{} {file}: generation {} live, map entries {} added, {} changed, {} removed",
            if r.first_load { "installed" } else { "applied" },
            r.generation,
            c.added,
            c.changed,
            c.removed
        )
    } else {
        format!("applied {file}: no change (generation {} stays live)", r.generation)
    };
    for (what, items) in [
        ("down, failing over", list(&r.went_down)),
        ("back up", list(&r.came_up)),
        ("waiting for a MAC", list(&r.waiting_for_mac)),
        ("absent (members out, classifiers off until they appear)", list(&r.absent)),
        ("MAC learnt, serving", list(&r.got_mac)),
        ("draining", list(&r.draining)),
        ("drained and removed", list(&r.drained)),
        ("attached", list(&r.attached)),
        ("XDP peers", list(&r.peers)),
        ("detached", list(&r.detached)),
    ] {
        if !items.is_empty() {
            let _ = write!(s, "; {what}: {items}");
        }
    }
    let took: std::time::Duration = r.steps.iter().map(|(_, d)| *d).sum();
    let _ = write!(
        s,
        "; took {:.1} ms{}",
        took.as_secs_f64() * 1000.0,
        if r.from_kept { " (incremental: from what the last apply kept)" } else { "" }
    );
    if let Some(read) = read {
        let _ = write!(s, ", after reading and checking the configuration in {:.1} ms", read.as_secs_f64() * 1000.0);
    }
    s
}
