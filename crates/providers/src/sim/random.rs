//! Deterministic randomness shared by the simulated markets: a random stream per (seed,
//! day, symbol, step, purpose), so a path never depends on who asked for what, or when.

use fastrand::Rng;

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Mixes the five coordinates of a draw into one seed.
fn key(seed: u64, day: u64, sym: u64, k: u64, salt: u64) -> u64 {
    let mut h = splitmix(seed ^ salt);
    h = splitmix(h ^ day);
    h = splitmix(h ^ sym);
    splitmix(h ^ k)
}

pub(crate) fn rng_for(seed: u64, day: u64, sym: u64, k: u64, salt: u64) -> Rng {
    Rng::with_seed(key(seed, day, sym, k, salt))
}

/// A standard normal draw (Box–Muller; `1 - u` is in (0, 1] so the log is finite).
pub(crate) fn normal(rng: &mut Rng) -> f64 {
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
