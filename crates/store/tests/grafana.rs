//! The provisioned Grafana dashboard (deploy/grafana) against the real PostgreSQL schema:
//! every SQL it holds, panels and template variables alike, is expanded the way Grafana's
//! PostgreSQL data source expands it and run on PostgreSQL 15 over a migrated database with a
//! fixture day loaded by the ETL. A query naming a column the migrations do not create fails
//! here instead of as a red panel on the first deployment, and a query that runs but finds
//! nothing on a day full of data fails too.
//!
//! A panel that shows what an `/api/v1` route serves must show the same thing: it is run next
//! to the store query behind that route (the `so_store::Backend` method the route calls) over
//! the same range, symbol and provider, and the values both show must be equal, row for row
//! and in the same order. The panels with no route are listed in [`NO_API_COUNTERPART`].
//!
//! One PostgreSQL server for the whole binary: everything that needs it runs in the one
//! `#[tokio::test]` below, over one loaded database.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use model::{Meta, Provider, Record, SessionId, Symbol, SystemEvent, UtcTime};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::Value;
use so_store::testing::fixture::{DaySpec, write_day};
use so_store::{
    Backend, BarInterval, BarQuery, EtlOptions, MarketTickRow, SampleQuery, ScalpTickRow, Store, TickKey, TickQuery,
    run_etl,
};
use tokio_postgres::SimpleQueryMessage;

const DATE: &str = "20260114";
const DASHBOARD: &str = include_str!("../../../deploy/grafana/dashboards/stock-observer.json");
const DATASOURCE: &str = include_str!("../../../deploy/grafana/provisioning/datasources/observer.yml");
const PROVIDER: &str = include_str!("../../../deploy/grafana/provisioning/dashboards/observer.yml");
const UID: &str = "observer-pg";

const BARS: &str = "Bars ${bar_table:text}: $symbol ($provider)";
const TICKS: &str = "Ticks per minute by provider";
const LATEST: &str = "Latest price per symbol";
const SAMPLES: &str = "Track B samples: $symbol ($provider)";
const GAPS: &str = "Gaps";
const EVENTS_BY_TYPE: &str = "System events by type";
const OVERFLOW: &str = "Overflow: symbols refused a slot per minute";
const EVENTS: &str = "System events";
const SLOTS: &str = "Slot decisions";

/// Panels whose emptiness on a recorded day would mean the dashboard reads the wrong thing;
/// named so that renaming or dropping one fails here instead of silently losing the check.
const MAIN_PANELS: &[&str] = &[BARS, TICKS, LATEST, SAMPLES];

/// Every panel that shows what an `/api/v1` route serves, with that route. Each is checked
/// below against the store query behind the route, and its description must name the route,
/// so whoever reads the dashboard knows what it mirrors (deploy/grafana/README.md lists them).
const MIRRORED: &[(&str, &str)] = &[
    (BARS, "/api/v1/bars/{symbol}"),     // Backend::bars, each interval
    (TICKS, "/api/v1/ticks/{symbol}"),   // Backend::ticks, every page of every symbol, counted
    (LATEST, "/api/v1/latest/{symbol}"), // Backend::latest_price, each symbol and provider
    (SAMPLES, "/api/v1/scalp/{symbol}"), // Backend::samples, every page
    (GAPS, "/api/v1/gaps"),              // Backend::gaps
    (EVENTS_BY_TYPE, "/api/v1/events"),  // Backend::events, counted
    (OVERFLOW, "/api/v1/overflow"),      // Backend::overflow, counted
    (EVENTS, "/api/v1/events"),          // Backend::events
    (SLOTS, "/api/v1/events"),           // Backend::events of type slot_decision
];

/// Panels no `/api/v1` route serves, left as they are (they still have to run and have rows).
/// Nor does any panel show storage sizes (`/api/v1/db`'s `storage`, `Backend::storage`): the
/// store reads them from a different catalogue in each mode (daily partitions natively,
/// TimescaleDB's chunk functions otherwise) and a panel has one SQL for both, so there is
/// nothing to compare and `storage` is not called here.
const NO_API_COUNTERPART: &[&str] = &[
    // The newest etl_reconcile events of any day, whatever the time range: /api/v1/events
    // serves one day at a time, and no route lists reconcile runs across days.
    "ETL reconcile runs",
    // The per-table counts inside the newest reconcile event's body: no route unpacks them.
    "ETL reconcile per table (newest run)",
];

/// Page size for walking the API's paged store queries (`ticks`, `samples`) to the end.
const PAGE: u32 = 100;

/// One SQL text of the dashboard and where it came from.
#[derive(Clone)]
struct Query {
    /// `panel "<title>"` or `variable "<name>"`, for failure messages.
    origin: String,
    title: String,
    description: String,
    sql: String,
    format: String,
}

