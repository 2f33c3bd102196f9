//! The packet's `report.json` and its JSON Schema.
//!
//! `report.json` is the [`MonthReport`] as serde writes it: camelCase fields, instants
//! as RFC 3339 strings in UTC, absent values as `null`, enum values by name, floats
//! as `serde_json` writes them (the shortest text that reads back to the same
//! number). Fields come in the model's order and lists in the model's order, so the
//! same report always gives the same bytes.
//!
//! The schema is generated from the model (`schemars`, JSON Schema draft 2020-12) and
//! committed as `docs/schemas/evidence-v1.json`; a test fails when the two drift.

use super::model::{MonthReport, SCHEMA};

/// `report.json`: the month, pretty-printed with two-space indents and a trailing
/// newline.
pub fn json(r: &MonthReport) -> Vec<u8> {
    // The model holds no map and only strings, numbers, booleans and lists of them:
    // serde_json cannot fail on it (a NaN would be written as null).
    let mut out = serde_json::to_vec_pretty(r).expect("a MonthReport serializes to JSON");
    out.push(b'\n');
    out
}

/// The JSON Schema `report.json` follows, with `$id` set to [`SCHEMA`],
/// pretty-printed with a trailing newline. Its keys come in a fixed order (schemars
/// puts the keywords first, the rest sorted), so it is the same bytes for the same
/// model.
pub fn json_schema() -> Vec<u8> {
    let mut schema = schemars::schema_for!(MonthReport);
    schema.insert("$id".to_string(), SCHEMA.into());
    let mut out = serde_json::to_vec_pretty(&schema).expect("a JSON Schema serializes");
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::report::model::{Headline, TrendPoint};

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test instant")
    }

    fn month() -> MonthReport {
        let mut r = MonthReport::empty(
            "acme",
            &crate::report::month::Month::parse("2026-03", "Europe/Berlin").expect("month"),
            ts("2026-03-18T12:30:00Z"),
        );
        r.headline = Headline {
            compliance_percent: Some(200.0 / 3.0),
            median_time_to_install_seconds: Some(273_600),
            ..Headline::default()
        };
        r.trend = vec![TrendPoint {
            month: "2026-02".to_string(),
            compliance_percent: None,
            overdue: 3,
            median_time_to_install_seconds: None,
        }];
        r
    }

    #[test]
    fn report_json_reads_back_to_the_same_month() {
        let bytes = json(&month());
        assert!(bytes.ends_with(b"}\n"));
        let back: MonthReport = serde_json::from_slice(&bytes).expect("report.json reads");
        assert_eq!(back, month());
        assert_eq!(json(&back), bytes);
    }

    #[test]
    fn report_json_uses_the_serde_names() {
        let text = String::from_utf8(json(&month())).expect("UTF-8");
        assert!(
            text.contains("\n  \"timeZone\": \"Europe/Berlin\",\n"),
            "{text}"
        );
        assert!(
            text.contains("\"asOf\": \"2026-03-18T12:30:00Z\""),
            "{text}"
        );
        assert!(
            text.contains("\"compliancePercent\": 66.66666666666667"),
            "{text}"
        );
        assert!(text.contains("\"compliancePercent\": null"), "{text}");
    }

    #[test]
    fn the_schema_names_itself_and_describes_the_model() {
        let schema: serde_json::Value =
            serde_json::from_slice(&json_schema()).expect("the schema is JSON");
        assert_eq!(schema["$id"], SCHEMA);
        assert_eq!(schema["title"], "MonthReport");
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert!(schema["properties"]["pairs"].is_object());
        assert!(schema["$defs"]["Unpatched"].is_object());
        assert_eq!(json_schema(), json_schema());
    }
}
