//! The price grid, in integer units of 10^-scale, and the daily price limits on it.

use model::Price;
use rust_decimal::Decimal;

use crate::sim::SimConfig;

#[derive(Debug, Clone)]
pub(super) struct Grid {
    /// (exclusive upper bound, tick); the last bound is `i64::MAX`.
    pub(super) bands: Vec<(i64, i64)>,
    pub(super) scale: u32,
}

pub(super) fn to_units(v: Decimal, scale: u32) -> i64 {
    let mut v = v;
    v.rescale(scale);
    v.mantissa().clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

impl Grid {
    pub(super) fn new(cfg: &SimConfig) -> Grid {
        let scale = cfg
            .tick_sizes
            .iter()
            .flat_map(|b| [Some(b.tick), b.below].into_iter().flatten())
            .chain([cfg.prev_close_min, cfg.prev_close_max, cfg.prev_close_median])
            .map(|d| d.normalize().scale())
            .max()
            .unwrap_or(0)
            .min(crate::sim::MAX_PRICE_SCALE);
        let bands = cfg
            .tick_sizes
            .iter()
            .map(|b| (b.below.map_or(i64::MAX, |x| to_units(x, scale)), to_units(b.tick, scale).max(1)))
            .collect();
        Grid { bands, scale }
    }

    pub(super) fn tick(&self, p: i64) -> i64 {
        for &(below, tick) in &self.bands {
            if p < below {
                return tick;
            }
        }
        self.bands.last().map_or(1, |b| b.1)
    }
    pub(super) fn up(&self, p: i64) -> i64 {
        p + self.tick(p)
    }
    pub(super) fn down(&self, p: i64) -> i64 {
        p - self.tick(p - 1)
    }
    pub(super) fn floor(&self, x: i64) -> i64 {
        x - x.rem_euclid(self.tick(x))
    }
    pub(super) fn ceil(&self, x: i64) -> i64 {
        let t = self.tick(x);
        let r = x.rem_euclid(t);
        if r == 0 { x } else { x + t - r }
    }
    pub(super) fn nearest(&self, x: i64) -> i64 {
        let (f, c) = (self.floor(x), self.ceil(x));
        if x - f <= c - x { f } else { c }
    }
    pub(super) fn price(&self, units: i64) -> Price {
        Price(Decimal::new(units, self.scale))
    }
}

/// Lower and upper daily price limits around `pc`, on the grid.
pub(super) fn limits(g: &Grid, pc: i64, limit: Decimal) -> (i64, i64) {
    let scale = g.scale;
    let pc_d = Decimal::new(pc, scale);
    let lo = g.ceil(to_units((pc_d * (Decimal::ONE - limit)).ceil_to(scale), scale)).max(g.tick(1));
    let mut hi = g.floor(to_units((pc_d * (Decimal::ONE + limit)).floor_to(scale), scale));
    if g.up(g.up(lo)) > hi {
        hi = g.up(g.up(lo));
    }
    (lo, hi)
}

trait DecimalRound {
    fn ceil_to(self, scale: u32) -> Decimal;
    fn floor_to(self, scale: u32) -> Decimal;
}

impl DecimalRound for Decimal {
    fn ceil_to(self, scale: u32) -> Decimal {
        self.round_dp_with_strategy(scale, rust_decimal::RoundingStrategy::ToPositiveInfinity)
    }
    fn floor_to(self, scale: u32) -> Decimal {
        self.round_dp_with_strategy(scale, rust_decimal::RoundingStrategy::ToNegativeInfinity)
    }
}
