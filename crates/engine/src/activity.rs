//! When data last arrived, per stream and per symbol, fed by the observer and read by the
//! supervisor (where a gap begins), the watchdog (silence and staleness), the slot watch,
//! REST polling and the day roll. Shared state only: the decisions are theirs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

use model::settings::Interval;
use model::{Symbol, UtcTime};

/// When a slot symbol counts as stale: after `multiple` of its own mean gaps between
/// updates, but never sooner than `min` nor later than `max` (the watchdog's `stale_*`).
#[derive(Debug, Clone, Copy)]
pub struct Staleness {
    pub multiple: f64,
    pub min: Interval,
    pub max: Interval,
}

/// When each symbol last had data and its mean gap between updates, fed by the observer.
///
/// Silence is measured against the observer's position (the receive time of the newest frame
/// it has processed, Track B's clock frames included), not against the clock: a backlog in
/// the frame queue delays both equally, so a busy observer is never mistaken for a silent
/// stream, while a silent stream still shows as the clock frames move the position on.
#[derive(Debug, Default)]
pub struct Activity {
    pub last_data_ms: AtomicI64,
    position_ms: AtomicI64,
    symbols: Mutex<HashMap<Symbol, Rhythm>>,
    /// When each current slot symbol entered its slot (`SlotWatch`), so a symbol the stream
    /// never delivered is judged stale too, from its entry.
    entered: Mutex<HashMap<Symbol, Entry>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    at: UtcTime,
    /// Reported stale without ever having had data.
    stale: bool,
}

#[derive(Debug, Clone, Copy)]
struct Rhythm {
    last: UtcTime,
    mean_gap_ms: f64,
    stale: bool,
}

/// Weight of the newest gap in the running mean: about the last 20 updates count.
const RHYTHM_WEIGHT: f64 = 0.05;

impl Activity {
    /// Every frame the observer processes moves its position.
    pub fn on_frame(&self, at: UtcTime) {
        self.position_ms.fetch_max(at.as_millis(), Relaxed);
    }

    /// The observer's position: the receive time of the newest frame it has processed.
    pub(crate) fn position(&self) -> Option<UtcTime> {
        match self.position_ms.load(Relaxed) {
            0 => None,
            ms => Some(UtcTime::from_millis(ms)),
        }
    }

    pub fn on_data(&self, at: UtcTime, symbol: &Symbol) {
        self.last_data_ms.fetch_max(at.as_millis(), Relaxed);
        let mut m = self.symbols.lock().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(symbol) {
            Some(r) => {
                let gap = at.millis_since(r.last).max(0) as f64;
                r.mean_gap_ms += RHYTHM_WEIGHT * (gap - r.mean_gap_ms);
                r.last = at;
                r.stale = false;
            }
            None => {
                m.insert(symbol.clone(), Rhythm { last: at, mean_gap_ms: 0.0, stale: false });
            }
        }
    }

