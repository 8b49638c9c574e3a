//! Loads `configs/observer.yaml`, overlays `configs/$APP_ENV.yaml` and then
//! `STOCK_OBSERVER__SECTION__KEY` environment variables, and validates the result.
//!
//! Each component owns its section's type (Vector's split of config from running task); this
//! crate only layers the sources and reports problems as one message naming the source (file
//! or env var), the key and the value.

#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Yaml};
use serde::{Deserialize, Serialize};

use model::settings::{Checker, Interval, Problem, Validate};

/// The defaults compiled into the binary, so `collect` works from any directory.
pub const EMBEDDED_BASE: &str = include_str!("../../../configs/observer.yaml");
/// The `APP_ENV` overlays compiled in (seed 003 §11 names local, staging and prod; seed 000
/// development and production), by name.
pub const EMBEDDED_OVERLAYS: &[(&str, &str)] = &[
    ("local", include_str!("../../../configs/local.yaml")),
    ("development", include_str!("../../../configs/development.yaml")),
    ("staging", include_str!("../../../configs/staging.yaml")),
    ("production", include_str!("../../../configs/production.yaml")),
];

pub const ENV_PREFIX: &str = "STOCK_OBSERVER__";
pub const APP_ENVS: &[&str] = &["local", "development", "staging", "production"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    /// Wall-clock period of `collect`'s status line.
    pub interval: Interval,
}

/// Where market data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `sim` when no broker credentials are in the environment, else `live`.
    Auto,
    /// Every enabled provider's adapter talks to its fake server on loopback, driven by the
    /// seeded simulated market on the (optionally accelerated) simulated clock.
    Sim,
    /// Adapters talk to the providers' configured endpoints on the real clock.
    Live,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub source: Source,
    /// One section per provider in the registry (`providers::registry`).
    pub providers: providers::registry::ProvidersConfig,
    pub calendar: engine::config::CalendarConfig,
    pub universe: engine::config::UniverseConfig,
    pub observer: engine::config::ObserverConfig,
    pub tracks: engine::config::TracksConfig,
    pub pipeline: engine::config::PipelineConfig,
    pub archive: archive::ArchiveConfig,
    pub reconnect: engine::reconnect::ReconnectConfig,
    pub mitigation: engine::mitigation::MitigationConfig,
    pub watchdog: engine::watchdog::WatchdogConfig,
    pub anomaly: engine::anomaly::AnomalyConfig,
    pub triggers: engine::triggers::TriggerConfig,
    pub slots: engine::slots::SlotConfig,
    pub sim: providers::sim::SimConfig,
    /// The 24-hour crypto market behind the fake Upbit server.
    pub sim_crypto: providers::sim::crypto::CryptoSimConfig,
    pub store: store::StoreConfig,
    pub http: api::HttpConfig,
    pub api: api::v1::ApiLimits,
    pub status: StatusConfig,
    pub backup: lifecycle::BackupConfig,
    pub compression: lifecycle::CompressionConfig,
    pub retention: lifecycle::RetentionConfig,
    pub alerts: alerts::AlertsConfig,
}

impl Validate for Settings {
    fn validate(&self, c: &mut Checker) {
        c.section("calendar", |c| self.calendar.validate(c));
        c.section("universe", |c| self.universe.validate(c));
        c.section("observer", |c| self.observer.validate(c));
        c.section("tracks", |c| self.tracks.validate(c));
        c.section("pipeline", |c| self.pipeline.validate(c));
        c.section("archive", |c| self.archive.validate(c));
        c.section("reconnect", |c| self.reconnect.validate(c));
        c.section("mitigation", |c| self.mitigation.validate(c));
        c.section("watchdog", |c| self.watchdog.validate(c));
        c.section("anomaly", |c| self.anomaly.validate(c));
        c.section("triggers", |c| {
            self.triggers.validate(c);
            // Track A snapshots feed the surge and volatility signals: one cycle's signal must
            // still count when the next cycle's arrives.
            c.check(
                self.triggers.max_signal_age >= self.tracks.swing.interval,
                "max_signal_age",
                format_args!(
                    "{} must be at least tracks.swing.interval ({})",
                    self.triggers.max_signal_age, self.tracks.swing.interval
                ),
            );
        });
        c.section("slots", |c| self.slot_config().validate(c));
        c.section("providers", |c| self.providers.validate(c));
        c.section("sim", |c| self.sim.validate(c));
        c.section("sim_crypto", |c| self.sim_crypto.validate(c));
        c.section("store", |c| self.store.validate(c));
        c.section("http", |c| self.http.validate(c));
        c.section("api", |c| self.api.validate(c));
        c.section("backup", |c| self.backup.validate(c));
        c.section("compression", |c| self.compression.validate(c));
        c.section("retention", |c| self.retention.validate(c));
        c.section("alerts", |c| self.alerts.validate(c));
    }
}

