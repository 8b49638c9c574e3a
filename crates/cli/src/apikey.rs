//! `stock-observer apikey`: the keys of the HTTP API's `/api/v1` routes, in
//! `{data_dir}/auth/api_keys.json`. A running `collect` sees changes on its next request.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use api::keys::{KeyRecord, KeyStore, Scope};
use model::Clock;

#[derive(clap::Subcommand)]
pub enum ApiKey {
    /// Make a key and print it (only it) on stdout: it is shown this once and never stored.
    Create(CreateArgs),
    /// Every key: id, scope, created, revoked, label (never a key or its hash).
    List(DirArgs),
    /// Refuse a key from now on (a running collector included).
    Revoke(RevokeArgs),
}

#[derive(clap::Args)]
pub struct DirArgs {
    /// The data dir whose keys these are.
    #[arg(long, value_name = "DIR", default_value = "./data")]
    data_dir: PathBuf,
}

#[derive(clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// What the key may do: read, stream, admin (everything) or backup:read (pull backup
    /// packages and post receipts: a coordinator).
    #[arg(long, value_name = "SCOPE")]
    scope: Scope,
    /// Who or what holds the key, shown by `apikey list`.
    #[arg(long, value_name = "TEXT", default_value = "")]
    label: String,
}

#[derive(clap::Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// The key's id (the 16 hex digits after `so_`; see `apikey list`).
    id: String,
}

pub fn run(cmd: ApiKey) -> anyhow::Result<ExitCode> {
    let now = Clock::real().now();
    match cmd {
        ApiKey::Create(a) => {
            let store = KeyStore::open(&a.dir.data_dir);
            let key = store
                .create(a.scope, &a.label, now)
                .with_context(|| format!("creating an API key in {}", store.path().display()))?;
            // Only the key on stdout, so `KEY=$(stock-observer apikey create …)` captures it.
            println!("{}", key.text());
            eprintln!(
                "API key {} (scope {}) created in {}. It is shown only now and not stored: keep it. \
                 Revoke it with: stock-observer apikey revoke --data-dir {} {}",
                key.record.id,
                key.record.scope,
                store.path().display(),
                a.dir.data_dir.display(),
                key.record.id
            );
        }
        ApiKey::List(a) => {
            let store = KeyStore::open(&a.data_dir);
            let keys = store.list().with_context(|| format!("reading {}", store.path().display()))?;
            if keys.is_empty() {
                eprintln!("no API keys in {}", store.path().display());
            } else {
                print!("{}", table(&keys));
            }
        }
        ApiKey::Revoke(a) => {
            let store = KeyStore::open(&a.dir.data_dir);
            let was_active = store.list()?.iter().any(|k| k.id == a.id && k.is_active());
            let key = store.revoke(&a.id, now)?;
            let when = key.revoked_at.map(|t| t.to_string()).unwrap_or_default();
            if was_active {
                eprintln!("API key {} (scope {}) revoked at {when}", key.id, key.scope);
            } else {
                eprintln!("API key {} (scope {}) was already revoked at {when}", key.id, key.scope);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Columns aligned, the label last so a label with spaces does not shift the others.
fn table(keys: &[KeyRecord]) -> String {
    let rows: Vec<[String; 5]> = keys
        .iter()
        .map(|k| {
            [
                k.id.clone(),
                k.scope.to_string(),
                k.created_at.to_string(),
                k.revoked_at.map_or_else(|| "-".to_string(), |t| t.to_string()),
                k.label.clone(),
            ]
        })
        .collect();
    let head = ["ID", "SCOPE", "CREATED", "REVOKED", "LABEL"];
    let mut widths = head.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(head.map(String::from)).chain(rows) {
        let [id, scope, created, revoked, label] = &r;
        out.push_str(&format!(
            "{id:<w0$}  {scope:<w1$}  {created:<w2$}  {revoked:<w3$}  {label}",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        ));
        // An empty label would leave trailing spaces.
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_shows_no_hash_and_keeps_columns() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path());
        let t = model::UtcTime::parse("2026-01-14T00:00:00.000Z").unwrap();
        let a = store.create(Scope::BackupRead, "coordinator at hq", t).unwrap();
        let b = store.create(Scope::Read, "", t).unwrap();
        store.revoke(&b.record.id, t.plus_secs(5)).unwrap();
        let out = table(&store.list().unwrap());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("ID "), "{out}");
        assert!(
            lines[1].starts_with(&a.record.id)
                && lines[1].contains("backup:read")
                && lines[1].ends_with("coordinator at hq")
        );
        assert!(lines[2].contains("2026-01-14T00:00:05.000Z"), "{out}");
        for k in [&a, &b] {
            assert!(!out.contains(&k.record.sha256) && !out.contains(k.text()), "{out}");
        }
    }
}
