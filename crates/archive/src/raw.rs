//! The raw-archive line, the one contract every reader and writer of `raw/` shares: the
//! collector encodes it, `replay`, the ETL, `bench` and the test fixtures decode or write it
//! through this module only, so the format cannot drift between them.
//!
//! A line is `Record<{provider, kind, channel, seq, frame}>`: the frame exactly as received,
//! numbered per provider and session for `raw_ref` and replay, with the common meta.

use serde::{Deserialize, Serialize};

use model::{Meta, Provider, RawFrame, RawFrameKind, Record, UtcTime};

use crate::stream::raw_path;

/// Bytes a raw line adds around its frame (keys, times, session): sizes the line buffer once.
pub const RAW_LINE_OVERHEAD: usize = 320;

/// The body of a raw line as serde writes it; [`encode`] writes the same bytes faster.
#[derive(Serialize)]
pub struct RawLineBody<'a> {
    pub provider: Provider,
    pub kind: RawFrameKind,
    pub channel: &'a str,
    pub seq: u64,
    pub frame: &'a str,
}

/// One decoded raw line: the frame (its receive time is the meta's), its sequence number
/// and the meta it was archived with.
#[derive(Debug, Clone)]
pub struct RawLine {
    pub frame: RawFrame,
    pub seq: u64,
    pub meta: Meta,
}

#[derive(Deserialize)]
struct BodyIn {
    provider: Provider,
    kind: RawFrameKind,
    channel: String,
    seq: u64,
    frame: String,
}

/// Decodes one line (without its newline). Never panics, whatever the bytes: invalid
/// UTF-8, JSON of another shape, and event or receive times outside the archive's domain
/// are all reasons, returned as text for a `file:line: why` report.
pub fn decode(bytes: &[u8]) -> Result<RawLine, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 ({e})"))?;
    let rec: Record<BodyIn> = serde_json::from_str(text).map_err(|e| format!("not a raw archive line: {e}"))?;
    if let Some(why) = rec.meta.implausible() {
        return Err(why);
    }
    let b = rec.body;
    let frame = RawFrame {
        provider: b.provider,
        kind: b.kind,
        channel: b.channel,
        frame: b.frame,
        receive_time: rec.meta.receive_time,
    };
    Ok(RawLine { frame, seq: b.seq, meta: rec.meta })
}

/// Encodes the raw-archive line of `frame`, byte for byte what serde would write for
/// `Record<RawLineBody>` (a test holds the two equal), without serde's per-key escaping:
/// this runs for every frame a provider sends, and only the frame and channel can need
/// escaping.
pub fn encode(out: &mut Vec<u8>, frame: &RawFrame, seq: u64, meta: &Meta) {
    let string = json_string;
    out.extend_from_slice(b"{\"provider\":\"");
    out.extend_from_slice(frame.provider.as_str().as_bytes());
    out.extend_from_slice(b"\",\"kind\":\"");
    out.extend_from_slice(frame.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"channel\":");
    string(out, &frame.channel);
    out.extend_from_slice(b",\"seq\":");
    out.extend_from_slice(itoa_u64(seq, &mut [0u8; 20]));
    out.extend_from_slice(b",\"frame\":");
    string(out, &frame.frame);
    out.extend_from_slice(b",\"schema_version\":");
    string(out, &meta.schema_version);
    // A raw frame's event time is its receive time: format it once.
    let event = meta.event_time.rfc3339_bytes();
    out.extend_from_slice(b",\"event_time\":\"");
    out.extend_from_slice(&event);
    out.extend_from_slice(b"\",\"receive_time\":\"");
    if meta.receive_time == meta.event_time {
        out.extend_from_slice(&event);
    } else {
        meta.receive_time.write_rfc3339(out);
    }
    out.extend_from_slice(b"\",\"session_id\":");
    string(out, meta.session_id.as_str());
    out.extend_from_slice(b",\"mitigation_level\":");
    out.extend_from_slice(itoa_u64(meta.mitigation_level as u64, &mut [0u8; 20]));
    out.extend_from_slice(b",\"quality_flag\":\"");
    out.extend_from_slice(meta.quality_flag.as_str().as_bytes());
    out.push(b'"');
    if let Some(r) = &meta.raw_ref {
        out.extend_from_slice(b",\"raw_ref\":");
        string(out, r);
    }
    if let Some(m) = &meta.mapper_version {
        out.extend_from_slice(b",\"mapper_version\":");
        string(out, m);
    }
    out.push(b'}');
}

