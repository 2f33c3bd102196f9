//! Kubernetes label selectors, compiled once and matched against label maps.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// A selector that could not be understood; the message names the offending part.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SelectorError {
    /// The field within the selector, e.g. `matchExpressions[0].operator`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Clone, Debug)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A compiled label selector. An empty selector matches every object.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    reqs: Vec<Requirement>,
}

impl Selector {
    /// Compiles a selector, refusing unknown operators and malformed requirements.
    pub fn compile(sel: &LabelSelector) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(Requirement::In(k.clone(), vec![v.clone()]));
        }
        for (i, expr) in sel.match_expressions.iter().flatten().enumerate() {
            let values = expr.values.clone().unwrap_or_default();
            let field = |f: &str| format!("matchExpressions[{i}].{f}");
            let req = match expr.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(SelectorError {
                        field: field("values"),
                        message: format!("operator {} needs at least one value", expr.operator),
                    });
                }
                "In" => Requirement::In(expr.key.clone(), values),
                "NotIn" => Requirement::NotIn(expr.key.clone(), values),
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(SelectorError {
                        field: field("values"),
                        message: format!("operator {} takes no values", expr.operator),
                    });
                }
                "Exists" => Requirement::Exists(expr.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(expr.key.clone()),
                other => {
                    return Err(SelectorError {
                        field: field("operator"),
                        message: format!(
                            "unknown operator {other:?} (expected In, NotIn, Exists or DoesNotExist)"
                        ),
                    });
                }
            };
            reqs.push(req);
        }
        Ok(Self { reqs })
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k));
        self.reqs.iter().all(|r| match r {
            Requirement::In(k, vs) => get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|s| s.to_string()).collect())
            },
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        let s = Selector::compile(&LabelSelector::default()).unwrap();
        assert!(s.matches(None));
        assert!(s.matches(Some(&labels(&[("a", "b")]))));
    }

    #[test]
    fn match_labels_and_expressions_all_must_hold() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("class", "workstation")])),
            match_expressions: Some(vec![
                expr("tier", "In", &["tier-1", "tier-2"]),
                expr("legacy", "DoesNotExist", &[]),
                expr("site", "NotIn", &["lab"]),
            ]),
        };
        let s = Selector::compile(&sel).unwrap();
        assert!(s.matches(Some(&labels(&[
            ("class", "workstation"),
            ("tier", "tier-1")
        ]))));
        assert!(!s.matches(Some(&labels(&[
            ("class", "workstation"),
            ("tier", "tier-3")
        ]))));
        assert!(!s.matches(Some(&labels(&[
            ("class", "workstation"),
            ("tier", "tier-1"),
            ("legacy", "")
        ]))));
        assert!(!s.matches(Some(&labels(&[
            ("class", "workstation"),
            ("tier", "tier-1"),
            ("site", "lab")
        ]))));
        assert!(!s.matches(Some(&labels(&[("tier", "tier-1")]))));
    }

    #[test]
    fn malformed_selectors_name_the_part() {
        let bad = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![expr("a", "Equals", &["x"])]),
        };
        let err = Selector::compile(&bad).unwrap_err();
        assert_eq!(err.field, "matchExpressions[0].operator");
        let bad = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![expr("a", "In", &[])]),
        };
        assert_eq!(
            Selector::compile(&bad).unwrap_err().field,
            "matchExpressions[0].values"
        );
    }
}
