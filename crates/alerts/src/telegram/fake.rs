//! A fake Telegram Bot API on loopback: `sendMessage` only, checked the way Telegram checks
//! it (token, length, MarkdownV2 escaping), every request recorded, and fault switches for
//! rate limits, server errors, blocked chats and migrated groups.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::format::{MAX_TEXT_CHARS, is_reserved, unescape_markdown_v2};

/// An answer the fake can be told to give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer as Telegram would: validate, then deliver.
    Ok,
    TooManyRequests {
        retry_after: u64,
    },
    /// 400 chat not found, 403 blocked, 404 bad token, 5xx server trouble.
    Status(u16),
    Migrate {
        to_chat_id: i64,
    },
}

/// One `sendMessage` the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    pub chat_id: i64,
    /// As sent.
    pub text: String,
    /// What the chat would show: escapes resolved when `parse_mode` is MarkdownV2.
    pub shown: String,
    pub parse_mode: Option<String>,
    pub at: Instant,
    /// The HTTP status the fake answered.
    pub answered: u16,
}

#[derive(Default)]
struct Switches {
    script: VecDeque<Reply>,
    always: Option<Reply>,
    blocked: HashSet<i64>,
    received: Vec<Received>,
}

struct Shared {
    path: String,
    switches: Mutex<Switches>,
}

impl Shared {
    fn switches(&self) -> MutexGuard<'_, Switches> {
        // A panicking test thread must not take the fake down with it.
        self.switches.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct FakeBotApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeBotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeBotApi").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for FakeBotApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeBotApi {
    /// Serves on an ephemeral loopback port until dropped; only `token` is accepted.
    pub async fn start(token: &str) -> std::io::Result<FakeBotApi> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), token).await
    }

    /// [`FakeBotApi::start`] on `addr`.
    pub async fn start_on(addr: SocketAddr, token: &str) -> std::io::Result<FakeBotApi> {
        let shared = Arc::new(Shared { path: format!("/bot{token}/sendMessage"), switches: Mutex::default() });
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "fake Bot API stopped");
            }
        });
        Ok(FakeBotApi { addr, shared, task })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.switches().received.clone()
    }

    pub fn delivered(&self) -> Vec<Received> {
        self.shared.switches().received.iter().filter(|r| r.answered == 200).cloned().collect()
    }

    /// Replies for the next requests, in order; after them the fake answers normally.
    pub fn script(&self, responses: impl IntoIterator<Item = Reply>) {
        self.shared.switches().script.extend(responses);
    }

    /// A reply for every request once the script is used up (`None` to stop).
    pub fn set_always(&self, reply: Option<Reply>) {
        self.shared.switches().always = reply;
    }

    /// The user blocked the bot: 403 for this chat, ahead of any script.
    pub fn block_chat(&self, chat_id: i64) {
        self.shared.switches().blocked.insert(chat_id);
    }
}

#[derive(Deserialize)]
struct SendBody {
    chat_id: i64,
    text: String,
    parse_mode: Option<String>,
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, body: Bytes) -> Response {
    let sent: Option<SendBody> = serde_json::from_slice(&body).ok();
    let (status, answer) = {
        let mut sw = shared.switches();
        let (status, answer) = decide(&mut sw, uri.path() == shared.path, sent.as_ref());
        if let Some(s) = sent {
            let shown = match s.parse_mode.as_deref() {
                Some("MarkdownV2") => unescape_markdown_v2(&s.text),
                _ => s.text.clone(),
            };
            // The path holds the token, so only the chat and status are logged.
            tracing::debug!(chat_id = s.chat_id, status, "fake Bot API sendMessage");
            sw.received.push(Received {
                chat_id: s.chat_id,
                text: s.text,
                shown,
                parse_mode: s.parse_mode,
                at: Instant::now(),
                answered: status,
            });
        }
        (status, answer)
    };
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(answer)).into_response()
}

fn decide(sw: &mut Switches, token_ok: bool, sent: Option<&SendBody>) -> (u16, Value) {
    if !token_ok {
        return error(404, "Not Found", None);
    }
    let Some(sent) = sent else {
        return error(400, "Bad Request: message text is empty", None);
    };
    if sw.blocked.contains(&sent.chat_id) {
        return error(403, "Forbidden: bot was blocked by the user", None);
    }
    let reply = sw.script.pop_front().or_else(|| sw.always.clone()).unwrap_or(Reply::Ok);
    match reply {
        Reply::Ok | Reply::Status(200) => validate(sent),
        Reply::TooManyRequests { retry_after } => error(
            429,
            &format!("Too Many Requests: retry after {retry_after}"),
            Some(json!({ "retry_after": retry_after })),
        ),
        Reply::Migrate { to_chat_id } => error(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            Some(json!({ "migrate_to_chat_id": to_chat_id })),
        ),
        Reply::Status(code) => error(code, status_description(code), None),
    }
}

fn validate(sent: &SendBody) -> (u16, Value) {
    let shown = match sent.parse_mode.as_deref() {
        None => sent.text.clone(),
        Some("MarkdownV2") => {
            if let Err(why) = check_markdown_v2(&sent.text) {
                return error(400, &format!("Bad Request: can't parse entities: {why}"), None);
            }
            unescape_markdown_v2(&sent.text)
        }
        Some(_) => return error(400, "Bad Request: unsupported parse_mode", None),
    };
    let chars = shown.chars().count();
    if chars == 0 {
        return error(400, "Bad Request: message text is empty", None);
    }
    if chars > MAX_TEXT_CHARS {
        return error(400, "Bad Request: message is too long", None);
    }
    let message = json!({ "message_id": 1, "chat": { "id": sent.chat_id }, "date": 0, "text": shown });
    (200, json!({ "ok": true, "result": message }))
}

/// Telegram's MarkdownV2 check, reduced to the one entity alerts use: `*` pairs for bold.
/// Any other reserved character, or a backslash, must come escaped.
fn check_markdown_v2(text: &str) -> Result<(), String> {
    let mut chars = text.char_indices();
    let mut bold_open: Option<usize> = None;
    while let Some((at, c)) = chars.next() {
        match c {
            // A backslash escapes whatever follows; a trailing one escapes nothing.
            '\\' => {
                chars.next().ok_or_else(|| reserved('\\'))?;
            }
            '*' => bold_open = if bold_open.is_some() { None } else { Some(at) },
            c if is_reserved(c) => return Err(reserved(c)),
            _ => {}
        }
    }
    match bold_open {
        Some(at) => Err(format!("Can't find end of Bold entity at byte offset {at}")),
        None => Ok(()),
    }
}

fn reserved(c: char) -> String {
    format!("Character '{c}' is reserved and must be escaped with the preceding '\\'")
}

fn status_description(code: u16) -> &'static str {
    match code {
        400 => "Bad Request: chat not found",
        401 => "Unauthorized",
        403 => "Forbidden: bot was blocked by the user",
        404 => "Not Found",
        429 => "Too Many Requests: retry after 1",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Error",
    }
}

fn error(code: u16, description: &str, parameters: Option<Value>) -> (u16, Value) {
    let mut body = json!({ "ok": false, "error_code": code, "description": description });
    if let Some(p) = parameters {
        body["parameters"] = p;
    }
    (code, body)
}
