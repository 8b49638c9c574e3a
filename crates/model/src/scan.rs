//! Byte scans for the per-frame hot path: where a separator occurs, which bytes a JSON
//! string must escape. Both answer 64 bytes at a time as a bit mask (bit `i` for byte `i`),
//! so callers walk the hits with `trailing_zeros` instead of testing and branching on every
//! byte — frames have a separator every few bytes at irregular places, which costs a
//! mispredicted branch each when tested byte by byte.

/// Bytes per mask.
pub const BLOCK: usize = 64;

/// Bit `i` set where `block[i] == byte` (`block` is at most [`BLOCK`] bytes).
#[inline]
pub fn eq_mask(block: &[u8], byte: u8) -> u64 {
    match <&[u8; BLOCK]>::try_from(block) {
        Ok(full) => imp::eq_mask(full, byte),
        Err(_) => {
            let (padded, valid) = pad(block);
            imp::eq_mask(&padded, byte) & valid
        }
    }
}

/// Bit `i` set where a JSON string must escape `block[i]`: `"`, `\` and control characters
/// (below 0x20). `block` is at most [`BLOCK`] bytes.
#[inline]
pub fn json_escape_mask(block: &[u8]) -> u64 {
    match <&[u8; BLOCK]>::try_from(block) {
        Ok(full) => imp::json_escape_mask(full),
        Err(_) => {
            let (padded, valid) = pad(block);
            imp::json_escape_mask(&padded) & valid
        }
    }
}

/// Calls `each(offset, mask)` for the 64-byte blocks of `bytes` in order (the last one may
/// be shorter), with bit `i` of `mask` set where `bytes[offset + i] == byte`, while it
/// returns true; returns whether every call did.
#[inline]
pub fn eq_masks(bytes: &[u8], byte: u8, each: impl FnMut(usize, u64) -> bool) -> bool {
    block_masks(bytes, each, |b| imp::eq_mask(b, byte), |b| b == byte)
}

/// As [`eq_masks`], for the bytes a JSON string must escape (see [`json_escape_mask`]).
#[inline]
pub fn json_escape_masks(bytes: &[u8], each: impl FnMut(usize, u64) -> bool) -> bool {
    block_masks(bytes, each, imp::json_escape_mask, json_escaped)
}

#[inline(always)]
fn json_escaped(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

#[inline(always)]
fn block_masks(
    bytes: &[u8],
    mut each: impl FnMut(usize, u64) -> bool,
    mask: impl Fn(&[u8; BLOCK]) -> u64,
    hit: impl Fn(u8) -> bool,
) -> bool {
    let mut blocks = bytes.chunks_exact(BLOCK);
    for (k, block) in (&mut blocks).enumerate() {
        let Ok(block) = <&[u8; BLOCK]>::try_from(block) else { break };
        if !each(k * BLOCK, mask(block)) {
            return false;
        }
    }
    let rest = blocks.remainder();
    if rest.is_empty() {
        return true;
    }
    let full = bytes.len() - rest.len();
    let m = match bytes.len().checked_sub(BLOCK).and_then(|at| <&[u8; BLOCK]>::try_from(&bytes[at..]).ok()) {
        // The last 64 bytes overlap the block before: shift its bits out.
        Some(last) => mask(last) >> (BLOCK - rest.len()),
        // Short input: byte by byte, without branches.
        None => rest.iter().enumerate().fold(0u64, |m, (i, &b)| m | (hit(b) as u64) << i),
    };
    each(full, m)
}

/// Calls `f` with the position of each `byte` in `bytes`, in order, while it returns true;
/// returns whether every call did.
#[inline]
pub fn for_each_byte(bytes: &[u8], byte: u8, mut f: impl FnMut(usize) -> bool) -> bool {
    eq_masks(bytes, byte, |at, mut mask| {
        while mask != 0 {
            if !f(at + mask.trailing_zeros() as usize) {
                return false;
            }
            mask &= mask - 1;
        }
        true
    })
}

/// How many times `byte` occurs in `bytes`.
#[inline]
pub fn count_byte(bytes: &[u8], byte: u8) -> usize {
    let mut n = 0;
    eq_masks(bytes, byte, |_, m| {
        n += m.count_ones() as usize;
        true
    });
    n
}

#[inline(always)]
fn pad(block: &[u8]) -> ([u8; BLOCK], u64) {
    let mut padded = [0u8; BLOCK];
    let n = block.len().min(BLOCK);
    padded[..n].copy_from_slice(&block[..n]);
    let valid = if n == BLOCK { u64::MAX } else { (1u64 << n) - 1 };
    (padded, valid)
}

// SSE2 intrinsics: the crate's only unsafe code, each block with its SAFETY comment.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod imp {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };

    use super::BLOCK;

    #[inline(always)]
    pub fn eq_mask(block: &[u8; BLOCK], byte: u8) -> u64 {
        let mut m = 0u64;
        for k in 0..BLOCK / 16 {
            // SAFETY: SSE2 is part of the x86_64 baseline, so the intrinsics are available;
            // the 16 bytes read start at 16k <= 48 inside the 64-byte block, and loadu has no
            // alignment requirement.
            let bits = unsafe {
                let x = _mm_loadu_si128(block.as_ptr().add(16 * k).cast());
                _mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8(byte as i8)))
            };
            m |= (bits as u32 as u64 & 0xffff) << (16 * k);
        }
        m
    }

    #[inline(always)]
    pub fn json_escape_mask(block: &[u8; BLOCK]) -> u64 {
        let mut m = 0u64;
        for k in 0..BLOCK / 16 {
            // SAFETY: as in `eq_mask`.
            let bits = unsafe {
                let x = _mm_loadu_si128(block.as_ptr().add(16 * k).cast());
                // x <= 0x1f (unsigned) exactly when min(x, 0x1f) == x.
                let ctl = _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x1f)), x);
                let quote = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8));
                let backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8));
                _mm_movemask_epi8(_mm_or_si128(ctl, _mm_or_si128(quote, backslash)))
            };
            m |= (bits as u32 as u64 & 0xffff) << (16 * k);
        }
        m
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    pub use super::portable::{eq_mask, json_escape_mask};
}

