//! The day's listings: generated codes and names around the configured real large caps,
//! previous closes and opening prices.

use std::collections::{HashMap, HashSet};

use fastrand::Rng;
use jiff::civil::Date;
use model::settings::{Checker, Problem, Validate};
use model::{Symbol, UtcTime};
use rust_decimal::Decimal;

use super::charts::trading_days_before;
use super::grid::{Grid, limits, to_units};
use super::steps::{Cursors, Params, SymConst};
use super::{Board, Listing, SALT_DAY, SALT_LISTING, SALT_UNIVERSE, SimMarket, day_key};
use crate::sim::config::{LargeCap, SimConfig};
use crate::sim::random::{normal, rng_for};

const NAME_HEADS: &[&str] = &[
    "한빛",
    "세진",
    "동림",
    "미래",
    "새한",
    "태성",
    "금강",
    "청담",
    "해솔",
    "누리",
    "대양",
    "신성",
    "가람",
    "보람",
    "서원",
    "영진",
    "우성",
    "진흥",
    "한결",
    "코리아",
];
const NAME_TAILS: &[&str] = &[
    "전자",
    "화학",
    "바이오",
    "제약",
    "건설",
    "금융지주",
    "테크",
    "반도체",
    "에너지",
    "산업",
    "물산",
    "식품",
    "중공업",
    "소재",
    "통신",
    "엔터",
    "로보틱스",
    "정밀",
    "홀딩스",
    "게임즈",
];

impl SimMarket {
    /// Builds the market. Panics if `cfg` does not pass `Validate` (the config layer checks
    /// it first); use [`SimMarket::try_new`] to get the problems instead.
    pub fn new(cfg: &SimConfig, trading_day: Date) -> SimMarket {
        match SimMarket::try_new(cfg, trading_day) {
            Ok(m) => m,
            Err(problems) => {
                let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                panic!("invalid sim config: {}", text.join("; "))
            }
        }
    }

    pub fn try_new(cfg: &SimConfig, trading_day: Date) -> Result<SimMarket, Vec<Problem>> {
        let mut checker = Checker::default();
        cfg.validate(&mut checker);
        if !checker.problems.is_empty() {
            return Err(checker.problems);
        }
        let grid = Grid::new(cfg);
        let open = UtcTime::from_kst(trading_day.to_datetime(cfg.session.start));
        let close = UtcTime::from_kst(trading_day.to_datetime(cfg.session.end));
        let session_ms = close.millis_since(open);
        let step_ms = cfg.step.as_millis() as i64;
        let n_steps = (session_ms / step_ms) as u32;
        let day = day_key(trading_day);
        let params = Params {
            seed: cfg.seed,
            day,
            grid,
            open_ms: open.as_millis(),
            step_ms,
            n_steps,
            rate_per_step: cfg.trades_per_second * step_ms as f64 / 1000.0,
            sd_rel_step: cfg.daily_volatility * (step_ms as f64 / session_ms as f64).sqrt(),
            burst_p: cfg.burst_probability_per_minute,
            burst_min: cfg.burst_minutes_min,
            burst_max: cfg.burst_minutes_max,
            burst_volume: cfg.burst_volume_multiplier,
            burst_volatility: cfg.burst_volatility_multiplier,
            burst_drift: cfg.burst_drift,
            levels: cfg.quote_levels,
            lot_max: cfg.lot_size_max,
            size_skew: cfg.size_skew,
            burst_size_skew: cfg.burst_size_skew,
            book_max: cfg.book_size_max,
            auction_max: cfg.open_auction_size_max,
        };

        let real_codes: HashSet<&str> = cfg.large_caps.iter().map(|c| c.code.as_str()).collect();
        let generated = make_codes(cfg, &real_codes);
        // (code, board, key, the large cap it is, if real)
        let mut entries: Vec<(String, Board, u64, Option<&LargeCap>)> =
            generated.into_iter().enumerate().map(|(i, (code, board))| (code, board, i as u64, None)).collect();
        entries.extend(cfg.large_caps.iter().map(|c| (c.code.clone(), c.board, real_key(&c.code), Some(c))));
        entries.sort_by(|a, b| a.0.cmp(&b.0));

        let mut listings = Vec::with_capacity(entries.len());
        let mut consts = Vec::with_capacity(entries.len());
        // Real names first: a generated name never copies one.
        let mut names: HashSet<String> = cfg.large_caps.iter().map(|c| c.name.clone()).collect();
        let g = &params.grid;
        let scale = g.scale;
        let units = |d: Decimal| to_units(d, scale);
        let (min_u, max_u) = (units(cfg.prev_close_min), units(cfg.prev_close_max));
        let median = units(cfg.prev_close_median) as f64;
        for (code, board, key, real) in entries {
            // The universe (codes, names, price level) depends on the seed only; the day
            // moves each previous close a little.
            let (base, name, shares, clamp) = match real {
                Some(cap) => (units(cap.price) as f64, cap.name.clone(), cap.shares, (g.tick(1), i64::MAX)),
                None => {
                    let mut r = rng_for(cfg.seed, 0, key, 0, SALT_LISTING);
                    let base = median * (cfg.prev_close_sigma * normal(&mut r)).exp();
                    let head = NAME_HEADS[r.usize(0..NAME_HEADS.len())];
                    let tail = NAME_TAILS[r.usize(0..NAME_TAILS.len())];
                    let mut name = format!("{head}{tail}");
                    let mut n = 1;
                    while names.contains(&name) {
                        n += 1;
                        name = format!("{head}{tail}{n}");
                    }
                    let shares = cfg.listed_shares_median as f64 * (cfg.listed_shares_sigma * normal(&mut r)).exp();
                    (base, name, (shares.round() as u64).max(1), (g.ceil(min_u), g.floor(max_u)))
                }
            };
            names.insert(name.clone());
            let mut rd = rng_for(cfg.seed, day, key, 0, SALT_DAY);
            let pc = base * (cfg.daily_volatility * normal(&mut rd)).exp();
            let pc = (pc.round() as i64).clamp(min_u.min(clamp.0), max_u.max(clamp.1));
            let pc = g.nearest(pc).clamp(clamp.0, clamp.1).max(g.tick(1));
            let (lo, hi) = limits(g, pc, cfg.daily_limit);
            let gap = cfg.open_gap_sigma * normal(&mut rd);
            let open_px = g.nearest((pc as f64 * gap.exp()).round() as i64).clamp(lo, g.down(hi));
            let c = SymConst { key, prev_close: pc, open_px, lo, hi };
            let symbol = Symbol::new(&code).map_err(|e| {
                vec![Problem {
                    key: "sim.symbols".into(),
                    message: format!("generated code {code:?} is not a symbol: {e}"),
                }]
            })?;
            listings.push(Listing { symbol, name, board, prev_close: g.price(pc), shares, real: real.is_some() });
            consts.push(c);
        }
        let cursors = consts
            .iter()
            .map(|c| {
                let s = params.initial(c);
                Cursors { feed: s, lead: s }
            })
            .collect();
        let history_dates = trading_days_before(trading_day, cfg.history_days as usize, &[]);
        Ok(SimMarket {
            cfg: cfg.clone(),
            trading_day,
            params,
            listings,
            consts,
            cursors,
            history_dates,
            year_ranges: HashMap::new(),
            minute_bars: HashMap::new(),
        })
    }
}

