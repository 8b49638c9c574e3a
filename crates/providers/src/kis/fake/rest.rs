//! The fake's REST side: tokenP, Approval, quotation endpoints and the master files.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use model::{Symbol, UtcTime};

use super::master::{MasterBoard, build_master_line, zip_master};
use super::{IssuedToken, Shared, bump, guard};
use crate::kis::config::KisEnv;
use crate::sim::{Board as SimBoard, DailyBar, DayStats};

// The venue's paths and TR ids are written out here, on purpose, rather than imported from
// the client (`kis::rest`, `kis::wire`): a wrong path or TR id must not pass both sides.

const PATH_TOKEN: &str = "/oauth2/tokenP";
const PATH_APPROVAL: &str = "/oauth2/Approval";
const PATH_MASTER: &str = "/common/master/";
const QUOTATIONS: &str = "/uapi/domestic-stock/v1/quotations/";

/// Quotation endpoints: (path below `QUOTATIONS`, tr_id, served on the mock domain).
const ENDPOINTS: [(&str, &str, bool); 8] = [
    ("inquire-price", "FHKST01010100", true),
    ("inquire-asking-price-exp-ccn", "FHKST01010200", true),
    ("inquire-daily-itemchartprice", "FHKST03010100", true),
    ("inquire-time-itemchartprice", "FHKST03010200", true),
    ("volume-rank", "FHPST01710000", false),
    ("search-info", "CTPF1604R", false),
    ("search-stock-info", "CTPF1002R", false),
    ("chk-holiday", "CTCA0903R", false),
];

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], v.to_string()).into_response()
}

/// REST error body (spec §3.9); the gateway answers most of them with HTTP 500.
fn kis_error(code: &str, msg: &str) -> Response {
    json_response(StatusCode::INTERNAL_SERVER_ERROR, json!({"rt_cd": "1", "msg_cd": code, "msg1": msg}))
}

/// Token endpoint error body (its own shape, spec §2.1).
fn token_error(status: StatusCode, code: &str, desc: &str) -> Response {
    json_response(status, json!({"error_description": desc, "error_code": code}))
}

fn n(d: Decimal) -> String {
    d.normalize().to_string()
}

fn random_text(len: usize, alphabet: &[u8]) -> String {
    let mut r = fastrand::Rng::new();
    (0..len).map(|_| alphabet[r.usize(0..alphabet.len())] as char).collect()
}

