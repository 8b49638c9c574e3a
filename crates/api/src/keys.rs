//! API keys: `{data_dir}/auth/api_keys.json`, one scope each, stored as a hash.
//!
//! A key is `so_<id>_<secret>`: `id` is 8 random bytes in hex, public (lookups, logs,
//! `apikey list`, `apikey revoke`); `secret` is 32 random bytes from the operating system's
//! RNG, in hex. Only the sha256 of the secret is stored, so the file (or a backup of it)
//! does not grant access; the key is shown once, when it is created.
//!
//! The server reads the file through a [`KeyStore`] that re-reads it only when its
//! metadata changes, so a key created or revoked by `stock-observer apikey` takes effect on
//! the next request without a restart, and an unchanged file costs one `stat` per request.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use model::UtcTime;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::session::{Sessions, looks_like_jwt};

/// The folder (under the data dir) and the file.
pub const AUTH_DIR: &str = "auth";
pub const KEYS_FILE: &str = "api_keys.json";
const LOCK_FILE: &str = "api_keys.lock";
const PREFIX: &str = "so_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
/// Labels are shown in `apikey list`; long enough for a host and a purpose.
pub const MAX_LABEL_CHARS: usize = 100;

/// What a key may do. Every route names the scope it needs; `admin` holds all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "read")]
    Read,
    #[serde(rename = "stream")]
    Stream,
    #[serde(rename = "admin")]
    Admin,
    /// Pull backup packages and post receipts (a coordinator).
    #[serde(rename = "backup:read")]
    BackupRead,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Stream, Scope::Admin, Scope::BackupRead];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Stream => "stream",
            Scope::Admin => "admin",
            Scope::BackupRead => "backup:read",
        }
    }

    /// Whether a key of this scope may use a route that needs `needed`: admin ⊇ read ⊇
    /// stream (the stream carries what the read routes serve, as it happens, so a dashboard
    /// session of a read key sees it live); backup:read is only itself.
    pub fn allows(self, needed: Scope) -> bool {
        self == needed || self == Scope::Admin || (self == Scope::Read && needed == Scope::Stream)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scope::ALL.into_iter().find(|sc| sc.as_str() == s).ok_or_else(|| {
            let all: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            format!("{s:?} is not a scope (one of: {})", all.join(", "))
        })
    }
}

/// One stored key: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub id: String,
    pub scope: Scope,
    pub label: String,
    pub created_at: UtcTime,
    pub revoked_at: Option<UtcTime>,
    /// sha256 of the secret part's text, hex.
    pub sha256: String,
}

impl KeyRecord {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    keys: Vec<KeyRecord>,
}

/// A key's full text, returned once by [`KeyStore::create`]. `Debug` does not show it, so
/// a stray `{:?}` cannot log it.
pub struct NewKey {
    text: String,
    pub record: KeyRecord,
}

impl NewKey {
    /// The key to hand to the client (`so_<id>_<secret>`).
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey").field("text", &"<hidden>").field("record", &self.record).finish()
    }
}

/// Who a verified key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub id: String,
    pub scope: Scope,
    pub label: String,
}

/// Errors about the key file. None carries a key's text.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not an API key file: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error("no random bytes from the operating system: {0}")]
    Random(String),
    #[error("no API key with id {0:?} (see `stock-observer apikey list`)")]
    NoSuchKey(String),
    #[error("label: {0}")]
    Label(String),
}

impl KeyError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
        move |source| KeyError::Io { path: path.to_path_buf(), source }
    }
}

/// Why a presented key was refused. The `id` is the part before the secret, only when the
/// text had the key's shape: safe to log, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not an API key (expected so_<id>_<secret>)")]
    Malformed,
    #[error("unknown API key {id}")]
    Unknown { id: String },
    #[error("API key {id}: wrong secret")]
    WrongSecret { id: String },
    #[error("API key {id} was revoked")]
    Revoked { id: String },
    #[error("a session token, but sessions are off (no STOCK_OBSERVER_JWT_SECRET)")]
    SessionsOff,
    #[error("{0}")]
    Session(String),
}

