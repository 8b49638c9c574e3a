//! The latest known state of each symbol, updated by the observer and read by Track B.

use std::collections::HashMap;
use std::sync::Mutex;

use model::{MarketEvent, Price, Qty, Symbol, UtcTime};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolState {
    pub last_price: Option<Price>,
    pub volume: Option<Qty>,
    pub bid_price: Option<Price>,
    pub ask_price: Option<Price>,
    pub bid_size: Option<Qty>,
    pub ask_size: Option<Qty>,
    /// Receive time of the newest data applied.
    pub updated: Option<UtcTime>,
}

#[derive(Debug, Default)]
pub struct LatestBook {
    states: Mutex<HashMap<Symbol, SymbolState>>,
}

impl LatestBook {
    pub fn apply(&self, receive_time: UtcTime, event: &MarketEvent) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        // One lookup in the common case, and no key allocated unless the symbol is new.
        match states.get_mut(event.symbol()) {
            Some(s) => update(s, receive_time, event),
            None => update(states.entry(event.symbol().clone()).or_default(), receive_time, event),
        }
    }

    /// Forgets every symbol `keep` refuses (at day roll: the new universe and the slots), so
    /// the book never outgrows what can be sampled.
    pub fn retain(&self, keep: impl Fn(&Symbol) -> bool) {
        self.states.lock().unwrap_or_else(|p| p.into_inner()).retain(|s, _| keep(s));
    }

    pub fn len(&self) -> usize {
        self.states.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies the states of `symbols` (in order) under one lock.
    pub fn read(&self, symbols: &[Symbol], out: &mut Vec<SymbolState>) {
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        out.clear();
        out.extend(symbols.iter().map(|s| states.get(s).cloned().unwrap_or_default()));
    }
}

fn update(s: &mut SymbolState, receive_time: UtcTime, event: &MarketEvent) {
    match event {
        MarketEvent::Tick(t) => {
            s.last_price = Some(t.price);
            if t.cum_volume.is_some() {
                s.volume = t.cum_volume;
            }
        }
        MarketEvent::Quote(q) => {
            s.bid_price = Some(q.bid_price);
            s.ask_price = Some(q.ask_price);
            s.bid_size = Some(q.bid_size);
            s.ask_size = Some(q.ask_size);
        }
        MarketEvent::Snapshot(sn) => {
            s.last_price = Some(sn.last_price);
            s.volume = Some(sn.volume);
            if sn.bid_price.is_some() {
                s.bid_price = sn.bid_price;
            }
            if sn.ask_price.is_some() {
                s.ask_price = sn.ask_price;
            }
        }
    }
    s.updated = Some(s.updated.map_or(receive_time, |u| u.max(receive_time)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Market, Provider, Tick};

    #[test]
    fn day_roll_forgets_symbols_outside_universe_and_slots() {
        let book = LatestBook::default();
        let t = UtcTime::from_millis(1_800_000_000_000);
        for code in ["005930", "000660", "035420"] {
            let tick = Tick {
                provider: Provider::Kis,
                market: Market::KrStocks,
                symbol: Symbol::new(code).unwrap(),
                price: Price::from_int(1000),
                size: Qty::from_int(1),
                side: None,
                cum_volume: None,
                trade_id: None,
            };
            book.apply(t, &MarketEvent::Tick(tick));
        }
        assert_eq!(book.len(), 3);
        book.retain(|s| s.as_str() != "000660");
        assert_eq!(book.len(), 2);
        let mut out = Vec::new();
        book.read(&[Symbol::new("000660").unwrap(), Symbol::new("005930").unwrap()], &mut out);
        assert_eq!(out[0], SymbolState::default());
        assert!(out[1].last_price.is_some());
    }
}