/// A template variable's options, as Grafana holds them after running its query.
#[derive(Clone)]
struct Var {
    values: Vec<String>,
    /// Multi-value and include-All variables are interpolated quoted and comma-joined by
    /// Grafana's SQL data sources; single-value ones go in raw, so the SQL quotes them.
    quoted: bool,
}

/// Where a variable's options come from.
enum Options {
    /// A query variable's SQL.
    Sql(Query),
    /// A custom variable's `text : value` pairs.
    Custom(Vec<(String, String)>),
}

struct Variable {
    name: String,
    options: Options,
    quoted: bool,
}

fn dashboard() -> Value {
    serde_json::from_str(DASHBOARD).expect("stock-observer.json is JSON")
}

fn uid_of(v: &Value) -> Option<&str> {
    v.get("datasource")?.get("uid")?.as_str()
}

/// Every panel's queries, descending into rows: a collapsed row keeps its panels inside
/// itself, an expanded one leaves them at the top level after it.
fn panel_queries(panels: &[Value], out: &mut Vec<Query>) {
    for p in panels {
        let title = p["title"].as_str().unwrap_or("<untitled>").to_string();
        if p["type"] == "row" {
            panel_queries(p["panels"].as_array().map(Vec::as_slice).unwrap_or(&[]), out);
            continue;
        }
        assert_eq!(uid_of(p), Some(UID), "panel {title:?}: datasource uid");
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("panel {title:?} has no targets"));
        assert!(!targets.is_empty(), "panel {title:?} has no targets");
        for t in targets {
            assert_eq!(uid_of(t), Some(UID), "panel {title:?} target {}: datasource uid", t["refId"]);
            // In builder mode Grafana regenerates the SQL from its visual query, not rawSql.
            assert_eq!(t["editorMode"], "code", "panel {title:?}: target not in code mode");
            let sql = t["rawSql"].as_str().unwrap_or_else(|| panic!("panel {title:?}: target without rawSql"));
            out.push(Query {
                origin: format!("panel {title:?}"),
                title: title.clone(),
                description: p["description"].as_str().unwrap_or_default().to_string(),
                sql: sql.to_string(),
                format: t["format"].as_str().unwrap_or("time_series").to_string(),
            });
        }
    }
}

/// Every panel id, rows and the panels inside collapsed rows included.
fn panel_ids(panels: &[Value], out: &mut Vec<u64>) {
    for p in panels {
        out.push(p["id"].as_u64().unwrap_or_else(|| panic!("panel {} has no numeric id", p["title"])));
        panel_ids(p["panels"].as_array().map(Vec::as_slice).unwrap_or(&[]), out);
    }
}

/// A custom variable's options as Grafana parses its query: comma-separated, each either a
/// value or `text : value`.
fn custom_options(query: &str) -> Vec<(String, String)> {
    query
        .split(',')
        .map(|o| match o.split_once(" : ") {
            Some((t, v)) => (t.trim().to_string(), v.trim().to_string()),
            None => (o.trim().to_string(), o.trim().to_string()),
        })
        .collect()
}

/// The variables, in dashboard order (Grafana resolves them in that order too, and `symbol`
/// depends on `provider`).
fn variables(d: &Value) -> Vec<Variable> {
    let list = d["templating"]["list"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for v in list {
        let name = v["name"].as_str().expect("variable name").to_string();
        let quoted = v["multi"] == true || v["includeAll"] == true;
        let options = match v["type"].as_str() {
            Some("query") => {
                assert_eq!(uid_of(&v), Some(UID), "variable {name:?}: datasource uid");
                // Older dashboards hold the SQL as a string, newer editors as an object with rawSql.
                let sql = match &v["query"] {
                    Value::String(s) => s.clone(),
                    q => q["rawSql"].as_str().unwrap_or_else(|| panic!("variable {name:?}: no SQL")).to_string(),
                };
                Options::Sql(Query {
                    origin: format!("variable {name:?}"),
                    title: name.clone(),
                    description: String::new(),
                    sql,
                    format: "table".into(),
                })
            }
            Some("custom") => {
                let opts = custom_options(v["query"].as_str().unwrap_or_else(|| panic!("variable {name:?}: no query")));
                // The stored options are what Grafana shows before it re-parses the query.
                let stored: Vec<(String, String)> = v["options"]
                    .as_array()
                    .unwrap_or_else(|| panic!("variable {name:?}: no options"))
                    .iter()
                    .map(|o| (o["text"].as_str().unwrap().to_string(), o["value"].as_str().unwrap().to_string()))
                    .collect();
                assert_eq!(stored, opts, "variable {name:?}: options differ from its query");
                assert_eq!(v["current"]["value"].as_str(), Some(opts[0].1.as_str()), "variable {name:?}: current");
                Options::Custom(opts)
            }
            other => panic!("variable {name:?}: type {other:?}; only query and custom variables are expected"),
        };
        out.push(Variable { name, options, quoted });
    }
    out
}

/// The time range the dashboard shows for the fixture day: Grafana's "today" in Asia/Seoul
/// (`now/d` to `now/d`: midnight to 23:59:59.999). The API is asked for the same instants.
struct Range {
    from: UtcTime,
    to: UtcTime,
    /// As Grafana's Go code formats them for the macros (RFC 3339 in UTC, fraction only
    /// when non-zero).
    text: (String, String),
}

fn fixture_range() -> Range {
    let (lo, hi) = common::day_bounds(DATE);
    let to = hi.plus_millis(-1);
    let fmt = |t: UtcTime| jiff::Timestamp::from_millisecond(t.as_millis()).unwrap().to_string();
    Range { from: lo, to, text: (fmt(lo), fmt(to)) }
}

/// Seconds in a Grafana interval literal such as `'1m'`, `10m`, `1h`.
fn interval_seconds(arg: &str) -> Result<u64, String> {
    let s = arg.trim().trim_matches('\'');
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| format!("interval {arg} has no unit"))?;
    let n: u64 = s[..split].parse().map_err(|_| format!("interval {arg}"))?;
    let unit = match &s[split..] {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        u => return Err(format!("interval {arg}: unit {u} not handled here")),
    };
    Ok(n * unit)
}