async fn handle(State(s): State<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    match (method, path.as_str()) {
        (Method::POST, PATH_TOKEN) => token(&s, &body),
        (Method::POST, PATH_APPROVAL) => approval(&s, &body),
        (Method::GET, p) if p.starts_with(PATH_MASTER) => master_file(&s, &p[PATH_MASTER.len()..]),
        (Method::GET, p) if p.starts_with(QUOTATIONS) => quotation(&s, &p[QUOTATIONS.len()..], uri.query(), &headers),
        _ => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

fn credentials_ok(s: &Shared, key: Option<&str>, secret: Option<&str>) -> bool {
    key == Some(s.cfg.app_key.as_str()) && secret == Some(s.cfg.app_secret.as_str())
}

fn token(s: &Shared, body: &[u8]) -> Response {
    bump(&s.counters.token_calls);
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |k: &str| v.get(k).and_then(Value::as_str);
    if field("grant_type") != Some("client_credentials") {
        return token_error(StatusCode::FORBIDDEN, "EGW00002", "grant_type 이 유효하지 않습니다.");
    }
    if !credentials_ok(s, field("appkey"), field("appsecret")) {
        bump(&s.counters.auth_rejections);
        return token_error(StatusCode::FORBIDDEN, "EGW00103", "유효하지 않은 AppKey입니다.");
    }
    let now = s.clock.now();
    let epoch = s.faults.token_epoch();
    let mut a = guard(&s.auth);
    let min = s.cfg.token_min_interval.as_millis() as i64;
    if a.last_token_call.is_some_and(|t| now.millis_since(t) < min) {
        bump(&s.counters.token_refusals);
        return token_error(StatusCode::FORBIDDEN, "EGW00133", "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)");
    }
    a.last_token_call = Some(now);
    let reuse = s.cfg.token_reuse_window.as_millis() as i64;
    let current = a.current.clone().filter(|(tok, issued)| {
        now.millis_since(*issued) < reuse && a.tokens.get(tok).is_some_and(|t| t.epoch == epoch && t.expires_at > now)
    });
    let (tok, expires_at) = match current {
        Some((tok, _)) => {
            let exp = a.tokens.get(&tok).map_or(now, |t| t.expires_at);
            (tok, exp)
        }
        None => {
            let tok = format!(
                "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9.{}",
                random_text(300, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
            );
            let expires_at = now.plus(s.cfg.token_lifetime.get());
            a.tokens.insert(tok.clone(), IssuedToken { expires_at, epoch });
            a.current = Some((tok.clone(), now));
            bump(&s.counters.tokens_issued);
            (tok, expires_at)
        }
    };
    let k = expires_at.kst();
    let expired_text =
        format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", k.year(), k.month(), k.day(), k.hour(), k.minute(), k.second());
    json_response(
        StatusCode::OK,
        json!({
            "access_token": tok,
            "access_token_token_expired": expired_text,
            "token_type": "Bearer",
            "expires_in": expires_at.millis_since(now) / 1000,
        }),
    )
}

fn approval(s: &Shared, body: &[u8]) -> Response {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |k: &str| v.get(k).and_then(Value::as_str);
    // The approval endpoint calls the secret `secretkey`, not `appsecret`.
    if field("grant_type") != Some("client_credentials") || !credentials_ok(s, field("appkey"), field("secretkey")) {
        bump(&s.counters.auth_rejections);
        return token_error(StatusCode::FORBIDDEN, "EGW00103", "유효하지 않은 AppKey입니다.");
    }
    let now = s.clock.now();
    let mut a = guard(&s.auth);
    let min = s.cfg.approval_min_interval.as_millis() as i64;
    if a.last_approval.is_some_and(|t| now.millis_since(t) < min) {
        bump(&s.counters.rate_rejections);
        return kis_error("EGW00201", "초당 거래건수를 초과하였습니다.");
    }
    a.last_approval = Some(now);
    let hex = |len| random_text(len, b"0123456789abcdef");
    let key = format!("{}-{}-{}-{}-{}", hex(8), hex(4), hex(4), hex(4), hex(12));
    a.approvals.insert(key.clone());
    bump(&s.counters.approvals_issued);
    json_response(StatusCode::OK, json!({ "approval_key": key }))
}

fn master_file(s: &Shared, file: &str) -> Response {
    let Some(board) = MasterBoard::from_zip_name(file) else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    let mut mst = Vec::new();
    {
        let m = s.market();
        for l in m.listings() {
            let on_board = matches!(
                (l.board, board),
                (SimBoard::Kospi, MasterBoard::Kospi) | (SimBoard::Kosdaq, MasterBoard::Kosdaq)
            );
            if on_board {
                let isin = isin(l.symbol.as_str());
                mst.extend(build_master_line(l.symbol.as_str(), &isin, &l.name, "ST", &n(l.prev_close.0), board));
                mst.push(b'\n');
            }
        }
    }
    match zip_master(board, &mst) {
        Ok(z) => ([(header::CONTENT_TYPE, "application/zip")], z).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

/// Query parameters by upper-cased name (KIS matches names case-insensitively).
fn query_map(q: Option<&str>) -> HashMap<String, String> {
    let decode = |v: &str| {
        let b = v.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                let hex = |c: u8| (c as char).to_digit(16);
                if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    let x = (hi * 16 + lo) as u8;
                    out.push(x);
                    i += 3;
                    continue;
                }
            }
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    q.unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_ascii_uppercase(), decode(v))
        })
        .collect()
}

fn ok(mut v: Value) -> Response {
    v["rt_cd"] = json!("0");
    v["msg_cd"] = json!("MCA00000");
    v["msg1"] = json!("정상처리 되었습니다.");
    json_response(StatusCode::OK, v)
}

fn no_data(s: &Shared) -> Response {
    json_response(
        StatusCode::OK,
        json!({"rt_cd": "7", "msg_cd": s.cfg.no_data_msg_cd, "msg1": "조회할 자료가 없습니다"}),
    )
}

/// The token bucket per app key, on the market clock (spec §9.2).
fn admit(s: &Shared) -> bool {
    let now = s.clock.now();
    let rate = s.cfg.rate_per_second;
    let mut b = guard(&s.bucket);
    let elapsed = now.millis_since(b.at).max(0) as f64 / 1000.0;
    b.tokens = (b.tokens + elapsed * rate).min(rate.max(1.0));
    b.at = now;
    if b.tokens < 1.0 {
        return false;
    }
    b.tokens -= 1.0;
    let second = now.as_millis().div_euclid(1000);
    if b.second != second {
        b.second = second;
        b.in_second = 0;
    }
    b.in_second += 1;
    s.counters.max_per_second.fetch_max(b.in_second, std::sync::atomic::Ordering::SeqCst);
    true
}

fn quotation(s: &Shared, name: &str, query: Option<&str>, h: &HeaderMap) -> Response {
    bump(&s.counters.rest_requests);
    if let Some(status) = s.faults.take_failure() {
        bump(&s.counters.injected_failures);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, "<html><body>upstream unavailable</body></html>").into_response();
    }
    let hv = |k: &str| h.get(k).and_then(|v| v.to_str().ok());
    if !credentials_ok(s, hv("appkey"), hv("appsecret")) {
        bump(&s.counters.auth_rejections);
        return kis_error("EGW00103", "유효하지 않은 AppKey입니다.");
    }
    if !admit(s) {
        bump(&s.counters.rate_rejections);
        return kis_error("EGW00201", "초당 거래건수를 초과하였습니다.");
    }
    let now = s.clock.now();
    let token = hv("authorization").and_then(|a| a.strip_prefix("Bearer ")).unwrap_or_default();
    {
        let a = guard(&s.auth);
        match a.tokens.get(token) {
            None => {
                bump(&s.counters.auth_rejections);
                return kis_error("EGW00121", "유효하지 않은 token 입니다.");
            }
            Some(t) if t.epoch != s.faults.token_epoch() || t.expires_at <= now => {
                bump(&s.counters.expired_token_rejections);
                return kis_error("EGW00123", "기간이 만료된 token 입니다.");
            }
            Some(_) => {}
        }
    }
    // A missing custtype is an individual's call: python-kis sends none and KIS serves it.
    if !matches!(hv("custtype"), None | Some("P" | "B")) {
        bump(&s.counters.auth_rejections);
        return kis_error("EGW00208", "고객타입(custtype)이 유효하지 않습니다.");
    }
    let Some(&(_, tr_id, on_mock)) = ENDPOINTS.iter().find(|e| e.0 == name) else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    if hv("tr_id") != Some(tr_id) {
        bump(&s.counters.auth_rejections);
        return kis_error("EGW00206", "API 호출 권한이 없습니다.");
    }
    if !on_mock && s.cfg.env == KisEnv::Mock {
        return kis_error("EGW00213", "모의투자 TR 이 아닙니다.");
    }
    let q = query_map(query);
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let resp = match name {
        "inquire-price" => price(s, get("FID_INPUT_ISCD"), now),
        "inquire-asking-price-exp-ccn" => asking(s, get("FID_INPUT_ISCD"), now),
        "inquire-daily-itemchartprice" => daily(s, &get, now),
        "inquire-time-itemchartprice" => minute(s, &get, now),
        "volume-rank" => volume_rank(s, now),
        "search-info" => search_info(s, get("PDNO"), get("PRDT_TYPE_CD"), false),
        "search-stock-info" => search_info(s, get("PDNO"), get("PRDT_TYPE_CD"), true),
        "chk-holiday" => holidays(get("BASS_DT"), &s.cfg.holidays),
        _ => None,
    };
    match resp {
        Some(r) => {
            bump(&s.counters.rest_ok);
            r
        }
        None => no_data(s),
    }
}

