//! sfc kernel programs. Entry points are thin: they call `steer::try_steer` and turn its result
//! into exactly one verdict; every drop is counted by reason.
#![no_std]
#![no_main]

mod classify;
mod counters;
mod ctx;
mod lb;
mod maps;
mod parse;
mod steer;

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT},
    helpers::{bpf_redirect, bpf_redirect_peer},
    macros::classifier,
    programs::TcContext,
};
use sfc_common::DropReason;
use steer::{Action, try_steer};

/// tc ingress on every interface sfc manages.
#[classifier]
pub fn sfc_tc_ingress(ctx: TcContext) -> i32 {
    match try_steer(&ctx) {
        Ok(Action::Pass) => TC_ACT_OK,
        Ok(Action::Redirect { ifindex, peer }) => {
            let r = unsafe {
                if peer { bpf_redirect_peer(ifindex, 0) } else { bpf_redirect(ifindex, 0) }
            };
            if r == i64::from(TC_ACT_REDIRECT) {
                TC_ACT_REDIRECT
            } else {
                counters::drop(DropReason::RedirectFailed);
                TC_ACT_SHOT
            }
        }
        Err(reason) => {
            counters::drop(reason);
            TC_ACT_SHOT
        }
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
