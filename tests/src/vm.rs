//! Real virtual machines on tap devices, like the networking-sfc blog's (`CirrOS` there): qemu
//! with Debian's kernel and a busybox initramfs ([`VmImage`]).

mod cpio;
mod image;

pub use self::image::{CACHE_ENV, DEFAULT_CACHE, INIT, VmImage, cache_dir};