/// A `YYYYMMDD` query value (the fake's own reading, not the client's parser).
fn yyyymmdd(s: &str) -> Option<jiff::civil::Date> {
    let b = s.as_bytes();
    if b.len() != 8 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| b[r].iter().fold(0i32, |a, &c| a * 10 + (c - b'0') as i32);
    jiff::civil::Date::new(n(0..4) as i16, n(4..6) as i8, n(6..8) as i8).ok()
}

fn lookup(s: &Shared, code: &str) -> Option<usize> {
    let sym = Symbol::new(code).ok()?;
    s.market().index_of(&sym)
}

fn sign(d: Decimal) -> &'static str {
    if d > Decimal::ZERO {
        "2"
    } else if d < Decimal::ZERO {
        "5"
    } else {
        "3"
    }
}

/// The direction code of `last` against `prev`, `1`/`4` at the upper/lower limit.
fn sign_at(last: Decimal, prev: Decimal, st: &DayStats) -> &'static str {
    if last >= st.limit_high.0 {
        "1"
    } else if last <= st.limit_low.0 {
        "4"
    } else {
        sign(last - prev)
    }
}

/// Change against `prev` in percent, two decimals, as KIS writes it.
fn pct(x: Decimal, of: Decimal) -> String {
    let v = if of.is_zero() { Decimal::ZERO } else { x / of * Decimal::from(100) };
    format!("{:.2}", v.round_dp(2))
}

