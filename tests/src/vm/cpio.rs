//! A writer of `newc` cpio archives, the format the kernel unpacks an initramfs from
//! (`Documentation/driver-api/early-userspace/buffer-format.rst`).
//!
//! Hand-written rather than a crate or the `cpio` tool: the format is a fixed ASCII header per
//! entry, and an initramfs needs only directories, files, symlinks and one device node.

use std::{
    fmt::Write as _,
    io::{self, Write},
};

/// File type bits of `st_mode`.
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// Writes entries one after the other; [`Cpio::finish`] writes the trailer.
pub struct Cpio<W: Write> {
    out: W,
    written: usize,
    next_ino: u32,
}

impl<W: Write> Cpio<W> {
    pub fn new(out: W) -> Self {
        Cpio { out, written: 0, next_ino: 1 }
    }

    pub fn dir(&mut self, path: &str) -> io::Result<()> {
        self.entry(path, S_IFDIR | 0o755, 2, (0, 0), &[])
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        self.entry(path, S_IFREG | mode, 1, (0, 0), data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.entry(path, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    /// A character device node `major:minor` (e.g. `/dev/console`, 5:1).
    pub fn char_dev(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(path, S_IFCHR | mode, 1, (major, minor), &[])
    }

    /// The trailer; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.next_ino = 0;
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[])?;
        Ok(self.out)
    }

    /// Header (13 eight-digit hex fields after the magic), name, padding, data, padding. Owner
    /// root, mtime 0: the same inputs make the same archive.
    fn entry(&mut self, path: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) -> io::Result<()> {
        let path = path.trim_start_matches('/');
        let too_big = |what| io::Error::new(io::ErrorKind::InvalidInput, format!("cpio: {what} of {path} too large"));
        let size = u32::try_from(data.len()).map_err(|_| too_big("size"))?;
        let name_len = u32::try_from(path.len() + 1).map_err(|_| too_big("name"))?;
        let ino = self.next_ino;
        self.next_ino += 1;
        let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, name_len, 0];
        let mut header = String::from("070701");
        for f in fields {
            let _ = write!(header, "{f:08x}");
        }
        self.put(header.as_bytes())?;
        self.put(path.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len();
        Ok(())
    }

    /// Header plus name, and data, each end on a multiple of 4 bytes.
    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - self.written % 4) % 4;
        self.put(&[0; 3][..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_aligned_and_end_with_the_trailer() {
        let mut c = Cpio::new(Vec::new());
        c.dir("/bin").unwrap();
        c.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        c.symlink("bin/sh", "busybox").unwrap();
        c.char_dev("dev/console", 0o600, 5, 1).unwrap();
        let out = c.finish().unwrap();
        assert_eq!(out.len() % 4, 0);
        // First header: magic, inode 1, a directory.
        assert_eq!(&out[..22], b"07070100000001000041ed");
        // Name right after the 110-byte header, NUL-terminated, padded to 4.
        assert_eq!(&out[110..114], b"bin\0");
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("init\0\0#!/bin/sh\n"), "{text:?}");
        assert!(text.contains("bin/sh\0\0\0\0busybox"), "{text:?}");
        // The device: rdev 5:1.
        assert!(text.contains("0000000500000001"), "{text:?}");
        assert!(text.trim_end_matches('\0').ends_with("TRAILER!!!"), "{text:?}");
    }
}
