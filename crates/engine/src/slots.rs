//! The slot manager (seed 001 §2.4, §2.6, §2.14.1): which `slots` symbols (41) Track B
//! streams, and for every candidate left out, an overflow decision saying why.
//!
//! Pure logic: `decide` is given the time, the trigger engine's candidates and the manual
//! exclusions, and returns the new slot list with what changed. Same inputs, same decision:
//! candidates are ranked by (manual first, score descending, symbol), and every remaining
//! tie is broken by symbol.
//!
//! # One round, in order
//!
//! 1. Incumbents in `manual_exclude` leave at once, whatever their dwell.
//! 2. Manual candidates (`Candidate::manual`) not yet in a slot take a free position, else
//!    displace the weakest non-manual incumbent, preferring one past its dwell. They beat any
//!    score, ignore dwell and the change bound (an operator's explicit choice), and count
//!    against the slot count. Only when every slot is manual does one overflow (`slot_full`).
//! 3. Coverage first (§2.10: mitigation lowers Hz, never the slot count): free positions
//!    are filled by the best remaining candidates, even below `min_score` (an empty slot
//!    records nothing, so any signal beats it), then from the reserve (`new`'s list beyond
//!    the first `slots`, or `set_reserve`). Incumbents are never dropped without a
//!    replacement, so with enough symbols every slot is always filled.
//! 4. Challengers (at least `min_score`, best first) displace the weakest evictable
//!    incumbent when they beat its score by more than `hysteresis`, at most
//!    `max_changes_per_round` times a round so subscription churn stays bounded. Evictable
//!    means: not manual and past its dwell. An incumbent's score is its candidate score this
//!    round, 0 if it has no signal now.
//!
//! A newcomer is dwell-protected for `min_dwell` from its admission. Symbols placed from the
//! reserve are placeholders for coverage: no signal earned them a slot, so they are evictable
//! at once.
//!
//! # Overflow reasons (every candidate with a signal that ends the round without a slot)
//!
//! - `manual_exclude`: in the exclusion list.
//! - `low_score`: below `min_score`, so it could not challenge an incumbent.
//! - `dwell_protected`: it beat an incumbent by the hysteresis, but that incumbent is inside
//!   its dwell.
//! - `hysteresis`: it beat the weakest evictable incumbent, but not by the hysteresis.
//! - `change_limit`: it would have displaced an incumbent, but this round's changes were used up.
//! - `slot_full`: every slot is held by a stronger (or manual) symbol.
//!
//! Each carries the candidate's score and its 1-based rank among all candidates of the
//! round; `cutoff_rank` is the slot count.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use model::settings::{Checker, Interval, Validate};
use model::{OverflowEntry, Provider, Symbol, UtcTime};

use crate::triggers::Candidate;

/// The `decision_reason` values of the overflow ledger written by the slot manager.
pub mod reason {
    pub const SLOT_FULL: &str = "slot_full";
    pub const LOW_SCORE: &str = "low_score";
    pub const MANUAL_EXCLUDE: &str = "manual_exclude";
    pub const DWELL_PROTECTED: &str = "dwell_protected";
    pub const HYSTERESIS: &str = "hysteresis";
    pub const CHANGE_LIMIT: &str = "change_limit";
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotConfig {
    /// Concurrent Track B symbols (seed: 41); also the overflow ledger's `cutoff_rank`.
    /// Not a key of its own: taken from `tracks.scalp.slots`, so the two cannot disagree.
    #[serde(skip)]
    pub slots: usize,
    /// A newcomer keeps its slot at least this long, so one noisy round cannot bounce it.
    pub min_dwell: Interval,
    /// A challenger must beat the weakest evictable incumbent's score by more than this.
    pub hysteresis: f64,
    /// Most score-driven swaps per round; each is one unsubscribe and one subscribe. The
    /// provider's registration limit itself is enforced by the adapter.
    pub max_changes_per_round: usize,
    /// Candidates scoring below this cannot displace an incumbent (they may still fill an
    /// empty slot).
    pub min_score: f64,
}

impl Validate for SlotConfig {
    fn validate(&self, c: &mut Checker) {
        c.range("slots", self.slots, 1, 1000);
        let h = self.hysteresis;
        // Scores live in 0..=1, so a larger margin could never be met.
        c.check(h.is_finite() && (0.0..=1.0).contains(&h), "hysteresis", format_args!("{h} is outside 0..=1"));
        c.check(self.max_changes_per_round >= 1, "max_changes_per_round", "must be at least 1");
        let m = self.min_score;
        c.check(m.is_finite() && (0.0..=1.0).contains(&m), "min_score", format_args!("{m} is outside 0..=1"));
    }
}

/// A candidate left without a slot this round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverflowDecision {
    pub symbol: Symbol,
    pub candidate_score: f64,
    /// 1-based rank among this round's candidates.
    pub rank: u32,
    /// The slot count.
    pub cutoff_rank: u32,
    /// One of `reason::*`.
    pub reason: &'static str,
}

