//! The one frame router. Which way a raw frame goes (stream, Track B's clock, a REST reading
//! that feeds the book, a Track A snapshot, gap evidence) is decided from what the raw archive
//! keeps of it — its kind and quality flag — by [`Route::of`], and its events are normalized
//! by [`Router`]: the provider's mapper, the subscription filter and the observer core of
//! its route. The live observer task and `replay` both go through here, which is what keeps
//! a replay byte-exact: there is no second copy of these rules to drift.

use std::collections::HashSet;

use model::{MarketEvent, QualityFlag, RawFrame, RawFrameKind, Record, Symbol};
use providers::{Mapper, ProviderError};

use archive::raw::RawRefs;

use crate::observer::{ObserverCore, Rejection};

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// What the stream delivered (data and its open, close and sent frames): it feeds the
    /// book, the watchdog and the trigger engine, and closes an outage.
    Stream,
    /// Track B's sampling tick.
    Clock,
    /// A REST snapshot feeding the book in the stream's place (degrade-mode polls, the seed
    /// of a symbol entering a slot); not stream data, so an outage stays open.
    Book,
    /// A scheduled REST reading (Track A's snapshots, the volume ranking): swing records.
    Swing,
    /// A REST snapshot taken as evidence after a stream gap: the event log, not swing.
    Evidence,
}

impl Route {
    /// The route of an archived frame. Live, every frame is archived with
    /// [`Route::quality`] of the route it took, so replay routes it the same way.
    pub fn of(kind: RawFrameKind, quality: QualityFlag) -> Route {
        match (kind, quality) {
            (RawFrameKind::Clock, _) => Route::Clock,
            (RawFrameKind::Rest, QualityFlag::Degraded) => Route::Book,
            (RawFrameKind::Rest, QualityFlag::Gap) => Route::Evidence,
            (RawFrameKind::Rest, _) => Route::Swing,
            (RawFrameKind::Ws | RawFrameKind::Sent | RawFrameKind::Open | RawFrameKind::Close, _) => Route::Stream,
        }
    }

    /// The quality flag a frame taking this route is archived with (and its records carry).
    pub fn quality(self) -> QualityFlag {
        match self {
            Route::Book => QualityFlag::Degraded,
            Route::Evidence => QualityFlag::Gap,
            Route::Stream | Route::Clock | Route::Swing => QualityFlag::Normal,
        }
    }

    /// Routes whose guard state is shared (the dedupe and sequence memory of one core).
    fn core(self) -> Option<usize> {
        match self {
            Route::Stream => Some(0),
            Route::Book => Some(1),
            Route::Swing | Route::Evidence => Some(2),
            Route::Clock => None,
        }
    }
}

/// A frame on its way to the observer task with the route its sender gave it.
pub type RoutedFrame = (Route, RawFrame);

/// The symbols the stream was ever asked for, read from the subscribe messages it sent
/// (archived in band, so replay applies the same rule): a stream record for any other
/// symbol was never requested (on a plain `ws://` path anyone can inject one) and must
/// neither feed Track B nor become a slot candidate, nor grow per-symbol state without bound.
#[derive(Debug, Default)]
pub struct Subscribed {
    // Looked up for every stream event: foldhash (seeded per process) rather than SipHash;
    // the set holds only what we subscribed ourselves.
    ever: HashSet<Symbol, foldhash::fast::RandomState>,
}

impl Subscribed {
    pub fn allows(&self, symbol: &Symbol) -> bool {
        self.ever.contains(symbol)
    }
}

/// The stage named in the event that refuses a never-subscribed symbol.
pub const STAGE_SUBSCRIPTION: &str = "subscription";
/// The stage named in the event that refuses a frame the mapper cannot read.
pub const STAGE_NORMALIZE: &str = "normalize";

/// An event the subscription filter or the observer core refused.
#[derive(Debug)]
pub struct Refusal {
    pub stage: &'static str,
    pub reason: String,
    pub symbol: Option<Symbol>,
}

