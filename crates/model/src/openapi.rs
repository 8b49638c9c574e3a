//! OpenAPI schemas of the wire types, as they serialize: decimals and times are strings, the
//! enums their snake_case names. Written by hand because their serde is (the derive would
//! describe the Rust shape, not the JSON one).

use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{KnownFormat, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::{Day, Market, Price, Provider, Qty, QualityFlag, Side, Symbol, UtcTime};

fn string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::new(Type::String)).description(Some(description))
}

fn one_of(description: &str, values: impl IntoIterator<Item = &'static str>) -> RefOr<Schema> {
    string(description).enum_values(Some(values)).into()
}

/// A decimal as JSON text, exact: `70100`, `0.00012345`, `-1.5`.
const DECIMAL: &str = r"^-?[0-9]+(\.[0-9]+)?$";

impl PartialSchema for Price {
    fn schema() -> RefOr<Schema> {
        string("An exact decimal price, as a string (never a float).").pattern(Some(DECIMAL)).examples(["70100"]).into()
    }
}
impl ToSchema for Price {}

impl PartialSchema for Qty {
    fn schema() -> RefOr<Schema> {
        string("An exact decimal size or volume, as a string.").pattern(Some(DECIMAL)).examples(["12"]).into()
    }
}
impl ToSchema for Qty {}

impl PartialSchema for UtcTime {
    fn schema() -> RefOr<Schema> {
        string("An instant, RFC 3339 in UTC with milliseconds.")
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .examples(["2026-01-14T00:31:05.120Z"])
            .into()
    }
}
impl ToSchema for UtcTime {}

impl PartialSchema for Day {
    fn schema() -> RefOr<Schema> {
        string("A Seoul calendar day, YYYYMMDD.")
            .pattern(Some(r"^(19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])$"))
            .examples(["20260114"])
            .into()
    }
}
impl ToSchema for Day {}

impl PartialSchema for Symbol {
    fn schema() -> RefOr<Schema> {
        string("An instrument code as the provider spells it.")
            .pattern(Some(r"^[A-Za-z0-9._-]{1,20}$"))
            .examples(["005930"])
            .into()
    }
}
impl ToSchema for Symbol {}

impl PartialSchema for Provider {
    fn schema() -> RefOr<Schema> {
        one_of("Where a record came from (`sim`: the simulated exchange).", Provider::ALL.iter().map(|p| p.as_str()))
    }
}
impl ToSchema for Provider {}

impl PartialSchema for Market {
    fn schema() -> RefOr<Schema> {
        one_of("The market a symbol trades in.", Market::ALL.iter().map(|m| m.as_str()))
    }
}
impl ToSchema for Market {}

impl PartialSchema for Side {
    fn schema() -> RefOr<Schema> {
        one_of("The aggressor side of a trade.", ["buy", "sell"])
    }
}
impl ToSchema for Side {}

impl PartialSchema for QualityFlag {
    fn schema() -> RefOr<Schema> {
        one_of("How a record was made.", ["normal", "degraded", "gap", "stale", "no_data"])
    }
}
impl ToSchema for QualityFlag {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written enum lists are the serialized names, all of them.
    #[test]
    fn enum_schemas_list_every_serialized_value() {
        let names = |s: RefOr<Schema>| -> Vec<String> {
            let v = serde_json::to_value(s).unwrap();
            v["enum"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
        };
        let flags =
            [QualityFlag::Normal, QualityFlag::Degraded, QualityFlag::Gap, QualityFlag::Stale, QualityFlag::NoData];
        let want: Vec<String> =
            flags.iter().map(|f| serde_json::to_value(f).unwrap().as_str().unwrap().into()).collect();
        assert_eq!(names(QualityFlag::schema()), want);
        let sides: Vec<String> =
            [Side::Buy, Side::Sell].iter().map(|s| serde_json::to_value(s).unwrap().as_str().unwrap().into()).collect();
        assert_eq!(names(Side::schema()), sides);
        assert_eq!(names(Provider::schema()).len(), Provider::ALL.len());
        let t = serde_json::to_value(UtcTime::from_millis(0)).unwrap();
        assert!(t.as_str().unwrap().ends_with('Z'));
    }
}