impl OverflowDecision {
    /// The overflow ledger record (seed 001 §2.14.1); mitigation level and session come
    /// with the record's common meta.
    pub fn entry(&self, timestamp: UtcTime, provider: Provider) -> OverflowEntry {
        OverflowEntry {
            timestamp,
            provider,
            symbol: self.symbol.clone(),
            candidate_score: self.candidate_score,
            cutoff_rank: self.cutoff_rank,
            decision_reason: self.reason.to_string(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Decision {
    /// The new slot list: incumbents keep their position, newcomers take freed positions.
    pub slots: Vec<Symbol>,
    /// Newcomers in order of admission.
    pub added: Vec<Symbol>,
    /// Incumbents that left, in order of removal.
    pub removed: Vec<Symbol>,
    /// Ordered by rank.
    pub overflow: Vec<OverflowDecision>,
}

impl Decision {
    /// Whether the subscriptions must change.
    pub fn changed(&self) -> bool {
        !self.added.is_empty() || !self.removed.is_empty()
    }
}

#[derive(Debug, Clone)]
struct Held {
    symbol: Symbol,
    /// Not evictable for score before this instant.
    protected_until: UtcTime,
}

pub struct SlotManager {
    cfg: SlotConfig,
    held: Vec<Held>,
    view: Vec<Symbol>,
    reserve: Vec<Symbol>,
}

impl SlotManager {
    /// Day start: the first `slots` distinct symbols of `initial` (e.g. the ranking, then the
    /// universe order) become placeholders; the whole list stays as the reserve that refills
    /// free positions.
    pub fn new(cfg: SlotConfig, initial: Vec<Symbol>, now: UtcTime) -> Self {
        let mut seen = HashSet::new();
        let reserve: Vec<Symbol> = initial.into_iter().filter(|s| seen.insert(s.clone())).collect();
        let held: Vec<Held> =
            reserve.iter().take(cfg.slots).map(|s| Held { symbol: s.clone(), protected_until: now }).collect();
        let view = held.iter().map(|h| h.symbol.clone()).collect();
        SlotManager { cfg, held, view, reserve }
    }

    pub fn config(&self) -> &SlotConfig {
        &self.cfg
    }

    pub fn slots(&self) -> &[Symbol] {
        &self.view
    }

    /// Replaces the fallback order used to fill free positions when candidates run out.
    pub fn set_reserve(&mut self, order: Vec<Symbol>) {
        self.reserve = order;
    }

    pub fn decide(&mut self, now: UtcTime, candidates: &[Candidate], manual_exclude: &[Symbol]) -> Decision {
        let excluded: HashSet<&Symbol> = manual_exclude.iter().collect();
        let is_manual = |c: &Candidate| c.manual && !excluded.contains(&c.symbol);
        // A NaN would make the order depend on input order; it carries no evidence anyway.
        let sane = |s: f64| if s.is_nan() { 0.0 } else { s.clamp(0.0, 1.0) };

        let mut order: Vec<(&Candidate, f64, bool)> =
            candidates.iter().map(|c| (c, sane(c.score), is_manual(c))).collect();
        order.sort_by(|a, b| b.2.cmp(&a.2).then(b.1.total_cmp(&a.1)).then_with(|| a.0.symbol.cmp(&b.0.symbol)));
        let mut distinct = HashSet::new();
        order.retain(|(c, _, _)| distinct.insert(&c.symbol));

        let score: HashMap<&Symbol, f64> = order.iter().map(|(c, s, _)| (&c.symbol, *s)).collect();
        let manual: HashSet<&Symbol> = order.iter().filter(|(_, _, m)| *m).map(|(c, _, _)| &c.symbol).collect();
        let score_of = |h: &Held| score.get(&h.symbol).copied().unwrap_or(0.0);
        let dwell_until = now.plus_millis(self.cfg.min_dwell.as_millis() as i64);

        let mut work: Vec<Option<Held>> = self.held.iter().cloned().map(Some).collect();
        work.resize(self.cfg.slots.max(work.len()), None);
        let mut d = Decision::default();
        let mut outcome: HashMap<&Symbol, &'static str> = HashMap::new();

        for slot in work.iter_mut() {
            if slot.as_ref().is_some_and(|h| excluded.contains(&h.symbol)) {
                d.removed.extend(slot.take().map(|h| h.symbol));
            }
        }

        for (c, _, _) in order.iter().filter(|(_, _, m)| *m) {
            if holds(&work, &c.symbol) {
                continue;
            }
            let pos = vacancy(&work).or_else(|| {
                weakest(&work, |h| !manual.contains(&h.symbol), |h| (h.protected_until > now, score_of(h)))
            });
            match pos {
                Some(pos) => place(&mut work, pos, &c.symbol, dwell_until, &mut d),
                None => {
                    outcome.insert(&c.symbol, reason::SLOT_FULL);
                }
            }
        }

        for (c, _, _) in &order {
            if excluded.contains(&c.symbol) || holds(&work, &c.symbol) {
                continue;
            }
            let Some(pos) = vacancy(&work) else { break };
            place(&mut work, pos, &c.symbol, dwell_until, &mut d);
        }
        for s in &self.reserve {
            if excluded.contains(s) || holds(&work, s) {
                continue;
            }
            let Some(pos) = vacancy(&work) else { break };
            place(&mut work, pos, s, now, &mut d);
        }

        let mut swaps = 0;
        for (c, s, m) in &order {
            let s = *s;
            if *m || excluded.contains(&c.symbol) || holds(&work, &c.symbol) || s < self.cfg.min_score {
                continue;
            }
            let evictable =
                weakest(&work, |h| !manual.contains(&h.symbol) && h.protected_until <= now, |h| (false, score_of(h)));
            let weakest_score = evictable.and_then(|p| work[p].as_ref()).map(score_of);
            let displaces = evictable.zip(weakest_score).filter(|&(_, ws)| s > ws + self.cfg.hysteresis);
            if let Some((pos, _)) = displaces {
                if swaps < self.cfg.max_changes_per_round {
                    place(&mut work, pos, &c.symbol, dwell_until, &mut d);
                    swaps += 1;
                } else {
                    outcome.insert(&c.symbol, reason::CHANGE_LIMIT);
                }
                continue;
            }
            let beats_protected = work.iter().flatten().any(|h| {
                !manual.contains(&h.symbol) && h.protected_until > now && s > score_of(h) + self.cfg.hysteresis
            });
            let why = if beats_protected {
                reason::DWELL_PROTECTED
            } else if weakest_score.is_some_and(|ws| s > ws) {
                reason::HYSTERESIS
            } else {
                reason::SLOT_FULL
            };
            outcome.insert(&c.symbol, why);
        }

        let cutoff_rank = self.cfg.slots as u32;
        for (i, (c, s, m)) in order.iter().enumerate() {
            if !c.has_signal() || holds(&work, &c.symbol) {
                continue;
            }
            let reason = if excluded.contains(&c.symbol) {
                reason::MANUAL_EXCLUDE
            } else if let Some(r) = outcome.get(&c.symbol) {
                r
            } else if !m && *s < self.cfg.min_score {
                reason::LOW_SCORE
            } else {
                reason::SLOT_FULL
            };
            d.overflow.push(OverflowDecision {
                symbol: c.symbol.clone(),
                candidate_score: *s,
                rank: i as u32 + 1,
                cutoff_rank,
                reason,
            });
        }

        self.held = work.into_iter().flatten().collect();
        self.view = self.held.iter().map(|h| h.symbol.clone()).collect();
        d.slots = self.view.clone();
        d
    }
}

fn holds(work: &[Option<Held>], symbol: &Symbol) -> bool {
    work.iter().flatten().any(|h| &h.symbol == symbol)
}

fn vacancy(work: &[Option<Held>]) -> Option<usize> {
    work.iter().position(Option::is_none)
}

/// The position of the weakest incumbent passing `eligible`, by `key` ascending; equal keys
/// evict the later symbol first, mirroring the rank order where the earlier symbol wins.
fn weakest(
    work: &[Option<Held>],
    eligible: impl Fn(&Held) -> bool,
    key: impl Fn(&Held) -> (bool, f64),
) -> Option<usize> {
    work.iter()
        .enumerate()
        .filter_map(|(i, h)| h.as_ref().filter(|h| eligible(h)).map(|h| (i, h)))
        .min_by(|(_, a), (_, b)| {
            let (ka, kb) = (key(a), key(b));
            ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then_with(|| Reverse(&a.symbol).cmp(&Reverse(&b.symbol)))
        })
        .map(|(i, _)| i)
}

fn place(work: &mut [Option<Held>], pos: usize, symbol: &Symbol, protected_until: UtcTime, d: &mut Decision) {
    if let Some(old) = work[pos].take() {
        d.removed.push(old.symbol);
    }
    work[pos] = Some(Held { symbol: symbol.clone(), protected_until });
    d.added.push(symbol.clone());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triggers::{ScoreInputs, TriggerKind};

    const MIN: i64 = 60_000;

    fn sym(s: &str) -> Symbol {
        Symbol::new(s).unwrap()
    }

    fn syms(list: &[&str]) -> Vec<Symbol> {
        list.iter().map(|s| sym(s)).collect()
    }

    fn at(minutes: i64) -> UtcTime {
        UtcTime::from_millis(1_768_348_800_000 + minutes * MIN)
    }

    fn config(slots: usize) -> SlotConfig {
        SlotConfig {
            slots,
            min_dwell: Interval::from_millis(5 * MIN as u64),
            hysteresis: 0.1,
            max_changes_per_round: 10,
            min_score: 0.3,
        }
    }

    fn cand(symbol: &str, score: f64) -> Candidate {
        Candidate {
            symbol: sym(symbol),
            score,
            trigger: Some(TriggerKind::VolumeSurge),
            fired: vec![TriggerKind::VolumeSurge],
            price_spike: false,
            manual: false,
            inputs: ScoreInputs::default(),
        }
    }

    fn manual(symbol: &str) -> Candidate {
        Candidate {
            trigger: Some(TriggerKind::ManualOverride),
            fired: vec![TriggerKind::ManualOverride],
            manual: true,
            ..cand(symbol, 0.0)
        }
    }

    /// (symbol, rank, reason) of each overflow entry.
    fn overflow(d: &Decision) -> Vec<(String, u32, &'static str)> {
        d.overflow.iter().map(|o| (o.symbol.to_string(), o.rank, o.reason)).collect()
    }

    fn names(v: &[Symbol]) -> Vec<&str> {
        v.iter().map(Symbol::as_str).collect()
    }

    #[test]
    fn more_triggered_candidates_than_slots_get_exact_ranks_and_reasons() {
        let mut m = SlotManager::new(config(3), syms(&["P1", "P2", "P3"]), at(0));
        let cands = [
            cand("E", 0.5),
            cand("A", 0.9),
            cand("F", 0.2),
            cand("C", 0.7),
            cand("X", 0.95),
            cand("B", 0.8),
            cand("D", 0.6),
        ];
        let d = m.decide(at(1), &cands, &syms(&["X"]));
        // Placeholders go weakest first; at equal score the later symbol first.
        assert_eq!(names(&d.slots), ["C", "B", "A"]);
        assert_eq!(names(&d.added), ["A", "B", "C"]);
        assert_eq!(names(&d.removed), ["P3", "P2", "P1"]);
        assert_eq!(
            overflow(&d),
            [
                ("X".into(), 1, reason::MANUAL_EXCLUDE),
                ("D".into(), 5, reason::SLOT_FULL),
                ("E".into(), 6, reason::SLOT_FULL),
                ("F".into(), 7, reason::LOW_SCORE),
            ]
        );
        assert!(d.overflow.iter().all(|o| o.cutoff_rank == 3));
        assert_eq!(d.overflow[1].candidate_score, 0.6);
        let e = d.overflow[1].entry(at(1), Provider::Kis);
        assert_eq!((e.cutoff_rank, e.decision_reason.as_str(), e.candidate_score), (3, "slot_full", 0.6));
        assert_eq!(m.slots(), d.slots.as_slice());
    }

    #[test]
    fn dwell_protects_newcomers_and_hysteresis_damps_swaps() {
        let mut m = SlotManager::new(config(2), syms(&["P1", "P2"]), at(0));
        let d = m.decide(at(0), &[cand("A", 0.5), cand("B", 0.4)], &[]);
        assert_eq!(names(&d.slots), ["B", "A"]);

        // One minute in, both are inside their dwell: C would have displaced B (0.4 + 0.1).
        let d = m.decide(at(1), &[cand("A", 0.5), cand("B", 0.4), cand("C", 0.9), cand("D", 0.45)], &[]);
        assert!(!d.changed());
        assert_eq!(overflow(&d), [("C".into(), 1, reason::DWELL_PROTECTED), ("D".into(), 3, reason::SLOT_FULL)]);

        // Past the dwell, 0.5 against B's 0.4 is not more than the 0.1 margin.
        let d = m.decide(at(6), &[cand("A", 0.5), cand("B", 0.4), cand("C", 0.5)], &[]);
        assert!(!d.changed());
        assert_eq!(overflow(&d), [("C".into(), 2, reason::HYSTERESIS)]);

        // 0.55 clears it: C takes B's position; A keeps its own.
        let d = m.decide(at(7), &[cand("A", 0.5), cand("B", 0.4), cand("C", 0.55)], &[]);
        assert_eq!(names(&d.slots), ["C", "A"]);
        assert_eq!((names(&d.added), names(&d.removed)), (vec!["C"], vec!["B"]));
        assert_eq!(overflow(&d), [("B".into(), 3, reason::SLOT_FULL)]);

        // An incumbent that lost its signal scores 0 and yields to any challenger past dwell.
        let d = m.decide(at(13), &[cand("C", 0.55), cand("D", 0.35)], &[]);
        assert_eq!(names(&d.slots), ["C", "D"]);
        assert_eq!(names(&d.removed), ["A"]);
    }

    #[test]
    fn manual_include_always_holds_a_slot_and_exclude_never_gets_one() {
        let mut m = SlotManager::new(config(2), syms(&["P1", "P2"]), at(0));
        m.decide(at(0), &[cand("A", 0.9), cand("B", 0.8)], &[]);
        assert_eq!(names(m.slots()), ["B", "A"]);

        // A manual symbol with no score beats dwell and score: it takes the weakest's place.
        let d = m.decide(at(1), &[cand("A", 0.9), cand("B", 0.8), manual("M")], &[]);
        assert_eq!(names(&d.slots), ["M", "A"]);
        assert_eq!(overflow(&d), [("B".into(), 3, reason::SLOT_FULL)]);
        assert_eq!(d.overflow[0].rank, 3, "manual candidates rank first");

        // Excluding an incumbent removes it at once, dwell or not; the best remaining
        // candidate fills its position.
        let d = m.decide(at(2), &[cand("A", 0.9), cand("B", 0.8), manual("M")], &syms(&["A"]));
        assert_eq!(names(&d.slots), ["M", "B"]);
        assert_eq!((names(&d.added), names(&d.removed)), (vec!["B"], vec!["A"]));
        assert_eq!(overflow(&d), [("A".into(), 2, reason::MANUAL_EXCLUDE)]);

        // Exclusion wins over a manual include; more manual symbols than slots overflow by
        // score, then symbol.
        let cands = [manual("M"), manual("N"), manual("O"), Candidate { score: 0.4, ..manual("Q") }];
        let d = m.decide(at(3), &cands, &syms(&["M"]));
        assert_eq!(names(&d.slots), ["Q", "N"]);
        assert_eq!(names(&d.removed), ["M", "B"]);
        assert_eq!(overflow(&d), [("O".into(), 3, reason::SLOT_FULL), ("M".into(), 4, reason::MANUAL_EXCLUDE)]);
    }

    #[test]
    fn coverage_fills_empty_slots_before_anything_else() {
        let mut m = SlotManager::new(config(3), syms(&["P1"]), at(0));
        assert_eq!(names(m.slots()), ["P1"]);
        m.set_reserve(syms(&["P1", "X", "R1", "R2"]));
        // A low score still beats an empty slot; the reserve fills what candidates cannot.
        let d = m.decide(at(0), &[cand("L", 0.1)], &syms(&["X"]));
        assert_eq!(names(&d.slots), ["P1", "L", "R1"]);
        assert!(d.overflow.is_empty());

        // Reserve placeholders are evictable at once; L earned its slot and is protected.
        let d = m.decide(at(0).plus_millis(1000), &[cand("L", 0.1), cand("Z", 0.9)], &[]);
        assert_eq!(names(&d.slots), ["P1", "L", "Z"]);
        assert_eq!(names(&d.removed), ["R1"]);

        // An excluded incumbent with nobody to replace it leaves a shorter list, in order.
        let mut m = SlotManager::new(config(3), syms(&["A", "B", "C"]), at(0));
        let d = m.decide(at(1), &[], &syms(&["B"]));
        assert_eq!(names(&d.slots), ["A", "C"]);
        // ... and the next symbol to appear fills it, appended.
        let d = m.decide(at(2), &[cand("D", 0.05)], &syms(&["B"]));
        assert_eq!(names(&d.slots), ["A", "C", "D"]);

        // Without any signal the incumbents stay: the list never empties for lack of news.
        let d = m.decide(at(30), &[], &[]);
        assert!(!d.changed() && d.slots.len() == 3);
    }

    #[test]
    fn swaps_per_round_are_bounded() {
        let mut cfg = config(3);
        cfg.max_changes_per_round = 2;
        let mut m = SlotManager::new(cfg, syms(&["P1", "P2", "P3"]), at(0));
        let cands = [cand("A", 0.9), cand("B", 0.8), cand("C", 0.7)];
        let d = m.decide(at(0), &cands, &[]);
        assert_eq!(names(&d.slots), ["P1", "B", "A"]);
        assert_eq!(overflow(&d), [("C".into(), 3, reason::CHANGE_LIMIT)]);
        let d = m.decide(at(0).plus_millis(1), &cands, &[]);
        assert_eq!(names(&d.slots), ["C", "B", "A"]);
        assert!(d.overflow.is_empty());
    }

    #[test]
    fn same_inputs_same_decision_with_ties_broken_by_symbol() {
        let cands = [cand("D", 0.5), cand("B", 0.5), cand("C", 0.5), cand("A", 0.5), cand("A", 0.1)];
        let run = |order: &[Candidate]| {
            let mut m = SlotManager::new(config(2), syms(&["P1", "P2"]), at(0));
            m.decide(at(0), order, &[])
        };
        let d = run(&cands);
        let mut reversed = cands.to_vec();
        reversed.reverse();
        assert_eq!(run(&reversed), d);
        assert_eq!(names(&d.slots), ["B", "A"]);
        // A appears once, with its best score.
        assert_eq!(overflow(&d), [("C".into(), 3, reason::SLOT_FULL), ("D".into(), 4, reason::SLOT_FULL)]);
        // A NaN score counts as no evidence (0), wherever it appears in the input.
        let d = run(&[cand("N", f64::NAN), cand("A", 0.5), cand("B", 0.5)]);
        assert_eq!(names(&d.slots), ["B", "A"]);
        assert_eq!(overflow(&d), [("N".into(), 3, reason::LOW_SCORE)]);
        assert_eq!(d.overflow[0].candidate_score, 0.0);
    }

    #[test]
    fn signal_less_candidates_are_not_reported() {
        let mut m = SlotManager::new(config(1), syms(&["P1"]), at(0));
        let quiet = Candidate { trigger: None, fired: vec![], ..cand("Q", 0.2) };
        let d = m.decide(at(0), &[cand("A", 0.9), quiet], &[]);
        assert_eq!(names(&d.slots), ["A"]);
        assert!(d.overflow.is_empty());
    }

    #[test]
    fn config_rejects_nonsense() {
        let check = |cfg: &SlotConfig| {
            let mut c = Checker::default();
            c.section("slots", |c| cfg.validate(c));
            c.problems.iter().map(|p| p.key.clone()).collect::<Vec<_>>()
        };
        assert!(check(&config(41)).is_empty());
        let bad = SlotConfig { slots: 0, hysteresis: -0.1, max_changes_per_round: 0, min_score: 1.5, ..config(41) };
        assert_eq!(check(&bad), ["slots.slots", "slots.hysteresis", "slots.max_changes_per_round", "slots.min_score"]);
        let text = r#"{"min_dwell": "5m", "hysteresis": 0.1, "max_changes_per_round": 8, "min_score": 0.25}"#;
        let cfg: SlotConfig = serde_json::from_str(text).unwrap();
        assert_eq!(cfg.min_dwell.as_millis(), 300_000);
        assert!(serde_json::from_str::<SlotConfig>(&text.replace("min_score", "minscore")).is_err());
    }

    #[test]
    fn monitor_candidates_drive_the_slots() {
        use crate::triggers::CandidateMonitor;
        use crate::triggers::tests::{at as t, config as trigger_config, flat};
        let mut monitor = CandidateMonitor::new(trigger_config());
        let universe = syms(&["U1", "U2", "U3", "U4"]);
        let mut m = SlotManager::new(config(2), universe.clone(), t(0));
        // Every symbol trades 1000 per 10 minutes; at minute 40, U3 surges 6x, U4 4x.
        for i in 0..=4 {
            for (s, last) in [("U1", 1000), ("U2", 1000), ("U3", 6000), ("U4", 4000)] {
                let cum = 1000 * i + if i == 4 { last - 1000 } else { 0 };
                monitor.on_snapshot(t(10 * i), &flat(s, cum));
            }
        }
        let cands = monitor.evaluate(t(40));
        assert_eq!(cands.iter().map(|c| c.symbol.as_str()).collect::<Vec<_>>(), ["U3", "U4"]);
        let d = m.decide(t(40), &cands, monitor.manual_exclude());
        assert_eq!(names(&d.slots), ["U4", "U3"]);
        assert_eq!((names(&d.added), names(&d.removed)), (vec!["U3", "U4"], vec!["U2", "U1"]));
        assert!(d.overflow.is_empty());
    }
}
