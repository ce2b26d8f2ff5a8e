//! sfc kernel programs. Entry points are thin: they call `steer::try_steer` and turn its result
//! into exactly one verdict; every drop is counted by reason. tc and XDP share all of steering
//! (`ctx::PacketCtx` is what differs).
#![no_std]
#![feature(asm_experimental_arch)]
#![no_main]
#![expect(
    clippy::inline_always,
    reason = "every helper is inlined into its program: a BPF-to-BPF call costs a stack frame and splits what the verifier knows about packet bounds"
)]
#![expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "packet-field widths, checksum folds and indexes bounded by MAX_HOPS or a chunk size; a checked conversion would add branches for the verifier to follow"
)]
#![expect(
    clippy::needless_borrows_for_generic_args,
    reason = "passing keys and values to map helpers by reference keeps them in one stack slot; by value (as clippy suggests) the XDP program went over the 512-byte stack limit"
)]

mod classify;
mod counters;
mod csum;
mod ctx;
mod encap;
mod fast;
mod flow;
mod hops;
mod iface;
mod lb;
mod maps;
mod mem;
mod next;
mod overlay;
mod parse;
mod probe;
mod steer;
mod taps;
mod trace;

use aya_ebpf::{
    bindings::{
        TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT,
        xdp_action::{XDP_DROP, XDP_PASS, XDP_REDIRECT},
    },
    helpers::{bpf_redirect, bpf_redirect_peer},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use sfc_common::DropReason;
use steer::{Action, try_steer};

/// tc ingress on every interface sfc manages.
///
/// Inlined into the entry point `#[classifier]` wraps it in: a function of its own costs no
/// stack with a JIT on kernels from 6.9, but 32 bytes of the 512 on kernels before (the
/// verifier rounds every frame of a chain of calls up to 32 there, and sfc runs from 6.6).
/// `verifier_budget` checks the deepest chain under both rules.
#[classifier]
#[inline(always)]
#[expect(clippy::needless_pass_by_value, reason = "aya's entry points take the context by value")]
pub fn sfc_tc_ingress(ctx: TcContext) -> i32 {
    let steered = try_steer(&ctx);
    let tail = steered.is_ok_and(|a| a.tail);
    let (verdict, dropped) = match steered {
        Ok(a) if a.is_pass() => (TC_ACT_OK, None),
        // A health probe back from its service function: taken out, not a drop.
        Ok(a) if a.is_consume() => (TC_ACT_SHOT, None),
        Ok(Action { ifindex, peer, .. }) => {
            let r = unsafe {
                if peer { bpf_redirect_peer(ifindex, 0) } else { bpf_redirect(ifindex, 0) }
            };
            if r == i64::from(TC_ACT_REDIRECT) { (TC_ACT_REDIRECT, None) } else { (TC_ACT_SHOT, Some(DropReason::RedirectFailed)) }
        }
        Err(reason) => (TC_ACT_SHOT, Some(reason)),
    };
    let (verdict, dropped) = if let Some(reason) = dropped {
        (verdict, Some(reason))
    } else if !tail {
        (verdict, None)
    } else {
        // After the redirect helper, where only (verdict, dropped) tell states apart: called
        // before it (with the target still in registers) the copies are walked for every way
        // out of steering and the program goes past the verifier's 1M instructions. The
        // redirect itself happens when the program returns, so the header an SFC-aware member
        // gets is pushed here too (after the copies, which are of the packet itself).
        taps::copy_to_taps(&ctx);
        match encap::push(&ctx) {
            Ok(()) => (verdict, None),
            Err(reason) => (TC_ACT_SHOT, Some(reason)),
        }
    };
    if let Some(reason) = dropped {
        counters::drop(reason);
    }
    if trace::enabled() {
        trace::emit(ctx::PacketCtx::ifindex(&ctx), dropped.map_or(0, |r| r as u32), ctx::PacketCtx::len(&ctx));
    }
    verdict
}

/// tc ingress on the overlay (VXLAN) device of a multi-host datapath: frames from other hosts
/// go to the local interface they are addressed to (`overlay::receive`).
#[classifier]
#[expect(clippy::needless_pass_by_value, reason = "aya's entry points take the context by value")]
pub fn sfc_tc_overlay(ctx: TcContext) -> i32 {
    overlay::receive(&ctx)
}

/// XDP on every interface sfc manages in XDP mode: the same steering; redirects go through
/// `SFC_DEVMAP` (the target's veth peer must be able to take XDP frames: the loader sees to it).
#[xdp]
#[expect(clippy::needless_pass_by_value, reason = "aya's entry points take the context by value")]
pub fn sfc_xdp(ctx: XdpContext) -> u32 {
    let (verdict, dropped) = match try_steer(&ctx) {
        Ok(a) if a.is_pass() => (XDP_PASS, None),
        Ok(a) if a.is_consume() => (XDP_DROP, None),
        Ok(Action { ifindex, .. }) => {
            if maps::SFC_DEVMAP.redirect(ifindex, 0).is_ok() { (XDP_REDIRECT, None) } else { (XDP_DROP, Some(DropReason::RedirectFailed)) }
        }
        Err(reason) => (XDP_DROP, Some(reason)),
    };
    // Both called for every packet, unlike tc's: skipped by `Action::tail`, they took the XDP
    // program's verification from 527k to 760k instructions.
    let (verdict, dropped) = if let Some(reason) = dropped {
        (verdict, Some(reason))
    } else {
        taps::copy_to_taps(&ctx);
        match encap::push(&ctx) {
            Ok(()) => (verdict, None),
            Err(reason) => (XDP_DROP, Some(reason)),
        }
    };
    if let Some(reason) = dropped {
        counters::drop(reason);
    }
    if trace::enabled() {
        trace::emit(ctx::PacketCtx::ifindex(&ctx), dropped.map_or(0, |r| r as u32), ctx::PacketCtx::len(&ctx));
    }
    verdict
}

/// Attached by the loader to the far end of a veth that XDP mode redirects into, when it has no
/// XDP program of its own: a veth accepts redirected frames only while its peer runs NAPI, which
/// an XDP program switches on. Passes everything.
#[xdp]
pub fn sfc_xdp_pass(_ctx: XdpContext) -> u32 {
    XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
