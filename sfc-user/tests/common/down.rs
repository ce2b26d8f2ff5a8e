//! `sfc down` of a datapath a test applied, on drop: also when the test fails, nothing it
//! pinned or attached is left behind.

use sfc::datapath::{self, Location};

/// `sfc down` of a location on drop.
pub struct Down<'a>(pub &'a Location);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        if let Err(e) = datapath::down(self.0) {
            eprintln!("sfc down of {}: {e}", self.0.pin_dir.display());
        }
    }
}
