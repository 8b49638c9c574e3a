//! The score and the fired triggers of one symbol's measurements (see the module docs of
//! `triggers` for the formula and why it has this shape).

use model::Symbol;

use super::candidate::{Candidate, ScoreInputs, TriggerKind};
use super::config::TriggerConfig;

/// Strength of one signal: 0 if it did not fire, else its ratio over the threshold as a
/// fraction of `saturation`, capped at 1.
fn strength(ratio: Option<f64>, threshold: f64, saturation: f64) -> Option<f64> {
    ratio.filter(|r| r.is_finite() && *r >= threshold).map(|r| (r / threshold / saturation).min(1.0))
}

/// The candidate for `symbol` from its measurements: each fired signal's strength weighted
/// into the score, the fired triggers in priority order, and the manual override.
pub(super) fn judge(cfg: &TriggerConfig, symbol: Symbol, mut inputs: ScoreInputs) -> Candidate {
    let w = &cfg.weights;
    let change_ratio = inputs.change_pct.map(f64::abs);
    let signals = [
        (
            Some(TriggerKind::VolumeSurge),
            strength(inputs.volume_ratio, cfg.volume_surge_ratio, cfg.saturation),
            w.volume_surge,
        ),
        (
            Some(TriggerKind::TradeVelocity),
            strength(inputs.velocity_ratio, cfg.trade_velocity_ratio, cfg.saturation),
            w.trade_velocity,
        ),
        (
            Some(TriggerKind::VolatilitySpike),
            strength(inputs.volatility_ratio, cfg.volatility_ratio, cfg.saturation),
            w.volatility_spike,
        ),
        (None, strength(change_ratio, cfg.price_spike_pct, cfg.saturation), w.price_spike),
    ];
    let mut miss = 1.0;
    let mut fired = Vec::new();
    let mut price_spike = false;
    for (kind, g, weight) in signals {
        let Some(g) = g else { continue };
        miss *= 1.0 - weight * g;
        match kind {
            Some(k) => fired.push(k),
            None => price_spike = true,
        }
    }
    let manual = cfg.manual_include.contains(&symbol) && !cfg.manual_exclude.contains(&symbol);
    if manual {
        fired.push(TriggerKind::ManualOverride);
    }
    inputs.sources.sort();
    inputs.sources.dedup();
    Candidate {
        symbol,
        score: (1.0 - miss).clamp(0.0, 1.0),
        trigger: fired.first().copied(),
        fired,
        price_spike,
        manual,
        inputs,
    }
}
