//! Headroom under the kernel's verifier: each program must verify within 1,000,000 processed
//! instructions, and the XDP program (the larger: it also completes checksums and checks MTUs)
//! is the one close to it. This fails when a change leaves less than a tenth of the limit, so
//! the next change does not find the program refused on a kernel that explores a little more.
//! Needs root (bpf). Prints what each program costs.

use aya::{
    EbpfLoader,
    programs::{SchedClassifier, Xdp},
};
use sfc::datapath::{self, attach::load_retrying};
use sfc_common::maps::{PROG_TC_INGRESS, PROG_XDP};
use sfc_tests::bpffs::PinDir;

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
        counts.push((name, n));
    }
    for (name, n) in counts {
        assert!(n + HEADROOM <= LIMIT, "{name} verifies at {n} of {LIMIT} instructions: less than {HEADROOM} left");
    }
}
