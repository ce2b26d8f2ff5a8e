//! Headroom under the kernel's verifier: each program must verify within 1,000,000 processed
//! instructions, and the XDP program (the larger: it also completes checksums and checks MTUs)
//! is the one close to it. This fails when a change leaves less than a tenth of the limit, so
//! the next change does not find the program refused on a kernel that explores a little more.
//!
//! And the stack: the verifier refuses a program whose deepest chain of BPF-to-BPF calls takes
//! more than 512 bytes, each frame rounded up (`sfc_tests::bpfstack`). From 6.9 a JIT's frames
//! round up to 16 bytes; before, every frame to 32 (an empty one counts 32). sfc supports
//! kernels from 6.6, so both programs must fit under the older rule, which this kernel does not
//! apply: the test works it out from the loaded program. Needs root (bpf). Prints what each
//! program costs and its deepest chain.

use aya::{
    EbpfLoader,
    programs::{SchedClassifier, Xdp},
};
use sfc::datapath::{self, attach::load_retrying};
use sfc_common::maps::{PROG_TC_INGRESS, PROG_XDP};
use sfc_tests::{
    bpffs::PinDir,
    bpfstack::{Frames, MAX_STACK, Rounding},
    rawbpf,
};
use std::os::fd::AsFd as _;

const LIMIT: u32 = 1_000_000;
const HEADROOM: u32 = LIMIT / 10;

#[test]
fn both_programs_verify_with_headroom() {
    let pins = PinDir::create("sfc-verifier").unwrap_or_else(|e| panic!("{e:#}"));
    let mut ebpf = EbpfLoader::new().default_map_pin_directory(pins.path()).load(datapath::EBPF_OBJECT).unwrap_or_else(|e| panic!("loading the object: {e}"));
    let mut counts = Vec::new();
    for name in [PROG_TC_INGRESS, PROG_XDP] {
        let prog = ebpf.program_mut(name).unwrap_or_else(|| panic!("{name} in the object"));
        let loaded = if name == PROG_XDP {
            let p = <&mut Xdp>::try_from(prog).expect("an XDP program");
            load_retrying(|| p.load()).map(|()| p.info())
        } else {
            let p = <&mut SchedClassifier>::try_from(prog).expect("a tc program");
            load_retrying(|| p.load()).map(|()| p.info())
        };
        let info = loaded.unwrap_or_else(|e| panic!("{name}: {e:?}")).unwrap_or_else(|e| panic!("{name} info: {e}"));
        let n = info.verified_instruction_count().unwrap_or_else(|| panic!("{name}: the kernel did not say"));
        eprintln!("{name}: {n} instructions processed by the verifier (limit {LIMIT})");
        let fd = ebpf.program(name).expect("loaded above").fd().unwrap_or_else(|e| panic!("{name}: {e}"));
        let frames = Frames::of(&fd.as_fd()).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let lines = rawbpf::jit_lines(&[name]).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let label = |f: usize| {
            let at = lines.iter().find_map(|l| l.at(frames.starts[f]));
            at.map_or_else(|| format!("function {f}"), |l| format!("{}:{}", l.file, l.line))
        };
        let deepest = |r: Rounding| {
            let (bytes, chain) = frames.deepest(r);
            let chain: Vec<String> = chain.iter().map(|&f| format!("{} ({} bytes)", label(f), frames.frames[f])).collect();
            let chain = chain.join(" > ");
            eprintln!("{name}: stack {bytes} of {MAX_STACK} ({r:?}), deepest chain {chain}");
            (bytes, chain)
        };
        // This kernel's rule, for the record; the older one is never below it.
        deepest(Rounding::Jit16);
        counts.push((name, n, deepest(Rounding::Frame32)));
    }
    for (name, n, (stack, chain)) in counts {
        assert!(
            stack <= MAX_STACK,
            "{name}: its deepest chain of calls takes {stack} bytes of stack with every frame rounded up to 32 \
             (kernels before 6.9): refused there (limit {MAX_STACK}): {chain}"
        );
        assert!(n + HEADROOM <= LIMIT, "{name} verifies at {n} of {LIMIT} instructions: less than {HEADROOM} left");
    }
}
