//! The stack a loaded BPF program's deepest chain of calls takes, as the verifier counts it
//! against its 512-byte limit (`check_max_stack_depth`): every function's frame rounded up,
//! summed along the chain of BPF-to-BPF calls from the entry.
//!
//! The rounding depends on the kernel: since 6.9 a JIT-compiled program's frames are rounded up
//! to 16 bytes; before (and for the interpreter) every frame to 32, and a frame of 0 bytes
//! counts as 32 (the change: "bpf: Fix test `verif_scale_strobemeta_subprogs` failure due to
//! llvm19", February 2024). sfc runs on kernels from 6.6 (tcx), so a program has to fit with 32.
//!
//! The kernel gives the depths back only in the verifier's log, which a loader that succeeds
//! (aya's) does not keep. They are in the JIT code as well: x86-64's prologue reserves a
//! function's frame with `sub rsp, depth`, the verifier's depth rounded up to 8 (so rounding it
//! up to 16 or 32 again gives the verifier's figure). The calls are in the translated
//! instructions, where the kernel leaves each BPF-to-BPF call's target function number.

use std::os::fd::AsRawFd;

use anyhow::{Context as _, Result, bail};

use crate::rawbpf::{PROG_INFO_LEN, ask_functions, info, obj_info, put_ptr, put_u32, u32_at};

/// The verifier's limit on a chain of frames (`MAX_BPF_STACK`).
pub const MAX_STACK: u32 = 512;

/// How the verifier rounds a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// A JIT-compiled program on a kernel from 6.9 on: up to 16 bytes.
    Jit16,
    /// Kernels before 6.9, and the interpreter: up to 32 bytes, at least 32.
    Frame32,
}

impl Rounding {
    fn frame(self, bytes: u32) -> u32 {
        match self {
            Rounding::Jit16 => bytes.div_ceil(16) * 16,
            Rounding::Frame32 => bytes.max(1).div_ceil(32) * 32,
        }
    }
}

/// A loaded program's functions: the entry first, in the kernel's order.
#[derive(Debug, Clone)]
pub struct Frames {
    /// The bytes each function's JIT code reserves for its BPF stack.
    pub frames: Vec<u32>,
    /// The functions each one calls.
    pub calls: Vec<Vec<usize>>,
    /// Each function's JIT address (for `rawbpf::JitLines::at`).
    pub starts: Vec<u64>,
}

impl Frames {
    /// The frames and calls of the loaded program `fd` (x86-64 only: the frames are read from its
    /// JIT code).
    pub fn of(fd: &impl AsRawFd) -> Result<Frames> {
        if !cfg!(target_arch = "x86_64") {
            bail!("reading BPF frames from JIT code is written for x86-64's JIT only");
        }
        let mut first = vec![0u8; PROG_INFO_LEN];
        obj_info(fd, &mut first)?;
        let (jited_len, xlated_len) = (u32_at(&first, info::JITED_PROG_LEN), u32_at(&first, info::XLATED_PROG_LEN));
        let (n_ksyms, n_lens) = (u32_at(&first, info::NR_JITED_KSYMS), u32_at(&first, info::NR_JITED_FUNC_LENS));
        let n_funcs = u32_at(&first, info::NR_FUNC_INFO);
        if jited_len == 0 {
            bail!("the program is not JIT-compiled (net.core.bpf_jit_enable?)");
        }
        if n_funcs == 0 || n_lens != n_funcs || n_ksyms != n_funcs {
            bail!("the program's functions do not add up: {n_funcs} in its BTF, {n_lens} JIT lengths, {n_ksyms} symbols");
        }
        let n = n_funcs as usize;
        let mut jited = vec![0u8; jited_len as usize];
        let mut xlated = vec![0u64; xlated_len as usize / 8];
        let (mut ksyms, mut lens, mut funcs) = (vec![0u64; n], vec![0u32; n], vec![[0u32; 2]; n]);
        let mut wanted = vec![0u8; PROG_INFO_LEN];
        put_u32(&mut wanted, info::JITED_PROG_LEN, jited_len);
        put_u32(&mut wanted, info::XLATED_PROG_LEN, xlated_len);
        put_ptr(&mut wanted, info::JITED_PROG_INSNS, jited.as_mut_ptr());
        put_ptr(&mut wanted, info::XLATED_PROG_INSNS, xlated.as_mut_ptr());
        ask_functions(&mut wanted, &mut ksyms, &mut lens);
        put_u32(&mut wanted, info::FUNC_INFO_REC_SIZE, 8); // sizeof(struct bpf_func_info)
        put_ptr(&mut wanted, info::FUNC_INFO, funcs.as_mut_ptr());
        put_u32(&mut wanted, info::NR_FUNC_INFO, n_funcs);
        obj_info(fd, &mut wanted)?;
        // The functions' code, one after the other.
        let mut frames = Vec::with_capacity(n);
        let mut at = 0usize;
        for (i, &len) in lens.iter().enumerate() {
            let code = jited.get(at..at + len as usize).with_context(|| format!("function {i}'s code is past the image"))?;
            frames.push(frame(code).with_context(|| format!("function {i}"))?);
            at += len as usize;
        }
        // Each function's first instruction, in order: a call's caller is the last one at or
        // before it.
        let firsts: Vec<usize> = funcs.iter().map(|f| f[0] as usize).collect();
        let mut calls = vec![Vec::new(); n];
        for (i, &insn) in xlated.iter().enumerate() {
            // BPF_JMP | BPF_CALL with src_reg BPF_PSEUDO_CALL: imm is the callee's number.
            let (code, src) = (insn & 0xff, (insn >> 12) & 0xf);
            if code != 0x85 || src != 1 {
                continue;
            }
            let from = firsts.partition_point(|&f| f <= i).checked_sub(1).context("a call before the first function")?;
            let to = usize::try_from((insn >> 32) as u32).ok().filter(|&c| c < n).with_context(|| format!("instruction {i} calls no function"))?;
            if !calls[from].contains(&to) {
                calls[from].push(to);
            }
        }
        Ok(Frames { frames, calls, starts: ksyms })
    }

