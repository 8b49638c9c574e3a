//! `GET /api/v1/stream`: ticks, Track B samples and system events as Server-Sent Events.
//!
//! Every item gets the next id from one counter, so ids strictly increase. The last
//! `replay` items stay in a ring: a client that reconnects with `Last-Event-ID: k` gets
//! k+1 onwards, without a hole, if k+1 is still held. If it is not, the client is told how
//! many it missed (`event: lost`), never left to assume nothing happened. An idle stream
//! carries a keep-alive comment every `keep_alive`.
//!
//! The collector hands items over through [`StreamTap`], which never blocks. The records are
//! kept as they are and turned into JSON only for a client that asks.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast;

use engine::tap::Tap;
use model::{MarketEvent, Provider, Record, ScalpSample, Symbol, SystemEvent};

use super::params::{Params, symbol};
use crate::error::ApiError;

/// One item of the stream.
#[derive(Debug, Clone)]
pub enum Item {
    Tick(Arc<Record<MarketEvent>>),
    Sample(Arc<Record<ScalpSample>>),
    Event(Option<Provider>, Arc<Record<SystemEvent>>),
}

impl Item {
    fn kind(&self) -> &'static str {
        match self {
            Item::Tick(_) => "tick",
            Item::Sample(_) => "sample",
            Item::Event(..) => "event",
        }
    }

    fn symbol(&self) -> Option<&Symbol> {
        match self {
            Item::Tick(r) => Some(r.body.symbol()),
            Item::Sample(r) => Some(&r.body.symbol),
            Item::Event(..) => None,
        }
    }

    fn json(&self) -> String {
        match self {
            Item::Tick(r) => serde_json::to_string(&**r),
            Item::Sample(r) => serde_json::to_string(&**r),
            // The archive line has no provider (it is in the file's path): the stream adds it.
            Item::Event(provider, r) => serde_json::to_value(&**r).and_then(|mut v| {
                if let (Some(p), Some(o)) = (provider, v.as_object_mut()) {
                    o.insert("provider".into(), serde_json::Value::String(p.as_str().into()));
                }
                serde_json::to_string(&v)
            }),
        }
        .unwrap_or_else(|e| format!("{{\"error\":\"unserializable record: {e}\"}}"))
    }
}

type Numbered = (u64, Item);

/// The ring and the live feed that every subscriber shares.
pub struct Hub {
    ring: Mutex<(u64, VecDeque<Numbered>)>,
    capacity: usize,
    live: broadcast::Sender<Numbered>,
    keep_alive: Duration,
}

impl Hub {
    pub fn new(replay: usize, keep_alive: Duration) -> Arc<Hub> {
        let (live, _) = broadcast::channel(replay.max(1));
        Arc::new(Hub { ring: Mutex::new((0, VecDeque::new())), capacity: replay.max(1), live, keep_alive })
    }

    /// Numbers and keeps `item`, and hands it to the connected clients. Never waits.
    pub fn push(&self, item: Item) {
        let mut g = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        g.0 += 1;
        let numbered = (g.0, item);
        if g.1.len() == self.capacity {
            g.1.pop_front();
        }
        g.1.push_back(numbered.clone());
        // Sent under the lock, so the live feed's order is the ids' order.
        let _ = self.live.send(numbered);
    }

    /// Subscribes, then copies what the ring holds after `last`: nothing pushed in between
    /// can be missed or sent twice.
    fn resume(&self, last: u64) -> (broadcast::Receiver<Numbered>, Vec<Numbered>, u64) {
        let g = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.live.subscribe();
        let oldest = g.1.front().map_or(g.0 + 1, |(id, _)| *id);
        let lost = oldest.saturating_sub(last + 1).min(g.0.saturating_sub(last));
        let held = g.1.iter().filter(|(id, _)| *id > last).cloned().collect();
        (rx, held, lost)
    }