fn board_name(b: SimBoard) -> &'static str {
    match b {
        SimBoard::Kospi => "KOSPI",
        SimBoard::Kosdaq => "KOSDAQ",
    }
}

fn ymd(d: jiff::civil::Date) -> String {
    format!("{:04}{:02}{:02}", d.year(), d.month(), d.day())
}

/// Market cap in 억원 (10^8 KRW), as `hts_avls` gives it.
fn hundred_millions(price: Decimal, shares: u64) -> String {
    n((price * Decimal::from(shares) / Decimal::from(100_000_000)).round())
}

fn price(s: &Shared, code: &str, now: UtcTime) -> Option<Response> {
    let idx = lookup(s, code)?;
    let mut m = s.market();
    let st = m.day_stats(idx, now);
    let l = m.listings()[idx].clone();
    let tick = m.tick_size(st.last);
    let year = m.year_range(idx);
    let today = m.trading_day();
    drop(m);
    let prev = l.prev_close.0;
    let last = st.last.0;
    let vrss = last - prev;
    let vwap = if st.volume.0.is_zero() { last } else { st.traded_value / st.volume.0 };
    let or_last = |p: Option<model::Price>| n(p.map_or(Decimal::ZERO, |p| p.0));
    // The 52-week range includes today.
    let (mut hi, mut hi_date, mut lo, mut lo_date) = (year.high.0, year.high_date, year.low.0, year.low_date);
    if let (Some(h), Some(l)) = (st.high, st.low) {
        if h.0 > hi {
            (hi, hi_date) = (h.0, today);
        }
        if l.0 < lo {
            (lo, lo_date) = (l.0, today);
        }
    }
    let shares = Decimal::from(l.shares);
    // Two halves: one `json!` of ~80 keys overflows the macro recursion limit.
    let mut out = json!({
        "iscd_stat_cls_code": "55", "marg_rate": "20.00", "rprs_mrkt_kor_name": board_name(l.board),
        "new_hgpr_lwpr_cls_code": "", "bstp_kor_isnm": "전기·전자", "temp_stop_yn": "N", "oprc_rang_cont_yn": "N",
        "clpr_rang_cont_yn": "N", "crdt_able_yn": "Y", "grmn_rate_cls_code": "40", "elw_pblc_yn": "N",
        "stck_prpr": n(last), "prdy_vrss": n(vrss), "prdy_vrss_sign": sign_at(last, prev, &st), "prdy_ctrt": pct(vrss, prev),
        "acml_tr_pbmn": n(st.traded_value.round()), "acml_vol": n(st.volume.0),
        "prdy_vrss_vol_rate": pct(st.volume.0, year.prev_volume.0), "stck_oprc": or_last(st.open),
        "stck_hgpr": or_last(st.high), "stck_lwpr": or_last(st.low), "stck_mxpr": n(st.limit_high.0),
        "stck_llam": n(st.limit_low.0), "stck_sdpr": n(prev), "wghn_avrg_stck_prc": format!("{:.2}", vwap.round_dp(2)),
        "hts_frgn_ehrt": "0.00", "frgn_ntby_qty": "0", "pgtr_ntby_qty": "0", "aspr_unit": n(tick),
        "hts_deal_qty_unit_val": "1", "lstn_stcn": l.shares.to_string(), "hts_avls": hundred_millions(last, l.shares),
        "per": "0.00", "pbr": "0.00", "eps": "0.00", "bps": "0.00", "stac_month": "12",
        "vol_tnrt": pct(st.volume.0, shares),
    });
    let more = json!({
        "d250_hgpr": n(hi), "d250_hgpr_date": ymd(hi_date), "d250_hgpr_vrss_prpr_rate": pct(last - hi, hi),
        "d250_lwpr": n(lo), "d250_lwpr_date": ymd(lo_date), "d250_lwpr_vrss_prpr_rate": pct(last - lo, lo),
        "w52_hgpr": n(hi), "w52_hgpr_date": ymd(hi_date), "w52_hgpr_vrss_prpr_ctrt": pct(last - hi, hi),
        "w52_lwpr": n(lo), "w52_lwpr_date": ymd(lo_date), "w52_lwpr_vrss_prpr_ctrt": pct(last - lo, lo),
        "whol_loan_rmnd_rate": "0.00", "ssts_yn": "Y", "stck_shrn_iscd": l.symbol.as_str(), "fcam_cnnm": "100",
        "cpfn_cnnm": "", "frgn_hldn_qty": "0", "vi_cls_code": "N", "ovtm_vi_cls_code": "N", "last_ssts_cntg_qty": "0",
        "invt_caful_yn": "N", "mrkt_warn_cls_code": "00", "short_over_yn": "N", "sltr_yn": "N", "mang_issu_cls_code": "N",
    });
    if let (Some(out), Value::Object(more)) = (out.as_object_mut(), more) {
        out.extend(more);
    }
    Some(ok(json!({ "output": out })))
}