impl Settings {
    pub fn engine(&self) -> engine::EngineConfig {
        engine::EngineConfig {
            calendar: self.calendar.clone(),
            observer: self.observer.clone(),
            universe: self.universe.clone(),
            tracks: self.tracks.clone(),
            pipeline: self.pipeline.clone(),
            archive: self.archive.clone(),
            reconnect: self.reconnect.clone(),
            mitigation: self.mitigation.clone(),
            watchdog: self.watchdog.clone(),
            anomaly: self.anomaly.clone(),
            triggers: self.triggers.clone(),
            slots: self.slot_config(),
        }
    }

    /// The slot manager's section with the slot count of `tracks.scalp`.
    fn slot_config(&self) -> engine::slots::SlotConfig {
        engine::slots::SlotConfig { slots: self.tracks.scalp.slots, ..self.slots.clone() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} not found")]
    Missing(PathBuf),
    #[error("APP_ENV={0:?} is not a known environment (expected one of: local, development, staging, production)")]
    AppEnv(String),
    /// Figment's messages already name the key, the value and the file or env var.
    #[error("invalid configuration: {0}")]
    Parse(String),
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Located>),
}

/// A validation problem with the source its value came from.
#[derive(Debug, Clone)]
pub struct Located {
    pub source: String,
    pub problem: Problem,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.problem)
    }
}

#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    /// The sources in the order they were layered, for `config` and logs.
    pub sources: Vec<String>,
}

/// Loads the configuration. `file` is `--config` (else the embedded defaults); `app_env` is
/// `APP_ENV`. Environment overrides are read from the process environment.
pub fn load(file: Option<&Path>, app_env: Option<&str>) -> Result<Loaded, ConfigError> {
    let mut sources = Vec::new();
    let mut fig = Figment::new();
    match file {
        Some(path) => {
            if !path.is_file() {
                return Err(ConfigError::Missing(path.to_path_buf()));
            }
            fig = fig.merge(Yaml::file_exact(path));
            sources.push(path.display().to_string());
        }
        None => {
            fig = fig.merge(Yaml::string(EMBEDDED_BASE));
            sources.push("embedded configs/observer.yaml".to_string());
        }
    }
    if let Some(env) = app_env.filter(|e| !e.is_empty()) {
        let Some(&(_, embedded)) = EMBEDDED_OVERLAYS.iter().find(|(name, _)| *name == env) else {
            return Err(ConfigError::AppEnv(env.to_string()));
        };
        match file {
            Some(path) => {
                let overlay = path.parent().unwrap_or(Path::new(".")).join(format!("{env}.yaml"));
                if !overlay.is_file() {
                    return Err(ConfigError::Missing(overlay));
                }
                fig = fig.merge(Yaml::file_exact(&overlay));
                sources.push(overlay.display().to_string());
            }
            None => {
                fig = fig.merge(Yaml::string(embedded));
                sources.push(format!("embedded configs/{env}.yaml"));
            }
        }
    }
    // The store's password shares the prefix but is a secret read by the store itself.
    let secret = store::PASSWORD_ENV.strip_prefix(ENV_PREFIX).unwrap_or(store::PASSWORD_ENV);
    fig = fig.merge(Env::prefixed(ENV_PREFIX).ignore(&[secret]).split("__"));
    sources.push(format!("environment {ENV_PREFIX}*"));

    let settings: Settings = fig.extract().map_err(|e| ConfigError::Parse(describe(e)))?;
    let mut checker = Checker::default();
    settings.validate(&mut checker);
    if !checker.problems.is_empty() {
        let located = checker
            .problems
            .into_iter()
            .map(|problem| {
                let source = source_name(fig.find_metadata(&problem.key), &problem.key);
                Located { source, problem }
            })
            .collect();
        return Err(ConfigError::Invalid(located));
    }
    Ok(Loaded { settings, sources })
}

/// The file a value came from, or the exact environment variable that set it.
fn source_name(meta: Option<&figment::Metadata>, key: &str) -> String {
    match meta {
        Some(m) if m.name.contains("environment") => {
            format!("environment variable {ENV_PREFIX}{}", key.replace('.', "__").to_uppercase())
        }
        Some(m) => m.source.as_ref().map_or_else(|| m.name.to_string(), |s| s.to_string()),
        None => "configuration".to_string(),
    }
}

