//! Finding a day's files in the archive: every stream's `.jsonl` files for partition date D
//! (and the universe snapshots), the providers that have any, and the archive paths rows
//! refer back to. Also the list of days the archive holds. A compressed file
//! (`X.jsonl.zst`) is listed by its plain name, once.

use std::path::{Path, PathBuf};

use model::Provider;

use crate::error::StoreError;
use crate::rows::parse_day;

/// The day's files per stream, each list sorted, and the providers with any file that day.
#[derive(Default)]
pub(super) struct Files {
    pub(super) providers: std::collections::BTreeSet<Provider>,
    pub(super) raw: Vec<PathBuf>,
    pub(super) scalp: Vec<PathBuf>,
    pub(super) swing: Vec<PathBuf>,
    pub(super) events: Vec<PathBuf>,
    pub(super) overflow: Vec<PathBuf>,
    pub(super) universe: Vec<PathBuf>,
}

impl Files {
    pub(super) fn is_empty(&self) -> bool {
        [&self.raw, &self.scalp, &self.swing, &self.events, &self.overflow, &self.universe].iter().all(|v| v.is_empty())
    }
}

/// Why a day cannot be loaded, with the days the archive does have (from `manifests/`), so a
/// mistyped date or data directory is obvious.
pub(super) fn no_files_for(root: &Path, date: &str) -> String {
    let mut days: Vec<String> = std::fs::read_dir(root.join("manifests"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_string))
        .filter(|d| parse_day(d).is_ok())
        .collect();
    days.sort();
    let known = match days.len() {
        0 => "no day has a manifest there".to_string(),
        n if n <= 5 => format!("days with a manifest: {}", days.join(", ")),
        n => format!("{n} days with a manifest, the latest {}", days[n - 5..].join(", ")),
    };
    format!("the archive under {} has no files for {date}; nothing was loaded ({known})", root.display())
}

/// The entries of `dir`, sorted; a missing folder is empty (a stream with no data yet).
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut v = Vec::new();
            for e in rd {
                v.push(e.map_err(StoreError::io(dir))?.path());
            }
            v.sort();
            Ok(v)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(StoreError::Io { path: dir.to_path_buf(), source: e }),
    }
}

/// Only the archive's line files, each once by its plain name (`X.jsonl`) whether it is
/// stored plain or compressed (`X.jsonl.zst`): rows name files that way, and
/// `archive::open_lines` reads either form.
fn jsonl(v: Vec<PathBuf>) -> impl Iterator<Item = PathBuf> {
    archive::logical_files(v).into_iter()
}

/// `file` (a plain name) is on disk in either form.
fn line_file_exists(file: &Path) -> bool {
    file.is_file() || archive::compressed_path(file).is_file()
}

/// Lists day `date`'s files under `root`: `raw/{provider}/D/*.jsonl`,
/// `{scalp,swing}/{provider}/{market}/D/*.jsonl`, `system/events/{provider}/D.jsonl`,
/// `system/overflow/{provider}/D_overflow.jsonl` and `universe/D_*.json`.
pub(super) fn find_files(root: &Path, date: &str) -> Result<Files, StoreError> {
    let mut f = Files::default();
    for p in list_dir(&root.join("raw"))? {
        f.raw.extend(jsonl(list_dir(&p.join(date))?));
    }
    for (kind, out) in [("scalp", &mut f.scalp), ("swing", &mut f.swing)] {
        for p in list_dir(&root.join(kind))? {
            for m in list_dir(&p)? {
                out.extend(jsonl(list_dir(&m.join(date))?));
            }
        }
    }
    for p in list_dir(&root.join("system/events"))? {
        let file = p.join(format!("{date}.jsonl"));
        if line_file_exists(&file) {
            f.events.push(file);
        }
    }
    for p in list_dir(&root.join("system/overflow"))? {
        let file = p.join(format!("{date}_overflow.jsonl"));
        if line_file_exists(&file) {
            f.overflow.push(file);
        }
    }
    for (kind, v) in [("raw", &f.raw), ("scalp", &f.scalp), ("swing", &f.swing), ("system/events", &f.events)] {
        for p in v {
            let provider =
                p.strip_prefix(root.join(kind)).ok().and_then(|r| r.iter().next()?.to_str()?.parse::<Provider>().ok());
            f.providers.extend(provider);
        }
    }
    for p in &f.overflow {
        f.providers.extend(p.parent().and_then(|d| d.file_name()?.to_str()?.parse::<Provider>().ok()));
    }
    let prefix = format!("{date}_");
    f.universe = list_dir(&root.join("universe"))?
        .into_iter()
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".json"))
        })
        .collect();
    Ok(f)
}

/// `p` relative to the archive root with `/` separators: the form rows refer to files by
/// (`src_file`, `raw_ref`) on every platform.
pub(super) fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The partition dates (`YYYYMMDD`) the archive has data for, from its manifests and folders.
pub fn archive_dates(root: &Path) -> Result<Vec<String>, StoreError> {
    let mut dates = std::collections::BTreeSet::new();
    for m in list_dir(&root.join("manifests"))? {
        if let Some(d) = m.file_stem().and_then(|s| s.to_str()).filter(|d| parse_day(d).is_ok()) {
            dates.insert(d.to_string());
        }
    }
    for p in list_dir(&root.join("raw"))? {
        for d in list_dir(&p)? {
            if let Some(d) = d.file_name().and_then(|s| s.to_str()).filter(|d| parse_day(d).is_ok()) {
                dates.insert(d.to_string());
            }
        }
    }
    Ok(dates.into_iter().collect())
}