impl Refusal {
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Refusal::Malformed | Refusal::SessionsOff | Refusal::Session(_) => None,
            Refusal::Unknown { id } | Refusal::WrongSecret { id } | Refusal::Revoked { id } => Some(id),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The file cannot be read: every key is refused until it can (fail closed, so a
    /// revocation is never undone by a damaged file).
    #[error(transparent)]
    Store(#[from] KeyError),
}

/// The id and secret parts of a key's text, if it has the shape of one.
fn split(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex_of =
        |s: &str, bytes: usize| s.len() == 2 * bytes && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (hex_of(id, ID_BYTES) && hex_of(secret, SECRET_BYTES)).then_some((id, secret))
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn random_hex(bytes: usize) -> Result<String, KeyError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

/// What the cache was read from: a rename (every write is one) gives a new inode, and
/// every change alters the length or the mtime, so an unchanged stamp means unchanged keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Stamp { modified: meta.modified().ok(), len: meta.len(), inode }
    }
}

#[derive(Debug, Default)]
struct Cache {
    /// `None` before the first read; `Some(None)` while the file does not exist.
    stamp: Option<Option<Stamp>>,
    keys: Arc<HashMap<String, KeyRecord>>,
}

/// The key file of one data dir, and (when configured) the sessions minted for its keys.
#[derive(Debug)]
pub struct KeyStore {
    path: PathBuf,
    cache: Mutex<Cache>,
    sessions: Option<Sessions>,
}

impl KeyStore {
    /// The store of `data_dir` (`{data_dir}/auth/api_keys.json`); nothing is read or created yet.
    pub fn open(data_dir: &Path) -> KeyStore {
        KeyStore::at(data_dir.join(AUTH_DIR).join(KEYS_FILE))
    }

    /// A store at an explicit file path.
    pub fn at(path: impl Into<PathBuf>) -> KeyStore {
        KeyStore { path: path.into(), cache: Mutex::default(), sessions: None }
    }

    /// Accepts session tokens (JWT) signed by `sessions` besides API keys.
    pub fn with_sessions(mut self, sessions: Option<Sessions>) -> KeyStore {
        self.sessions = sessions;
        self
    }

    pub fn sessions(&self) -> Option<&Sessions> {
        self.sessions.as_ref()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every key, active and revoked, oldest first, read from the file now.
    pub fn list(&self) -> Result<Vec<KeyRecord>, KeyError> {
        Ok(self.read_file()?.keys)
    }

    /// Whether any unrevoked key exists.
    pub fn any_active(&self) -> Result<bool, KeyError> {
        Ok(self.current()?.values().any(KeyRecord::is_active))
    }

    /// Makes a key of `scope` and stores its hash. The returned text is the only copy.
    pub fn create(&self, scope: Scope, label: &str, now: UtcTime) -> Result<NewKey, KeyError> {
        if label.chars().count() > MAX_LABEL_CHARS {
            return Err(KeyError::Label(format!("longer than {MAX_LABEL_CHARS} characters")));
        }
        if label.chars().any(char::is_control) {
            // It is printed to terminals by `apikey list`.
            return Err(KeyError::Label("contains control characters".into()));
        }
        self.update(|file| {
            let id = loop {
                let id = random_hex(ID_BYTES)?;
                if !file.keys.iter().any(|k| k.id == id) {
                    break id;
                }
            };
            let secret = random_hex(SECRET_BYTES)?;
            let record = KeyRecord {
                id: id.clone(),
                scope,
                label: label.to_string(),
                created_at: now,
                revoked_at: None,
                sha256: hex::encode(digest(&secret)),
            };
            file.keys.push(record.clone());
            Ok(NewKey { text: format!("{PREFIX}{id}_{secret}"), record })
        })
    }

    /// Revokes key `id`; a key already revoked keeps its first revocation time.
    pub fn revoke(&self, id: &str, now: UtcTime) -> Result<KeyRecord, KeyError> {
        self.update(|file| {
            let key = file.keys.iter_mut().find(|k| k.id == id).ok_or_else(|| KeyError::NoSuchKey(id.to_string()))?;
            key.revoked_at.get_or_insert(now);
            Ok(key.clone())
        })
    }

    /// Checks a presented key: known id, matching secret (compared in constant time), not
    /// revoked. Sees the file as it is now (one `stat`; a re-read only if it changed).
    pub fn verify(&self, presented: &str) -> Result<Caller, VerifyError> {
        if looks_like_jwt(presented.trim()) {
            return self.verify_session(presented.trim());
        }
        let (id, secret) = split(presented.trim()).ok_or(Refusal::Malformed)?;
        let keys = self.current()?;
        let Some(key) = keys.get(id) else { return Err(Refusal::Unknown { id: id.to_string() }.into()) };
        let stored = hex::decode(&key.sha256).unwrap_or_default();
        let matches: bool = digest(secret).as_slice().ct_eq(stored.as_slice()).into();
        if !matches {
            return Err(Refusal::WrongSecret { id: id.to_string() }.into());
        }
        if !key.is_active() {
            return Err(Refusal::Revoked { id: id.to_string() }.into());
        }
        Ok(Caller { id: key.id.clone(), scope: key.scope, label: key.label.clone() })
    }

    /// A session token: signed here, HS256, not expired, and its key still active.
    fn verify_session(&self, token: &str) -> Result<Caller, VerifyError> {
        let sessions = self.sessions.as_ref().ok_or(Refusal::SessionsOff)?;
        let claims = sessions.verify(token).map_err(|e| Refusal::Session(e.to_string()))?;
        let scope: Scope = claims.scope.parse().map_err(Refusal::Session)?;
        let keys = self.current()?;
        match keys.get(&claims.sub) {
            Some(key) if key.is_active() => Ok(Caller { id: key.id.clone(), scope, label: key.label.clone() }),
            Some(_) => Err(Refusal::Revoked { id: claims.sub }.into()),
            None => Err(Refusal::Unknown { id: claims.sub }.into()),
        }
    }

    /// The keys as the file holds them now, from the cache unless the file changed.
    fn current(&self) -> Result<Arc<HashMap<String, KeyRecord>>, KeyError> {
        let stamp = match fs::metadata(&self.path) {
            Ok(m) => Some(Stamp::of(&m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(KeyError::io(&self.path)(e)),
        };
        // A poisoned lock only means another request panicked mid-read; the cache is
        // replaced whole, so its content is still consistent.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.stamp != Some(stamp) {
            let file = self.read_file()?;
            let mut keys = HashMap::with_capacity(file.keys.len());
            for k in file.keys {
                keys.insert(k.id.clone(), k);
            }
            *cache = Cache { stamp: Some(stamp), keys: Arc::new(keys) };
        }
        Ok(cache.keys.clone())
    }

    fn read_file(&self) -> Result<KeyFile, KeyError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KeyFile::default()),
            Err(e) => return Err(KeyError::io(&self.path)(e)),
        };
        let file: KeyFile = serde_json::from_slice(&bytes)
            .map_err(|e| KeyError::Invalid { path: self.path.clone(), reason: e.to_string() })?;
        for k in &file.keys {
            let ok = k.id.len() == 2 * ID_BYTES && k.sha256.len() == 64 && hex::decode(&k.sha256).is_ok();
            if !ok {
                return Err(KeyError::Invalid {
                    path: self.path.clone(),
                    reason: format!("key {:?} is malformed", k.id),
                });
            }
        }
        Ok(file)
    }

