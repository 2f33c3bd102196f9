//! The OpenAPI v3 checks an API server makes on a custom resource before CEL: types,
//! required fields, enums, patterns, bounds, lengths, list types, formats and unknown
//! fields, plus its defaulting, all evaluated offline against the CRD schemas.
//!
//! The CEL rules (`x-kubernetes-validations`) are not evaluated here; see
//! [`kube::core::cel`].

use std::collections::{HashMap, HashSet};

use regex::Regex;
use serde_json::{Map, Value};

/// One thing wrong with a value: where (a field path such as `spec.rings[0]`, empty for
/// the document itself) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Finding {
    pub field: String,
    pub message: String,
}

/// An RFC 3339 date-time, as `format: date-time` requires (offset mandatory).
const DATE_TIME: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$";

/// The regular expressions of a set of schemas, each compiled once.
#[derive(Debug, Default)]
pub(crate) struct Patterns {
    compiled: HashMap<String, Result<Regex, String>>,
}

impl Patterns {
    /// Compiles every `pattern` found in `schema` (and the date-time syntax).
    pub(crate) fn add_schema(&mut self, schema: &Value) {
        self.add(DATE_TIME);
        self.walk(schema);
    }

    fn add(&mut self, pattern: &str) {
        if !self.compiled.contains_key(pattern) {
            let re = Regex::new(pattern).map_err(|e| e.to_string());
            self.compiled.insert(pattern.to_string(), re);
        }
    }

    fn walk(&mut self, node: &Value) {
        let Some(s) = node.as_object() else { return };
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            self.add(p);
        }
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            for child in props.values() {
                self.walk(child);
            }
        }
        for key in ["items", "additionalProperties", "not"] {
            if let Some(child) = s.get(key) {
                self.walk(child);
            }
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(branches) = s.get(key).and_then(Value::as_array) {
                for child in branches {
                    self.walk(child);
                }
            }
        }
    }

    fn get(&self, pattern: &str) -> Option<&Result<Regex, String>> {
        self.compiled.get(pattern)
    }
}

fn flag(s: &Map<String, Value>, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool) == Some(true)
}

fn nullable(schema: &Value) -> bool {
    schema.get("nullable").and_then(Value::as_bool) == Some(true)
}

fn is_integer_node(s: &Map<String, Value>) -> bool {
    s.get("type").and_then(Value::as_str) == Some("integer")
        || flag(s, "x-kubernetes-int-or-string")
}

/// Largest integer an `f64` holds exactly.
const MAX_SAFE: f64 = 9_007_199_254_740_992.0;

