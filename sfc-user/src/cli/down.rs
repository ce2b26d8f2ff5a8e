use std::process::ExitCode;

use crate::datapath::{self, DatapathError, Location};

pub fn run(loc: &Location) -> anyhow::Result<ExitCode> {
    match datapath::down(loc) {
        Ok(r) => {
            println!(
                "removed: {} links detached, {} pinned objects removed from {}",
                r.detached,
                r.unpinned,
                loc.pin_dir.display()
            );
            if let Some(dev) = r.overlay_removed {
                println!("removed the overlay device {dev} (sfc run --etcd had created it)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(DatapathError::NotInstalled(p)) => {
            println!("nothing installed at {}", p.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e.into()),
    }
}