    /// The id of the newest item.
    pub fn last_id(&self) -> u64 {
        self.ring.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

/// The collector's side: every accepted record, into the hub.
pub struct StreamTap(pub Arc<Hub>);

impl Tap for StreamTap {
    fn market_event(&self, rec: &Record<MarketEvent>) {
        if matches!(rec.body, MarketEvent::Tick(_)) {
            self.0.push(Item::Tick(Arc::new(rec.clone())));
        }
    }
    fn sample(&self, rec: &Record<ScalpSample>) {
        self.0.push(Item::Sample(Arc::new(rec.clone())));
    }
    fn system_event(&self, provider: Option<Provider>, rec: &Record<SystemEvent>) {
        self.0.push(Item::Event(provider, Arc::new(rec.clone())));
    }
}

/// Which items a client asked for.
struct Filter {
    symbols: Option<Vec<Symbol>>,
    kinds: Vec<&'static str>,
}

impl Filter {
    fn parse(p: &Params) -> Result<Filter, ApiError> {
        let symbols = p
            .get("symbols")
            .map(|v| v.split(',').filter(|s| !s.is_empty()).map(symbol).collect::<Result<Vec<_>, _>>())
            .transpose()
            .map_err(|e| ApiError::bad_request(e.message.replacen("symbol:", "symbols:", 1)))?;
        let kinds = match p.get("kinds") {
            None => vec!["tick", "sample", "event"],
            Some(v) => v
                .split(',')
                .map(|k| match k {
                    "tick" => Ok("tick"),
                    "sample" => Ok("sample"),
                    "event" => Ok("event"),
                    other => Err(ApiError::bad_request(format!("kinds: {other:?} is not one of tick, sample, event"))),
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Filter { symbols, kinds })
    }

    fn wants(&self, item: &Item) -> bool {
        self.kinds.contains(&item.kind())
            && match (&self.symbols, item.symbol()) {
                (Some(list), Some(s)) => list.contains(s),
                // System events are not about one symbol: every subscriber of events gets them.
                _ => true,
            }
    }
}

fn sse(id: u64, item: &Item) -> Event {
    Event::default().id(id.to_string()).event(item.kind()).data(item.json())
}

/// `GET /api/v1/stream?symbols=005930,KRW-BTC&kinds=tick,sample,event` (scope `stream`).
#[utoipa::path(
    get,
    path = "/api/v1/stream",
    tag = "stream",
    summary = "Ticks, samples and system events as Server-Sent Events (inside collect)",
    params(
        ("symbols" = Option<String>, Query, pattern = "^[A-Za-z0-9._-]{1,20}(,[A-Za-z0-9._-]{1,20})*$", description = "Comma-separated symbols (default: all)"),
        ("kinds" = Option<String>, Query, pattern = "^(tick|sample|event)(,(tick|sample|event))*$", description = "Comma-separated of tick, sample, event (default: all)"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this id")
    ),
    responses(
        (status = 200, description = "An endless event stream: id, event (tick|sample|event|lost), data (JSON)", content_type = "text/event-stream", body = String),
        (status = 404, description = "No collector runs in this process (serve)", body = crate::error::ErrorBody),
        crate::error::Refusals
    )
)]
pub async fn stream(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let filter = Filter::parse(&p)?;
    let last = match headers.get("last-event-id") {
        None => hub.last_id(),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::bad_request("Last-Event-ID: not an id this stream sent"))?,
    };
    let (rx, held, lost) = hub.resume(last);
    let keep_alive = hub.keep_alive;
    let first: Vec<Result<Event, Infallible>> = (lost > 0)
        .then(|| Ok(Event::default().event("lost").data(format!("{{\"missed\":{lost}}}"))))
        .into_iter()
        .chain(held.iter().filter(|(_, i)| filter.wants(i)).map(|(id, i)| Ok(sse(*id, i))))
        .collect();
    let sent = held.last().map_or(last, |(id, _)| *id);
    let live = futures_util::stream::unfold((rx, sent, filter), |(mut rx, mut sent, filter)| async move {
        loop {
            match rx.recv().await {
                Ok((id, item)) if id > sent => {
                    sent = id;
                    if filter.wants(&item) {
                        return Some((Ok(sse(id, &item)), (rx, sent, filter)));
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    // Too slow a reader: say how many went past it, then carry on.
                    let e = Event::default().event("lost").data(format!("{{\"missed\":{n}}}"));
                    return Some((Ok(e), (rx, sent, filter)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let all = futures_util::StreamExt::chain(futures_util::stream::iter(first), live);
    Ok(Sse::new(all).keep_alive(KeepAlive::new().interval(keep_alive)))
}

/// `/api/v1/stream` in a process that collects nothing (`stock-observer serve`).
pub async fn no_collector() -> ApiError {
    ApiError::not_found("no collector runs in this process (stock-observer serve); ask the collector's /api/v1/stream")
}