/// Template variables, as Grafana's frontend interpolates them before the query is sent:
/// `${name}`, `$name` and `[[name]]`; `$__interval` gets the value a one-day range on a
/// typical panel width gives.
fn interpolate(sql: &str, vars: &BTreeMap<String, Var>) -> Result<String, String> {
    let mut out = sql.replace("$__interval_ms", "60000").replace("$__interval", "1m");
    // Longest names first, so `$symbol` never eats the start of a `$symbols`.
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        let v = &vars[name];
        let first = v.values.first().ok_or_else(|| format!("variable {name:?} has no options"))?;
        let text = if v.quoted {
            v.values.iter().map(|s| format!("'{}'", s.replace('\'', "''"))).collect::<Vec<_>>().join(",")
        } else {
            first.clone()
        };
        out = out.replace(&format!("${{{name}}}"), &text).replace(&format!("[[{name}]]"), &text);
        out = out.replace(&format!("${name}"), &text);
    }
    Ok(out)
}

/// The backend's macros, as Grafana's PostgreSQL data source expands them with
/// `timescaledb: false` (the provisioned setting): a macro's arguments run to the first `)`,
/// split on commas, as Grafana's own pattern has it.
fn expand_macros(sql: &str, (from, to): &(String, String)) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(at) = rest.find("$__") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 3..];
        let name_len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        let name = &after[..name_len];
        let tail = &after[name_len..];
        let Some(args_and_rest) = tail.strip_prefix('(') else {
            return Err(format!("$__{name} is not a macro call"));
        };
        let close = args_and_rest.find(')').ok_or_else(|| format!("$__{name}( is not closed"))?;
        let args: Vec<&str> = args_and_rest[..close].split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
        let arg = |i: usize| args.get(i).copied().ok_or_else(|| format!("$__{name} needs argument {}", i + 1));
        let group = || -> Result<String, String> {
            let secs = interval_seconds(arg(1)?)?;
            Ok(format!("floor(extract(epoch from {})/{secs})*{secs}", arg(0)?))
        };
        let text = match name {
            "timeFilter" => format!("{} BETWEEN '{from}' AND '{to}'", arg(0)?),
            "timeFrom" => format!("'{from}'"),
            "timeTo" => format!("'{to}'"),
            "timeGroup" => group()?,
            "timeGroupAlias" => format!("{} AS \"time\"", group()?),
            "time" => format!("{} AS \"time\"", arg(0)?),
            "timeEpoch" => format!("extract(epoch from {}) AS \"time\"", arg(0)?),
            other => return Err(format!("macro $__{other} is not one this test expands")),
        };
        out.push_str(&text);
        rest = &args_and_rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Grafana sends the text as it is, so anything `$`-like left over would reach PostgreSQL
/// as a syntax error or, worse, as a bound-parameter reference.
fn expand(q: &Query, vars: &BTreeMap<String, Var>, range: &(String, String)) -> String {
    let sql = interpolate(&q.sql, vars)
        .and_then(|s| expand_macros(&s, range))
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", q.origin, q.sql));
    let leftover = sql.char_indices().find(|&(i, c)| {
        let next = sql[i + c.len_utf8()..].chars().next();
        (c == '$' && next.is_some_and(|n| n.is_ascii_alphabetic() || n == '_' || n == '{'))
            || sql[i..].starts_with("[[")
    });
    if let Some((i, _)) = leftover {
        panic!("{}: unexpanded variable or macro at {:?}\n{sql}", q.origin, &sql[i..(i + 20).min(sql.len())]);
    }
    sql
}

/// A query's answer as Grafana's driver gets it: column names and each row's cells as text.
struct Rows {
    origin: String,
    sql: String,
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
}

