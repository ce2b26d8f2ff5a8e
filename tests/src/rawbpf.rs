//! Hand-written BPF programs, loaded with the `bpf()` system call itself: the benchmark's
//! reference programs (`xtask`'s path (f), the micro benchmark's floor), which must not be
//! sfc's object and have their targets or maps compiled in as constants.

use std::os::fd::{AsRawFd, FromRawFd as _, OwnedFd};

use anyhow::{Context as _, Result, bail};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_TCX_INGRESS: u32 = 46;
pub const BPF_MAP_TYPE_HASH: u32 = 1;
pub const BPF_MAP_TYPE_ARRAY: u32 = 2;
pub const BPF_MAP_TYPE_LRU_HASH: u32 = 9;
pub const BPF_F_NO_PREALLOC: u32 = 1;
/// Helper ids (`enum bpf_func_id`).
pub const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
pub const BPF_FUNC_MAP_UPDATE_ELEM: i32 = 2;
pub const BPF_FUNC_REDIRECT_PEER: i32 = 155;
/// `struct __sk_buff` offsets of `data` and `data_end`.
pub const SKB_DATA: i16 = 76;
pub const SKB_DATA_END: i16 = 80;
/// `src_reg` of a `ld_imm64` whose immediate is a map's file descriptor.
pub const PSEUDO_MAP_FD: u8 = 1;

/// One BPF instruction: opcode, registers (dst low nibble, src high), offset, immediate.
pub fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    let regs = (dst & 0xf) | (src << 4);
    u64::from(code) | u64::from(regs) << 8 | u64::from(off.cast_unsigned()) << 16 | u64::from(imm.cast_unsigned()) << 32
}

/// `r1 = map` (the two slots of a `ld_imm64` of the map's file descriptor).
pub fn load_map(map: &Map) -> [u64; 2] {
    [insn(0x18, 1, PSEUDO_MAP_FD, 0, map.fd.as_raw_fd()), 0]
}

/// The `bpf()` system call.
///
/// # Safety
/// `attr` must be a valid `bpf_attr` for `cmd`: every pointer in it points at memory of the
/// size the command reads or writes, which outlives the call.
unsafe fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> std::io::Result<libc::c_long> {
    // SAFETY: the caller's promise; `attr` is 128 zero-padded bytes that outlive the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), std::mem::size_of_val(attr)) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r) }
}

/// `bpf()` for a command that returns a new file descriptor, which the result owns.
///
/// # Safety
/// As for `bpf`, and `cmd` must be one that returns a new file descriptor on success.
unsafe fn bpf_fd(cmd: libc::c_long, attr: &mut [u64; 16]) -> std::io::Result<OwnedFd> {
    // SAFETY: the caller's promise.
    let fd = unsafe { bpf(cmd, attr) }?;
    let fd = i32::try_from(fd).map_err(|_| std::io::Error::other("a file descriptor out of range"))?;
    // SAFETY: the command returned a new file descriptor, which nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What `BPF_MAP_CREATE` is asked for.
#[derive(Clone, Copy, Debug)]
pub struct MapSpec {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

/// A map this process created, with what it was created as.
pub struct Map {
    fd: OwnedFd,
    spec: MapSpec,
}

/// A new map.
pub fn create_map(spec: MapSpec) -> Result<Map> {
    let mut attr = [0u64; 16];
    attr[0] = u64::from(spec.map_type) | u64::from(spec.key_size) << 32;
    attr[1] = u64::from(spec.value_size) | u64::from(spec.max_entries) << 32;
    attr[2] = u64::from(spec.flags);
    // SAFETY: a map_create attribute with no pointers; the command returns a map's fd.
    let fd = unsafe { bpf_fd(BPF_MAP_CREATE, &mut attr) }.with_context(|| format!("creating a map {spec:?}"))?;
    Ok(Map { fd, spec })
}

impl Map {
    /// The map's descriptor (to hand it to aya, for one).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd as _;
        self.fd.as_fd()
    }

    /// `self[key] = value` (any flags: create or replace); `key` and `value` must have the
    /// map's sizes.
    pub fn update(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let size = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        if key.len() != size(self.spec.key_size) || value.len() != size(self.spec.value_size) {
            bail!("a {}-byte key and {}-byte value for a map of {:?}", key.len(), value.len(), self.spec);
        }
        let mut attr = [0u64; 16];
        attr[0] = u64::from(self.fd.as_raw_fd().cast_unsigned());
        attr[1] = key.as_ptr() as u64;
        attr[2] = value.as_ptr() as u64;
        // SAFETY: key and value outlive the call and have the map's key and value sizes
        // (checked above), which is what the kernel reads from them.
        unsafe { bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }.context("updating a map")?;
        Ok(())
    }
}

/// Loads `insns` as a tc program; the verifier's log in the error when it refuses.
pub fn load_sched_cls(insns: &[u64]) -> Result<OwnedFd> {
    let license = b"GPL\0";
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = [0u64; 16];
    attr[0] = u64::from(BPF_PROG_TYPE_SCHED_CLS) | (insns.len() as u64) << 32;
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    attr[3] = 1 | (log.len() as u64) << 32; // log_level, log_size
    attr[4] = log.as_mut_ptr() as u64;
    // SAFETY: instructions, license and log outlive the call, the log's size as given; the
    // command returns a program's fd.
    unsafe { bpf_fd(BPF_PROG_LOAD, &mut attr) }.map_err(|e| {
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        anyhow::anyhow!("loading a hand-written program: {e}\n{}", String::from_utf8_lossy(&log[..end]))
    })
}

/// One `BPF_PROG_TEST_RUN` of `prog` on `packet` (nothing copied out): its verdict and the
/// kernel's time in ns.
pub fn test_run_once(prog: &OwnedFd, packet: &[u8]) -> Result<(u32, u32)> {
    test_run(prog, packet, TestRun::default())
}

/// What a `test_run` is given besides the program and the packet.
#[derive(Default)]
pub struct TestRun<'a> {
    /// The `struct __sk_buff` the run starts with (its `ifindex`, say); none: the kernel's.
    pub ctx: Option<&'a [u8]>,
    /// Runs (0 and 1: one); the time is the kernel's mean per run.
    pub repeat: u32,
    /// Where the frame as the program left it is copied (at least the packet's size).
    pub out: Option<&'a mut [u8]>,
}