/// Writes `s` as a JSON string, byte for byte what serde_json writes (a test holds the two
/// equal): `"` and `\\` escaped with a backslash, control characters as `\b \t \n \f \r`
/// or `\u00xx`, everything else (UTF-8 included) as is. Frames are mostly long runs with
/// nothing to escape: those are found 64 bytes at a time and copied whole.
pub fn json_string(out: &mut Vec<u8>, s: &str) {
    fn escape(out: &mut Vec<u8>, b: u8) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]),
        }
    }
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut copied = 0; // bytes[..copied] are written
    model::scan::json_escape_masks(bytes, |at, mut hits| {
        while hits != 0 {
            let i = at + hits.trailing_zeros() as usize;
            out.extend_from_slice(&bytes[copied..i]);
            escape(out, bytes[i]);
            copied = i + 1;
            hits &= hits - 1;
        }
        true
    });
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

fn itoa_u64(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

/// `{file}#{seq}`: where the frame behind a record is archived, given the raw file's path
/// relative to the data dir.
pub fn raw_ref_in(file: &str, seq: u64) -> String {
    format!("{file}#{seq}")
}

/// `raw/{provider}/YYYYMMDD/HH.jsonl#seq` for a frame received at `receive_time`.
pub fn raw_ref(provider: Provider, receive_time: UtcTime, seq: u64) -> String {
    RawRefs::default().get(provider, receive_time, seq)
}

/// Builds `raw_ref`s, keeping the file part for the current hour: it is needed for every
/// frame and changes once an hour.
#[derive(Debug, Default)]
pub struct RawRefs {
    key: Option<(Provider, i64)>,
    prefix: String,
}

const MS_PER_HOUR: i64 = 3_600_000;

impl RawRefs {
    pub fn get(&mut self, provider: Provider, receive_time: UtcTime, seq: u64) -> String {
        // Seoul is a whole number of hours from UTC, so UTC hours are Seoul hours.
        let key = (provider, receive_time.as_millis().div_euclid(MS_PER_HOUR));
        if self.key != Some(key) {
            self.prefix = raw_path(provider, receive_time);
            self.prefix.push('#');
            self.key = Some(key);
        }
        let mut buf = [0u8; 20];
        let digits = itoa_u64(seq, &mut buf);
        let mut s = String::with_capacity(self.prefix.len() + digits.len());
        s.push_str(&self.prefix);
        // itoa_u64 writes ASCII digits only.
        s.push_str(std::str::from_utf8(digits).unwrap_or_default());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::SessionId;
    use proptest::prelude::*;

    const LINE: &str = r#"{"provider":"kis","kind":"ws","channel":"ws","seq":7,"frame":"0|H0STCNT0|001|005930","schema_version":"1.0","event_time":"2026-01-14T01:00:05.617Z","receive_time":"2026-01-14T01:00:05.617Z","session_id":"sess_20260114_100000","mitigation_level":0,"quality_flag":"normal"}"#;

    #[test]
    fn hand_encoded_raw_line_equals_serde_and_decodes_back() {
        let t = UtcTime::parse("2026-01-14T01:02:03.004Z").unwrap();
        let frame = RawFrame {
            provider: Provider::Sim,
            kind: RawFrameKind::Ws,
            channel: "tr\"ade\u{1}".into(),
            frame: "{\"t\":\"trade\",\"s\":\"005930\"}\\\n한글".into(),
            receive_time: t,
        };
        for level in [0u8, 2] {
            let mut meta = Meta::new(t, t.plus_millis(7), SessionId::starting_at(t));
            meta.mitigation_level = level;
            if level > 0 {
                meta.quality_flag = model::QualityFlag::Degraded;
                meta.raw_ref = Some("raw/x#1".into());
                meta.mapper_version = Some("sim/1".into());
            }
            let mut ours = Vec::new();
            encode(&mut ours, &frame, u64::MAX, &meta);
            let body = RawLineBody {
                provider: frame.provider,
                kind: frame.kind,
                channel: &frame.channel,
                seq: u64::MAX,
                frame: &frame.frame,
            };
            let theirs = serde_json::to_vec(&Record { body, meta: meta.clone() }).unwrap();
            assert_eq!(String::from_utf8(ours.clone()).unwrap(), String::from_utf8(theirs).unwrap());
            let back = decode(&ours).unwrap();
            assert_eq!((back.seq, &back.frame.frame, &back.frame.channel), (u64::MAX, &frame.frame, &frame.channel));
            assert_eq!((back.meta.quality_flag, back.meta.receive_time), (meta.quality_flag, meta.receive_time));
            assert_eq!(back.frame.receive_time, meta.receive_time);
        }
    }

    #[test]
    fn json_strings_equal_serde() {
        let mut cases: Vec<String> = (0u32..=0x80).filter_map(char::from_u32).map(|c| c.to_string()).collect();
        cases.push(String::new());
        cases.push("0|H0STCNT0|001|005930^093354^71900^5^-100^-0.14".into());
        cases.push("{\"t\":\"trade\",\"s\":\"005930\"}\\\n한글\u{7f}\u{1f}".repeat(3));
        for s in cases {
            let mut ours = b"x".to_vec();
            json_string(&mut ours, &s);
            let mut theirs = b"x".to_vec();
            serde_json::to_writer(&mut theirs, &s).unwrap();
            assert_eq!(ours, theirs, "{s:?}");
        }
    }

    #[test]
    fn raw_refs_follow_the_seoul_hour() {
        let mut refs = RawRefs::default();
        let t = UtcTime::parse("2026-01-14T14:59:59.999Z").unwrap();
        assert_eq!(refs.get(Provider::Kis, t, 7), "raw/kis/20260114/23.jsonl#7");
        assert_eq!(refs.get(Provider::Kis, t.plus_millis(1), 8), "raw/kis/20260115/00.jsonl#8");
        assert_eq!(refs.get(Provider::Upbit, t.plus_millis(1), 9), "raw/upbit/20260115/00.jsonl#9");
        assert_eq!(raw_ref_in("raw/kis/20260115/00.jsonl", 8), refs.get(Provider::Kis, t.plus_millis(2), 8));
    }

    #[test]
    fn the_decoder_refuses_what_it_cannot_replay() {
        assert!(decode(LINE.as_bytes()).is_ok());
        let far = LINE
            .replace("\"receive_time\":\"2026-01-14T01:00:05.617Z\"", "\"receive_time\":\"9999-12-31T20:00:00.000Z\"");
        assert!(decode(far.as_bytes()).err().unwrap().contains("implausible receive_time"));
        assert!(decode(&[0xff, b'{']).err().unwrap().contains("not UTF-8"));
        assert!(decode(b"{}").err().unwrap().contains("not a raw archive line"));
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        /// Any string, escapes and multi-byte characters included, is written as serde does.
        #[test]
        fn random_strings_equal_serde(s in "(?s).{0,40}|[\"\\\\\n\t\r\u{0}\u{8}\u{c}\u{1f}\u{7f} 가é😀ab]{0,40}") {
            let mut ours = Vec::new();
            json_string(&mut ours, &s);
            prop_assert_eq!(ours, serde_json::to_vec(&s).unwrap());
        }

        /// Fuzzing the decoder: random bytes, and a real line cut, spliced or with random
        /// text inserted, never panic; what is accepted has plausible times.
        #[test]
        fn the_decoder_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            cut in 0usize..400,
            junk in "[\\[\\]{}\",:0-9eE.+TZ-]{0,12}",
        ) {
            let _ = decode(&bytes);
            let at = cut.min(LINE.len());
            let spliced = format!("{}{junk}{}", &LINE[..at], &LINE[at..]);
            for candidate in [spliced.as_bytes(), &LINE.as_bytes()[..at]] {
                if let Ok(l) = decode(candidate) {
                    prop_assert!(l.meta.implausible().is_none());
                    let _ = (l.meta.receive_time.kst(), l.meta.receive_time.to_string());
                }
            }
        }
    }
}
