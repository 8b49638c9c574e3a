//! The `sendMessage` client. Every answer is classified into what the worker does next
//! (done, wait, move to the new chat, give up, retry later), and no text leaving this
//! module carries the bot token: it sits in the URL path, which reqwest's errors quote.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Server text kept in descriptions: enough to diagnose, not a whole HTML error page.
const MAX_DESCRIPTION_CHARS: usize = 300;
const REDACTED: &str = "<redacted>";

/// What became of one `sendMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Sent,
    /// 429: Telegram asks for a pause before anything else goes to that chat.
    RetryAfter {
        seconds: u64,
    },
    /// The group became a supergroup; the message belongs in the new chat.
    Migrated {
        to_chat_id: i64,
    },
    /// A 4xx that repeating will not fix (blocked, chat not found, bad token, bad text).
    Rejected {
        code: u16,
        description: String,
    },
    /// 5xx, network failure, timeout or an answer we could not read: worth retrying.
    Transient {
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum BotApiError {
    #[error("the bot token is empty")]
    EmptyToken,
    #[error("building the HTTP client: {0}")]
    Client(String),
}

pub struct BotApi {
    http: reqwest::Client,
    api_base: String,
    token: String,
}

impl fmt::Debug for BotApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BotApi").field("api_base", &self.api_base).finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct SendBody<'a> {
    chat_id: i64,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parse_mode: Option<&'a str>,
}

#[derive(Deserialize)]
struct Answer {
    ok: bool,
    description: Option<String>,
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    retry_after: Option<u64>,
    migrate_to_chat_id: Option<i64>,
}

impl BotApi {
    /// `api_base` is e.g. `https://api.telegram.org`; `timeout` bounds a whole request.
    pub fn new(api_base: &str, token: String, timeout: Duration) -> Result<BotApi, BotApiError> {
        // An empty token would make redaction a no-op (and every URL invalid).
        if token.is_empty() {
            return Err(BotApiError::EmptyToken);
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| BotApiError::Client(redact(&token, &error_text(e))))?;
        Ok(BotApi { http, api_base: api_base.trim_end_matches('/').to_string(), token })
    }

    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    pub async fn send_message(&self, chat_id: i64, text: &str, parse_mode: Option<&str>) -> SendOutcome {
        let body = match serde_json::to_vec(&SendBody { chat_id, text, parse_mode }) {
            Ok(b) => b,
            Err(e) => return SendOutcome::Transient { reason: self.redact(&format!("encoding the request: {e}")) },
        };
        let url = format!("{}/bot{}/sendMessage", self.api_base, self.token);
        let sent = self.http.post(url).header("content-type", "application/json").body(body).send().await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return SendOutcome::Transient { reason: self.redact(&error_text(e)) },
        };
        let status = resp.status().as_u16();
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return SendOutcome::Transient { reason: self.redact(&format!("HTTP {status}: {}", error_text(e))) };
            }
        };
        self.classify(status, &bytes)
    }

    fn classify(&self, status: u16, body: &[u8]) -> SendOutcome {
        let answer: Option<Answer> = serde_json::from_slice(body).ok();
        let description = || {
            let text = match &answer {
                Some(Answer { description: Some(d), .. }) => d.clone(),
                _ => String::from_utf8_lossy(body).into_owned(),
            };
            truncate(&self.redact(text.trim()), MAX_DESCRIPTION_CHARS)
        };
        let params = answer.as_ref().and_then(|a| a.parameters.as_ref());
        if let Some(to_chat_id) = params.and_then(|p| p.migrate_to_chat_id) {
            return SendOutcome::Migrated { to_chat_id };
        }
        match status {
            // A 2xx we cannot read may or may not have been delivered; retrying risks a
            // duplicate, which beats losing an alert.
            200..=299 => match &answer {
                Some(a) if a.ok => SendOutcome::Sent,
                _ => SendOutcome::Transient { reason: format!("HTTP {status}: unreadable answer: {}", description()) },
            },
            // Telegram always sends retry_after with 429; 1 s is a cautious guess if not.
            429 => SendOutcome::RetryAfter { seconds: params.and_then(|p| p.retry_after).unwrap_or(1) },
            400..=499 => SendOutcome::Rejected { code: status, description: description() },
            _ => SendOutcome::Transient { reason: format!("HTTP {status}: {}", description()) },
        }
    }

    fn redact(&self, s: &str) -> String {
        redact(&self.token, s)
    }
}

fn redact(token: &str, s: &str) -> String {
    s.replace(token, REDACTED)
}

/// reqwest's error with its causes, minus the URL (the caller still redacts: a cause
/// could quote the URL too).
fn error_text(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout: "
    } else if e.is_connect() {
        "connect: "
    } else {
        ""
    };
    let e = e.without_url();
    let mut s = format!("{kind}{e}");
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "123456789:AAHsecretTOKENvalue-xyz";

    fn api(base: &str) -> BotApi {
        BotApi::new(base, TOKEN.to_string(), Duration::from_secs(2)).unwrap()
    }

    #[tokio::test]
    async fn a_network_error_does_not_carry_the_token() {
        // A port that was just free: the connect is refused.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let outcome = api(&format!("http://127.0.0.1:{port}")).send_message(1, "hi", None).await;
        let SendOutcome::Transient { reason } = &outcome else { panic!("{outcome:?}") };
        assert!(!reason.contains(TOKEN) && !reason.contains("AAHsecret"), "{reason}");
        assert!(!reason.is_empty());
    }

    #[test]
    fn debug_shows_no_token() {
        let text = format!("{:?}", api("http://127.0.0.1:1/"));
        assert!(text.contains("http://127.0.0.1:1") && !text.contains("AAHsecret"), "{text}");
    }

    #[test]
    fn server_text_is_redacted_and_truncated() {
        let api = api("http://x");
        let body = format!("<html>{TOKEN} {}</html>", "x".repeat(1000));
        let SendOutcome::Transient { reason } = api.classify(502, body.as_bytes()) else { panic!() };
        assert!(!reason.contains(TOKEN) && reason.contains(REDACTED));
        assert!(reason.chars().count() < MAX_DESCRIPTION_CHARS + 20);
        assert_eq!(api.classify(429, br#"{"ok":false,"error_code":429}"#), SendOutcome::RetryAfter { seconds: 1 });
        assert!(matches!(api.classify(200, b"not json"), SendOutcome::Transient { .. }));
        assert!(BotApi::new("http://x", String::new(), Duration::from_secs(1)).is_err());
    }
}
