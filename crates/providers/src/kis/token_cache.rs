//! The KIS access-token cache on disk, encrypted at rest (seed 001 §5.1: no plaintext keys
//! or tokens at rest).
//!
//! KIS allows about one issuance a day and refuses a second `tokenP` call within a minute
//! (spec §2.1), so the token is kept between runs and shared between processes. The file is
//! one JSON object:
//!
//! ```text
//! {"format":"stock-observer/kis-token-cache/1","issued_at":"2026-01-14T01:00:00.000Z",
//!  "nonce":"<24 bytes, hex>","sealed":"<ciphertext and tag, hex>"}
//! ```
//!
//! `sealed` is XChaCha20-Poly1305 (a fresh random nonce per write) of
//! `{"access_token","expires_at","rest_base"}` under a key derived from the app secret with
//! HKDF-SHA256 (salt: the app key; info: [`KDF_INFO`]). `format` and `issued_at` are the
//! associated data: authenticated, yet readable without the key, so a process that cannot
//! decrypt the file (other credentials, corruption) still learns when the last token was
//! issued and keeps KIS's one-per-minute rule. That time is only a hint until the tag
//! verifies; [`Load::Discarded`] carries it for the caller to judge.
//!
//! Writes go to a 0600 temporary file in the same folder, are fsynced and renamed over the
//! cache, so a reader sees the old file or the new one, never half of one. The folder is
//! created 0700; neither the cache nor its temporary file is ever opened through a symbolic
//! link (`O_NOFOLLOW`, and the temporary file is created new, `O_EXCL`), so a link planted in
//! the state folder can neither receive the token nor make the recorder overwrite its target.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use model::UtcTime;

use super::config::KisCredentials;

/// The file's `format` tag; a file with any other tag is not read.
pub(crate) const FORMAT: &str = "stock-observer/kis-token-cache/1";

/// HKDF `info`: binds the derived key to this one use of the app secret.
const KDF_INFO: &[u8] = b"stock-observer kis token cache v1 xchacha20poly1305";

/// Room for the payload's JSON around the token itself, so the plaintext buffer is sized
/// once and never reallocated (a reallocation would leave an unzeroized copy behind).
const PAYLOAD_OVERHEAD: usize = 256;

/// A token as it is kept between runs.
pub(crate) struct CachedToken {
    pub access_token: SecretString,
    pub expires_at: UtcTime,
    /// When `tokenP` issued it: the last issuance, for the one-per-minute rule.
    pub issued_at: UtcTime,
    /// A token is only valid on the domain that issued it (real vs mock).
    pub rest_base: String,
}

/// What reading the cache found.
pub(crate) enum Load {
    /// No cache file.
    Missing,
    /// A cache this process wrote or could have written: decrypted and authenticated.
    Found(CachedToken),
    /// A file that cannot be used (already logged and removed). `issued_at_hint` is the
    /// unauthenticated issue time from its header, when it had a readable one.
    Discarded { issued_at_hint: Option<UtcTime> },
}

/// Why a cache file was not used. The texts name the problem, never a value from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unusable {
    NotACache,
    Plaintext,
    OtherFormat,
    DoesNotDecrypt,
    BadContent,
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unusable::NotACache => "it is not a token cache (garbled or truncated)",
            Unusable::Plaintext => "it holds a plaintext token (the format before encryption at rest)",
            Unusable::OtherFormat => "it has an unknown format tag",
            Unusable::DoesNotDecrypt => {
                "it does not decrypt with the configured app key and secret (written with other credentials, or corrupted)"
            }
            Unusable::BadContent => "its decrypted content is not a token record",
        })
    }
}

/// The outer JSON object. Unknown keys are tolerated so a legacy plaintext file parses far
/// enough to be recognized.
#[derive(Serialize, Deserialize)]
struct Envelope {
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    issued_at: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    sealed: Option<String>,
    /// Present only in the old plaintext format.
    #[serde(default, skip_serializing)]
    access_token: Option<serde::de::IgnoredAny>,
}

#[derive(Serialize)]
struct SealedOut<'a> {
    access_token: &'a str,
    expires_at: UtcTime,
    rest_base: &'a str,
}

#[derive(Deserialize)]
struct SealedIn {
    access_token: String,
    expires_at: UtcTime,
    rest_base: String,
}

pub(crate) struct TokenCache {
    path: PathBuf,
    cipher: XChaCha20Poly1305,
}

fn associated_data(format: &str, issued_at: &str) -> Vec<u8> {
    [format.as_bytes(), b"\n", issued_at.as_bytes()].concat()
}

