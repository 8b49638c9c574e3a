//! PostgreSQL binary COPY payloads encoded straight into one pre-sized buffer.
//!
//! `tokio_postgres::binary_copy::BinaryCopyInWriter` goes through `dyn ToSql`, hands the
//! connection a message every 4 KiB and, for NUMERIC, allocates a digit vector per value;
//! at hundreds of thousands of rows a second that client work competed with the server for
//! the same two cores. Here a batch is encoded once into one buffer (which the
//! duplicate-key fallback re-sends without re-encoding), and decimals are encoded without
//! allocating. The NUMERIC bytes are identical to rust_decimal's `ToSql` (tested below).

use bytes::{BufMut, Bytes, BytesMut};
use rust_decimal::Decimal;

use model::UtcTime;

use crate::rows::RowMeta;

/// PostgreSQL's epoch (2000-01-01T00:00:00Z) in Unix milliseconds.
const PG_EPOCH_MS: i64 = 946_684_800_000;
const NUMERIC_NEG: u16 = 0x4000;
/// NUMERIC digits are base 10 000 (four decimal digits per group).
const NBASE: u64 = 10_000;
/// A 96-bit mantissa scaled up to a whole group has at most 32 decimal digits.
const MAX_GROUPS: usize = 8;

pub(crate) struct CopyBuf {
    buf: BytesMut,
}

impl CopyBuf {
    pub(crate) fn new() -> Self {
        let mut buf = BytesMut::new();
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0); // flags
        buf.put_i32(0); // header extension length
        CopyBuf { buf }
    }

    /// Hands over what is encoded so far (the next chunk then starts with room for as much).
    pub(crate) fn take(&mut self) -> Bytes {
        let chunk = self.buf.split().freeze();
        self.buf.reserve(chunk.len());
        chunk
    }

    pub(crate) fn row(&mut self, fields: i16) {
        self.buf.put_i16(fields);
    }

    pub(crate) fn null(&mut self) {
        self.buf.put_i32(-1);
    }

    pub(crate) fn text(&mut self, s: &str) {
        self.buf.put_i32(s.len() as i32);
        self.buf.put_slice(s.as_bytes());
    }

    pub(crate) fn opt_text(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }

    pub(crate) fn int2(&mut self, v: i16) {
        self.buf.put_i32(2);
        self.buf.put_i16(v);
    }

    pub(crate) fn int4(&mut self, v: i32) {
        self.buf.put_i32(4);
        self.buf.put_i32(v);
    }

    pub(crate) fn int8(&mut self, v: i64) {
        self.buf.put_i32(8);
        self.buf.put_i64(v);
    }

    pub(crate) fn opt_int8(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.int8(v),
            None => self.null(),
        }
    }

    /// TIMESTAMPTZ: microseconds since PostgreSQL's epoch.
    pub(crate) fn timestamptz(&mut self, t: UtcTime) {
        self.int8((t.as_millis() - PG_EPOCH_MS) * 1000);
    }

    pub(crate) fn numeric(&mut self, d: Decimal) {
        let at = self.buf.len();
        self.buf.put_i32(0);
        encode_numeric(d, &mut self.buf);
        let len = (self.buf.len() - at - 4) as i32;
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    pub(crate) fn opt_numeric(&mut self, d: Option<Decimal>) {
        match d {
            Some(d) => self.numeric(d),
            None => self.null(),
        }
    }

    /// The common meta columns every tick-rate table ends with, in table order.
    pub(crate) fn row_meta(&mut self, m: &RowMeta) {
        self.text(&m.schema_version);
        self.timestamptz(m.receive_time);
        self.text(&m.session_id);
        self.int2(i16::from(m.mitigation_level));
        self.text(m.quality_flag.as_str());
        self.opt_text(m.raw_ref.as_deref());
    }

    pub(crate) fn finish(mut self) -> Bytes {
        self.buf.put_i16(-1);
        self.buf.freeze()
    }
}

/// The NUMERIC wire value of `d` (without its length word), as rust_decimal writes it:
/// zero as the bare zero, trailing zero groups after the decimal point dropped.
fn encode_numeric(d: Decimal, out: &mut BytesMut) {
    if d.is_zero() {
        out.put_u16(0);
        out.put_i16(0);
        out.put_u16(0);
        out.put_u16(0);
        return;
    }
    let scale = d.scale() as u16;
    let mut m = d.mantissa().unsigned_abs();
    // Align the mantissa so the decimal point falls on a group boundary.
    if !scale.is_multiple_of(4) {
        m *= 10u128.pow(u32::from(4 - scale % 4));
    }
    let mut groups = [0i16; MAX_GROUPS + 1];
    let mut n = 0;
    // Most prices fit 64 bits, where division is several times cheaper than on 128.
    while m > u128::from(u64::MAX) {
        groups[n] = (m % u128::from(NBASE)) as i16;
        m /= u128::from(NBASE);
        n += 1;
    }
    let mut small = m as u64;
    while small != 0 {
        groups[n] = (small % NBASE) as i16;
        small /= NBASE;
        n += 1;
    }
    groups[..n].reverse();
    let after_point = scale.div_ceil(4) as i16;
    let weight = n as i16 - after_point - 1;
    let mut keep = n;
    if weight >= 0 {
        let first_fraction = (weight + 1) as usize;
        while keep > first_fraction && groups[keep - 1] == 0 {
            keep -= 1;
        }
    }
    out.put_u16(keep as u16);
    out.put_i16(weight);
    out.put_u16(if d.is_sign_negative() { NUMERIC_NEG } else { 0 });
    out.put_u16(scale);
    for g in &groups[..keep] {
        out.put_i16(*g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio_postgres::types::{ToSql, Type};

    fn ours(d: Decimal) -> Vec<u8> {
        let mut b = BytesMut::new();
        encode_numeric(d, &mut b);
        b.to_vec()
    }

    fn theirs(d: Decimal) -> Vec<u8> {
        let mut b = BytesMut::new();
        d.to_sql(&Type::NUMERIC, &mut b).unwrap();
        b.to_vec()
    }

    #[test]
    fn numeric_matches_rust_decimal_on_edge_values() {
        for s in [
            "0",
            "0.00",
            "1",
            "-1",
            "70000",
            "168512345678.12345",
            "0.00012345",
            "-0.1",
            "10000",
            "100000000.00000000",
            "79228162514264337593543950335",
            "-79228162514264337593543950335",
            "0.0000000000000000000000000001",
            "7.9228162514264337593543950335",
        ] {
            let d: Decimal = s.parse().unwrap();
            assert_eq!(ours(d), theirs(d), "{s}");
        }
    }

    proptest! {
        #[test]
        fn numeric_matches_rust_decimal(m in any::<i128>(), scale in 0u32..=28) {
            let m = m % (1i128 << 96);
            let d = Decimal::from_i128_with_scale(m, scale);
            prop_assert_eq!(ours(d), theirs(d));
        }
    }

    #[test]
    fn timestamps_count_microseconds_from_2000() {
        let mut b = CopyBuf { buf: BytesMut::new() };
        b.timestamptz(UtcTime::parse("2000-01-01T00:00:01.500Z").unwrap());
        assert_eq!(&b.buf[..], &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0x16, 0xe3, 0x60]);
    }
}