fn asking(s: &Shared, code: &str, now: UtcTime) -> Option<Response> {
    let idx = lookup(s, code)?;
    let mut m = s.market();
    let st = m.day_stats(idx, now);
    let tick = m.tick_size(st.bid);
    let prev = m.listings()[idx].prev_close.0;
    drop(m);
    let mut o1 = serde_json::Map::new();
    o1.insert("aspr_acpt_hour".into(), json!(super::records::hhmmss(now)));
    for i in 1..=10u32 {
        let step = tick * Decimal::from(i - 1);
        // Sizes are a deterministic function of level and symbol: the sim keeps no resting book.
        let size = Decimal::from(100 * (i as usize + idx % 7));
        o1.insert(format!("askp{i}"), json!(n(st.ask.0 + step)));
        o1.insert(format!("bidp{i}"), json!(n((st.bid.0 - step).max(Decimal::ZERO))));
        o1.insert(format!("askp_rsqn{i}"), json!(n(size)));
        o1.insert(format!("bidp_rsqn{i}"), json!(n(size)));
        o1.insert(format!("askp_rsqn_icdc{i}"), json!("0"));
        o1.insert(format!("bidp_rsqn_icdc{i}"), json!("0"));
    }
    Some(ok(json!({
        "output1": o1,
        "output2": {"antc_mkop_cls_code": "311", "stck_prpr": n(st.last.0), "stck_sdpr": n(prev),
                    "antc_cnpr": "0", "antc_vol": "0", "stck_shrn_iscd": code, "vi_cls_code": "N"},
    })))
}

