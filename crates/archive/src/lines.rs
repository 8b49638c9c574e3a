//! Reading archive lines with a bound, for `verify`, `replay` and `etl`: a damaged or
//! planted file can hold a "line" of any length, and reading it whole would take memory
//! without limit. The writer never makes a line near the bound (a raw line is one frame,
//! and frames are capped far below it by the providers' `ws_max_message_bytes` and body
//! limits), so a longer one is damage, reported like any bad line.

use std::io::{self, BufRead};

/// Longest archive line a reader accepts, newline included: 64 MiB.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// How a read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    /// The line ended with `\n` (not kept in the buffer).
    Newline,
    /// The input ended without a newline: a torn last line, or one still being written.
    Eof,
}

/// One line read by [`read_line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRead {
    pub end: LineEnd,
    /// Bytes consumed from the input, newline included.
    pub bytes: u64,
    /// The line was longer than the bound: the buffer holds only its first bytes, and the
    /// rest was consumed (and passed to `seen`) without being kept.
    pub too_long: bool,
}

/// Reads the next line into `buf` (cleared first, newline not kept), keeping at most `max`
/// bytes of it; every byte consumed, kept or not, is passed to `seen` in order (for
/// checksums). `None` at the end of the input.
pub fn read_line<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
    mut seen: impl FnMut(&[u8]),
) -> io::Result<Option<LineRead>> {
    buf.clear();
    let (mut bytes, mut too_long) = (0u64, false);
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok((bytes > 0).then_some(LineRead { end: LineEnd::Eof, bytes, too_long }));
        }
        let (take, newline) = match memchr::memchr(b'\n', avail) {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        seen(&avail[..take]);
        let content = if newline { &avail[..take - 1] } else { &avail[..take] };
        if !too_long {
            if buf.len() + content.len() <= max {
                buf.extend_from_slice(content);
            } else {
                too_long = true;
                let room = max - buf.len();
                buf.extend_from_slice(&content[..room]);
            }
        }
        r.consume(take);
        bytes += take as u64;
        if newline {
            return Ok(Some(LineRead { end: LineEnd::Newline, bytes, too_long }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(input: &[u8], max: usize, cap: usize) -> (Vec<(Vec<u8>, LineRead)>, Vec<u8>) {
        let mut r = io::BufReader::with_capacity(cap, input);
        let (mut out, mut seen, mut buf) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(l) = read_line(&mut r, &mut buf, max, |b| seen.extend_from_slice(b)).unwrap() {
            out.push((buf.clone(), l));
        }
        (out, seen)
    }

    #[test]
    fn long_lines_are_cut_and_flagged() {
        let (lines, seen) = all(b"ab\ncdefgh\nij", 4, 3);
        assert_eq!(seen, b"ab\ncdefgh\nij");
        let got: Vec<(&[u8], LineEnd, u64, bool)> =
            lines.iter().map(|(b, l)| (b.as_slice(), l.end, l.bytes, l.too_long)).collect();
        assert_eq!(
            got,
            [
                (&b"ab"[..], LineEnd::Newline, 3, false),
                (&b"cdef"[..], LineEnd::Newline, 7, true),
                (&b"ij"[..], LineEnd::Eof, 2, false)
            ]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        /// Like `split(b'\n')` for lines within the bound, whatever the buffer size.
        #[test]
        fn reads_like_split(input in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..200), max in 0usize..20, cap in 1usize..16) {
            let (lines, seen) = all(&input, max, cap);
            prop_assert_eq!(&seen, &input);
            let mut want: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
            if input.last().is_none_or(|&b| b == b'\n') {
                want.pop();
            }
            prop_assert_eq!(lines.len(), want.len());
            for ((got, l), w) in lines.iter().zip(want) {
                prop_assert_eq!(l.too_long, w.len() > max);
                prop_assert_eq!(got.as_slice(), &w[..w.len().min(max)]);
            }
        }
    }
}
