//! The provisioned Grafana dashboard (deploy/grafana) against the real PostgreSQL schema:
//! every SQL it holds, panels and template variables alike, is expanded the way Grafana's
//! PostgreSQL data source expands it and run on PostgreSQL 15 over a migrated database with a
//! fixture day loaded by the ETL. A query naming a column the migrations do not create fails
//! here instead of as a red panel on the first deployment, and a query that runs but finds
//! nothing on a day full of data fails too.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use model::{Meta, Record, SessionId, Symbol, SystemEvent, UtcTime};
use serde_json::Value;
use so_store::testing::fixture::{DaySpec, write_day};
use so_store::{Backend, EtlOptions, run_etl};
use tokio_postgres::SimpleQueryMessage;

const DATE: &str = "20260114";
const DASHBOARD: &str = include_str!("../../../deploy/grafana/dashboards/stock-observer.json");
const DATASOURCE: &str = include_str!("../../../deploy/grafana/provisioning/datasources/observer.yml");
const PROVIDER: &str = include_str!("../../../deploy/grafana/provisioning/dashboards/observer.yml");
const UID: &str = "observer-pg";

/// Panels whose emptiness on a recorded day would mean the dashboard reads the wrong thing;
/// named so that renaming or dropping one fails here instead of silently losing the check.
const MAIN_PANELS: &[&str] =
    &["1m bars: $symbol ($provider)", "Ticks per minute by provider", "Latest price per symbol"];

/// One SQL text of the dashboard and where it came from.
struct Query {
    /// `panel "<title>"` or `variable "<name>"`, for failure messages.
    origin: String,
    title: String,
    sql: String,
    format: String,
}

/// A template variable's options, as Grafana holds them after running its query.
struct Var {
    values: Vec<String>,
    /// Multi-value and include-All variables are interpolated quoted and comma-joined by
    /// Grafana's SQL data sources; single-value ones go in raw, so the SQL quotes them.
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
                sql: sql.to_string(),
                format: t["format"].as_str().unwrap_or("time_series").to_string(),
            });
        }
    }
}

/// The query variables, in dashboard order (Grafana resolves them in that order too, and
/// `symbol` depends on `provider`).
fn variable_queries(d: &Value) -> Vec<(String, Query, bool)> {
    let list = d["templating"]["list"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for v in list {
        let name = v["name"].as_str().expect("variable name").to_string();
        assert_eq!(v["type"], "query", "variable {name:?}: only query variables are expected");
        assert_eq!(uid_of(&v), Some(UID), "variable {name:?}: datasource uid");
        // Older dashboards hold the SQL as a string, newer editors as an object with rawSql.
        let sql = match &v["query"] {
            Value::String(s) => s.clone(),
            q => q["rawSql"].as_str().unwrap_or_else(|| panic!("variable {name:?}: no SQL")).to_string(),
        };
        let quoted = v["multi"] == true || v["includeAll"] == true;
        let q = Query { origin: format!("variable {name:?}"), title: name.clone(), sql, format: "table".into() };
        out.push((name, q, quoted));
    }
    out
}

/// The time range the dashboard shows for the fixture day: Grafana's "today" in Asia/Seoul,
/// formatted as Grafana's Go code does (RFC 3339 in UTC, fraction only when non-zero).
fn fixture_range() -> (String, String) {
    let (lo, hi) = common::day_bounds(DATE);
    let fmt = |t: UtcTime| jiff::Timestamp::from_millisecond(t.as_millis()).unwrap().to_string();
    (fmt(lo), fmt(hi.plus_millis(-1)))
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

/// The rows' first columns as text, and the column names.
async fn run(client: &tokio_postgres::Client, q: &Query, sql: &str) -> (Vec<Option<String>>, Vec<String>) {
    // The simple protocol, as Grafana's driver uses for a query without parameters.
    let msgs = client.simple_query(sql).await.unwrap_or_else(|e| {
        // The server's message names the column or function; the error's Display does not.
        let why = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string());
        panic!("{} failed on PostgreSQL: {why}\n{sql}", q.origin)
    });
    let mut first = Vec::new();
    let mut columns = Vec::new();
    for m in msgs {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                columns = cols.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(r) => {
                if columns.is_empty() {
                    columns = r.columns().iter().map(|c| c.name().to_string()).collect();
                }
                first.push(r.get(0).map(str::to_string));
            }
            _ => {}
        }
    }
    (first, columns)
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

    let mut queries = Vec::new();
    panel_queries(d["panels"].as_array().expect("panels"), &mut queries);
    let titles: Vec<&str> = queries.iter().map(|q| q.title.as_str()).collect();
    for main in MAIN_PANELS {
        assert!(titles.contains(main), "main panel {main:?} missing; panels: {titles:?}");
    }
    // The nested (collapsed-row) panels are reached too.
    assert!(titles.contains(&"ETL reconcile runs") && titles.contains(&"Slot decisions"), "{titles:?}");
    let vars = variable_queries(&d);
    assert_eq!(vars.iter().map(|(n, _, _)| n.as_str()).collect::<Vec<_>>(), ["provider", "symbol"]);

    // Every macro and variable is one this test expands, checked without a server so a
    // typo fails fast and names its panel.
    let placeholders: BTreeMap<String, Var> =
        vars.iter().map(|(n, _, quoted)| (n.clone(), Var { values: vec!["x".into()], quoted: *quoted })).collect();
    let range = fixture_range();
    for q in queries.iter().chain(vars.iter().map(|(_, q, _)| q)) {
        expand(q, &placeholders, &range);
    }
}

#[tokio::test]
async fn every_dashboard_query_runs_on_postgres_15_and_the_main_panels_have_rows() {
    let archive = tempfile::tempdir().unwrap();
    let root = archive.path();
    write_day(root, &DaySpec::small(DATE)).unwrap();
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
    for (name, q, quoted) in variable_queries(&d) {
        let sql = expand(&q, &vars, &range);
        let (values, _) = run(&client, &q, &sql).await;
        let values: Vec<String> = values.into_iter().flatten().collect();
        assert!(!values.is_empty(), "{}: no options on the fixture day\n{sql}", q.origin);
        vars.insert(name, Var { values, quoted });
    }
    assert_eq!(vars["provider"].values, ["sim"]);
    assert!(vars["symbol"].values.iter().any(|s| s == "005930"), "{:?}", vars["symbol"].values);

    let mut queries = Vec::new();
    panel_queries(d["panels"].as_array().unwrap(), &mut queries);
    let mut counts = BTreeMap::new();
    for q in &queries {
        let sql = expand(q, &vars, &range);
        let (rows, columns) = run(&client, q, &sql).await;
        if q.format == "time_series" || q.title.starts_with("1m bars") {
            assert!(columns.iter().any(|c| c == "time"), "{}: no \"time\" column, got {columns:?}", q.origin);
        }
        // The fixture day has every kind of row the dashboard shows.
        assert!(!rows.is_empty(), "{}: no rows on the fixture day\n{sql}", q.origin);
        counts.insert(q.title.clone(), rows.len());
    }
    for main in MAIN_PANELS {
        assert!(counts.get(*main).is_some_and(|&n| n > 0), "main panel {main:?}: {counts:?}");
    }
    // 25 minutes of trades, three symbols from one provider, a row per symbol.
    assert_eq!(counts["Ticks per minute by provider"], 25);
    assert_eq!(counts["Latest price per symbol"], 3);
    assert_eq!(counts["Gaps"], 2);
    assert_eq!(counts["Slot decisions"], 1);
}
