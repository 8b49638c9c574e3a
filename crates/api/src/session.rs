//! Dashboard sessions: a short-lived JWT, HS256 only, minted for an API key by
//! `POST /api/v1/session`. It carries the key's id and scope and ends at `exp`. A browser's
//! `EventSource` cannot send a header, so the token also comes as an HttpOnly cookie.
//!
//! The algorithm is pinned, so `alg: none`, HS512 and every other algorithm are refused.
//! Revoking the key ends its sessions: each check looks the key up again.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

/// Where the signing secret comes from; nowhere else.
pub const JWT_SECRET_ENV: &str = "STOCK_OBSERVER_JWT_SECRET";
/// The cookie a browser sends the session in.
pub const COOKIE: &str = "so_session";
/// HS256 wants at least the hash's length of key.
const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The API key's id.
    pub sub: String,
    /// The key's scope as the key store spells it (`read`, `stream`, …).
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
}

pub struct Sessions {
    enc: EncodingKey,
    dec: DecodingKey,
    ttl_secs: i64,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("ttl_secs", &self.ttl_secs).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{JWT_SECRET_ENV} must be at least {MIN_SECRET_BYTES} bytes")]
    ShortSecret,
    #[error("session token refused: {0}")]
    Refused(String),
}

impl Sessions {
    pub fn new(secret: &[u8], ttl_secs: i64) -> Result<Sessions, SessionError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SessionError::ShortSecret);
        }
        let bad = |e: jsonwebtoken::errors::Error| SessionError::Refused(format!("unusable secret: {e}"));
        Ok(Sessions {
            enc: EncodingKey::from_secret(secret).map_err(bad)?,
            dec: DecodingKey::from_secret(secret).map_err(bad)?,
            ttl_secs,
        })
    }

    /// From `STOCK_OBSERVER_JWT_SECRET`; `None` when it is unset (sessions off).
    pub fn from_env(ttl_secs: i64) -> Result<Option<Sessions>, SessionError> {
        match std::env::var(JWT_SECRET_ENV) {
            Ok(s) if !s.is_empty() => Sessions::new(s.as_bytes(), ttl_secs).map(Some),
            _ => Ok(None),
        }
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// A token for key `id` of `scope`, issued at `now` (Unix seconds).
    pub fn issue(&self, id: &str, scope: &str, now: i64) -> Result<(String, Claims), SessionError> {
        let claims = Claims { sub: id.to_string(), scope: scope.to_string(), iat: now, exp: now + self.ttl_secs };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.enc)
            .map_err(|e| SessionError::Refused(format!("cannot sign: {e}")))?;
        Ok((token, claims))
    }

    /// The claims of a token signed here with HS256 and not expired (no leeway).
    pub fn verify(&self, token: &str) -> Result<Claims, SessionError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.validate_exp = true;
        decode::<Claims>(token, &self.dec, &v).map(|d| d.claims).map_err(|e| SessionError::Refused(e.to_string()))
    }
}

/// Whether `text` has a JWT's shape (three dot-separated parts) rather than an API key's.
pub fn looks_like_jwt(text: &str) -> bool {
    text.matches('.').count() == 2
}
