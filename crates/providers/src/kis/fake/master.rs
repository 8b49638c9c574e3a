//! The symbol master files as the fake serves them: one zip per board holding one `.mst`,
//! one fixed-width record per line (KIS §3.7 in `docs/providers.md`).
//!
//! The layout is written out here rather than taken from the client's parser
//! (`kis::master`), on purpose: a wrong width or offset must not pass both sides.

use std::io::Write;

/// The boards the fake serves, by the zip's name under `/common/master/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterBoard {
    Kospi,
    Kosdaq,
}

impl MasterBoard {
    pub(super) fn from_zip_name(name: &str) -> Option<MasterBoard> {
        match name {
            "kospi_code.mst.zip" => Some(MasterBoard::Kospi),
            "kosdaq_code.mst.zip" => Some(MasterBoard::Kosdaq),
            _ => None,
        }
    }
    /// The `.mst` inside the zip.
    fn entry_name(self) -> &'static str {
        match self {
            MasterBoard::Kospi => "kospi_code.mst",
            MasterBoard::Kosdaq => "kosdaq_code.mst",
        }
    }
    /// The fixed tail after the name: 227 bytes on KOSPI, 221 on KOSDAQ.
    fn tail_len(self) -> usize {
        match self {
            MasterBoard::Kospi => 227,
            MasterBoard::Kosdaq => 221,
        }
    }
    /// The 9-byte base price's offset in the tail: group code 2, size 1, sectors 4+4+4, then
    /// 26 one-byte flags on KOSPI, 21 on KOSDAQ.
    fn base_price_at(self) -> usize {
        match self {
            MasterBoard::Kospi => 41,
            MasterBoard::Kosdaq => 36,
        }
    }
}

/// One record as the files lay it out: code 9, ISIN 12, name 40 (space-padded), then the
/// board's tail with the group code and the base price; other flags `N`, numbers `0`.
pub fn build_master_line(
    code: &str,
    isin: &str,
    name: &str,
    group: &str,
    base_price: &str,
    board: MasterBoard,
) -> Vec<u8> {
    let pad = |s: &str, w: usize| {
        let mut b = s.as_bytes().to_vec();
        b.resize(w.max(b.len()), b' ');
        b
    };
    let mut line = pad(code, 9);
    line.extend(pad(isin, 12));
    // The real name field is 40 cp949 bytes; a longer UTF-8 name keeps all its bytes.
    line.extend(pad(name, 40));
    let mut tail = vec![b'N'; board.tail_len()];
    tail[0..2].copy_from_slice(&pad(group, 2)[..2]);
    tail[2] = b'3';
    tail[3..15].copy_from_slice(b"000000000000");
    let at = board.base_price_at();
    let bp = format!("{base_price:0>9}");
    tail[at..at + 9].copy_from_slice(&bp.as_bytes()[bp.len() - 9..]);
    for b in tail.iter_mut().skip(at + 9) {
        *b = b'0';
    }
    line.extend(tail);
    line
}

/// A master zip holding `mst` as the board's `.mst` entry.
pub fn zip_master(board: MasterBoard, mst: &[u8]) -> Result<Vec<u8>, String> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    w.start_file(board.entry_name(), opts).map_err(|e| e.to_string())?;
    w.write_all(mst).map_err(|e| e.to_string())?;
    w.finish().map(|c| c.into_inner()).map_err(|e| e.to_string())
}
