//! Exit codes (DESIGN.md section 4, `sfc --help`), and how an error picks one.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done (also `sfc down` with nothing installed) |
//! | 1 | invalid input: the chain file (also one that cannot be read), the arguments, API objects; nothing was changed |
//! | 2 | runtime failure: the kernel, an interface, permissions, bpffs, etcd |
//! | 3 | nothing is installed where the command looks (`--netns`, `--pin-dir`) |

use std::process::ExitCode;

use crate::{config::ConfigError, datapath::DatapathError};

pub const INVALID: u8 = 1;
pub const RUNTIME: u8 = 2;
pub const NOT_INSTALLED: u8 = 3;

/// An error in what the user gave (a file, an argument), as opposed to one the system raised.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// `anyhow::Error` of an [`Invalid`] input: `invalid!("--proto: {m}")`.
macro_rules! invalid {
    ($($t:tt)*) => { ::anyhow::Error::new($crate::cli::exit::Invalid(format!($($t)*))) };
}
pub(crate) use invalid;

/// The exit code for `e`: the first cause that says what kind of failure it is decides.
pub fn code_of(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<Invalid>() || cause.is::<ConfigError>() {
            return INVALID;
        }
        if let Some(d) = cause.downcast_ref::<DatapathError>() {
            return if matches!(d, DatapathError::NotInstalled(_)) { NOT_INSTALLED } else { RUNTIME };
        }
    }
    RUNTIME
}

pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}