    /// Read, change, write back atomically, under a lock so two `apikey` commands at once
    /// cannot lose each other's change.
    fn update<T>(&self, change: impl FnOnce(&mut KeyFile) -> Result<T, KeyError>) -> Result<T, KeyError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        archive::create_dirs_synced(dir)?;
        restrict_dir(dir);
        let lock_path = dir.join(LOCK_FILE);
        let lock = private_file(&lock_path)?;
        lock.lock().map_err(KeyError::io(&lock_path))?;
        let mut file = self.read_file()?;
        let out = change(&mut file)?;
        let mut bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| KeyError::Invalid { path: self.path.clone(), reason: e.to_string() })?;
        bytes.push(b'\n');
        archive::write_atomic(&self.path, &bytes, archive::PRIVATE_MODE)?;
        // Dropping the file releases the lock.
        drop(lock);
        Ok(out)
    }
}

/// Opens (creating with mode 0600) the lock file.
fn private_file(path: &Path) -> Result<fs::File, KeyError> {
    let mut o = fs::OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, archive::PRIVATE_MODE);
    o.open(path).map_err(KeyError::io(path))
}

/// The auth folder is the owner's alone: the hashes do not grant access, but the list of
/// ids and labels is nobody else's business either.
fn restrict_dir(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(dir)
            && meta.permissions().mode() & 0o077 != 0
            && let Err(e) = fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        {
            tracing::warn!(path = %dir.display(), error = %e, "cannot make the API key folder private (0700)");
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> UtcTime {
        UtcTime::parse("2026-01-14T00:00:00.000Z").unwrap()
    }

    #[test]
    fn scopes_parse_and_print_as_the_api_names_them() {
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        assert_eq!(Scope::BackupRead.to_string(), "backup:read");
        assert!("trade:write".parse::<Scope>().unwrap_err().contains("backup:read"));
        assert!(Scope::Admin.allows(Scope::BackupRead));
        assert!(!Scope::Read.allows(Scope::BackupRead));
        assert!(!Scope::BackupRead.allows(Scope::Read));
        assert!(Scope::Read.allows(Scope::Stream) && !Scope::Stream.allows(Scope::Read));
        assert!(!Scope::BackupRead.allows(Scope::Stream));
    }

    #[test]
    fn create_verify_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path());
        assert!(!store.any_active().unwrap());
        let k = store.create(Scope::BackupRead, "coordinator", t0()).unwrap();
        let text = k.text().to_string();
        assert!(text.starts_with(&format!("so_{}_", k.record.id)), "{text}");
        assert_eq!(text.len(), 3 + 16 + 1 + 64);
        assert!(!format!("{k:?}").contains(&text));

        let on_disk = fs::read_to_string(store.path()).unwrap();
        let secret = &text[20..];
        assert!(!on_disk.contains(secret), "the secret is not stored");
        assert!(on_disk.contains(&k.record.sha256));

        let caller = store.verify(&text).unwrap();
        assert_eq!(
            (caller.id.as_str(), caller.scope, caller.label.as_str()),
            (k.record.id.as_str(), Scope::BackupRead, "coordinator")
        );

        let mut wrong = text.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        let id = k.record.id.clone();
        assert!(matches!(store.verify(&wrong), Err(VerifyError::Refused(Refusal::WrongSecret { id: i })) if i == id));
        assert!(matches!(store.verify("so_nothex_x"), Err(VerifyError::Refused(Refusal::Malformed))));
        assert!(matches!(store.verify(""), Err(VerifyError::Refused(Refusal::Malformed))));
        let other = format!("so_{}_{}", "0".repeat(16), "0".repeat(64));
        assert!(matches!(store.verify(&other), Err(VerifyError::Refused(Refusal::Unknown { .. }))));

        let revoked = store.revoke(&id, t0().plus_secs(60)).unwrap();
        assert_eq!(revoked.revoked_at, Some(t0().plus_secs(60)));
        assert!(matches!(store.verify(&text), Err(VerifyError::Refused(Refusal::Revoked { .. }))));
        // A second revoke keeps the first time.
        assert_eq!(store.revoke(&id, t0().plus_secs(120)).unwrap().revoked_at, Some(t0().plus_secs(60)));
        assert!(matches!(store.revoke("feedfeedfeedfeed", t0()), Err(KeyError::NoSuchKey(_))));
        assert!(!store.any_active().unwrap());

        let listed = store.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, id);
    }

    #[test]
    fn a_running_server_sees_keys_created_and_revoked_by_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let server = KeyStore::open(dir.path());
        let cli = KeyStore::open(dir.path());
        // The server has looked (and cached "no file") before any key exists.
        assert!(!server.any_active().unwrap());
        let a = cli.create(Scope::Read, "a", t0()).unwrap();
        assert_eq!(server.verify(a.text()).unwrap().scope, Scope::Read);
        let b = cli.create(Scope::Admin, "b", t0()).unwrap();
        assert_eq!(server.verify(b.text()).unwrap().scope, Scope::Admin);
        // Most likely within the file's mtime tick of the create: the new inode still shows.
        cli.revoke(&a.record.id, t0()).unwrap();
        assert!(matches!(server.verify(a.text()), Err(VerifyError::Refused(Refusal::Revoked { .. }))));
        assert!(server.verify(b.text()).is_ok());
        // Deleted file: no keys.
        fs::remove_file(server.path()).unwrap();
        assert!(matches!(server.verify(b.text()), Err(VerifyError::Refused(Refusal::Unknown { .. }))));
    }

    #[test]
    fn a_damaged_file_refuses_every_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path());
        let k = store.create(Scope::Read, "", t0()).unwrap();
        assert!(store.verify(k.text()).is_ok());
        fs::write(store.path(), b"{\"keys\": [").unwrap();
        let e = store.verify(k.text()).unwrap_err();
        assert!(matches!(e, VerifyError::Store(KeyError::Invalid { .. })), "{e}");
        assert!(!e.to_string().contains(k.text()));
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_and_its_folder_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(&dir.path().join("data"));
        store.create(Scope::BackupRead, "x", t0()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.path()), 0o600);
        assert_eq!(mode(store.path().parent().unwrap()), 0o700);
        assert_eq!(mode(&store.path().parent().unwrap().join(LOCK_FILE)), 0o600);
        // Rewrites keep the mode.
        store.create(Scope::Read, "y", t0()).unwrap();
        assert_eq!(mode(store.path()), 0o600);
    }

    #[test]
    fn labels_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path());
        assert!(matches!(store.create(Scope::Read, "a\u{1b}[2Jb", t0()), Err(KeyError::Label(_))));
        assert!(matches!(store.create(Scope::Read, &"x".repeat(101), t0()), Err(KeyError::Label(_))));
        assert!(store.list().unwrap().is_empty());
    }
}
