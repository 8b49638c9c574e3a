//! KIS's hooks to the shared WebSocket session loop ([`crate::ws_session`]): connect with the
//! approval key, register (tr_id, tr_key) pairs within the per-session cap, follow
//! subscription changes, answer PINGPONG, and end the session when KIS refuses it.
//!
//! Registrations are a state machine per (tr_id, tr_key): `Pending` when the subscribe
//! request is sent, `Confirmed` on the server's ack (or its first data record), `Failed` when
//! refused or when the cap leaves no room. A new session starts from the full wanted set.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use secrecy::{ExposeSecret, SecretString};

use model::{Provider, Symbol};

use super::rest::RestClient;
use super::wire::{self, ControlKind, TR_BOOK, TR_TRADE};
use crate::provider::ProviderError;
use crate::ws_session::{self, Changes, Endpoint, Incoming, Outgoing, Venue};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Registration {
    pub tr_id: String,
    pub tr_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegState {
    Pending,
    Confirmed,
    Failed(String),
}

impl RegState {
    fn holds_slot(&self) -> bool {
        !matches!(self, RegState::Failed(_))
    }
}

pub(crate) type Registry = Arc<Mutex<BTreeMap<Registration, RegState>>>;

fn lock(r: &Registry) -> std::sync::MutexGuard<'_, BTreeMap<Registration, RegState>> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// The subscribe/unsubscribe request of spec §4.2.
pub fn request_json(approval_key: &str, custtype: &str, register: bool, tr_id: &str, tr_key: &str) -> String {
    serde_json::json!({
        "header": {
            "approval_key": approval_key,
            "custtype": custtype,
            "tr_type": if register { "1" } else { "2" },
            "content-type": "utf-8",
        },
        "body": { "input": { "tr_id": tr_id, "tr_key": tr_key } },
    })
    .to_string()
}

/// What the adapter wants registered for `symbols`, in priority order: every symbol's
/// trades (which carry level-1 quotes) first, then full books for the first `book_slots`
/// symbols, so a cap never costs a symbol its only feed for another symbol's book.
pub fn wanted(symbols: &[Symbol], book_slots: usize) -> Vec<Registration> {
    let books = symbols.iter().take(book_slots);
    let mut out = Vec::with_capacity(symbols.len() + books.len());
    out.extend(symbols.iter().map(|s| Registration { tr_id: TR_TRADE.into(), tr_key: s.as_str().into() }));
    out.extend(books.map(|s| Registration { tr_id: TR_BOOK.into(), tr_key: s.as_str().into() }));
    out
}

/// One `stream` call's hooks: the registry outlives it (the adapter reports it).
pub(crate) struct KisVenue<'a> {
    pub rest: &'a RestClient,
    pub registry: Registry,
    /// Slots whose full order book is registered beside their trades (0 in degrade mode).
    pub book_slots: usize,
    /// The approval key of this session (fetched in `prepare`).
    approval: Option<SecretString>,
    /// KIS refused the approval key: a new one is issued before the next session.
    forget_approval: bool,
}

impl<'a> KisVenue<'a> {
    pub(crate) fn new(rest: &'a RestClient, registry: Registry, book_slots: usize) -> Self {
        KisVenue { rest, registry, book_slots, approval: None, forget_approval: false }
    }

    /// The subscribe (`register`) or unsubscribe request for `r`, archived with the approval
    /// key masked.
    fn request(&self, register: bool, r: &Registration) -> Outgoing {
        let custtype = &self.rest.config().custtype;
        let key = self.approval.as_ref().map(|k| k.expose_secret()).unwrap_or_default();
        Outgoing {
            text: request_json(key, custtype, register, &r.tr_id, &r.tr_key),
            archived: request_json("***", custtype, register, &r.tr_id, &r.tr_key),
            channel: r.tr_id.clone(),
        }
    }

    /// Applies a control reply to its registration. A reply without a tr_key (some error
    /// shapes) applies to the oldest pending registration of that TR.
    fn set(&self, tr_id: &str, tr_key: &str, state: RegState) {
        let mut reg = lock(&self.registry);
        let key = Registration { tr_id: tr_id.into(), tr_key: tr_key.into() };
        if let Some(st) = reg.get_mut(&key) {
            *st = state;
            return;
        }
        if let Some((_, st)) = reg.iter_mut().find(|(r, st)| r.tr_id == tr_id && **st == RegState::Pending) {
            *st = state;
        }
    }