    /// The deepest chain of calls from the entry with frames rounded by `rounding`: its bytes
    /// and its functions, the entry first.
    pub fn deepest(&self, rounding: Rounding) -> (u32, Vec<usize>) {
        self.deepest_from(0, rounding, self.frames.len())
    }

    fn deepest_from(&self, at: usize, rounding: Rounding, hops_left: usize) -> (u32, Vec<usize>) {
        let own = rounding.frame(self.frames[at]);
        // BPF forbids recursion: a chain longer than the functions is a reading gone wrong, cut
        // short rather than looped.
        let below = if hops_left == 0 {
            (0, Vec::new())
        } else {
            self.calls[at].iter().map(|&c| self.deepest_from(c, rounding, hops_left - 1)).max_by_key(|(b, _)| *b).unwrap_or_default()
        };
        let mut chain = vec![at];
        chain.extend(below.1);
        (own + below.0, chain)
    }
}

/// The bytes x86-64's JIT prologue reserves: `push rbp; mov rbp, rsp`, perhaps `endbr64`, then
/// `sub rsp, imm32` (none for a function without stack).
fn frame(code: &[u8]) -> Result<u32> {
    const FRAME: [u8; 4] = [0x55, 0x48, 0x89, 0xe5];
    const SUB_RSP: [u8; 3] = [0x48, 0x81, 0xec];
    // The prologue's start: after the CFI hash and patch NOPs, within its first bytes.
    let start = code.windows(4).take(32).position(|w| w == FRAME).context("no `push rbp; mov rbp, rsp` in the prologue")?;
    let after = &code[start + FRAME.len()..];
    // `endbr64` may come first; anything else means no frame.
    let after = after.strip_prefix(&[0xf3, 0x0f, 0x1e, 0xfa][..]).unwrap_or(after);
    match after.strip_prefix(&SUB_RSP[..]) {
        Some(rest) => Ok(u32::from_le_bytes(rest.get(..4).context("a cut `sub rsp`")?.try_into().expect("four bytes"))),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_from_the_prologue() {
        // CFI hash, patch NOPs, nop3, push rbp; mov rbp, rsp; endbr64; sub rsp, 0x1b8.
        let code = [
            0xb8, 1, 2, 3, 4, 0x0f, 0x1f, 0x44, 0, 0, 0x0f, 0x1f, 0, 0x55, 0x48, 0x89, 0xe5, 0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x81,
            0xec, 0xb8, 1, 0, 0, 0x53,
        ];
        assert_eq!(frame(&code).unwrap(), 0x1b8);
        // No stack: push rbx follows.
        assert_eq!(frame(&[0x0f, 0x1f, 0, 0x55, 0x48, 0x89, 0xe5, 0x53]).unwrap(), 0);
        assert!(frame(&[0x90; 40]).is_err());
    }

    #[test]
    fn the_deepest_chain_sums_rounded_frames() {
        // 0 calls 1 and 2; 2 calls 3. Frames 200, 8, 100, 0.
        let f = Frames { frames: vec![200, 8, 100, 0], calls: vec![vec![1, 2], vec![], vec![3], vec![]], starts: vec![0; 4] };
        assert_eq!(f.deepest(Rounding::Jit16), (208 + 112, vec![0, 2, 3]));
        // With 32: 224 + 32 + 128 + 32 (a frame of 0 counts as 32).
        assert_eq!(f.deepest(Rounding::Frame32), (224 + 128 + 32, vec![0, 2, 3]));
    }
}
