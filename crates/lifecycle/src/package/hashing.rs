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

/// Accumulates a [`Summary`] chunk by chunk.
#[derive(Default)]
pub(crate) struct Tally {
    sha: Sha256,
    size: u64,
    lines: u64,
}

impl Tally {
    pub fn add(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.size += bytes.len() as u64;
        self.lines += memchr::memchr_iter(b'\n', bytes).count() as u64;
    }

    pub fn finish(self) -> Summary {
        Summary { sha256: hex::encode(self.sha.finalize()), size: self.size, lines: self.lines }
    }
}

/// Calls `each` with every chunk `r` yields, to its end.
pub(crate) fn for_each_chunk(
    mut r: impl Read,
    mut each: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        each(&buf[..n])?;
    }
}

/// Reads `r` to its end.
pub(crate) fn summarize(r: impl Read) -> std::io::Result<Summary> {
    let mut tally = Tally::default();
    for_each_chunk(r, |b| {
        tally.add(b);
        Ok(())
    })?;
    Ok(tally.finish())
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