/// `BPF_PROG_TEST_RUN` of `prog` on `packet` as `t` says: its verdict and the kernel's mean
/// time per run in ns.
pub fn test_run(prog: &OwnedFd, packet: &[u8], t: TestRun<'_>) -> Result<(u32, u32)> {
    let mut attr = [0u64; 16];
    let out_len = t.out.as_ref().map_or(0, |o| o.len());
    let ctx_len = t.ctx.map_or(0, <[u8]>::len);
    attr[0] = u64::from(prog.as_raw_fd().cast_unsigned());
    attr[1] = packet.len() as u64 | (out_len as u64) << 32; // data_size_in, data_size_out
    attr[2] = packet.as_ptr() as u64; // data_in
    attr[3] = t.out.map_or(0, |o| o.as_mut_ptr() as u64); // data_out
    attr[4] = u64::from(t.repeat); // repeat
    attr[5] = ctx_len as u64; // ctx_size_in
    attr[6] = t.ctx.map_or(0, |c| c.as_ptr() as u64); // ctx_in
    // SAFETY: the packet, context and output buffer outlive the call, their sizes as given.
    unsafe { bpf(BPF_PROG_TEST_RUN, &mut attr) }.context("BPF_PROG_TEST_RUN")?;
    // retval is the high half of the first word, duration the high half of the fifth.
    Ok(((attr[0] >> 32) as u32, (attr[4] >> 32) as u32))
}

/// Attaches `prog` to `ifindex`'s tc ingress with a tcx link, in the calling thread's
/// namespace; the link lives as long as the fd.
pub fn tcx_ingress_link(prog: &OwnedFd, ifindex: u32) -> Result<OwnedFd> {
    let mut attr = [0u64; 16];
    attr[0] = u64::from(prog.as_raw_fd().cast_unsigned()) | u64::from(ifindex) << 32;
    attr[1] = u64::from(BPF_TCX_INGRESS);
    // SAFETY: a link_create attribute with no pointers; the command returns a link's fd.
    unsafe { bpf_fd(BPF_LINK_CREATE, &mut attr) }.context("attaching a hand-written program (tcx)")
}

const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_BTF_GET_FD_BY_ID: libc::c_long = 19;
/// `struct bpf_prog_info` as this crate reads it (its fields up to `jited_line_info_rec_size`
/// and a little more; the kernel fills what it has and ignores the rest).
pub(crate) const PROG_INFO_LEN: usize = 232;