/// Eight bytes at a time in a `u64`; the fallback off x86_64, and the reference in tests.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
mod portable {
    use super::BLOCK;

    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

    /// High bit of each byte set exactly where that byte of `x` is zero (no borrows).
    #[inline(always)]
    fn zero_bytes(x: u64) -> u64 {
        !(((x & LOW7) + LOW7) | x | LOW7)
    }

    #[inline(always)]
    fn masks(block: &[u8; BLOCK], hit: impl Fn(u64) -> u64) -> u64 {
        let mut m = 0u64;
        for (k, w) in block.chunks_exact(8).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            // Gather the eight high bits into the top byte (bit j for byte j), then into place.
            let bits = ((hit(u64::from_le_bytes(b)) >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56;
            m |= bits << (8 * k);
        }
        m
    }

    pub fn eq_mask(block: &[u8; BLOCK], byte: u8) -> u64 {
        masks(block, |x| zero_bytes(x ^ (ONES * byte as u64)))
    }

    pub fn json_escape_mask(block: &[u8; BLOCK]) -> u64 {
        masks(block, |x| {
            // A control character has its top three bits clear.
            zero_bytes(x & (ONES * 0xe0)) | zero_bytes(x ^ (ONES * b'"' as u64)) | zero_bytes(x ^ (ONES * b'\\' as u64))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(block: &[u8], hit: impl Fn(u8) -> bool) -> u64 {
        block.iter().enumerate().filter(|(_, b)| hit(**b)).fold(0, |m, (i, _)| m | 1 << i)
    }

    #[test]
    fn masks_match_a_byte_by_byte_scan() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let json = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
        for round in 0..20_000 {
            let len = (next() % 65) as usize;
            // Every byte value, and blocks dense with the interesting ones.
            let block: Vec<u8> = (0..len)
                .map(|_| {
                    if round % 2 == 0 {
                        next() as u8
                    } else {
                        b"^\"\\\x00\x1f\x20\x7f\x80\xff^a"[(next() % 11) as usize]
                    }
                })
                .collect();
            assert_eq!(eq_mask(&block, b'^'), naive(&block, |b| b == b'^'), "{block:?}");
            assert_eq!(json_escape_mask(&block), naive(&block, json), "{block:?}");
            let (padded, valid) = pad(&block);
            assert_eq!(portable::eq_mask(&padded, b'^') & valid, naive(&block, |b| b == b'^'));
            assert_eq!(portable::json_escape_mask(&padded) & valid, naive(&block, json));
        }
    }

    #[test]
    fn block_walks_cover_every_byte_once() {
        let json = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len).map(|i| b"ab^\"\\\n\x7f\xe1"[(i * 7 + len) % 8]).collect();
            for (name, want_hit) in [("eq", &(|b: u8| b == b'^') as &dyn Fn(u8) -> bool), ("json", &json)] {
                let mut got = vec![false; len];
                let mut next = 0;
                assert!(if name == "eq" {
                    eq_masks(&bytes, b'^', |at, m| {
                        assert_eq!(at, next);
                        next += BLOCK;
                        (0..64).filter(|i| m >> i & 1 == 1).for_each(|i| got[at + i] = true);
                        true
                    })
                } else {
                    json_escape_masks(&bytes, |at, m| {
                        assert_eq!(at, next);
                        next += BLOCK;
                        (0..64).filter(|i| m >> i & 1 == 1).for_each(|i| got[at + i] = true);
                        true
                    })
                });
                let want: Vec<bool> = bytes.iter().map(|&b| want_hit(b)).collect();
                assert_eq!(got, want, "{name} {len}");
            }
        }
    }

    #[test]
    fn positions_and_counts() {
        let text: String = (0..300).map(|i| if i % 7 == 3 || i % 64 == 63 { '^' } else { 'x' }).collect();
        let want: Vec<usize> = text.bytes().enumerate().filter(|(_, b)| *b == b'^').map(|(i, _)| i).collect();
        let mut got = Vec::new();
        assert!(for_each_byte(text.as_bytes(), b'^', |i| {
            got.push(i);
            true
        }));
        assert_eq!(got, want);
        assert_eq!(count_byte(text.as_bytes(), b'^'), want.len());
        let mut first = Vec::new();
        assert!(!for_each_byte(text.as_bytes(), b'^', |i| {
            first.push(i);
            first.len() < 3
        }));
        assert_eq!(first, want[..3]);
    }
}