/// `inquire-daily-itemchartprice` (spec §3.3): bars of `FID_INPUT_DATE_1..=FID_INPUT_DATE_2`
/// newest first, at most `daily_rows`; a client pages back by moving DATE_2. Weeks, months
/// and years are summed from the days and dated by their last trading day. Today's bar is
/// the session so far.
fn daily<'a>(s: &Shared, get: &impl Fn(&str) -> &'a str, now: UtcTime) -> Option<Response> {
    let idx = lookup(s, get("FID_INPUT_ISCD"))?;
    let mut m = s.market();
    let st = m.day_stats(idx, now);
    let l = m.listings()[idx].clone();
    let today = m.trading_day();
    let history = m.daily_history(idx);
    drop(m);
    let mut days = Vec::with_capacity(history.len() + 1);
    if let (Some(open), Some(high), Some(low)) = (st.open, st.high, st.low) {
        days.push(DailyBar {
            date: today,
            open,
            high,
            low,
            close: st.last,
            prev_close: l.prev_close,
            volume: st.volume,
            traded_value: st.traded_value.round(),
        });
    }
    days.extend(history);
    let date = |k: &str| yyyymmdd(get(k));
    let from = date("FID_INPUT_DATE_1").unwrap_or(jiff::civil::Date::MIN);
    let to = date("FID_INPUT_DATE_2").unwrap_or(today);
    let bars = match get("FID_PERIOD_DIV_CODE") {
        "" | "D" => days,
        "W" => group_bars(days, |d| {
            let w = d.iso_week_date();
            (w.year() as i32, w.week() as i32)
        }),
        "M" => group_bars(days, |d| (d.year() as i32, d.month() as i32)),
        "Y" => group_bars(days, |d| (d.year() as i32, 0)),
        // KIS's code for a bad period is unconfirmed; an OPSQ input error like OPSQ2001's.
        _ => return Some(kis_error("OPSQ2002", "입력 값이 올바르지 않습니다. (FID_PERIOD_DIV_CODE)")),
    };
    let rows: Vec<Value> = bars
        .iter()
        .filter(|b| b.date >= from && b.date <= to)
        .take(s.cfg.daily_rows)
        .map(|b| {
            let vrss = b.close.0 - b.prev_close.0;
            json!({
                "stck_bsop_date": ymd(b.date), "stck_oprc": n(b.open.0), "stck_hgpr": n(b.high.0),
                "stck_lwpr": n(b.low.0), "stck_clpr": n(b.close.0), "acml_vol": n(b.volume.0),
                "acml_tr_pbmn": n(b.traded_value), "flng_cls_code": "00", "prtt_rate": "0.00", "mod_yn": "N",
                "prdy_vrss_sign": sign(vrss), "prdy_vrss": n(vrss), "revl_issu_reas": "",
            })
        })
        .collect();
    let vrss = st.last.0 - l.prev_close.0;
    Some(ok(json!({
        "output1": {"prdy_vrss": n(vrss), "prdy_vrss_sign": sign_at(st.last.0, l.prev_close.0, &st),
                    "prdy_ctrt": pct(vrss, l.prev_close.0), "stck_prdy_clpr": n(l.prev_close.0),
                    "acml_vol": n(st.volume.0), "acml_tr_pbmn": n(st.traded_value.round()), "hts_kor_isnm": l.name,
                    "stck_prpr": n(st.last.0), "stck_shrn_iscd": l.symbol.as_str(),
                    "stck_oprc": n(st.open.map_or(Decimal::ZERO, |p| p.0)),
                    "stck_hgpr": n(st.high.map_or(Decimal::ZERO, |p| p.0)),
                    "stck_lwpr": n(st.low.map_or(Decimal::ZERO, |p| p.0)),
                    "stck_mxpr": n(st.limit_high.0), "stck_llam": n(st.limit_low.0),
                    "lstn_stcn": l.shares.to_string(), "hts_avls": hundred_millions(st.last.0, l.shares),
                    "per": "0.00", "eps": "0.00", "pbr": "0.00"},
        "output2": rows,
    })))
}

/// Sums consecutive days (newest first) with the same `key` into one bar dated by its
/// newest day.
fn group_bars(days: Vec<DailyBar>, key: impl Fn(jiff::civil::Date) -> (i32, i32)) -> Vec<DailyBar> {
    let mut out: Vec<(_, DailyBar)> = Vec::new();
    for d in days {
        match out.last_mut() {
            Some((k, acc)) if *k == key(d.date) => {
                // Walking back in time: this day comes before the bar's days.
                acc.open = d.open;
                acc.prev_close = d.prev_close;
                acc.high = acc.high.max(d.high);
                acc.low = acc.low.min(d.low);
                acc.volume = model::Qty(acc.volume.0 + d.volume.0);
                acc.traded_value += d.traded_value;
            }
            _ => out.push((key(d.date), d)),
        }
    }
    out.into_iter().map(|(_, b)| b).collect()
}

