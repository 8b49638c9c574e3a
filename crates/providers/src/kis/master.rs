//! KOSPI/KOSDAQ symbol master files (spec §3.7): a zip holding one `.mst` text file, one
//! fixed-width record per `\n`-terminated line. The head (code 9, ISIN 12, name) is split
//! off by counting the fixed tail from the end, as the official parser does, so a name of any
//! byte length parses.
//!
//! Tail layout (official `kis_kospi_code_mst.py` / `kis_kosdaq_code_mst.py` field_specs): the
//! base price (기준가, normally the previous close) is 9 bytes after group code 2, size 1,
//! sectors 4+4+4 and the one-byte flags: 26 flags on KOSPI (tail 227 bytes), 21 on KOSDAQ
//! (tail 221 bytes).

use std::io::Read;

use model::{Price, Symbol};

use crate::provider::UniverseEntry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Board {
    Kospi,
    Kosdaq,
}

impl Board {
    pub const fn tail_len(self) -> usize {
        match self {
            Board::Kospi => 227,
            Board::Kosdaq => 221,
        }
    }
    /// Offset of the 9-byte base price inside the tail.
    pub const fn base_price_at(self) -> usize {
        match self {
            Board::Kospi => 15 + 26,
            Board::Kosdaq => 15 + 21,
        }
    }
    pub const fn file_name(self) -> &'static str {
        match self {
            Board::Kospi => "kospi_code.mst",
            Board::Kosdaq => "kosdaq_code.mst",
        }
    }
}

const HEAD_FIXED: usize = 9 + 12;

/// One parsed master record, with the fields the observer uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterRecord {
    pub code: String,
    pub isin: String,
    pub name: String,
    pub group: String,
    pub base_price: Price,
}

/// Names are cp949 in the real files. Without a cp949 decoder in the dependency set, a
/// name that is not valid UTF-8 is kept with replacement characters rather than dropping
/// the record (the code and price are ASCII and exact).
fn decode_name(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

pub fn parse_line(line: &[u8], board: Board) -> Result<MasterRecord, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let tail_len = board.tail_len();
    if line.len() < HEAD_FIXED + tail_len {
        return Err(format!("record of {} bytes is shorter than {}", line.len(), HEAD_FIXED + tail_len));
    }
    let (head, tail) = line.split_at(line.len() - tail_len);
    let ascii = |b: &[u8], what: &str| -> Result<String, String> {
        std::str::from_utf8(b).map(|s| s.trim().to_string()).map_err(|_| format!("{what} is not ASCII"))
    };
    let code = ascii(&head[0..9], "code")?;
    let isin = ascii(&head[9..21], "ISIN")?;
    let name = decode_name(&head[21..]);
    let group = ascii(&tail[0..2], "group code")?;
    let at = board.base_price_at();
    let bp = ascii(&tail[at..at + 9], "base price")?;
    let base_price: Price = bp.parse().map_err(|_| format!("base price {bp:?} is not a number"))?;
    Ok(MasterRecord { code, isin, name, group, base_price })
}

/// Every record of an `.mst` body. Blank lines are skipped; a bad record fails the file
/// (a partial universe would silently drop symbols).
pub fn parse_mst(body: &[u8], board: Board) -> Result<Vec<MasterRecord>, String> {
    body.split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.is_empty() && *l != b"\r")
        .map(|(i, l)| parse_line(l, board).map_err(|e| format!("{} line {}: {e}", board.file_name(), i + 1)))
        .collect()
}

/// The single `.mst` inside a master zip, at most `max` bytes unzipped. The entry's declared
/// size is not trusted for anything: the read stops one byte past `max`.
pub fn unzip_mst(zip_bytes: &[u8], max: usize) -> Result<Vec<u8>, String> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).map_err(|e| format!("bad zip: {e}"))?;
    for i in 0..z.len() {
        let f = z.by_index(i).map_err(|e| format!("bad zip entry: {e}"))?;
        if f.name().ends_with(".mst") {
            let mut out = Vec::new();
            f.take(max as u64 + 1).read_to_end(&mut out).map_err(|e| format!("unreadable zip entry: {e}"))?;
            if out.len() > max {
                return Err(format!("unzipped master larger than {max} bytes (providers.kis.max_master_bytes)"));
            }
            return Ok(out);
        }
    }
    Err("zip holds no .mst file".into())
}

/// Stock-like groups only (shares, REITs, SPAC-like); ETFs/ETNs/warrants are other products.
pub fn to_universe(records: &[MasterRecord], groups: &[String]) -> Vec<UniverseEntry> {
    records
        .iter()
        .filter(|r| groups.is_empty() || groups.iter().any(|g| g == &r.group))
        .filter_map(|r| {
            let symbol = Symbol::new(&r.code).ok()?;
            Some(UniverseEntry { symbol, name: r.name.clone(), prev_close: r.base_price, traded_value_24h: None })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kis::fake::{MasterBoard, build_master_line as build_line, zip_master};

    /// The fake builds the files with its own layout; the parser reads them back.
    #[test]
    fn built_lines_have_the_file_widths_and_parse_back() {
        let l = build_line("005930", "KR7005930003", "SAMSUNG", "ST", "66000", MasterBoard::Kospi);
        assert_eq!(l.len(), 288);
        let r = parse_line(&l, Board::Kospi).unwrap();
        assert_eq!((r.code.as_str(), r.isin.as_str(), r.name.as_str()), ("005930", "KR7005930003", "SAMSUNG"));
        assert_eq!(r.base_price.to_string(), "66000");
        let k = build_line("00088K", "KR700088K001", "X", "ST", "1234", MasterBoard::Kosdaq);
        assert_eq!(k.len(), 282);
        assert_eq!(parse_line(&k, Board::Kosdaq).unwrap().code, "00088K");
        assert!(parse_line(&k[..100], Board::Kosdaq).is_err());
    }

    #[test]
    fn zip_round_trip() {
        let mut mst = build_line("005930", "KR7005930003", "A", "ST", "66000", MasterBoard::Kospi);
        mst.push(b'\n');
        let z = zip_master(MasterBoard::Kospi, &mst).unwrap();
        assert_eq!(parse_mst(&unzip_mst(&z, 1 << 20).unwrap(), Board::Kospi).unwrap().len(), 1);
        let e = unzip_mst(&z, 10).unwrap_err();
        assert!(e.contains("larger than 10 bytes (providers.kis.max_master_bytes)"), "{e}");
    }
}
