//! `sfc down`: detach everything, unpin, delete the overlay device sfc created. Nothing
//! installed is not an error (exit 0): `down` is what a script runs to be sure.

use std::process::ExitCode;

use crate::datapath::{self, DatapathError, Location};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object instead of text: the pin directory, whether anything was installed,
    /// links detached, pins removed, the overlay device removed (README, "Scripting sfc").
    #[arg(long)]
    json: bool,
}

pub fn run(loc: &Location, a: &Args) -> anyhow::Result<ExitCode> {
    let r = match datapath::down(loc) {
        Ok(r) => Some(r),
        Err(DatapathError::NotInstalled(_)) => None,
        Err(e) => return Err(e.into()),
    };
    super::run::remove_stale_lock(loc);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "pin_dir": loc.pin_dir,
                "installed": r.is_some(),
                "detached": r.as_ref().map_or(0, |r| r.detached),
                "unpinned": r.as_ref().map_or(0, |r| r.unpinned),
                "overlay_removed": r.as_ref().and_then(|r| r.overlay_removed.clone()),
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    match r {
        Some(r) => {
            println!(
                "removed: {} links detached, {} pinned objects removed from {}",
                r.detached,
                r.unpinned,
                loc.pin_dir.display()
            );
            if let Some(dev) = r.overlay_removed {
                println!("removed the overlay device {dev} (sfc run --etcd had created it)");
            }
        }
        None => println!("nothing installed at {}", loc.pin_dir.display()),
    }
    Ok(ExitCode::SUCCESS)
}