/// `inquire-time-itemchartprice` (spec §3.4): today's one-minute bars at or before
/// `FID_INPUT_HOUR_1` (HHMMSS), newest first, at most `minute_rows`; a client pages back
/// with an earlier hour. An hour outside the session so far (python-kis sends `000000`
/// for "latest") means now.
fn minute<'a>(s: &Shared, get: &impl Fn(&str) -> &'a str, now: UtcTime) -> Option<Response> {
    let idx = lookup(s, get("FID_INPUT_ISCD"))?;
    let mut m = s.market();
    let st = m.day_stats(idx, now);
    let l = m.listings()[idx].clone();
    let bars = m.minute_bars(idx, now);
    let (today, open) = (m.trading_day(), m.session_open());
    drop(m);
    let hour = get("FID_INPUT_HOUR_1");
    let asked = (hour.len() == 6)
        .then(|| {
            let num = |r: std::ops::Range<usize>| hour.get(r).and_then(|x| x.parse::<i8>().ok());
            jiff::civil::Time::new(num(0..2)?, num(2..4)?, num(4..6)?, 0).ok()
        })
        .flatten()
        .map(|t| UtcTime::from_kst(today.to_datetime(t)))
        .filter(|t| *t >= open && *t <= now)
        .unwrap_or(now);
    let rows: Vec<Value> = bars
        .iter()
        .rev()
        .filter(|b| b.start <= asked)
        .take(s.cfg.minute_rows)
        .map(|b| {
            let k = b.start.kst();
            json!({
                "stck_bsop_date": ymd(today), "stck_cntg_hour": format!("{:02}{:02}{:02}", k.hour(), k.minute(), k.second()),
                "stck_prpr": n(b.close.0), "stck_oprc": n(b.open.0), "stck_hgpr": n(b.high.0), "stck_lwpr": n(b.low.0),
                "cntg_vol": n(b.volume.0), "acml_tr_pbmn": n(b.cum_value.round()),
            })
        })
        .collect();
    let vrss = st.last.0 - l.prev_close.0;
    Some(ok(json!({
        "output1": {"prdy_vrss": n(vrss), "prdy_vrss_sign": sign_at(st.last.0, l.prev_close.0, &st),
                    "prdy_ctrt": pct(vrss, l.prev_close.0), "stck_prdy_clpr": n(l.prev_close.0),
                    "acml_vol": n(st.volume.0), "acml_tr_pbmn": n(st.traded_value.round()),
                    "hts_kor_isnm": l.name, "stck_prpr": n(st.last.0)},
        "output2": rows,
    })))
}

fn volume_rank(s: &Shared, now: UtcTime) -> Option<Response> {
    let mut m = s.market();
    let mut all = Vec::with_capacity(m.len());
    for idx in 0..m.len() {
        let st = m.day_stats(idx, now);
        all.push((st.volume.0, idx, st));
    }
    all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let out: Vec<Value> = all
        .iter()
        .take(30)
        .enumerate()
        .map(|(rank, (_, idx, st))| {
            let l = &m.listings()[*idx];
            json!({
                "hts_kor_isnm": l.name, "mksc_shrn_iscd": l.symbol.as_str(), "data_rank": (rank + 1).to_string(),
                "stck_prpr": n(st.last.0), "prdy_vrss_sign": sign(st.last.0 - l.prev_close.0),
                "prdy_vrss": n(st.last.0 - l.prev_close.0), "acml_vol": n(st.volume.0),
                "acml_tr_pbmn": n(st.traded_value.round()),
            })
        })
        .collect();
    drop(m);
    Some(ok(json!({ "output": out })))
}

