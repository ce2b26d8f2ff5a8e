//! Zeroing and copying in word stores. On the BPF target an assignment of a struct or an array
//! (`*p = T::default()`, `a = b` for a `[u8; 16]`) becomes a call to `memset` or `memmove`,
//! which are byte loops: the `FlowKey` reset of every packet alone ran 44 iterations, a tenth of
//! the program's time. Volatile accesses are stores LLVM may neither merge back into such a call
//! nor drop.

/// Zeroes `*p`, in the widest words `T`'s alignment allows.
#[inline(always)]
pub fn zero<T>(p: *mut T) {
    if align_of::<T>() >= 4 && size_of::<T>().is_multiple_of(4) {
        zeros::<T, u32>(p);
    } else if align_of::<T>() >= 2 && size_of::<T>().is_multiple_of(2) {
        zeros::<T, u16>(p);
    } else {
        zeros::<T, u8>(p);
    }
}

#[inline(always)]
fn zeros<T, W: Default>(p: *mut T) {
    let w = p.cast::<W>();
    for i in 0..size_of::<T>() / size_of::<W>() {
        // SAFETY: `p` is valid for writes of a `T` (the caller's); `zero` picks a `W` whose size
        // divides `T`'s and whose alignment `T`'s has, so word `i` lies within it and is
        // aligned. Every `T` this is used for is integers and byte arrays: zeros are a value.
        unsafe { w.add(i).write_volatile(W::default()) };
    }
}

/// Sets every element of `*p` to `v`.
#[inline(always)]
pub fn fill<const N: usize>(p: *mut [u16; N], v: u16) {
    let w = p.cast::<u16>();
    for i in 0..N {
        // SAFETY: `p` is valid for writes of `N` elements (the caller's); element `i` is one.
        unsafe { w.add(i).write_volatile(v) };
    }
}

/// `*dst = *src`, in the widest words `T`'s alignment allows (bytes for packet bytes).
#[inline(always)]
pub fn copy<T: Copy>(dst: *mut T, src: *const T) {
    if align_of::<T>() >= 4 && size_of::<T>().is_multiple_of(4) {
        words::<T, u32>(dst, src);
    } else if align_of::<T>() >= 2 && size_of::<T>().is_multiple_of(2) {
        words::<T, u16>(dst, src);
    } else {
        words::<T, u8>(dst, src);
    }
}

#[inline(always)]
fn words<T: Copy, W: Copy>(dst: *mut T, src: *const T) {
    let (d, s) = (dst.cast::<W>(), src.cast::<W>());
    for i in 0..size_of::<T>() / size_of::<W>() {
        // SAFETY: `dst` and `src` are valid for a `T` each (the caller's); `copy` picks a `W`
        // whose size divides `T`'s and whose alignment `T`'s has, so word `i` lies within both
        // and is aligned. `T: Copy`: a bitwise copy is a copy.
        unsafe { d.add(i).write_volatile(s.add(i).read_volatile()) };
    }
}