impl Rows {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn col(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("{}: no column {name:?} in {:?}", self.origin, self.columns))
    }

    fn opt(&self, row: usize, name: &str) -> Option<&str> {
        self.rows[row][self.col(name)].as_deref()
    }

    fn text(&self, row: usize, name: &str) -> &str {
        self.opt(row, name).unwrap_or_else(|| panic!("{}: row {row}: {name} is NULL", self.origin))
    }

    fn time(&self, row: usize, name: &str) -> UtcTime {
        pg_time(self.text(row, name))
    }

    fn decimal(&self, row: usize, name: &str) -> Option<Decimal> {
        self.opt(row, name).map(|s| {
            s.parse().unwrap_or_else(|e| panic!("{}: row {row}: {name} = {s:?} is not a decimal: {e}", self.origin))
        })
    }

    fn int(&self, row: usize, name: &str) -> i64 {
        let s = self.text(row, name);
        s.parse().unwrap_or_else(|e| panic!("{}: row {row}: {name} = {s:?}: {e}", self.origin))
    }

    /// A `$__timeGroupAlias` bucket: epoch seconds, a whole numeric.
    fn bucket(&self, row: usize) -> i64 {
        let d = self.decimal(row, "time").unwrap_or_else(|| panic!("{}: row {row}: NULL time", self.origin));
        assert!(d.fract().is_zero(), "{}: row {row}: bucket {d} is not whole seconds", self.origin);
        d.to_i64().unwrap()
    }
}

/// A `timestamptz` as PostgreSQL prints it (`2026-01-14 00:00:00.5+00`, in the session's
/// time zone), to the instant.
fn pg_time(s: &str) -> UtcTime {
    let mut t = s.replacen(' ', "T", 1);
    // The offset is `+HH` or `+HH:MM`; the RFC 3339 parser wants the minutes.
    let sign = t.rfind(['+', '-']).filter(|&i| i > 10).unwrap_or_else(|| panic!("{s:?}: no UTC offset"));
    if t.len() - sign == 3 {
        t.push_str(":00");
    }
    UtcTime::from_timestamp(t.parse().unwrap_or_else(|e| panic!("{s:?} is not a timestamptz: {e}")))
}

/// Runs `sql` the way Grafana's driver does: the simple protocol, as for any query without
/// parameters, every value as text.
async fn run(client: &tokio_postgres::Client, q: &Query, sql: &str) -> Rows {
    let msgs = client.simple_query(sql).await.unwrap_or_else(|e| {
        // The server's message names the column or function; the error's Display does not.
        let why = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string());
        panic!("{} failed on PostgreSQL: {why}\n{sql}", q.origin)
    });
    let mut out = Rows { origin: q.origin.clone(), sql: sql.to_string(), columns: Vec::new(), rows: Vec::new() };
    for m in msgs {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                out.columns = cols.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(r) => {
                if out.columns.is_empty() {
                    out.columns = r.columns().iter().map(|c| c.name().to_string()).collect();
                }
                out.rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
            }
            _ => {}
        }
    }
    out
}