/// One line per error: `SOURCE: KEY: what (value)`.
fn describe(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let key = if e.path.is_empty() { "(top level)".to_string() } else { e.path.join(".") };
            let source = source_name(e.metadata.as_ref(), &key);
            format!("{source}: {key}: {}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours.
mod tests {
    use super::*;
    use figment::Jail;

    fn err_of(jail: &mut Jail, yaml_edit: impl Fn(&str) -> String) -> String {
        jail.create_file("observer.yaml", &yaml_edit(EMBEDDED_BASE)).unwrap();
        match load(Some(Path::new("observer.yaml")), None) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn embedded_defaults_are_valid() {
        Jail::expect_with(|_| {
            let l = load(None, None).expect("embedded defaults must load");
            assert_eq!(l.settings.tracks.scalp.slots, 41);
            assert_eq!(l.settings.tracks.swing.interval.as_millis(), 600_000);
            for env in APP_ENVS {
                load(None, Some(env)).expect("embedded overlays must load");
            }
            Ok(())
        });
    }

    /// The `providers` section is generated from the registry: every section is a
    /// registered provider with a mapper for its own frames (replay and the ETL read any
    /// archive it writes), and a provider the registry does not know is refused by name.
    #[test]
    fn every_provider_section_is_a_registered_provider_with_a_mapper() {
        Jail::expect_with(|jail| {
            let settings = load(None, None).unwrap().settings;
            let sections = settings.providers.sections();
            let ids: Vec<model::Provider> = sections.iter().map(|s| s.id()).collect();
            assert_eq!(ids, [model::Provider::Kis, model::Provider::Upbit]);
            for s in &sections {
                assert_eq!(s.key(), s.id().as_str());
                let mapper = providers::mapper(s.id()).expect("a registered provider has a mapper");
                assert!(mapper.version.starts_with(s.id().as_str()), "{}", mapper.version);
            }
            assert!(providers::mapper(model::Provider::Kiwoom).is_none());
            let e = err_of(jail, |y| y.replacen("providers:\n", "providers:\n  kiwoom:\n    enabled: true\n", 1));
            assert!(e.contains("kiwoom"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn each_kind_of_bad_value_names_file_key_and_value() {
        Jail::expect_with(|jail| {
            let negative = err_of(jail, |y| y.replace("interval: 10m", "interval: -10m"));
            assert!(
                negative.contains("observer.yaml")
                    && negative.contains("tracks.swing.interval")
                    && negative.contains("-10m"),
                "{negative}"
            );
            assert!(negative.contains("positive"), "{negative}");

            let unparsable = err_of(jail, |y| y.replace("interval: 10m", "interval: ten minutes"));
            assert!(unparsable.contains("tracks.swing.interval") && unparsable.contains("ten minutes"), "{unparsable}");

            let unknown = err_of(jail, |y| y.replace("  slots: 41", "  slots: 41\n    slotz: 3"));
            assert!(unknown.contains("slotz") && unknown.contains("tracks.scalp"), "{unknown}");

            let range = err_of(jail, |y| y.replace("  slots: 41", "  slots: 0"));
            assert!(
                range.contains("observer.yaml")
                    && range.contains("tracks.scalp.slots")
                    && range.contains("0 is outside"),
                "{range}"
            );

            let wrong_type = err_of(jail, |y| y.replace("  slots: 41", "  slots: many"));
            assert!(wrong_type.contains("tracks.scalp.slots") && wrong_type.contains("many"), "{wrong_type}");
            Ok(())
        });
    }

    #[test]
    fn missing_file_and_bad_app_env_are_named() {
        Jail::expect_with(|_| {
            let e = load(Some(Path::new("nope/observer.yaml")), None).unwrap_err().to_string();
            assert!(e.contains("nope/observer.yaml") && e.contains("not found"), "{e}");
            let e = load(None, Some("prod")).unwrap_err().to_string();
            assert!(e.contains("\"prod\"") && e.contains("local, development, staging, production"), "{e}");
            assert!(APP_ENVS.iter().eq(EMBEDDED_OVERLAYS.iter().map(|(n, _)| n)));
            Ok(())
        });
    }

    #[test]
    fn env_overrides_win_and_are_named_when_bad() {
        Jail::expect_with(|jail| {
            jail.set_env("STOCK_OBSERVER__TRACKS__SCALP__SLOTS", "7");
            assert_eq!(load(None, None).unwrap().settings.tracks.scalp.slots, 7);
            jail.set_env("STOCK_OBSERVER__TRACKS__SCALP__SLOTS", "0");
            let e = load(None, None).unwrap_err().to_string();
            assert!(e.contains("STOCK_OBSERVER__TRACKS__SCALP__SLOTS") || e.contains("environment"), "{e}");
            assert!(e.contains("tracks.scalp.slots"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn the_store_password_is_a_secret_not_a_setting() {
        Jail::expect_with(|jail| {
            jail.set_env(store::PASSWORD_ENV, "hunter2-secret");
            let loaded = load(None, None).expect("the password variable is not an unknown setting");
            let shown = format!("{:?}", loaded.settings);
            assert!(!shown.contains("hunter2-secret"), "{shown}");
            Ok(())
        });
    }

    #[test]
    fn overlay_applies_over_base() {
        Jail::expect_with(|jail| {
            jail.create_file("observer.yaml", EMBEDDED_BASE)?;
            jail.create_file("production.yaml", "status:\n  interval: 7s\n")?;
            let l = load(Some(Path::new("observer.yaml")), Some("production")).unwrap();
            assert_eq!(l.settings.status.interval.as_millis(), 7000);
            let e = load(Some(Path::new("observer.yaml")), Some("development")).unwrap_err().to_string();
            assert!(e.contains("development.yaml"), "{e}");
            Ok(())
        });
    }
}
