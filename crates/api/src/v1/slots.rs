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
    // The live sink writes ticks and samples, not events: until the day is loaded, a
    // provider's decisions are only in the archive's events file.
    let undecided: Vec<Provider> =
        Provider::ALL.iter().copied().filter(|p| providers.get(p).is_none_or(|s| s.decided_at.is_none())).collect();
    let root = s.data_dir.clone();
    let archived = tokio::task::spawn_blocking(move || archived_decisions(&root, date, &undecided))
        .await
        .map_err(|_| ApiError::internal("events read task failed"))?;
    for (provider, at, symbols) in archived {
        let slot = entry(&mut providers, provider);
        (slot.decided_at, slot.symbols) = (Some(at), symbols);
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

/// The newest `slot_decision` of each of `providers` in the archive's events file of `date`
/// (a torn last line of a crashed run is skipped, as `verify` reports it).
fn archived_decisions(
    root: &std::path::Path,
    date: Day,
    providers: &[Provider],
) -> Vec<(Provider, UtcTime, Vec<String>)> {
    use std::io::BufRead;
    let mut out = Vec::new();
    for &p in providers {
        let path = root.join(format!("system/events/{}/{date}.jsonl", p.as_str()));
        // A finished day's file may have been compressed since.
        let compressed = path.with_extension("jsonl.zst");
        let Ok(reader) = archive::open_lines(&path).or_else(|_| archive::open_lines(&compressed)) else { continue };
        let newest = reader
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains("\"slot_decision\""))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
            .filter(|v| v["event_type"] == "slot_decision")
            .last();
        let Some(v) = newest else { continue };
        let Some(at) = v["event_time"].as_str().and_then(|t| UtcTime::parse(t).ok()) else { continue };
        let symbols = v["slots"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string));
        out.push((p, at, symbols.collect()));
    }
    out
}
