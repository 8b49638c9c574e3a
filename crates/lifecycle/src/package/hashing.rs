//! The byte plumbing every package step shares: read once, hash (and count lines) on the way.

use std::io::{Read, Write};

use sha2::{Digest, Sha256};

const CHUNK: usize = 1 << 20;

/// What a stream of bytes was: hex sha256, size, newline-terminated lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub sha256: String,
    pub size: u64,
    pub lines: u64,
}

/// Reads `r` to its end.
pub(crate) fn summarize(mut r: impl Read) -> std::io::Result<Summary> {
    let mut sha = Sha256::new();
    let (mut size, mut lines) = (0u64, 0u64);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        size += n as u64;
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
    }
    Ok(Summary { sha256: hex::encode(sha.finalize()), size, lines })
}

/// Writes through to `inner`, hashing and counting what passes.
pub(crate) struct HashingWriter<W> {
    pub inner: W,
    sha: Sha256,
    pub bytes: u64,
}

impl<W> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, sha: Sha256::new(), bytes: 0 }
    }

    /// Counts bytes that are already in the destination (a resumed download's prefix).
    pub fn absorb(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.bytes += bytes.len() as u64;
    }

    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.sha.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reads from `inner`, writing every byte read to `copy`, in order.
pub(crate) struct Tee<'a, R, W> {
    pub inner: R,
    pub copy: &'a mut W,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}