/// Offsets of the `struct bpf_prog_info` fields read here.
pub(crate) mod info {
    pub const JITED_PROG_LEN: usize = 16;
    pub const XLATED_PROG_LEN: usize = 20;
    pub const JITED_PROG_INSNS: usize = 24;
    pub const XLATED_PROG_INSNS: usize = 32;
    pub const NAME: usize = 64;
    pub const NR_JITED_KSYMS: usize = 104;
    pub const NR_JITED_FUNC_LENS: usize = 108;
    pub const JITED_KSYMS: usize = 112;
    pub const JITED_FUNC_LENS: usize = 120;
    pub const BTF_ID: usize = 128;
    pub const FUNC_INFO_REC_SIZE: usize = 132;
    pub const FUNC_INFO: usize = 136;
    pub const NR_FUNC_INFO: usize = 144;
    pub const NR_LINE_INFO: usize = 148;
    pub const LINE_INFO: usize = 152;
    pub const JITED_LINE_INFO: usize = 160;
    pub const NR_JITED_LINE_INFO: usize = 168;
    pub const LINE_INFO_REC_SIZE: usize = 172;
    pub const JITED_LINE_INFO_REC_SIZE: usize = 176;
}

/// Asks `info` for the program's functions: their JIT addresses into `ksyms` and code lengths
/// into `lens` (as many as each holds).
pub(crate) fn ask_functions(info: &mut [u8], ksyms: &mut [u64], lens: &mut [u32]) {
    let count = |n: usize| u32::try_from(n).expect("fewer than 2^32 functions");
    put_u32(info, info::NR_JITED_KSYMS, count(ksyms.len()));
    put_u32(info, info::NR_JITED_FUNC_LENS, count(lens.len()));
    put_ptr(info, info::JITED_KSYMS, ksyms.as_mut_ptr());
    put_ptr(info, info::JITED_FUNC_LENS, lens.as_mut_ptr());
}

/// One line-info record of a loaded program: where its JIT code starts, and the source line
/// (file name without directories, line number, the line's text as the object's BTF holds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JitLine {
    pub addr: u64,
    pub file: String,
    pub line: u32,
    pub text: String,
}

/// A loaded program's JIT code: its functions' (start, length) and its line records sorted by
/// address.
#[derive(Debug, Clone, Default)]
pub struct JitLines {
    pub funcs: Vec<(u64, u64)>,
    pub lines: Vec<JitLine>,
}

impl JitLines {
    /// The line record whose code holds `ip`, if `ip` is in one of the program's functions.
    pub fn at(&self, ip: u64) -> Option<&JitLine> {
        if !self.funcs.iter().any(|&(start, len)| ip >= start && ip < start + len) {
            return None;
        }
        let i = self.lines.partition_point(|l| l.addr <= ip);
        self.lines.get(i.checked_sub(1)?)
    }
}

/// The file descriptor of a program or BTF object by id (`cmd`), or `None` when it is gone.
fn fd_by_id(cmd: libc::c_long, id: u32) -> Option<OwnedFd> {
    let mut attr = [0u64; 16];
    attr[0] = u64::from(id);
    // SAFETY: a get_fd_by_id attribute with no pointers; the command returns a new fd.
    unsafe { bpf_fd(cmd, &mut attr) }.ok()
}

/// `BPF_OBJ_GET_INFO_BY_FD` into `info` (whose pointers, set by the caller, the kernel fills).
pub(crate) fn obj_info(fd: &impl AsRawFd, info: &mut [u8]) -> Result<()> {
    let mut attr = [0u64; 16];
    attr[0] = u64::from(fd.as_raw_fd().cast_unsigned()) | (info.len() as u64) << 32;
    attr[1] = info.as_mut_ptr() as u64;
    // SAFETY: `info` outlives the call and is as long as said; every pointer in it points at a
    // buffer of the count and record size set next to it (the callers' contract).
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }.context("BPF_OBJ_GET_INFO_BY_FD")?;
    Ok(())
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("four bytes"))
}

pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

pub(crate) fn put_ptr<T>(b: &mut [u8], at: usize, p: *mut T) {
    b[at..at + 8].copy_from_slice(&(p as u64).to_ne_bytes());
}