    /// The slot symbols now (inside Track B's window; empty outside it): entrants are
    /// stamped `now`, leavers forgotten.
    pub fn on_slots(&self, now: UtcTime, slots: &[Symbol]) {
        let mut m = self.entered.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|s, _| slots.contains(s));
        for s in slots {
            m.entry(s.clone()).or_insert(Entry { at: now, stale: false });
        }
    }

    /// Forgets the rhythm of every symbol `keep` refuses (at day roll).
    pub fn retain(&self, keep: impl Fn(&Symbol) -> bool) {
        self.symbols.lock().unwrap_or_else(|p| p.into_inner()).retain(|s, _| keep(s));
    }

    /// Whether stream data for `symbol` arrived at or after `since`.
    pub fn has_data_since(&self, symbol: &Symbol, since: UtcTime) -> bool {
        self.symbols.lock().unwrap_or_else(|p| p.into_inner()).get(symbol).is_some_and(|r| r.last >= since)
    }

    pub fn last_data(&self) -> Option<UtcTime> {
        match self.last_data_ms.load(Relaxed) {
            0 => None,
            ms => Some(UtcTime::from_millis(ms)),
        }
    }

    /// Slot symbols newly stale at `now`, each with its threshold (ms).
    pub(crate) fn newly_stale(&self, now: UtcTime, slots: &[Symbol], cfg: &Staleness) -> Vec<(Symbol, i64)> {
        let (lo, hi) = (cfg.min.as_millis() as f64, cfg.max.as_millis() as f64);
        let mut m = self.symbols.lock().unwrap_or_else(|p| p.into_inner());
        let mut entered = self.entered.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for s in slots {
            let Some(r) = m.get_mut(s) else {
                // Never seen: no rhythm of its own yet, so the floor applies from its entry.
                if let Some(e) = entered.get_mut(s)
                    && !e.stale
                    && now.millis_since(e.at) > lo as i64
                {
                    e.stale = true;
                    out.push((s.clone(), lo as i64));
                }
                continue;
            };
            let threshold = (cfg.multiple * r.mean_gap_ms).clamp(lo, hi) as i64;
            if !r.stale && now.millis_since(r.last) > threshold {
                r.stale = true;
                out.push((s.clone(), threshold));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The watchdog tests' `stale_multiple`, `stale_min` and `stale_max`.
    fn bounds() -> Staleness {
        Staleness { multiple: 10.0, min: "30s".parse().unwrap(), max: "10m".parse().unwrap() }
    }

    #[test]
    fn staleness_follows_each_symbols_own_rhythm() {
        let a = Activity::default();
        let (busy, thin) = (Symbol::new("005930").unwrap(), Symbol::new("000020").unwrap());
        let t0 = UtcTime::from_millis(1_800_000_000_000);
        // Busy: an update every second. Thin: one every two minutes.
        for i in 0..100 {
            a.on_data(t0.plus_millis(i * 1000), &busy);
        }
        for i in 0..100 {
            a.on_data(t0.plus_millis(i * 120_000), &thin);
        }
        let slots = [busy.clone(), thin.clone()];
        let last_thin = t0.plus_millis(99 * 120_000);
        // 40 s after their last updates: the busy symbol is stale (floor 30 s), the thin one is not.
        let stale = a.newly_stale(last_thin.plus_millis(40_000), &slots, &bounds());
        assert_eq!(stale.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(), vec![busy.clone()]);
        // Reported once per episode.
        assert!(a.newly_stale(last_thin.plus_millis(41_000), &slots, &bounds()).is_empty());
        // The thin one only past ten of its own gaps (capped at 10 minutes).
        let stale = a.newly_stale(last_thin.plus_millis(601_000), &slots, &bounds());
        assert_eq!(stale.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(), vec![thin]);
    }

    #[test]
    fn a_slot_symbol_never_seen_goes_stale_from_its_entry() {
        let a = Activity::default();
        let (seen, never) = (Symbol::new("005930").unwrap(), Symbol::new("000660").unwrap());
        let t0 = UtcTime::from_millis(1_800_000_000_000);
        a.on_slots(t0, std::slice::from_ref(&seen));
        a.on_data(t0, &seen);
        // The second symbol enters 10 s later and never gets data.
        a.on_slots(t0.plus_millis(10_000), &[seen.clone(), never.clone()]);
        let slots = [seen.clone(), never.clone()];
        assert!(a.newly_stale(t0.plus_millis(39_000), &slots, &bounds()).iter().all(|(s, _)| *s != never));
        let stale = a.newly_stale(t0.plus_millis(41_000), &slots, &bounds());
        assert!(stale.contains(&(never.clone(), 30_000)), "{stale:?}");
        assert!(!a.has_data_since(&never, t0));
        // Leaving the slot forgets the entry; entering again starts the clock again.
        a.on_slots(t0.plus_millis(50_000), std::slice::from_ref(&seen));
        a.on_slots(t0.plus_millis(60_000), &slots);
        assert!(a.newly_stale(t0.plus_millis(80_000), &slots, &bounds()).iter().all(|(s, _)| *s != never));
    }
}