/// A slot decision, which the fixture day does not have, so the slot panel has a row to show.
fn add_slot_decision(root: &Path) {
    let (day_start, _) = common::day_bounds(DATE);
    let t0 = day_start.plus_millis(9 * 3_600_000);
    let at = t0.plus_millis(60_000);
    let sym = |s: &str| Symbol::new(s).unwrap();
    let ev = SystemEvent::SlotDecision {
        slots: vec![sym("005930"), sym("000660")],
        added: vec![sym("000660")],
        removed: vec![sym("035720")],
        candidates: serde_json::json!([{"symbol": "000660", "score": 0.9}]),
    };
    let line =
        serde_json::to_string(&Record { body: ev, meta: Meta::new(at, at, SessionId::starting_at(t0)) }).unwrap();
    let path = root.join(format!("system/events/sim/{DATE}.jsonl"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&line);
    text.push('\n');
    std::fs::write(&path, text).unwrap();
}

/// The loaded database, the dashboard's resolved variables and the store the API would ask.
struct Cx {
    client: tokio_postgres::Client,
    store: Store,
    vars: BTreeMap<String, Var>,
    custom: BTreeMap<String, Vec<(String, String)>>,
    range: Range,
    queries: Vec<Query>,
    /// The fixture's symbols, written independently of the ETL and the dashboard.
    symbols: Vec<String>,
}

impl Cx {
    fn panel(&self, title: &str) -> &Query {
        let mut of = self.queries.iter().filter(|q| q.title == title);
        let q = of.next().unwrap_or_else(|| panic!("no panel {title:?}"));
        assert!(of.next().is_none(), "panel {title:?}: one target expected");
        q
    }

    /// The panel's SQL as Grafana sends it with these variables set, and its rows.
    async fn run_panel(&self, title: &str, set: &[(&str, &str)]) -> Rows {
        let mut vars = self.vars.clone();
        for (name, value) in set {
            let v = vars.get_mut(*name).unwrap_or_else(|| panic!("no variable {name:?}"));
            v.values = vec![value.to_string()];
        }
        let q = self.panel(title);
        let sql = expand(q, &vars, &self.range.text);
        run(&self.client, q, &sql).await
    }

    fn day(&self) -> jiff::civil::Date {
        so_store::parse_day(DATE).unwrap()
    }

    /// Every trade of `symbol` in the range, page after page as `/api/v1/ticks` hands them out.
    async fn all_ticks(&self, symbol: &str, provider: Option<Provider>) -> Vec<MarketTickRow> {
        let mut out: Vec<MarketTickRow> = Vec::new();
        loop {
            let after =
                out.last().map(|t| TickKey { time: t.time, provider: t.provider, trade_id: t.trade_id.clone() });
            let q = TickQuery {
                symbol: Symbol::new(symbol).unwrap(),
                provider,
                from: self.range.from,
                to: self.range.to,
                limit: PAGE,
                after,
            };
            let page = self.store.ticks(q).await.unwrap();
            let n = page.len();
            out.extend(page);
            if n < PAGE as usize {
                return out;
            }
        }
    }

    /// Every Track B sample of `symbol` in the range, page after page as `/api/v1/scalp` does.
    async fn all_samples(&self, symbol: &str, provider: Option<Provider>) -> Vec<ScalpTickRow> {
        let mut out: Vec<ScalpTickRow> = Vec::new();
        loop {
            let q = SampleQuery {
                symbol: Symbol::new(symbol).unwrap(),
                provider,
                from: self.range.from,
                to: self.range.to,
                limit: PAGE,
                after: out.last().map(|s| (s.event_time, s.provider)),
            };
            let page = self.store.samples(q).await.unwrap();
            let n = page.len();
            out.extend(page);
            if n < PAGE as usize {
                return out;
            }
        }
    }
}

/// Epoch seconds of the start of the `secs`-long bucket holding `t`, as `$__timeGroup` has it.
fn bucket_of(t: UtcTime, secs: i64) -> i64 {
    t.as_millis().div_euclid(secs * 1000) * secs
}

/// A `$__timeGroupAlias` panel's rows: (bucket, metric) → value column.
fn series(rows: &Rows, value: &str) -> BTreeMap<(i64, String), i64> {
    let mut out = BTreeMap::new();
    for i in 0..rows.len() {
        let key = (rows.bucket(i), rows.text(i, "metric").to_string());
        assert!(out.insert(key.clone(), rows.int(i, value)).is_none(), "{}: {key:?} twice", rows.origin);
    }
    let keys: Vec<_> = out.keys().cloned().collect();
    let in_order: Vec<_> = (0..rows.len()).map(|i| (rows.bucket(i), rows.text(i, "metric").to_string())).collect();
    assert_eq!(in_order, keys, "{}: rows not ordered by time, then metric", rows.origin);
    out
}

/// `/api/v1/bars/{symbol}?interval&provider&from&to`: for each bar size the dashboard offers
/// and each symbol, the panel's bars are the store's, time and OHLCV exactly.
async fn bars_equal_the_api(cx: &Cx) {
    let sizes = &cx.custom["bar_table"];
    let offered: Vec<&str> = sizes.iter().map(|(text, _)| text.as_str()).collect();
    assert_eq!(offered, BarInterval::ALL.map(BarInterval::as_str), "the bar sizes /api/v1/bars takes");
    for (text, table) in sizes {
        let interval = BarInterval::ALL.into_iter().find(|i| i.as_str() == text).unwrap();
        for sym in &cx.symbols {
            let rows = cx.run_panel(BARS, &[("bar_table", table), ("symbol", sym), ("provider", "sim")]).await;
            let api = cx
                .store
                .bars(BarQuery {
                    symbol: Symbol::new(sym).unwrap(),
                    provider: Some(Provider::Sim),
                    interval,
                    from: cx.range.from,
                    to: cx.range.to,
                })
                .await
                .unwrap();
            assert!(!api.is_empty(), "{sym} {text}: the store has no bars to compare");
            let want: Vec<_> = api
                .iter()
                .map(|b| (b.bar_time, Some(b.open.0), Some(b.high.0), Some(b.low.0), Some(b.close.0), Some(b.volume.0)))
                .collect();
            let got: Vec<_> = (0..rows.len())
                .map(|i| {
                    let d = |c| rows.decimal(i, c);
                    (rows.time(i, "time"), d("open"), d("high"), d("low"), d("close"), d("volume"))
                })
                .collect();
            assert_eq!(got, want, "{BARS} with {text} {sym} differs from the bars route\n{}", rows.sql);
        }
    }
}

/// `/api/v1/latest/{symbol}?provider`: each (symbol, provider) row of the panel is the
/// store's latest trade of it, and every fixture symbol has its row.
async fn latest_equals_the_api(cx: &Cx) {
    let rows = cx.run_panel(LATEST, &[]).await;
    let mut seen = Vec::new();
    for i in 0..rows.len() {
        let (sym, provider) = (rows.text(i, "symbol"), rows.text(i, "provider"));
        let p: Provider = provider.parse().unwrap();
        let api = cx
            .store
            .latest_price(Symbol::new(sym).unwrap(), Some(p))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{LATEST}: {sym} {provider} has a row, the latest route has none"));
        let got = (
            rows.text(i, "market").to_string(),
            rows.time(i, "last_trade"),
            rows.decimal(i, "price"),
            rows.decimal(i, "last_size"),
            rows.text(i, "trade_id").to_string(),
        );
        let want =
            (api.market.as_str().to_string(), api.time, Some(api.price.0), Some(api.volume.0), api.trade_id.clone());
        assert_eq!(got, want, "{LATEST}: {sym} {provider} differs from the latest route");
        seen.push(sym.to_string());
    }
    let mut want = cx.symbols.clone();
    want.sort();
    assert_eq!(seen, want, "{LATEST}: a row per fixture symbol, by symbol");
}

/// `/api/v1/ticks/{symbol}`: the panel counts per minute and provider exactly the trades the
/// ticks route pages out over every symbol.
async fn ticks_equal_the_api(cx: &Cx) {
    let rows = cx.run_panel(TICKS, &[]).await;
    let got = series(&rows, "ticks");
    let mut want: BTreeMap<(i64, String), i64> = BTreeMap::new();
    let mut total = 0;
    for sym in &cx.symbols {
        let ticks = cx.all_ticks(sym, None).await;
        total += ticks.len();
        for t in ticks {
            *want.entry((bucket_of(t.time, 60), t.provider.as_str().to_string())).or_default() += 1;
        }
    }
    assert!(total > PAGE as usize, "the fixture's trades span several pages ({total})");
    assert_eq!(got, want, "{TICKS} differs from the ticks route\n{}", rows.sql);
}

/// `/api/v1/scalp/{symbol}?provider`: for each symbol, the panel's samples are every page
/// of the scalp route, time and prices exactly.
async fn samples_equal_the_api(cx: &Cx) {
    for sym in &cx.symbols {
        let rows = cx.run_panel(SAMPLES, &[("symbol", sym), ("provider", "sim")]).await;
        let api = cx.all_samples(sym, Some(Provider::Sim)).await;
        assert!(api.len() > PAGE as usize, "{sym}: the fixture's samples span several pages ({})", api.len());
        let want: Vec<_> = api
            .iter()
            .map(|s| (s.event_time, s.last_price.map(|p| p.0), s.bid_price.map(|p| p.0), s.ask_price.map(|p| p.0)))
            .collect();
        let got: Vec<_> = (0..rows.len())
            .map(|i| {
                let d = |c| rows.decimal(i, c);
                (rows.time(i, "time"), d("last_price"), d("bid_price"), d("ask_price"))
            })
            .collect();
        assert_eq!(got, want, "{SAMPLES} for {sym} differs from the scalp route\n{}", rows.sql);
    }
}

/// `/api/v1/gaps?date`: the panel's gaps are the day's, in the route's order.
async fn gaps_equal_the_api(cx: &Cx) {
    let rows = cx.run_panel(GAPS, &[]).await;
    let api = cx.store.gaps(cx.day()).await.unwrap();
    let want: Vec<_> = api
        .iter()
        .map(|g| {
            let p = g.provider.as_str().to_string();
            (g.gap_start_ts, g.gap_end_ts, g.gap_seconds, p, g.scope.clone(), g.reason.clone(), g.detail.clone())
        })
        .collect();
    let got: Vec<_> = (0..rows.len())
        .map(|i| {
            (
                rows.time(i, "start"),
                rows.time(i, "end"),
                rows.int(i, "gap_seconds"),
                rows.text(i, "provider").to_string(),
                rows.text(i, "scope").to_string(),
                rows.text(i, "reason").to_string(),
                rows.opt(i, "detail").map(str::to_string),
            )
        })
        .collect();
    assert_eq!(got, want, "{GAPS} differs from the gaps route\n{}", rows.sql);
}

/// `/api/v1/events?date` (and `&type=slot_decision`): the event table, the per-type counts
/// and the slot decisions are the day's events as the route serves them.
async fn events_equal_the_api(cx: &Cx) {
    let api = cx.store.events(cx.day()).await.unwrap();
    // The reconcile event is stamped with the day's last millisecond, which is Grafana's `to`
    // for the day: the route serves it with its day's file, so the panels must too, where a
    // half-open time filter would drop it.
    assert!(api.iter().any(|e| e.event_type == "etl_reconcile" && e.event_time >= cx.range.to));

    let rows = cx.run_panel(EVENTS, &[]).await;
    let want: Vec<_> = api
        .iter()
        .map(|e| (e.event_time, e.provider.as_str().to_string(), e.event_type.clone(), e.body.clone()))
        .collect();
    let got: Vec<_> = (0..rows.len())
        .map(|i| {
            let body: Value = serde_json::from_str(rows.text(i, "body")).unwrap();
            (rows.time(i, "time"), rows.text(i, "provider").to_string(), rows.text(i, "event_type").to_string(), body)
        })
        .collect();
    assert_eq!(got, want, "{EVENTS} differs from the events route\n{}", rows.sql);

    let rows = cx.run_panel(EVENTS_BY_TYPE, &[]).await;
    let mut want: BTreeMap<(i64, String), i64> = BTreeMap::new();
    for e in &api {
        *want.entry((bucket_of(e.event_time, 600), e.event_type.clone())).or_default() += 1;
    }
    assert_eq!(series(&rows, "events"), want, "{EVENTS_BY_TYPE} differs from the events route\n{}", rows.sql);

    let rows = cx.run_panel(SLOTS, &[]).await;
    let joined = |v: &Value| {
        let syms: Vec<&str> = v.as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
        (!syms.is_empty()).then(|| syms.join(" "))
    };
    let want: Vec<_> = api
        .iter()
        .filter(|e| e.event_type == "slot_decision")
        .map(|e| {
            let b = &e.body;
            let n = b["slots"].as_array().unwrap().len() as i64;
            (e.event_time, e.provider.as_str().to_string(), n, joined(&b["added"]), joined(&b["removed"]))
        })
        .collect();
    let got: Vec<_> = (0..rows.len())
        .map(|i| {
            let opt = |c| rows.opt(i, c).map(str::to_string);
            (
                rows.time(i, "time"),
                rows.text(i, "provider").to_string(),
                rows.int(i, "slots"),
                opt("added"),
                opt("removed"),
            )
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want, "{SLOTS} differs from the events route's slot decisions\n{}", rows.sql);
}

/// `/api/v1/overflow?date`: the panel counts per minute and provider the day's overflow
/// entries the route serves.
async fn overflow_equals_the_api(cx: &Cx) {
    let rows = cx.run_panel(OVERFLOW, &[]).await;
    let api = cx.store.overflow(cx.day()).await.unwrap();
    assert!(!api.is_empty());
    let mut want: BTreeMap<(i64, String), i64> = BTreeMap::new();
    for o in &api {
        *want.entry((bucket_of(o.ts, 60), o.provider.as_str().to_string())).or_default() += 1;
    }
    assert_eq!(series(&rows, "refused"), want, "{OVERFLOW} differs from the overflow route\n{}", rows.sql);
}

#[test]
fn provisioning_points_grafana_at_the_dashboard_and_the_datasource_it_uses() {
    let d = dashboard();
    assert_eq!(d["uid"], "stock-observer");
    assert_eq!(d["timezone"], "Asia/Seoul");
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 39), "schemaVersion {}", d["schemaVersion"]);
    assert!(DATASOURCE.contains(&format!("uid: {UID}")), "datasource uid");
    assert!(DATASOURCE.contains("type: grafana-postgresql-datasource"));
    // With it on, Grafana emits time_bucket() for $__timeGroup, which native mode lacks and
    // which is not the expansion tested below.
    assert!(DATASOURCE.contains("timescaledb: false"), "the tested expansion assumes timescaledb: false");
    assert!(PROVIDER.contains("path: /var/lib/grafana/dashboards"));

    let mut ids = Vec::new();
    panel_ids(d["panels"].as_array().expect("panels"), &mut ids);
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "panel ids are not unique: {ids:?}");

    let mut queries = Vec::new();
    panel_queries(d["panels"].as_array().expect("panels"), &mut queries);
    let titles: Vec<&str> = queries.iter().map(|q| q.title.as_str()).collect();
    for main in MAIN_PANELS {
        assert!(titles.contains(main), "main panel {main:?} missing; panels: {titles:?}");
    }
    // The nested (collapsed-row) panels are reached too.
    assert!(titles.contains(&"ETL reconcile runs") && titles.contains(&SLOTS), "{titles:?}");
    // Every panel is either checked against its route or listed as having none, so a new
    // panel cannot slip past the comparison.
    for q in &queries {
        let route = MIRRORED.iter().find(|(t, _)| *t == q.title).map(|(_, r)| *r);
        let exempt = NO_API_COUNTERPART.contains(&q.title.as_str());
        assert!(
            route.is_some() != exempt,
            "{}: list it in MIRRORED (and check it against its route) or in NO_API_COUNTERPART",
            q.origin
        );
        if let Some(route) = route {
            assert!(q.description.contains(route), "{}: the description does not name {route}", q.origin);
        }
    }
    for (title, _) in MIRRORED {
        assert!(titles.contains(title), "mirrored panel {title:?} missing; panels: {titles:?}");
    }
    let vars = variables(&d);
    assert_eq!(vars.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["provider", "symbol", "bar_table"]);

    // Every macro and variable is one this test expands, checked without a server so a
    // typo fails fast and names its panel.
    let placeholders: BTreeMap<String, Var> =
        vars.iter().map(|v| (v.name.clone(), Var { values: vec!["x".into()], quoted: v.quoted })).collect();
    let range = fixture_range();
    let sqls = vars.iter().filter_map(|v| match &v.options {
        Options::Sql(q) => Some(q),
        Options::Custom(_) => None,
    });
    for q in queries.iter().chain(sqls) {
        expand(q, &placeholders, &range.text);
    }
}

