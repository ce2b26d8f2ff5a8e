//! `sfc_tests::rawbpf::jit_lines`, which `cargo xtask bench --profile` uses to put the path
//! core's samples in sfc's program on source lines: on sfc's own tc program, loaded here, the
//! map has the program's functions and its lines in sfc's source files, and an address inside
//! the program finds a line while one outside finds none. Needs root (bpf).

use aya::{EbpfLoader, programs::SchedClassifier};
use sfc::datapath::{self, attach::load_retrying};
use sfc_common::maps::PROG_TC_INGRESS;
use sfc_tests::{bpffs::PinDir, rawbpf::jit_lines};

#[test]
fn a_loaded_programs_jit_code_maps_to_its_source_lines() {
    let pins = PinDir::create("sfc-jitlines").unwrap_or_else(|e| panic!("{e:#}"));
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(pins.path())
        .load(datapath::EBPF_OBJECT)
        .unwrap_or_else(|e| panic!("loading the object: {e}"));
    let prog: &mut SchedClassifier = ebpf.program_mut(PROG_TC_INGRESS).expect("the tc program").try_into().expect("a tc program");
    load_retrying(|| prog.load()).unwrap_or_else(|e| panic!("loading: {e:?}"));
    let maps = jit_lines(&[PROG_TC_INGRESS]).unwrap_or_else(|e| panic!("{e:#}"));
    // Other tests may have programs of the name loaded too: the one loaded here is one of them.
    assert!(!maps.is_empty(), "no program named {PROG_TC_INGRESS}");
    let map = maps.iter().max_by_key(|m| m.lines.len()).expect("a map");
    // The entry point and its subprograms (steering calls several).
    assert!(map.funcs.len() > 1, "functions: {:?}", map.funcs);
    assert!(map.lines.windows(2).all(|w| w[0].addr <= w[1].addr), "lines sorted by address");
    for file in ["main.rs", "steer.rs", "parse.rs"] {
        assert!(map.lines.iter().any(|l| l.file == file && l.line > 0 && !l.text.is_empty()), "no line of {file}");
    }
    let (start, len) = map.funcs[0];
    let first = map.at(start).expect("the entry's first byte has a line");
    assert_eq!(first.addr, start, "the first record starts the function");
    assert!(map.at(start + len - 1).is_some(), "the last byte of the function has a line");
    let end = map.funcs.iter().map(|&(s, l)| s + l).max().expect("functions");
    let outside = (0..16).map(|i| end + 4096 * i).find(|a| !map.funcs.iter().any(|&(s, l)| *a >= s && *a < s + l));
    assert!(outside.is_some_and(|a| map.at(a).is_none()), "an address outside the program has no line");
    assert!(jit_lines(&["sfc_no_such"]).unwrap_or_else(|e| panic!("{e:#}")).is_empty(), "no program has that name");
    drop(ebpf);
}
