//! Zeroing and copying in word stores. On the BPF target an assignment of a struct or an array
//! (`*p = T::default()`, `a = b` for a `[u8; 16]`) becomes a call to `memset` or `memmove`,
//! which are byte loops: the `FlowKey` reset of every packet alone ran 44 iterations, a tenth of
//! the program's time. Volatile accesses are stores LLVM may neither merge back into such a call
//! nor drop.

/// Zeroes `*p`, in the widest words `T`'s alignment allows.
///
/// # Safety
/// `p` is valid for writes of a `T` and aligned for it, and all-zero bytes are a valid `T`
/// (integers and arrays of them).
#[inline(always)]
pub unsafe fn zero<T>(p: *mut T) {
    // SAFETY: the caller's contract; each branch's word divides `T`'s size and has no more than
    // its alignment.
    unsafe {
        if align_of::<T>() >= 4 && size_of::<T>().is_multiple_of(4) {
            zeros::<T, u32>(p);
        } else if align_of::<T>() >= 2 && size_of::<T>().is_multiple_of(2) {
            zeros::<T, u16>(p);
        } else {
            zeros::<T, u8>(p);
        }
    }
}

/// # Safety
/// As `zero`, and `W`'s size divides `T`'s and its alignment is at most `T`'s.
#[inline(always)]
unsafe fn zeros<T, W: Default>(p: *mut T) {
    let w = p.cast::<W>();
    for i in 0..size_of::<T>() / size_of::<W>() {
        // SAFETY: word `i` lies within `*p` and is aligned (the caller's contract).
        unsafe { w.add(i).write_volatile(W::default()) };
    }
}

/// Sets every element of `*p` to `v`.
///
/// # Safety
/// `p` is valid for writes of a `[u16; N]` and aligned for it.
#[inline(always)]
pub unsafe fn fill<const N: usize>(p: *mut [u16; N], v: u16) {
    let w = p.cast::<u16>();
    for i in 0..N {
        // SAFETY: element `i` of `*p` (the caller's contract).
        unsafe { w.add(i).write_volatile(v) };
    }
}

/// `*dst = *src`, in the widest words `T`'s alignment allows (bytes for packet bytes).
///
/// # Safety
/// `dst` is valid for writes and `src` for reads of a `T`, both aligned for it, and the two do
/// not overlap.
#[inline(always)]
pub unsafe fn copy<T: Copy>(dst: *mut T, src: *const T) {
    // SAFETY: the caller's contract; each branch's word divides `T`'s size and has no more than
    // its alignment.
    unsafe {
        if align_of::<T>() >= 4 && size_of::<T>().is_multiple_of(4) {
            words::<T, u32>(dst, src);
        } else if align_of::<T>() >= 2 && size_of::<T>().is_multiple_of(2) {
            words::<T, u16>(dst, src);
        } else {
            words::<T, u8>(dst, src);
        }
    }
}

/// # Safety
/// As `copy`, and `W`'s size divides `T`'s and its alignment is at most `T`'s.
#[inline(always)]
unsafe fn words<T: Copy, W: Copy>(dst: *mut T, src: *const T) {
    let (d, s) = (dst.cast::<W>(), src.cast::<W>());
    for i in 0..size_of::<T>() / size_of::<W>() {
        // SAFETY: word `i` lies within both and is aligned (the caller's contract); `T: Copy`,
        // so a bitwise copy is a copy.
        unsafe { d.add(i).write_volatile(s.add(i).read_volatile()) };
    }
}
