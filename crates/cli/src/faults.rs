//! `collect --fault KIND@HH:MM:SS+DURATION`: fault scripts for the simulated market. Each
//! fault switches the fake servers (or the resource probe) on at a market-clock time of the
//! run's first day and off again after its duration, so any failure scenario can be
//! reproduced from the command line.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jiff::civil::{Date, DateTime, Time};

use engine::mitigation::Pressure;
use model::{Clock, UtcTime};
use providers::module::FaultSwitches;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every WebSocket is cut and new ones are refused until the end.
    WsDisconnect,
    /// Sockets stay open and answer PINGPONG but carry no market data (stale, not dead).
    WsSilent,
    /// Sockets stay open but carry nothing at all, not even PINGPONG (dead, not closed).
    WsStall,
    /// REST calls answer HTTP 429.
    Rest429,
    /// REST calls answer HTTP 503.
    Rest5xx,
    /// The CPU reads as fully busy to the mitigation controller.
    CpuPressure,
}

const KINDS: &str = "ws_disconnect, ws_silent, ws_stall, rest_429, rest_5xx, cpu_pressure";

#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: Kind,
    pub at: Time,
    pub duration: Duration,
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || format!("{s:?}: expected KIND@HH:MM:SS+DURATION, e.g. ws_disconnect@10:15:00+45s");
        let (kind, rest) = s.split_once('@').ok_or_else(usage)?;
        let (at, dur) = rest.split_once('+').ok_or_else(usage)?;
        let kind = match kind {
            "ws_disconnect" => Kind::WsDisconnect,
            "ws_silent" => Kind::WsSilent,
            "ws_stall" => Kind::WsStall,
            "rest_429" => Kind::Rest429,
            "rest_5xx" => Kind::Rest5xx,
            "cpu_pressure" => Kind::CpuPressure,
            other => return Err(format!("{s:?}: unknown fault kind {other:?} (known: {KINDS})")),
        };
        let at: Time = at.parse().map_err(|_| format!("{s:?}: {at:?} is not a time of day (HH:MM:SS)"))?;
        let duration = dur.parse::<model::settings::Interval>().map_err(|e| format!("{s:?}: {e}"))?.get();
        Ok(Fault { kind, at, duration })
    }
}

/// What the faults act on: the fake servers running in this process and the probe.
pub struct Targets {
    pub fakes: Vec<Arc<dyn FaultSwitches>>,
    pub pressure: Arc<Pressure>,
}

/// Checks every fault starts after `start` on its day; returns their market times.
pub fn schedule(faults: &[Fault], start: UtcTime) -> anyhow::Result<Vec<(Fault, UtcTime, UtcTime)>> {
    let day: Date = start.kst().date();
    faults
        .iter()
        .map(|f| {
            let on = UtcTime::from_kst(DateTime::from_parts(day, f.at));
            if on < start {
                anyhow::bail!("--fault at {} is before the run's start ({} KST)", f.at, start.kst());
            }
            Ok((f.clone(), on, on.plus(f.duration)))
        })
        .collect()
}

/// Runs one fault: on at its time, off after its duration.
pub async fn run(fault: Fault, on: UtcTime, off: UtcTime, clock: Clock, targets: Arc<Targets>) {
    clock.sleep_until(on).await;
    tracing::warn!(kind = ?fault.kind, until = %off, "fault script: on");
    switch(fault.kind, Some(off), &targets);
    clock.sleep_until(off).await;
    switch(fault.kind, None, &targets);
    tracing::warn!(kind = ?fault.kind, "fault script: off");
}

/// Turns a fault on until `until`, or off (`None`). A disconnect and CPU pressure are told
/// their end when they start and end by themselves.
fn switch(kind: Kind, until: Option<UtcTime>, targets: &Targets) {
    let on = until.is_some();
    for fake in &targets.fakes {
        match (kind, until) {
            (Kind::WsDisconnect, Some(off)) => fake.disconnect_until(off),
            (Kind::WsDisconnect | Kind::CpuPressure, _) => {}
            (Kind::WsSilent, _) => fake.silence(on),
            (Kind::WsStall, _) => fake.stall(on),
            (Kind::Rest429 | Kind::Rest5xx, _) => {
                let status = match (on, kind) {
                    (false, _) => 0,
                    (true, Kind::Rest429) => 429,
                    (true, _) => 503,
                };
                fake.fail_rest(status, if on { u32::MAX } else { 0 });
            }
        }
    }
    if let (Kind::CpuPressure, Some(off)) = (kind, until) {
        targets.pressure.force_cpu(100.0, off);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_what_is_wrong() {
        let f: Fault = "ws_disconnect@10:15:00+45s".parse().unwrap();
        assert_eq!(
            f,
            Fault { kind: Kind::WsDisconnect, at: jiff::civil::time(10, 15, 0, 0), duration: Duration::from_secs(45) }
        );
        assert_eq!("cpu_pressure@11:00:00+20m".parse::<Fault>().unwrap().duration, Duration::from_secs(1200));
        assert!("ws_flap@10:00:00+1s".parse::<Fault>().unwrap_err().contains("unknown fault kind \"ws_flap\""));
        assert!("ws_silent@25:00:00+1s".parse::<Fault>().unwrap_err().contains("not a time of day"));
        assert!("ws_silent@10:00:00+-5s".parse::<Fault>().unwrap_err().contains("positive"));
        assert!("ws_silent".parse::<Fault>().unwrap_err().contains("expected KIND@HH:MM:SS+DURATION"));
    }
}