/// The JIT line maps of every loaded program named one of `names` (the kernel keeps the first
/// 15 bytes of a name). By name, not by the tag in perf's `bpf_prog_<tag>_<name>` symbols: for a
/// program with subprograms that symbol is its first function's, whose tag is not the
/// program's. Several programs of a name (several datapaths loaded) give several maps; an
/// address is in at most one. Needs root.
pub fn jit_lines(names: &[&str]) -> Result<Vec<JitLines>> {
    let (mut id, mut maps) = (0u32, Vec::new());
    loop {
        let mut attr = [0u64; 16];
        attr[0] = u64::from(id);
        // SAFETY: a get_next_id attribute with no pointers; the kernel writes next_id.
        if unsafe { bpf(BPF_PROG_GET_NEXT_ID, &mut attr) }.is_err() {
            return Ok(maps);
        }
        id = (attr[0] >> 32) as u32;
        // Gone since (unloaded between the two calls): not one of ours to map.
        let Some(fd) = fd_by_id(BPF_PROG_GET_FD_BY_ID, id) else { continue };
        let mut got = vec![0u8; PROG_INFO_LEN];
        obj_info(&fd, &mut got)?;
        let name = &got[info::NAME..info::NAME + 16];
        let name = String::from_utf8_lossy(&name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())]).into_owned();
        if names.iter().any(|n| n.get(..15).unwrap_or(n) == name) {
            maps.push(lines_of(&fd, &got)?);
        }
    }
}

/// `jit_lines` of the program `fd`, whose first info (counts only) is `first`.
fn lines_of(fd: &OwnedFd, first: &[u8]) -> Result<JitLines> {
    let btf_id = u32_at(first, info::BTF_ID);
    let (n_ksyms, n_lens) = (u32_at(first, info::NR_JITED_KSYMS), u32_at(first, info::NR_JITED_FUNC_LENS));
    let (n_lines, n_jited) = (u32_at(first, info::NR_LINE_INFO), u32_at(first, info::NR_JITED_LINE_INFO));
    if n_lines == 0 || n_lines != n_jited || n_ksyms != n_lens {
        bail!("the program has no line info the JIT code maps ({n_lines} records, {n_jited} jited)");
    }
    let (mut ksyms, mut lens) = (vec![0u64; n_ksyms as usize], vec![0u32; n_lens as usize]);
    let (mut records, mut addrs) = (vec![[0u32; 4]; n_lines as usize], vec![0u64; n_jited as usize]);
    let mut wanted = vec![0u8; PROG_INFO_LEN];
    ask_functions(&mut wanted, &mut ksyms, &mut lens);
    put_u32(&mut wanted, info::NR_LINE_INFO, n_lines);
    put_ptr(&mut wanted, info::LINE_INFO, records.as_mut_ptr());
    put_ptr(&mut wanted, info::JITED_LINE_INFO, addrs.as_mut_ptr());
    put_u32(&mut wanted, info::NR_JITED_LINE_INFO, n_jited);
    put_u32(&mut wanted, info::LINE_INFO_REC_SIZE, 16); // sizeof(struct bpf_line_info)
    put_u32(&mut wanted, info::JITED_LINE_INFO_REC_SIZE, 8); // a jited line record: its address
    obj_info(fd, &mut wanted)?;
    let strings = btf_strings(btf_id)?;
    let string = |off: u32| -> String {
        let rest = strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        String::from_utf8_lossy(&rest[..end]).into_owned()
    };
    let mut lines: Vec<JitLine> = records
        .iter()
        .zip(&addrs)
        .map(|(r, &addr)| {
            let file = string(r[1]);
            let file = file.rsplit('/').next().unwrap_or_default().to_owned();
            JitLine { addr, file, line: r[3] >> 10, text: string(r[2]).trim().to_owned() }
        })
        .collect();
    lines.sort_by_key(|l| l.addr);
    Ok(JitLines { funcs: ksyms.into_iter().zip(lens).map(|(s, l)| (s, u64::from(l))).collect(), lines })
}

/// The string section of BTF object `id`.
fn btf_strings(id: u32) -> Result<Vec<u8>> {
    let fd = fd_by_id(BPF_BTF_GET_FD_BY_ID, id).with_context(|| format!("BTF {id} is gone"))?;
    let mut info = vec![0u8; 32];
    obj_info(&fd, &mut info)?;
    let size = u32_at(&info, 8);
    let mut raw = vec![0u8; size as usize];
    let mut info = vec![0u8; 32];
    put_ptr(&mut info, 0, raw.as_mut_ptr());
    put_u32(&mut info, 8, size);
    obj_info(&fd, &mut info)?;
    // struct btf_header: magic, version, flags, hdr_len, type_off, type_len, str_off, str_len.
    if raw.len() < 24 {
        bail!("BTF {id}: {} bytes, no header", raw.len());
    }
    let (hdr_len, str_off, str_len) = (u32_at(&raw, 4) as usize, u32_at(&raw, 16) as usize, u32_at(&raw, 20) as usize);
    raw.get(hdr_len + str_off..hdr_len + str_off + str_len).map(<[u8]>::to_vec).with_context(|| format!("BTF {id}: strings out of range"))
}
