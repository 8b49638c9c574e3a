//! The quotation endpoints a feature uses (current price for Track A and the slot seeds,
//! the volume ranking for the trigger engine) and the symbol master files.

use serde_json::Value;

use model::{Price, Provider, Qty, RawFrame, Snapshot, Symbol};

use super::{RestClient, endpoint, http_why, req_err};
use crate::kis::wire;
use crate::provider::{ProviderError, evidence};

fn s<'a>(o: &'a Value, k: &str) -> &'a str {
    o.get(k).and_then(Value::as_str).unwrap_or_default().trim()
}
fn p(o: &Value, k: &str) -> Result<Price, String> {
    s(o, k).parse().map_err(|_| format!("{k} {:?} is not a number", s(o, k)))
}
fn qt(o: &Value, k: &str) -> Result<Qty, String> {
    s(o, k).parse().map_err(|_| format!("{k} {:?} is not a number", s(o, k)))
}
fn body_of(f: &RawFrame) -> Result<Value, ProviderError> {
    serde_json::from_str(&f.frame).map_err(|e| malformed(f, e))
}
fn malformed(f: &RawFrame, why: impl std::fmt::Display) -> ProviderError {
    ProviderError::Malformed { provider: Provider::Kis, why: why.to_string(), frame: evidence(&f.frame) }
}
fn rows(v: &Value, key: &str) -> Vec<Value> {
    v.get(key).and_then(Value::as_array).cloned().unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankRow {
    pub rank: u32,
    pub symbol: Symbol,
    pub name: String,
    pub price: Price,
    pub volume: Qty,
    pub value: Qty,
}

impl RestClient {
    pub(crate) async fn inquire_price(&self, sym: &Symbol) -> Result<(RawFrame, Snapshot), ProviderError> {
        let f = self
            .get(endpoint::PRICE, &[("FID_COND_MRKT_DIV_CODE", "J"), ("FID_INPUT_ISCD", sym.as_str())], false)
            .await?;
        let snap = wire::snapshot_body(&f.frame).map_err(|e| malformed(&f, e))?;
        Ok((f, snap))
    }

    pub(crate) async fn volume_rank(&self) -> Result<(RawFrame, Vec<RankRow>), ProviderError> {
        let q = [
            ("FID_COND_MRKT_DIV_CODE", "J"),
            ("FID_COND_SCR_DIV_CODE", "20171"),
            ("FID_INPUT_ISCD", "0000"),
            ("FID_DIV_CLS_CODE", "0"),
            ("FID_BLNG_CLS_CODE", "0"),
            ("FID_TRGT_CLS_CODE", "111111111"),
            ("FID_TRGT_EXLS_CLS_CODE", "0000000000"),
            ("FID_INPUT_PRICE_1", ""),
            ("FID_INPUT_PRICE_2", ""),
            ("FID_VOL_CNT", ""),
            ("FID_INPUT_DATE_1", ""),
        ];
        let f = self.get(endpoint::VOLUME_RANK, &q, false).await?;
        let v = body_of(&f)?;
        let out = rows(&v, "output")
            .iter()
            .map(|r| {
                Ok(RankRow {
                    rank: s(r, "data_rank").parse().map_err(|_| "bad data_rank".to_string())?,
                    symbol: wire::symbol(s(r, "mksc_shrn_iscd"))?,
                    name: s(r, "hts_kor_isnm").to_string(),
                    price: p(r, "stck_prpr")?,
                    volume: qt(r, "acml_vol")?,
                    value: qt(r, "acml_tr_pbmn")?,
                })
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| malformed(&f, e))?;
        Ok((f, out))
    }

    /// A master `.mst.zip` from `master_base` (no auth, not rate limited by KIS).
    pub(crate) async fn master_zip(&self, file: &str) -> Result<Vec<u8>, ProviderError> {
        let base = self.cfg.master_base.trim_end_matches('/');
        let url = format!("{base}/{file}.zip");
        let resp = self.http.get(url).send().await.map_err(|e| req_err(file, http_why(&e)))?;
        if !resp.status().is_success() {
            return Err(req_err(file, format_args!("HTTP {}", resp.status().as_u16())));
        }
        let key = "providers.kis.max_body_bytes";
        crate::limits::read_body(resp, self.cfg.max_body_bytes, key).await.map_err(|e| req_err(file, e.why(http_why)))
    }
}