fn search_info(s: &Shared, pdno: &str, prdt_type: &str, stock: bool) -> Option<Response> {
    if prdt_type != "300" {
        return None;
    }
    let idx = lookup(s, pdno)?;
    let l = s.market().listings()[idx].clone();
    let code = l.symbol.as_str();
    let isin = isin(code);
    let kospi = l.board == SimBoard::Kospi;
    // Both TRs carry the same names (spec §3.10); the sim has Korean names only.
    let names = json!({
        "pdno": format!("00000A{code}"), "prdt_type_cd": "300", "prdt_name": l.name, "prdt_name120": l.name,
        "prdt_abrv_name": l.name, "prdt_eng_name": "", "prdt_eng_name120": "", "prdt_eng_abrv_name": "",
        "std_pdno": isin,
    });
    let rest = if stock {
        json!({
            "mket_id_cd": if kospi { "STK" } else { "KSQ" }, "scty_grp_id_cd": "ST",
            "excg_dvsn_cd": if kospi { "02" } else { "03" }, "setl_mmdd": "12", "lstg_stqt": l.shares.to_string(),
            "lstg_cptl_amt": "0", "cpta": "0", "papr": "500", "issu_pric": "500", "kospi200_item_yn": "N",
            "scts_mket_lstg_dt": "", "scts_mket_lstg_abol_dt": "", "kosdaq_mket_lstg_dt": "",
            "kosdaq_mket_lstg_abol_dt": "", "frbd_mket_lstg_dt": "", "lstg_abol_dt": "", "tr_stop_yn": "N",
            "admn_item_yn": "N", "thdt_clpr": n(l.prev_close.0), "bfdy_clpr": n(l.prev_close.0), "clpr_chng_dt": "",
            "stck_kind_cd": "101", "std_idst_clsf_cd": "", "std_idst_clsf_cd_name": "", "etf_dvsn_cd": "0",
        })
    } else {
        json!({
            "shtn_pdno": code, "prdt_clsf_cd": "101010", "prdt_clsf_name": "주권", "ivst_prdt_type_cd": "1010",
            "ivst_prdt_type_cd_name": "주식", "prdt_sale_stat_cd": "", "prdt_risk_grad_cd": "", "sale_strt_dt": "",
            "sale_end_dt": "", "frst_erlm_dt": "", "wrap_asst_type_cd": "",
        })
    };
    let mut output = names;
    if let (Some(out), Value::Object(rest)) = (output.as_object_mut(), rest) {
        out.extend(rest);
    }
    let mut v = json!({ "output": output });
    v["rt_cd"] = json!("0");
    v["msg_cd"] = json!("KIOK0530");
    v["msg1"] = json!(format!("{:<80}", "조회되었습니다"));
    Some(json_response(StatusCode::OK, v))
}

/// A KRX share's ISIN: `KR7` + code + `00` + the ISIN check digit (Luhn over the digits,
/// letters counting as 10..=35), so `005930` gives `KR7005930003`.
pub(super) fn isin(code: &str) -> String {
    let body = format!("KR7{code}00");
    let mut digits = Vec::new();
    for c in body.chars() {
        match c.to_digit(36) {
            Some(d) if d >= 10 => digits.extend([d / 10, d % 10]),
            Some(d) => digits.push(d),
            None => {}
        }
    }
    // Luhn from the right, doubling the rightmost digit (the check digit comes after it).
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let x = d * 2;
                x / 10 + x % 10
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

fn holidays(bass_dt: &str, closed: &[jiff::civil::Date]) -> Option<Response> {
    let start = yyyymmdd(bass_dt)?;
    let mut rows = Vec::new();
    let mut d = start;
    for _ in 0..24 {
        let open = !matches!(d.weekday(), jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday)
            && !closed.contains(&d);
        let yn = |b: bool| if b { "Y" } else { "N" };
        rows.push(json!({
            "bass_dt": format!("{:04}{:02}{:02}", d.year(), d.month(), d.day()),
            "wday_dvsn_cd": format!("{:02}", d.weekday().to_sunday_one_offset()),
            "bzdy_yn": yn(open), "tr_day_yn": yn(open), "opnd_yn": yn(open), "sttl_day_yn": yn(open),
        }));
        d = d.tomorrow().ok()?;
    }
    Some(ok(json!({ "output": rows })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn isin_check_digits_are_krx_ones() {
        for (code, isin) in [("005930", "KR7005930003"), ("000660", "KR7000660001"), ("035420", "KR7035420009")] {
            assert_eq!(super::isin(code), isin);
        }
    }
}
