//! Empty library target: `sfc-user` build-depends on this crate so cargo rebuilds it when the
//! kernel programs change (the programs themselves are the `sfc` binary target).
#![no_std]