/// Builds the observer core of a route on first use.
pub type CoreFactory = Box<dyn Fn() -> ObserverCore + Send + Sync>;

/// Normalizes the frames of one provider and one session.
pub struct Router {
    mapper: Mapper,
    make_core: CoreFactory,
    cores: [Option<ObserverCore>; 3],
    subscribed: Subscribed,
}

impl Router {
    pub fn new(mapper: Mapper, make_core: CoreFactory) -> Self {
        Router { mapper, make_core, cores: [None, None, None], subscribed: Subscribed::default() }
    }

    pub fn mapper(&self) -> Mapper {
        self.mapper
    }

    /// Parses `frame` (taking `route`) and appends the records of its events that passed to
    /// `passed`, the others to `refused`; a frame with nothing to parse (clock, open, close,
    /// sent) yields none. `seq` numbers the frame's raw line, for the records' `raw_ref`.
    /// Err: the mapper could not read it.
    pub fn normalize(
        &mut self,
        route: Route,
        frame: &RawFrame,
        seq: u64,
        refs: &mut RawRefs,
        passed: &mut Vec<Record<MarketEvent>>,
        refused: &mut Vec<Refusal>,
    ) -> Result<(), ProviderError> {
        if frame.kind == RawFrameKind::Sent
            && let Some(subscribes) = self.mapper.subscribes
        {
            self.subscribed.ever.extend(subscribes(&frame.frame));
        }
        if !matches!(frame.kind, RawFrameKind::Ws | RawFrameKind::Rest) {
            return Ok(());
        }
        let Some(slot) = route.core() else { return Ok(()) };
        let parsed = (self.mapper.parse)(frame)?;
        // Stream records are filtered by what was subscribed, where the mapper can tell.
        let filtered = frame.kind == RawFrameKind::Ws && self.mapper.subscribes.is_some();
        let quality = route.quality();
        let rt = frame.receive_time;
        let core = self.cores[slot].get_or_insert_with(&self.make_core);
        let mut raw_ref = Some(refs.get(frame.provider, rt, seq));
        let mut events = parsed.into_iter().peekable();
        while let Some((event_time, event)) = events.next() {
            // The frame's last event takes its raw_ref, earlier ones a copy.
            let raw_ref = if events.peek().is_some() { raw_ref.clone() } else { raw_ref.take() };
            if filtered && !self.subscribed.allows(event.symbol()) {
                let symbol = event.symbol().clone();
                let reason = format!("{symbol} was never subscribed on this stream");
                refused.push(Refusal { stage: STAGE_SUBSCRIPTION, reason, symbol: Some(symbol) });
                continue;
            }
            match core.observe(event_time, rt, event, raw_ref) {
                Ok(mut rec) => {
                    if quality != QualityFlag::Normal {
                        rec.meta.quality_flag = quality;
                    }
                    passed.push(rec)
                }
                Err(Rejection { stage, reason, symbol }) => refused.push(Refusal { stage, reason, symbol }),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: [Route; 5] = [Route::Stream, Route::Clock, Route::Book, Route::Swing, Route::Evidence];

    fn kinds(route: Route) -> &'static [RawFrameKind] {
        match route {
            Route::Stream => &[RawFrameKind::Ws, RawFrameKind::Sent, RawFrameKind::Open, RawFrameKind::Close],
            Route::Clock => &[RawFrameKind::Clock],
            Route::Book | Route::Swing | Route::Evidence => &[RawFrameKind::Rest],
        }
    }

    /// What the live run archives for a route is routed back to it by replay.
    #[test]
    fn an_archived_frame_is_replayed_along_the_route_it_took() {
        for route in ROUTES {
            for kind in kinds(route) {
                assert_eq!(Route::of(*kind, route.quality()), route, "{kind:?}");
            }
        }
    }
}
