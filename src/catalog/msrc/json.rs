//! The JSON form of the CVRF document (`Accept: application/json` on the MSRC API):
//! PascalCase fields, text wrapped as `{"Value": …}`, types as numbers.

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::Value;

use super::{Document, Entry, RawRemediation, RawScoreSet, RawThreat, RawVuln};
use crate::catalog::{Problem, shorten};

/// Reads the document's header and its Vulnerability records; an error says why the
/// bytes are not a CVRF document in JSON.
pub(super) fn read(bytes: &[u8]) -> Result<Document, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("bad JSON: {e}"))?;
    let Value::Object(mut top) = value else {
        return Err("the JSON is not an object".to_string());
    };
    let known = [
        "DocumentTitle",
        "DocumentTracking",
        "ProductTree",
        "Vulnerability",
    ];
    if !known.iter().any(|field| top.contains_key(*field)) {
        return Err("no DocumentTitle, DocumentTracking, ProductTree or Vulnerability".into());
    }
    let vulnerabilities = match top.remove("Vulnerability") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => return Err("Vulnerability is not a list".to_string()),
    };
    let title = top.get("DocumentTitle").and_then(text);
    let initial_release = top
        .get("DocumentTracking")
        .and_then(|t| t.get("InitialReleaseDate"))
        .and_then(text);
    let mut products = HashMap::new();
    if let Some(tree) = top.get("ProductTree") {
        collect_products(tree, &mut products);
    }
    Ok(Document {
        title,
        initial_release,
        products,
        vulnerabilities: vulnerabilities.into_iter().map(entry).collect(),
    })
}

/// The text of a value the document writes as `{"Value": "…"}`, as a bare string or
/// as a number.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Object(map) => map.get("Value").and_then(text),
        Value::Null | Value::Array(_) => None,
    }
}

/// Every `{ProductID, Value}` object anywhere in the ProductTree (FullProductName and
/// the Branch items).
fn collect_products(value: &Value, products: &mut HashMap<String, String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| collect_products(v, products)),
        Value::Object(map) => {
            let id = map.get("ProductID").and_then(text);
            let name = map.get("Value").and_then(text);
            if let (Some(id), Some(name)) = (id, name) {
                products.entry(id.trim().to_string()).or_insert(name);
            }
            map.values()
                .filter(|v| v.is_array() || v.is_object())
                .for_each(|v| collect_products(v, products));
        }
        _ => {}
    }
}

/// One Vulnerability record.
fn entry(value: Value) -> Entry {
    let ordinal = value.get("Ordinal").and_then(text);
    let cve = value.get("CVE").and_then(text);
    let body = match JsonVuln::deserialize(&value) {
        Ok(vuln) => Ok(vuln.into_raw()),
        Err(e) => Err(Problem::Invalid {
            field: "Vulnerability".to_string(),
            why: e.to_string(),
            got: shorten(&value.to_string()),
        }),
    };
    Entry { ordinal, cve, body }
}

/// A text field that may be written as `{"Value": …}`, a string or a number.
#[derive(Debug, Default)]
struct Text(Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match &value {
            Value::Array(_) => Err(de::Error::custom(format!(
                "expected text, got {}",
                shorten(&value.to_string())
            ))),
            _ => Ok(Text(text(&value))),
        }
    }
}

/// A list of ProductIDs, or a single one.
#[derive(Debug, Default)]
struct Ids(Vec<String>);

impl<'de> Deserialize<'de> for Ids {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let items = match value {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            other => vec![other],
        };
        items
            .iter()
            .map(|item| match item {
                Value::String(_) | Value::Number(_) => Ok(text(item).unwrap_or_default()),
                _ => Err(de::Error::custom(format!(
                    "a ProductID is {}",
                    shorten(&item.to_string())
                ))),
            })
            .map(|id| id.map(|id: String| id.trim().to_string()))
            .collect::<Result<Vec<_>, _>>()
            .map(Ids)
    }
}

/// A list that may be written as `null`.
fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// A Vulnerability record, the fields this feed uses.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct JsonVuln {
    /// `Threats`.
    #[serde(deserialize_with = "list")]
    threats: Vec<JsonThreat>,
    /// `CVSSScoreSets`.
    #[serde(rename = "CVSSScoreSets")]
    #[serde(deserialize_with = "list")]
    score_sets: Vec<JsonScoreSet>,
    /// `Remediations`.
    #[serde(deserialize_with = "list")]
    remediations: Vec<JsonRemediation>,
    /// `RevisionHistory`.
    #[serde(deserialize_with = "list")]
    revision_history: Vec<JsonRevision>,
}

/// A `Threats` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct JsonThreat {
    /// `Type`: 0 Impact, 1 Exploit Status, 3 Severity.
    #[serde(rename = "Type")]
    kind: Text,
    /// `Description`.
    description: Text,
    /// `ProductID`.
    #[serde(rename = "ProductID")]
    products: Ids,
}

/// A `CVSSScoreSets` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct JsonScoreSet {
    /// `BaseScore`.
    base_score: Text,
    /// `Vector`.
    vector: Text,
    /// `ProductID`.
    #[serde(rename = "ProductID")]
    products: Ids,
}

/// A `Remediations` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct JsonRemediation {
    /// `Type`: 2 Vendor Fix.
    #[serde(rename = "Type")]
    kind: Text,
    /// `Description`.
    description: Text,
    /// `ProductID`.
    #[serde(rename = "ProductID")]
    products: Ids,
    /// `RestartRequired`.
    restart_required: Text,
    /// `SubType`.
    sub_type: Text,
    /// `Supercedence`.
    supercedence: Text,
}

/// A `RevisionHistory` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct JsonRevision {
    /// `Date`.
    date: Text,
}

impl JsonVuln {
    /// The record in the form both document forms share.
    fn into_raw(self) -> RawVuln {
        RawVuln {
            threats: self
                .threats
                .into_iter()
                .map(|t| RawThreat {
                    kind: t.kind.0,
                    description: t.description.0,
                    products: t.products.0,
                })
                .collect(),
            score_sets: self
                .score_sets
                .into_iter()
                .map(|s| RawScoreSet {
                    base_score: s.base_score.0,
                    vector: s.vector.0,
                    products: s.products.0,
                })
                .collect(),
            remediations: self
                .remediations
                .into_iter()
                .map(|r| RawRemediation {
                    kind: r.kind.0,
                    description: r.description.0,
                    products: r.products.0,
                    restart_required: r.restart_required.0,
                    sub_type: r.sub_type.0,
                    supercedence: r.supercedence.0,
                })
                .collect(),
            revision_dates: self
                .revision_history
                .into_iter()
                .map(|r| r.date.0)
                .collect(),
        }
    }
}