impl TokenCache {
    pub(crate) fn new(path: PathBuf, creds: &KisCredentials) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(creds.key().as_bytes()), creds.secret().as_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit of 255 × 32, so `expand` cannot fail.
        let _ = hk.expand(KDF_INFO, key.as_mut_slice());
        // A view of the zeroized buffer, not a copy; the cipher zeroizes its own on drop.
        let cipher = XChaCha20Poly1305::new(<&Key>::from(&*key));
        TokenCache { path, cipher }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes for `c`, with a fresh random nonce.
    pub(crate) fn seal(&self, c: &CachedToken) -> std::io::Result<Vec<u8>> {
        let token = c.access_token.expose_secret();
        let mut plain = Zeroizing::new(Vec::with_capacity(token.len() + c.rest_base.len() + PAYLOAD_OVERHEAD));
        serde_json::to_writer(
            &mut *plain,
            &SealedOut { access_token: token, expires_at: c.expires_at, rest_base: &c.rest_base },
        )
        .map_err(std::io::Error::other)?;
        let nonce = XNonce::try_generate()
            .map_err(|e| std::io::Error::other(format!("no random nonce from the operating system: {e}")))?;
        let issued_at = c.issued_at.to_string();
        let aad = associated_data(FORMAT, &issued_at);
        let sealed = self
            .cipher
            .encrypt(&nonce, Payload { msg: &plain, aad: &aad })
            .map_err(|_| std::io::Error::other("token cache encryption failed"))?;
        let env = Envelope {
            format: Some(FORMAT.into()),
            issued_at: Some(issued_at),
            nonce: Some(hex::encode(nonce)),
            sealed: Some(hex::encode(sealed)),
            access_token: None,
        };
        serde_json::to_vec(&env).map_err(std::io::Error::other)
    }

    /// Decrypts and authenticates a cache file's bytes. On failure, also returns the header's
    /// (unauthenticated) issue time when there is one.
    pub(crate) fn open(&self, bytes: &[u8]) -> Result<CachedToken, (Unusable, Option<UtcTime>)> {
        let env: Envelope = serde_json::from_slice(bytes).map_err(|_| (Unusable::NotACache, None))?;
        let hint = env.issued_at.as_deref().and_then(|t| UtcTime::parse(t).ok());
        if env.access_token.is_some() {
            return Err((Unusable::Plaintext, hint));
        }
        match env.format.as_deref() {
            Some(FORMAT) => {}
            Some(_) => return Err((Unusable::OtherFormat, hint)),
            None => return Err((Unusable::NotACache, hint)),
        }
        let (Some(issued_text), Some(issued_at), Some(nonce), Some(sealed)) =
            (env.issued_at.as_deref(), hint, env.nonce.as_deref(), env.sealed.as_deref())
        else {
            return Err((Unusable::NotACache, hint));
        };
        let nonce = hex::decode(nonce).ok().and_then(|n| XNonce::try_from(n.as_slice()).ok());
        let (Some(nonce), Ok(sealed)) = (nonce, hex::decode(sealed)) else {
            return Err((Unusable::NotACache, hint));
        };
        let aad = associated_data(FORMAT, issued_text);
        let plain = self
            .cipher
            .decrypt(&nonce, Payload { msg: &sealed, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| (Unusable::DoesNotDecrypt, hint))?;
        let inner: SealedIn = serde_json::from_slice(&plain).map_err(|_| (Unusable::BadContent, hint))?;
        Ok(CachedToken {
            access_token: SecretString::from(inner.access_token),
            expires_at: inner.expires_at,
            issued_at,
            rest_base: inner.rest_base,
        })
    }

    /// Reads the cache. A file that cannot be used is logged (what is wrong with it, no
    /// content) and removed, so a stale plaintext token does not stay on disk and the next
    /// read does not judge the same file again.
    pub(crate) fn load(&self) -> Load {
        let bytes = match read_no_follow(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Load::Missing,
            Err(e) if is_symlink_refusal(&e) => {
                tracing::warn!(
                    path = %self.path.display(),
                    "kis: the token cache is a symbolic link, which is never followed; removing the link, a new token will be issued"
                );
                self.remove();
                return Load::Discarded { issued_at_hint: None };
            }
            Err(e) => {
                tracing::warn!(
                    path = %self.path.display(),
                    error = %e,
                    "kis: the token cache cannot be read; a new token will be issued"
                );
                return Load::Discarded { issued_at_hint: None };
            }
        };
        match self.open(&bytes) {
            Ok(c) => Load::Found(c),
            Err((why, hint)) => {
                tracing::warn!(
                    path = %self.path.display(),
                    "kis: discarding the token cache because {why}; a new token will be issued"
                );
                self.remove();
                Load::Discarded { issued_at_hint: hint }
            }
        }
    }

    /// Replaces the cache atomically with an encrypted, owner-only file.
    pub(crate) fn save(&self, c: &CachedToken) -> std::io::Result<()> {
        let bytes = self.seal(c)?;
        write_private(&self.path, &bytes)
    }

    pub(crate) fn remove(&self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %self.path.display(), error = %e, "kis: could not remove the token cache"),
        }
    }
}