    fn control(&mut self, text: &str) -> Incoming {
        let control = wire::parse_control(text);
        let channel = control.as_ref().map(|c| c.tr_id.clone()).unwrap_or_else(|_| "control".into());
        let Ok(c) = control else {
            // The engine's `parse` reports it as Malformed with the frame; the session goes on.
            return Incoming::Control { channel, reply: None };
        };
        match c.kind() {
            ControlKind::Ping => {
                return Incoming::Control { channel, reply: Some(Outgoing::plain(wire::PINGPONG, text)) };
            }
            ControlKind::Subscribed => self.set(&c.tr_id, &c.tr_key, RegState::Confirmed),
            ControlKind::Unsubscribed => {
                lock(&self.registry).remove(&Registration { tr_id: c.tr_id.clone(), tr_key: c.tr_key.clone() });
            }
            ControlKind::Refused => {
                tracing::warn!(tr_id = %c.tr_id, tr_key = %c.tr_key, msg_cd = %c.msg_cd, "kis: registration refused");
                let why = format!("{} {}", c.msg_cd, c.msg1);
                self.set(&c.tr_id, &c.tr_key, RegState::Failed(why.clone()));
                return Incoming::Error {
                    channel,
                    why: format!("{} {} refused: {why}", c.tr_id, c.tr_key),
                    fatal: false,
                };
            }
            ControlKind::SessionError => {
                self.forget_approval |= c.msg_cd == "OPSP0011";
                return Incoming::Error {
                    channel,
                    why: format!("session refused: {} {}", c.msg_cd, c.msg1),
                    fatal: true,
                };
            }
            ControlKind::Other => {}
        }
        Incoming::Control { channel, reply: None }
    }
}

impl Venue for KisVenue<'_> {
    const PROVIDER: Provider = Provider::Kis;

    async fn prepare(&mut self) -> Result<Endpoint, ProviderError> {
        let approval = self.rest.approval_key().await.map_err(|e| ended(format!("no approval key: {e}")))?;
        self.approval = Some(approval);
        self.forget_approval = false;
        let cfg = self.rest.config();
        Ok(Endpoint {
            url: cfg.ws_url(),
            channel: "ws",
            connect_timeout: cfg.request_timeout.get(),
            max_message_bytes: cfg.ws_max_message_bytes,
            idle_timeout: cfg.ws_idle_timeout,
            idle_key: "providers.kis.ws_idle_timeout",
        })
    }

    /// A new connection holds no registrations.
    fn opened(&mut self) {
        lock(&self.registry).clear();
    }

    /// The difference between what is registered and what is wanted: unsubscribe leavers
    /// (frees slots), then subscribe entrants in priority order while the cap leaves room.
    /// Failed registrations are retried on every change; one no longer wanted is forgotten.
    fn subscribe(&mut self, symbols: &[Symbol]) -> Changes {
        let want = wanted(symbols, self.book_slots);
        let cap = self.rest.config().max_registrations as usize;
        let mut reg = lock(&self.registry);
        let held: Vec<(Registration, bool)> = reg.iter().map(|(r, st)| (r.clone(), st.holds_slot())).collect();
        let d = ws_session::diff(&held, &want);
        let mut changes = Changes::default();
        for (r, registered) in d.leavers {
            reg.remove(&r);
            if registered {
                changes.unsubscribe.push(self.request(false, &r));
            }
        }
        for r in d.entrants {
            let used = reg.values().filter(|st| st.holds_slot()).count();
            if used >= cap {
                reg.insert(r, RegState::Failed(format!("registration limit {cap} reached")));
                continue;
            }
            changes.subscribe.push(self.request(true, &r));
            reg.insert(r, RegState::Pending);
        }
        changes
    }

    fn classify(&mut self, text: &str, binary: bool) -> Incoming {
        if binary {
            return Incoming::Data { channel: "binary".into() };
        }
        if text.starts_with('{') {
            return self.control(text);
        }
        let channel = text.split('|').nth(1).filter(|t| t.len() <= 16).unwrap_or("data").to_string();
        // First data confirms a registration whose ack has not arrived (or never will).
        if let Ok(d) = wire::parse_data(text)
            && !d.encrypted
        {
            let mut reg = lock(&self.registry);
            for code in d.first_fields() {
                if let Some(st) = reg.get_mut(&Registration { tr_id: d.tr_id.into(), tr_key: code.into() })
                    && *st == RegState::Pending
                {
                    *st = RegState::Confirmed;
                }
            }
        }
        Incoming::Data { channel }
    }

    /// Confirmations belong to the connection: back to pending until the next one confirms.
    async fn closed(&mut self) {
        for st in lock(&self.registry).values_mut() {
            if *st == RegState::Confirmed {
                *st = RegState::Pending;
            }
        }
        if self.forget_approval {
            self.rest.forget_approval().await;
        }
    }
}

fn ended(why: impl Into<String>) -> ProviderError {
    ws_session::ended(Provider::Kis, why)
}