/// Unique 6-character codes, sorted: KOSPI `0dddd0`, KOSDAQ `1dddd0`/`2dddd0`, a few with a
/// letter (`0dddJ0`-style, or a trailing letter like `00088K`). None is in `reserved` (the
/// real listings' codes): a draw that lands on one is skipped.
fn make_codes(cfg: &SimConfig, reserved: &HashSet<&str>) -> Vec<(String, Board)> {
    let n = cfg.symbols as usize;
    let n_kospi = ((n as f64 * cfg.kospi_share).round() as usize).min(n);
    let mut r = rng_for(cfg.seed, 0, 0, 0, SALT_UNIVERSE);
    let kospi_code = |m: usize| format!("0{m:04}0");
    let kosdaq_code = |m: usize| format!("{}{:04}0", 1 + m / 10_000, m % 10_000);
    let mut pick = |space: usize, take: usize, code: &dyn Fn(usize) -> String| -> Vec<String> {
        // A partial Fisher-Yates shuffle that passes over reserved codes.
        let mut all: Vec<usize> = (0..space).collect();
        let mut out = Vec::with_capacity(take);
        let mut i = 0;
        while out.len() < take && i < space {
            let j = r.usize(i..space);
            all.swap(i, j);
            let c = code(all[i]);
            if !reserved.contains(c.as_str()) {
                out.push(c);
            }
            i += 1;
        }
        out
    };
    let kospi = pick(10_000, n_kospi, &kospi_code);
    let kosdaq = pick(20_000, n - n_kospi, &kosdaq_code);
    let mut seen: HashSet<String> = reserved.iter().map(|c| c.to_string()).collect();
    let mut out = Vec::with_capacity(n);
    let letters = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut push = |mut code: String, board: Board, r: &mut Rng| {
        if r.f64() < cfg.letter_code_share {
            let letter = letters[r.usize(0..letters.len())] as char;
            let pos = if r.bool() { 4 } else { 5 };
            let mut lettered = code.clone();
            lettered.replace_range(pos..pos + 1, &letter.to_string());
            // Keep the plain code if the lettered one is taken.
            if !seen.contains(&lettered) {
                code = lettered;
            }
        }
        seen.insert(code.clone());
        out.push((code, board));
    };
    let mut r2 = rng_for(cfg.seed, 0, 1, 0, SALT_UNIVERSE);
    for code in kospi {
        push(code, Board::Kospi, &mut r2);
    }
    for code in kosdaq {
        push(code, Board::Kosdaq, &mut r2);
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A real listing's random coordinate: its code's bytes, far above any generated rank.
fn real_key(code: &str) -> u64 {
    code.bytes().fold(0u64, |k, b| (k << 8) | b as u64)
}