/// Reads a state file, refusing a symbolic link in its place (`O_NOFOLLOW`).
fn read_no_follow(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW);
    }
    let mut bytes = Vec::new();
    opts.open(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The error `O_NOFOLLOW` gives when the last path component is a symbolic link.
fn is_symlink_refusal(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    return e.raw_os_error() == Some(libc::ELOOP);
    #[cfg(not(unix))]
    return false;
}

/// Writes `bytes` to `path` through a 0600 temporary file in the same folder: created new
/// with that mode (never world-readable, not even for a moment, and never through a symbolic
/// link), fsynced, renamed over `path` (which replaces a link there rather than following
/// it), and the folder fsynced so the rename survives a crash. A missing folder is created
/// 0700.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut mkdir = std::fs::DirBuilder::new();
    mkdir.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        mkdir.mode(0o700);
    }
    mkdir.create(dir)?;
    let name = path.file_name().ok_or_else(|| std::io::Error::other("the token cache path names no file"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    // A leftover of a crashed run with this process id, or anything planted under the name
    // (removing a link removes the link, not its target): `create_new` below needs it gone.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        // Created new (`O_EXCL`): `mode` applies, and an existing file or link fails.
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "PSxKEYx0123456789abcdefghijklmnopqrs";
    const SECRET: &str = "SECRETxVALUEx9876543210zyxwvutsrqponmlkjihgfedcba";
    const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9.tokenTOKENtoken0123456789";

    fn cache(dir: &Path, secret: &str) -> TokenCache {
        let creds = KisCredentials::new(KEY.to_string().into(), secret.to_string().into());
        TokenCache::new(dir.join("state/kis_token.json"), &creds)
    }

    fn token() -> CachedToken {
        CachedToken {
            access_token: SecretString::from(TOKEN),
            expires_at: UtcTime::parse("2026-01-15T01:00:00.000Z").unwrap(),
            issued_at: UtcTime::parse("2026-01-14T01:00:00.000Z").unwrap(),
            rest_base: "http://127.0.0.1:9".into(),
        }
    }

    fn contains(hay: &[u8], needle: &str) -> bool {
        hay.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    #[test]
    fn round_trip_holds_no_plaintext_and_a_fresh_nonce_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), SECRET);
        let a = c.seal(&token()).unwrap();
        let b = c.seal(&token()).unwrap();
        assert_ne!(a, b, "the same token sealed twice must differ (random nonce)");
        for bytes in [&a, &b] {
            for s in [TOKEN, "tokenTOKENtoken", KEY, SECRET, "rest_base", "127.0.0.1"] {
                assert!(!contains(bytes, s), "{s:?} is readable in the file");
            }
        }
        let back = c.open(&a).unwrap_or_else(|(why, _)| panic!("{why}"));
        assert_eq!(back.access_token.expose_secret(), TOKEN);
        assert_eq!(back.expires_at, token().expires_at);
        assert_eq!(back.issued_at, token().issued_at);
        assert_eq!(back.rest_base, "http://127.0.0.1:9");
    }

    #[test]
    fn other_credentials_cannot_read_it_but_see_the_issue_time() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = cache(dir.path(), SECRET).seal(&token()).unwrap();
        let other = cache(dir.path(), "ANOTHERxSECRET");
        let Err((why, hint)) = other.open(&bytes) else { panic!("decrypted with another secret") };
        assert_eq!(why, Unusable::DoesNotDecrypt);
        assert_eq!(hint, Some(token().issued_at));
        let other_key = KisCredentials::new("PSotherKEY".to_string().into(), SECRET.to_string().into());
        let other_key = TokenCache::new(dir.path().join("x"), &other_key);
        assert!(matches!(other_key.open(&bytes), Err((Unusable::DoesNotDecrypt, _))));
    }

    #[test]
    fn tampering_anywhere_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), SECRET);
        let bytes = c.seal(&token()).unwrap();
        // A moved issue time (the authenticated header) fails like a flipped ciphertext bit.
        let text = String::from_utf8(bytes.clone()).unwrap();
        let moved = text.replace("2026-01-14T01:00:00.000Z", "2026-01-13T01:00:00.000Z");
        assert!(matches!(c.open(moved.as_bytes()), Err((Unusable::DoesNotDecrypt, _))));
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let sealed = v["sealed"].as_str().unwrap().to_string();
        let flipped = format!("{}{}", if sealed.starts_with('0') { '1' } else { '0' }, &sealed[1..]);
        v["sealed"] = flipped.into();
        assert!(matches!(c.open(v.to_string().as_bytes()), Err((Unusable::DoesNotDecrypt, Some(_)))));
        // Truncated anywhere: never a token.
        for n in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(c.open(&bytes[..n]).is_err(), "truncated to {n} bytes was accepted");
        }
        assert!(matches!(c.open(b"\x00\xffgarbage"), Err((Unusable::NotACache, None))));
    }

    #[test]
    fn the_old_plaintext_format_is_recognized_and_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), SECRET);
        let old = format!(
            r#"{{"access_token":"{TOKEN}","expires_at":"2026-01-15T01:00:00.000Z","issued_at":"2026-01-14T01:00:00.000Z","rest_base":"http://127.0.0.1:9"}}"#
        );
        let Err((why, hint)) = c.open(old.as_bytes()) else { panic!("a plaintext cache was used") };
        assert_eq!(why, Unusable::Plaintext);
        assert_eq!(hint, Some(token().issued_at));
        // Loading it removes it: the plaintext token does not stay on disk.
        std::fs::create_dir_all(c.path().parent().unwrap()).unwrap();
        std::fs::write(c.path(), old).unwrap();
        assert!(matches!(c.load(), Load::Discarded { issued_at_hint: Some(_) }));
        assert!(!c.path().exists());
        assert!(matches!(c.load(), Load::Missing));
    }

    #[test]
    fn save_writes_an_owner_only_file_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), SECRET);
        c.save(&token()).unwrap();
        c.save(&token()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(c.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let names: Vec<_> =
            std::fs::read_dir(c.path().parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, ["kis_token.json"], "no temporary file is left behind");
        let Load::Found(back) = c.load() else { panic!("the saved cache did not load") };
        assert_eq!(back.access_token.expose_secret(), TOKEN);
    }

    #[cfg(unix)]
    #[test]
    fn the_state_folder_is_owner_only_and_links_are_never_followed() {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt, symlink};
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), SECRET);
        let state = c.path().parent().unwrap().to_path_buf();
        // A victim file the recorder's user can write.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "victim").unwrap();

        // A link planted at the temporary file's name: the token goes to a new file, the
        // victim is untouched.
        std::fs::DirBuilder::new().mode(0o700).create(&state).unwrap();
        let tmp = state.join(format!(".kis_token.json.{}.tmp", std::process::id()));
        symlink(&victim, &tmp).unwrap();
        c.save(&token()).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim");
        assert!(!tmp.exists() && std::fs::symlink_metadata(&tmp).is_err(), "the planted link is gone");
        assert!(std::fs::symlink_metadata(c.path()).unwrap().file_type().is_file());
        assert_eq!(mode(c.path()), 0o600);

        // A link in place of the cache itself: not read through, removed, and a save writes
        // a regular file in its place.
        std::fs::remove_file(c.path()).unwrap();
        std::fs::write(&victim, c.seal(&token()).unwrap()).unwrap();
        symlink(&victim, c.path()).unwrap();
        assert!(matches!(c.load(), Load::Discarded { issued_at_hint: None }), "a linked cache was read");
        assert!(std::fs::symlink_metadata(c.path()).is_err(), "the link was removed");
        assert!(victim.exists());
        symlink(&victim, c.path()).unwrap();
        c.save(&token()).unwrap();
        assert!(std::fs::symlink_metadata(c.path()).unwrap().file_type().is_file());
        assert_ne!(std::fs::read(&victim).unwrap(), std::fs::read(c.path()).unwrap(), "the victim was not written");

        // A missing state folder is created owner-only.
        let fresh = cache(&dir.path().join("data"), SECRET);
        fresh.save(&token()).unwrap();
        assert_eq!(mode(fresh.path().parent().unwrap()), 0o700);
        assert_eq!(mode(fresh.path()), 0o600);
    }

    #[test]
    fn reasons_name_no_content() {
        for why in [
            Unusable::NotACache,
            Unusable::Plaintext,
            Unusable::OtherFormat,
            Unusable::DoesNotDecrypt,
            Unusable::BadContent,
        ] {
            let t = why.to_string();
            assert!(!t.contains(TOKEN) && !t.contains(SECRET) && !t.contains(KEY), "{t}");
        }
    }
}