/// Applies a schema's defaults to `value` the way an API server does before it
/// validates: a `null` in a field that is not `nullable` is dropped (or replaced by the
/// field's default), an absent field with a `default` gets it, recursively, including
/// inside defaults just applied. Also writes whole numbers such as `3.0` in integer
/// fields as integers.
pub(crate) fn apply_defaults(schema: &Value, value: &mut Value) {
    let Some(s) = schema.as_object() else { return };
    match value {
        Value::Object(m) => {
            let props = s.get("properties").and_then(Value::as_object);
            if let Some(props) = props {
                for (key, prop) in props {
                    let missing = match m.get(key) {
                        None => true,
                        Some(Value::Null) => !nullable(prop),
                        Some(_) => false,
                    };
                    if missing {
                        match prop.get("default") {
                            Some(d) => {
                                m.insert(key.clone(), d.clone());
                            }
                            None => {
                                m.remove(key);
                            }
                        }
                    }
                }
            }
            let additional = s
                .get("additionalProperties")
                .filter(|a| a.is_object() && !flag(s, "x-kubernetes-preserve-unknown-fields"));
            if let Some(add) = additional
                && !nullable(add)
            {
                let nulls: Vec<String> = m
                    .iter()
                    .filter(|(k, v)| v.is_null() && !props.is_some_and(|p| p.contains_key(*k)))
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in nulls {
                    match add.get("default") {
                        Some(d) => {
                            m.insert(key, d.clone());
                        }
                        None => {
                            m.remove(&key);
                        }
                    }
                }
            }
            for (key, child) in m.iter_mut() {
                if let Some(prop) = props.and_then(|p| p.get(key)) {
                    apply_defaults(prop, child);
                } else if let Some(add) = additional {
                    apply_defaults(add, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items") {
                for item in items.iter_mut() {
                    if item.is_null()
                        && !nullable(item_schema)
                        && let Some(d) = item_schema.get("default")
                    {
                        *item = d.clone();
                    }
                    apply_defaults(item_schema, item);
                }
            }
        }
        Value::Number(n) if is_integer_node(s) && !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() <= MAX_SAFE
            {
                // Exact: `f` is whole and within the range an i64 holds.
                *value = Value::from(f as i64);
            }
        }
        _ => {}
    }
}

/// Removes the `null`s left in fields of objects with declared properties (they are
/// `nullable` ones, as [`apply_defaults`] dropped the others), recursively. An API
/// server's CEL treats such a field as absent (`has()` is false, its own rules do not
/// run), while kube's client-side evaluator sees a null; stripping them first gives the
/// server's answer. Nulls in maps and lists are kept.
pub(crate) fn strip_nulls(schema: &Value, value: &mut Value) {
    let Some(s) = schema.as_object() else { return };
    match value {
        Value::Object(m) => {
            let props = s.get("properties").and_then(Value::as_object);
            if let Some(props) = props {
                m.retain(|k, v| !(v.is_null() && props.contains_key(k)));
            }
            let additional = s.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in m.iter_mut() {
                if let Some(prop) = props.and_then(|p| p.get(key)) {
                    strip_nulls(prop, child);
                } else if let Some(add) = additional {
                    strip_nulls(add, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items") {
                for item in items.iter_mut() {
                    strip_nulls(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

/// Checks `value` (a whole object: apiVersion, kind and metadata are allowed at its root
/// and not looked into) against `schema`, returning every finding.
pub(crate) fn validate(schema: &Value, value: &Value, patterns: &Patterns) -> Vec<Finding> {
    let mut checker = Checker {
        patterns,
        findings: Vec::new(),
    };
    checker.node(schema, value, "", true);
    checker.findings
}

struct Checker<'a> {
    patterns: &'a Patterns,
    findings: Vec<Finding>,
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(t: &str) -> &str {
    match t {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "a boolean",
        other => other,
    }
}

/// What a value is, for "must be X, found Y".
pub(crate) fn found(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(_) => "a boolean".to_string(),
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer".to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(_) => "a string".to_string(),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a mapping".to_string(),
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        // An unknown type name is a schema error an API server would have refused.
        _ => true,
    }
}

/// A schema bound as written by a person: `100`, not `100.0`.
fn show_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() <= MAX_SAFE {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// A value as written in YAML, for messages: strings quoted, others as JSON.
fn show_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

fn bound(s: &Map<String, Value>, key: &str) -> Option<u64> {
    let v = s.get(key)?;
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known name closest to `name`, if it is close enough to be a typo.
pub(crate) fn suggest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    let limit = (name.chars().count() / 3).clamp(1, 3);
    known
        .into_iter()
        .map(|k| (distance(&lower, &k.to_lowercase()), k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k)
}

impl Checker<'_> {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        self.findings.push(Finding {
            field: field.to_string(),
            message: message.into(),
        });
    }

    /// Whether `value` satisfies `schema` (for `anyOf`, `oneOf` and `not`), and the
    /// findings if it does not.
    fn branch(&self, schema: &Value, value: &Value, path: &str) -> Vec<Finding> {
        let mut sub = Checker {
            patterns: self.patterns,
            findings: Vec::new(),
        };
        sub.node(schema, value, path, false);
        sub.findings
    }

    fn node(&mut self, schema: &Value, value: &Value, path: &str, root: bool) {
        let Some(s) = schema.as_object() else { return };
        if value.is_null() && nullable(schema) {
            return;
        }
        let mismatch = match s.get("type").and_then(Value::as_str) {
            Some(t) if !type_matches(t, value) => {
                Some(format!("must be {}, found {}", type_name(t), found(value)))
            }
            None if flag(s, "x-kubernetes-int-or-string")
                && !(value.is_i64() || value.is_u64() || value.is_string()) =>
            {
                Some(format!(
                    "must be an integer or a string, found {}",
                    found(value)
                ))
            }
            _ => None,
        };
        if let Some(message) = mismatch {
            self.push(path, message);
            return;
        }
        if let Some(allowed) = s.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            let names: Vec<String> = allowed
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            self.push(
                path,
                format!("{} is not one of {}", show_value(value), names.join(", ")),
            );
        }
        match value {
            Value::String(text) => self.string(s, text, path),
            Value::Number(_) => self.number(s, value, path),
            Value::Array(items) => self.array(s, items, path),
            Value::Object(map) => self.object(s, map, path, root),
            Value::Null | Value::Bool(_) => {}
        }
        self.junctors(s, value, path);
    }

    fn string(&mut self, s: &Map<String, Value>, text: &str, path: &str) {
        let len = text.chars().count() as u64;
        if let Some(min) = bound(s, "minLength")
            && len < min
        {
            self.push(
                path,
                format!(
                    "must be at least {} long",
                    plural(min, "character", "characters")
                ),
            );
        }
        if let Some(max) = bound(s, "maxLength")
            && len > max
        {
            self.push(
                path,
                format!(
                    "must be at most {} long",
                    plural(max, "character", "characters")
                ),
            );
        }
        if let Some(pattern) = s.get("pattern").and_then(Value::as_str) {
            match self.patterns.get(pattern) {
                Some(Ok(re)) => {
                    if !re.is_match(text) {
                        self.push(path, format!("must match {pattern}"));
                    }
                }
                Some(Err(e)) => self.push(
                    path,
                    format!("the schema's pattern {pattern} cannot be checked: {e}"),
                ),
                None => self.push(
                    path,
                    format!("the schema's pattern {pattern} was not compiled"),
                ),
            }
        }
        if s.get("format").and_then(Value::as_str) == Some("date-time") {
            let syntax_ok = match self.patterns.get(DATE_TIME) {
                Some(Ok(re)) => re.is_match(text),
                _ => true,
            };
            if !syntax_ok || text.parse::<jiff::Timestamp>().is_err() {
                self.push(
                    path,
                    "must be an RFC 3339 date-time such as 2026-01-31T22:00:00Z",
                );
            }
        }
    }

    fn number(&mut self, s: &Map<String, Value>, value: &Value, path: &str) {
        let Some(x) = value.as_f64() else { return };
        let before = self.findings.len();
        let exclusive = |key: &str| flag(s, key);
        if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
            if exclusive("exclusiveMinimum") {
                if x <= min {
                    self.push(path, format!("must be greater than {}", show_number(min)));
                }
            } else if x < min {
                self.push(path, format!("must be at least {}", show_number(min)));
            }
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
            if exclusive("exclusiveMaximum") {
                if x >= max {
                    self.push(path, format!("must be less than {}", show_number(max)));
                }
            } else if x > max {
                self.push(path, format!("must be at most {}", show_number(max)));
            }
        }
        if let Some(m) = s.get("multipleOf").and_then(Value::as_f64)
            && m > 0.0
            && (x / m).fract() != 0.0
        {
            self.push(path, format!("must be a multiple of {}", show_number(m)));
        }
        let range = match s.get("format").and_then(Value::as_str) {
            Some("int32") => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
            Some("uint32") => Some((0, i64::from(u32::MAX))),
            Some("int64") => Some((i64::MIN, i64::MAX)),
            _ => None,
        };
        // The format's range, unless a bound of the schema already refused the value.
        if let Some((lo, hi)) = range
            && self.findings.len() == before
            && (value.is_i64() || value.is_u64())
            && !value.as_i64().is_some_and(|i| (lo..=hi).contains(&i))
        {
            self.push(path, format!("must be between {lo} and {hi}"));
        }
    }

    fn array(&mut self, s: &Map<String, Value>, items: &[Value], path: &str) {
        let n = items.len() as u64;
        if let Some(min) = bound(s, "minItems")
            && n < min
        {
            self.push(
                path,
                format!("must have at least {}", plural(min, "item", "items")),
            );
        }
        if let Some(max) = bound(s, "maxItems")
            && n > max
        {
            self.push(
                path,
                format!("must have at most {}", plural(max, "item", "items")),
            );
        }
        match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => {
                let mut seen = HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    if !seen.insert(item.to_string()) {
                        self.push(
                            &format!("{path}[{i}]"),
                            format!("duplicate value {}", show_value(item)),
                        );
                    }
                }
            }
            Some("map") => {
                let keys: Vec<&str> = s
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|k| k.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let mut seen = HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    let Some(obj) = item.as_object() else {
                        continue;
                    };
                    let values: Vec<(&str, &Value)> = keys
                        .iter()
                        .filter_map(|k| obj.get(*k).map(|v| (*k, v)))
                        .collect();
                    if values.len() != keys.len() || keys.is_empty() {
                        // A missing key is reported by `required`.
                        continue;
                    }
                    let key = serde_json::to_string(&values).unwrap_or_default();
                    if !seen.insert(key) {
                        let shown: Vec<String> = values
                            .iter()
                            .map(|(k, v)| format!("{k} {}", show_value(v)))
                            .collect();
                        self.push(
                            &format!("{path}[{i}]"),
                            format!("duplicate entry with {}", shown.join(" and ")),
                        );
                    }
                }
            }
            _ => {}
        }
        if let Some(item_schema) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.node(item_schema, item, &format!("{path}[{i}]"), false);
            }
        }
    }

    fn object(&mut self, s: &Map<String, Value>, map: &Map<String, Value>, path: &str, root: bool) {
        let n = map.len() as u64;
        if let Some(min) = bound(s, "minProperties")
            && n < min
        {
            self.push(
                path,
                format!("must have at least {}", plural(min, "entry", "entries")),
            );
        }
        if let Some(max) = bound(s, "maxProperties")
            && n > max
        {
            self.push(
                path,
                format!("must have at most {}", plural(max, "entry", "entries")),
            );
        }
        if let Some(required) = s.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(name) {
                    self.push(&child_path(path, name), "required field is missing");
                }
            }
        }
        let empty = Map::new();
        let props = s
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let preserve = flag(s, "x-kubernetes-preserve-unknown-fields");
        let additional = s.get("additionalProperties");
        let embedded = root || flag(s, "x-kubernetes-embedded-resource");
        // An object node without a type (a branch of anyOf/allOf) only adds
        // constraints; it does not close the object.
        let closed = !preserve
            && additional.is_none_or(|a| a == &Value::Bool(false))
            && (s.get("type").and_then(Value::as_str) == Some("object") || !props.is_empty());
        for (key, child) in map {
            if let Some(prop) = props.get(key) {
                if !(embedded && key == "metadata") {
                    self.node(prop, child, &child_path(path, key), false);
                }
            } else if embedded && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                // Checked by the caller (kind dispatch and metadata rules).
            } else if let Some(add) = additional.filter(|a| a.is_object()) {
                if !preserve {
                    self.node(add, child, &format!("{path}[{key}]"), false);
                }
            } else if closed {
                let message = match suggest(key, props.keys().map(String::as_str)) {
                    Some(near) => format!("unknown field (did you mean {near}?)"),
                    None => "unknown field".to_string(),
                };
                self.push(&child_path(path, key), message);
            }
        }
    }

    fn junctors(&mut self, s: &Map<String, Value>, value: &Value, path: &str) {
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for branch in all {
                let found = self.branch(branch, value, path);
                self.findings.extend(found);
            }
        }
        if let Some(any) = s.get("anyOf").and_then(Value::as_array)
            && !any.is_empty()
        {
            let results: Vec<Vec<Finding>> =
                any.iter().map(|b| self.branch(b, value, path)).collect();
            if results.iter().all(|r| !r.is_empty()) {
                let messages: Vec<String> = results
                    .iter()
                    .flatten()
                    .map(|f| f.message.clone())
                    .collect();
                self.push(
                    path,
                    format!("must satisfy one of: {}", messages.join("; or ")),
                );
            }
        }
        if let Some(one) = s.get("oneOf").and_then(Value::as_array)
            && !one.is_empty()
        {
            let passing = one
                .iter()
                .filter(|b| self.branch(b, value, path).is_empty())
                .count();
            if passing != 1 {
                self.push(
                    path,
                    format!(
                        "must satisfy exactly one of {} forms, satisfies {passing}",
                        one.len()
                    ),
                );
            }
        }
        if let Some(not) = s.get("not")
            && self.branch(not, value, path).is_empty()
        {
            self.push(path, "has a form the schema forbids");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(schema: Value, value: Value) -> Vec<(String, String)> {
        let mut patterns = Patterns::default();
        patterns.add_schema(&schema);
        let mut value = value;
        apply_defaults(&schema, &mut value);
        let mut found: Vec<(String, String)> = validate(&schema, &value, &patterns)
            .into_iter()
            .map(|f| (f.field, f.message))
            .collect();
        found.sort();
        found
    }

    fn f(field: &str, message: &str) -> (String, String) {
        (field.to_string(), message.to_string())
    }

    fn spec(props: Value) -> Value {
        json!({
            "type": "object",
            "required": ["spec"],
            "properties": {"spec": {"type": "object", "properties": props}}
        })
    }

    #[test]
    fn types_and_nullable() {
        let schema = spec(json!({
            "s": {"type": "string"},
            "i": {"type": "integer"},
            "n": {"type": "number"},
            "b": {"type": "boolean"},
            "l": {"type": "array", "items": {"type": "string"}},
            "o": {"type": "object", "nullable": true, "properties": {}},
        }));
        assert_eq!(
            check(
                schema.clone(),
                json!({"spec": {"s": "x", "i": 3.0, "n": 2, "b": true, "l": ["a"], "o": null}})
            ),
            vec![]
        );
        assert_eq!(
            check(
                schema,
                json!({"spec": {"s": 1, "i": 1.5, "n": "2", "b": "yes", "l": ["a", 2], "o": []}})
            ),
            vec![
                f("spec.b", "must be a boolean, found a string"),
                f("spec.i", "must be an integer, found 1.5"),
                f("spec.l[1]", "must be a string, found an integer"),
                f("spec.n", "must be a number, found a string"),
                f("spec.o", "must be a mapping, found a list"),
                f("spec.s", "must be a string, found an integer"),
            ]
        );
    }

    #[test]
    fn nulls_in_non_nullable_fields_count_as_absent_and_take_defaults() {
        let schema = json!({
            "type": "object",
            "required": ["a"],
            "properties": {
                "a": {"type": "string"},
                "d": {"type": "string", "default": "x"},
                "m": {"type": "object", "default": {}, "properties": {"k": {"type": "integer", "default": 1}}},
                "l": {"type": "array", "items": {"type": "string"}},
            }
        });
        let mut v = json!({"a": null, "d": null, "l": ["a", null]});
        apply_defaults(&schema, &mut v);
        assert_eq!(v, json!({"d": "x", "m": {"k": 1}, "l": ["a", null]}));
        assert_eq!(
            check(schema, json!({"a": null, "l": ["a", null]})),
            vec![
                f("a", "required field is missing"),
                f("l[1]", "must be a string, found null"),
            ]
        );
    }

    #[test]
    fn enums_patterns_lengths_and_bounds() {
        let schema = spec(json!({
            "e": {"type": "string", "enum": ["A", "B"]},
            "p": {"type": "string", "pattern": "^[0-9]+d$", "maxLength": 3, "minLength": 2},
            "x": {"type": "number", "minimum": 0.0, "maximum": 100.0},
            "y": {"type": "integer", "minimum": 0, "exclusiveMinimum": true},
            "z": {"type": "integer", "format": "int32"},
            "u": {"type": "string", "maxLength": 2},
        }));
        assert_eq!(
            check(
                schema,
                json!({"spec": {"e": "C", "p": "1234", "x": 120, "y": 0, "z": 3_000_000_000_i64, "u": "éé"}})
            ),
            vec![
                f("spec.e", "\"C\" is not one of A, B"),
                f("spec.p", "must be at most 3 characters long"),
                f("spec.p", "must match ^[0-9]+d$"),
                f("spec.x", "must be at most 100"),
                f("spec.y", "must be greater than 0"),
                f("spec.z", "must be between -2147483648 and 2147483647"),
            ]
        );
    }

    #[test]
    fn list_lengths_and_uniqueness() {
        let schema = spec(json!({
            "l": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
            "s": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "m": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["id"],
                "items": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}
            },
        }));
        assert_eq!(
            check(
                schema.clone(),
                json!({"spec": {"l": [], "s": ["a", "b", "a"], "m": [{"id": "x"}, {"id": "y"}, {"id": "x"}, {}]}})
            ),
            vec![
                f("spec.l", "must have at least 1 item"),
                f("spec.m[2]", "duplicate entry with id \"x\""),
                f("spec.m[3].id", "required field is missing"),
                f("spec.s[2]", "duplicate value \"a\""),
            ]
        );
        assert_eq!(
            check(schema, json!({"spec": {"l": ["a", "b", "c"]}})),
            vec![f("spec.l", "must have at most 2 items")]
        );
    }

    #[test]
    fn unknown_fields_maps_and_preserved_fields() {
        let schema = spec(json!({
            "maxConcurrent": {"type": "integer"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "open": {"type": "object", "additionalProperties": true},
        }));
        assert_eq!(
            check(
                schema,
                json!({
                    "apiVersion": "x/v1", "kind": "K", "metadata": {"anything": 1},
                    "spec": {
                        "maxConcurent": 1, "zzz": 2, "labels": {"a": "b", "c": 1},
                        "free": {"x": 1}, "open": {"y": 2}
                    },
                    "extra": true
                })
            ),
            vec![
                f("extra", "unknown field"),
                f("spec.labels[c]", "must be a string, found an integer"),
                f(
                    "spec.maxConcurent",
                    "unknown field (did you mean maxConcurrent?)"
                ),
                f("spec.zzz", "unknown field"),
            ]
        );
    }

    #[test]
    fn int_or_string_and_date_time() {
        let schema = spec(json!({
            "ios": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "t": {"type": "string", "format": "date-time"},
        }));
        for ok in [json!(3), json!("25%"), json!(2.0)] {
            assert_eq!(
                check(
                    schema.clone(),
                    json!({"spec": {"ios": ok, "t": "2026-01-31T22:00:00+01:00"}})
                ),
                vec![]
            );
        }
        assert_eq!(
            check(
                schema.clone(),
                json!({"spec": {"ios": true, "t": "2026-01-31"}})
            ),
            vec![
                f(
                    "spec.ios",
                    "must be an integer or a string, found a boolean"
                ),
                f(
                    "spec.t",
                    "must be an RFC 3339 date-time such as 2026-01-31T22:00:00Z"
                ),
            ]
        );
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-01-31T22:00:00",
            "2026-01-31 22:00:00Z",
        ] {
            assert_eq!(
                check(schema.clone(), json!({"spec": {"t": bad}})).len(),
                1,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_value_out_of_bounds_is_reported_once() {
        let schema = spec(json!({"n": {"type": "integer", "format": "uint32", "minimum": 0.0}}));
        assert_eq!(
            check(schema.clone(), json!({"spec": {"n": -1}})),
            vec![f("spec.n", "must be at least 0")]
        );
        assert_eq!(
            check(schema, json!({"spec": {"n": 4_294_967_296_i64}})),
            vec![f("spec.n", "must be between 0 and 4294967295")]
        );
    }

    #[test]
    fn nullable_nulls_are_stripped_from_objects_only() {
        let schema = spec(json!({
            "d": {"type": "string", "nullable": true},
            "m": {"type": "object", "additionalProperties": {"type": "string", "nullable": true}},
            "l": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "string", "nullable": true}}}},
        }));
        let mut v = json!({"spec": {"d": null, "m": {"k": null}, "l": [{"x": null}]}});
        strip_nulls(&schema, &mut v);
        assert_eq!(v, json!({"spec": {"m": {"k": null}, "l": [{}]}}));
    }

    #[test]
    fn suggestions_are_close_names_only() {
        let known = ["maxConcurrent", "maintenanceWindows", "promotion"];
        assert_eq!(suggest("maxConcurent", known), Some("maxConcurrent"));
        assert_eq!(suggest("Promotion", known), Some("promotion"));
        assert_eq!(suggest("halt", known), None);
    }
}
