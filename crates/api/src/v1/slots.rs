//! Track B's slots: how many each provider has and streams (inside `collect`), and which
//! symbols hold them (the day's newest `slot_decision` in the database).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;

use model::{Day, Market, Provider, UtcTime};
use store::Backend;

use super::params::Params;
use super::{ApiState, store_error};
use crate::error::ApiError;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProviderSlots {
    pub provider: Provider,
    /// The rest is what the running collector sees (`null` in `serve`, or for a provider
    /// this collector does not run).
    pub market: Option<Market>,
    pub connection: Option<&'static str>,
    pub capacity: Option<u64>,
    pub assigned: Option<u64>,
    /// Slots whose data is younger than `tracks.scalp.stale_after`.
    pub streaming: Option<u64>,
    /// When the symbols below were decided (`null`: no decision recorded that day).
    pub decided_at: Option<UtcTime>,
    pub symbols: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Slots {
    pub date: Day,
    /// Mitigation level and Track B's sampling rate now (`null` in `serve`).
    pub level: Option<u8>,
    pub hz: Option<f64>,
    pub providers: Vec<ProviderSlots>,
}

fn entry(providers: &mut BTreeMap<Provider, ProviderSlots>, provider: Provider) -> &mut ProviderSlots {
    providers.entry(provider).or_insert_with(|| ProviderSlots {
        provider,
        market: None,
        connection: None,
        capacity: None,
        assigned: None,
        streaming: None,
        decided_at: None,
        symbols: Vec::new(),
    })
}

/// `GET /api/v1/slots?date=YYYYMMDD`.
#[utoipa::path(
    get,
    path = "/api/v1/slots",
    tag = "state",
    summary = "Track B slots per provider",
    params(
        ("date" = Option<model::Day>, Query, description = "Seoul day YYYYMMDD (default: today)")
    ),
    responses(
        (status = 200, description = "Each provider's slots", body = Slots),
        crate::error::Refusals
    )
)]
pub async fn slots(State(s): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Result<Json<Slots>, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let today = Day::of(s.clock.now());
    let date = p.day("date")?.unwrap_or(today);
    let events = s.store.events(date.date()).await.map_err(store_error)?;
    let mut providers: BTreeMap<Provider, ProviderSlots> = BTreeMap::new();
    // Events come oldest first: the last decision of a provider wins.
    for e in events.into_iter().filter(|e| e.event_type == "slot_decision") {
        let symbols = e.body["slots"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string));
        let slot = entry(&mut providers, e.provider);
        slot.decided_at = Some(e.event_time);
        slot.symbols = symbols.collect();
    }
    let live = s.live.as_ref().filter(|_| date == today);
    if let Some(live) = live {
        for f in live.feeds() {
            let slot = entry(&mut providers, f.provider);
            slot.market = Some(f.market);
            slot.connection = Some(f.connection_state());
            slot.capacity = Some(f.slot_capacity);
            slot.assigned = Some(f.slots.assigned.load(Relaxed));
            slot.streaming = Some(f.slots.streaming.load(Relaxed));
        }
    }
    Ok(Json(Slots {
        date,
        level: live.map(|l| l.mitigation.load(Relaxed)),
        hz: live.map(|l| l.hz()),
        providers: providers.into_values().collect(),
    }))
}