#[tokio::test]
async fn every_dashboard_query_runs_on_postgres_15_and_the_api_panels_equal_the_api() {
    let archive = tempfile::tempdir().unwrap();
    let root = archive.path();
    let spec = DaySpec::small(DATE);
    write_day(root, &spec).unwrap();
    add_slot_decision(root);

    let server = common::pg();
    let store = common::open_pg(&server, "grafana").await;
    store.migrate().await.unwrap();
    let opts = EtlOptions { date: DATE.into(), batch_rows: 500, progress: false };
    let first = run_etl(&store, root, &opts).await.unwrap();
    assert!(first.ok, "{}", serde_json::to_string_pretty(&first).unwrap());
    // The reconcile event lands in the day's events file; a second run loads it, as the
    // next day's ETL would, so the ETL panels have a run to show.
    let (_, day_end) = common::day_bounds(DATE);
    so_store::etl::record_reconcile(root, &archive::ArchiveConfig::default(), &first, day_end.plus_millis(3_600_000))
        .unwrap();
    assert!(run_etl(&store, root, &opts).await.unwrap().ok);

    let (client, conn) = tokio_postgres::connect(&server.url_db("grafana"), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let range = fixture_range();
    let d = dashboard();

    // Variables first, each resolved from the ones before it, as Grafana does on load.
    let mut vars: BTreeMap<String, Var> = BTreeMap::new();
    let mut custom = BTreeMap::new();
    for v in variables(&d) {
        let values: Vec<String> = match v.options {
            Options::Sql(q) => {
                let sql = expand(&q, &vars, &range.text);
                let rows = run(&client, &q, &sql).await;
                let values: Vec<String> = rows.rows.into_iter().filter_map(|r| r[0].clone()).collect();
                assert!(!values.is_empty(), "{}: no options on the fixture day\n{sql}", q.origin);
                values
            }
            Options::Custom(opts) => {
                let values = opts.iter().map(|(_, value)| value.clone()).collect();
                custom.insert(v.name.clone(), opts);
                values
            }
        };
        vars.insert(v.name, Var { values, quoted: v.quoted });
    }
    assert_eq!(vars["provider"].values, ["sim"]);
    let mut symbols = spec.symbols.clone();
    symbols.sort();
    assert_eq!(vars["symbol"].values, symbols, "the symbol variable offers the fixture's symbols");

    // Every panel runs with each variable at its first option, as on load, and has rows.
    let mut queries = Vec::new();
    panel_queries(d["panels"].as_array().unwrap(), &mut queries);
    let mut counts = BTreeMap::new();
    for q in &queries {
        let sql = expand(q, &vars, &range.text);
        let rows = run(&client, q, &sql).await;
        if q.format == "time_series" || q.title == BARS || q.title == SAMPLES {
            assert!(
                rows.columns.iter().any(|c| c == "time"),
                "{}: no \"time\" column, got {:?}",
                q.origin,
                rows.columns
            );
        }
        // The fixture day has every kind of row the dashboard shows.
        assert!(rows.len() > 0, "{}: no rows on the fixture day\n{sql}", q.origin);
        counts.insert(q.title.clone(), rows.len());
    }
    for main in MAIN_PANELS {
        assert!(counts.get(*main).is_some_and(|&n| n > 0), "main panel {main:?}: {counts:?}");
    }
    // 25 minutes of trades, three symbols from one provider, a row per symbol.
    assert_eq!(counts[TICKS], 25);
    assert_eq!(counts[LATEST], 3);
    assert_eq!(counts[GAPS], 2);
    assert_eq!(counts[SLOTS], 1);

    // Then each panel that mirrors a route against the store query behind it.
    let cx = Cx { client, store, vars, custom, range, queries, symbols: spec.symbols.clone() };
    bars_equal_the_api(&cx).await;
    latest_equals_the_api(&cx).await;
    ticks_equal_the_api(&cx).await;
    samples_equal_the_api(&cx).await;
    gaps_equal_the_api(&cx).await;
    events_equal_the_api(&cx).await;
    overflow_equals_the_api(&cx).await;
}
