//! Value types shared by several kinds: durations, severities, classifications,
//! maintenance windows, freezes and the small helpers every status uses.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Seconds in a day, the unit most SLA and approval arithmetic is written in.
pub const DAY: i64 = 86_400;

/// Regular expression every [`Duration`] must match (also published in the schema).
pub const DURATION_PATTERN: &str = r"^[0-9]{1,7}(s|m|h|d|w)$";

/// A length of time written as a whole number and one unit: `90m`, `48h`, `7d`, `2w`.
///
/// The single-unit form keeps durations easy to read in YAML and lets CEL rules in the
/// CRDs compare them; `1d12h` is written `36h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    seconds: i64,
}

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: expected a whole number and one unit of s, m, h, d or w (e.g. 90m, 48h, 7d)"
)]
pub struct DurationError {
    /// The text that was refused.
    pub input: String,
}

impl Duration {
    /// A duration of `seconds` seconds (negative values are clamped to zero).
    pub const fn from_secs(seconds: i64) -> Self {
        Self {
            seconds: if seconds < 0 { 0 } else { seconds },
        }
    }

    /// A duration of whole days.
    pub const fn days(days: i64) -> Self {
        Self::from_secs(days * DAY)
    }

    /// A duration of whole hours.
    pub const fn hours(hours: i64) -> Self {
        Self::from_secs(hours * 3600)
    }

    /// The length in seconds.
    pub const fn as_secs(self) -> i64 {
        self.seconds
    }

    /// The length as a jiff span usable with timestamps.
    pub fn span(self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(self.seconds)
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DurationError {
            input: s.to_string(),
        };
        // The unit is the last character; split on a char boundary so that text ending
        // in a multi-byte character is refused rather than panicking.
        let unit_at = s.char_indices().last().map(|(i, _)| i).ok_or_else(err)?;
        let (digits, unit) = s.split_at(unit_at);
        if digits.is_empty() || digits.len() > 7 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let n: i64 = digits.parse().map_err(|_| err())?;
        let mult = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => DAY,
            "w" => 7 * DAY,
            _ => return Err(err()),
        };
        Ok(Self::from_secs(n * mult))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        for (unit, len) in [("w", 7 * DAY), ("d", DAY), ("h", 3600), ("m", 60)] {
            if s != 0 && s % len == 0 {
                return write!(f, "{}{unit}", s / len);
            }
        }
        write!(f, "{s}s")
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": 8,
            "description": "A whole number and one unit of s, m, h, d or w, e.g. 90m, 48h, 7d."
        })
    }
}

/// A CEL expression that evaluates a [`Duration`] field at `path` to seconds.
pub fn cel_duration_seconds(path: &str) -> String {
    format!(
        "(int({path}.substring(0, size({path}) - 1)) * {{'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}}[{path}.substring(size({path}) - 1)])"
    )
}

/// How urgent a patch is, from its CVSS score or its vendor's rating.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Severity {
    /// CVSS below 4.0, or no rating at all.
    Low,
    /// CVSS 4.0 to 6.9.
    Medium,
    /// CVSS 7.0 to 8.9.
    High,
    /// CVSS 9.0 and above.
    Critical,
}

impl Severity {
    /// Every severity, from the least to the most urgent.
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The severity band of a CVSS base score.
    pub fn from_cvss(score: f64) -> Self {
        if score >= 9.0 {
            Severity::Critical
        } else if score >= 7.0 {
            Severity::High
        } else if score >= 4.0 {
            Severity::Medium
        } else {
            Severity::Low
        }
    }

    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of update a patch is, as its vendor classifies it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Classification {
    /// A security update.
    Security,
    /// A critical, non-security fix.
    Critical,
    /// A new feature or version upgrade.
    Feature,
    /// A device driver.
    Driver,
    /// Firmware or BIOS.
    Firmware,
    /// Anti-malware definitions.
    Definition,
    /// A rollup of earlier updates.
    Rollup,
    /// Anything else.
    Other,
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A day of the week, as written in maintenance windows.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    /// The same day as jiff names it.
    pub fn to_jiff(self) -> jiff::civil::Weekday {
        use jiff::civil::Weekday as W;
        match self {
            Weekday::Mon => W::Monday,
            Weekday::Tue => W::Tuesday,
            Weekday::Wed => W::Wednesday,
            Weekday::Thu => W::Thursday,
            Weekday::Fri => W::Friday,
            Weekday::Sat => W::Saturday,
            Weekday::Sun => W::Sunday,
        }
    }

    /// The day jiff names, in manifest form.
    pub fn from_jiff(day: jiff::civil::Weekday) -> Self {
        use jiff::civil::Weekday as W;
        match day {
            W::Monday => Weekday::Mon,
            W::Tuesday => Weekday::Tue,
            W::Wednesday => Weekday::Wed,
            W::Thursday => Weekday::Thu,
            W::Friday => Weekday::Fri,
            W::Saturday => Weekday::Sat,
            W::Sunday => Weekday::Sun,
        }
    }
}

/// Regular expression for a wall-clock time `HH:MM`.
pub const TIME_OF_DAY_PATTERN: &str = r"^([01][0-9]|2[0-3]):[0-5][0-9]$";

/// A recurring span of wall-clock time in which installs may start.
///
/// A window opens on each selected day at `start` and closes at `end` in `timeZone`; when
/// `end` is not after `start` the window crosses midnight and closes the next day (equal
/// times make a 24-hour window). Days are chosen either by `days` (optionally narrowed
/// by `weeksOfMonth`) or by `patchTuesdayOffsetDays`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, kube::KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("has(self.days) != has(self.patchTuesdayOffsetDays)")
        .message("a window names either days or patchTuesdayOffsetDays, exactly one of them"),
    validation = kube::core::Rule::new("!has(self.weeksOfMonth) || has(self.days)")
        .message("weeksOfMonth narrows days, so days must be set")
)]
pub struct MaintenanceWindow {
    /// The days of the week on which the window opens (the day it starts, for a window
    /// that crosses midnight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 7))]
    #[x_kube(validation = kube::core::Rule::new("self.all(d, self.exists_one(e, e == d))").message("days must not repeat"))]
    pub days: Option<Vec<Weekday>>,
    /// Which occurrences of those days in a month count: 1 to 5 for the first to the
    /// fifth, -1 for the last. Unset means every week.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 5))]
    #[x_kube(validation = kube::core::Rule::new("self.all(w, (w >= 1 && w <= 5) || w == -1)").message("weeksOfMonth holds 1 to 5, or -1 for the last"))]
    pub weeks_of_month: Option<Vec<i32>>,
    /// Instead of `days`: the window opens once a month, this many days after Patch
    /// Tuesday (the second Tuesday of the month); 0 is Patch Tuesday itself, 3 the Friday
    /// after it, -1 the Monday before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -7, max = 21))]
    pub patch_tuesday_offset_days: Option<i32>,
    /// When the window opens, `HH:MM` wall-clock time in `timeZone`.
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub start: String,
    /// When the window closes, `HH:MM`; at or before `start` it closes the next day.
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub end: String,
    /// IANA time zone of `start` and `end`, e.g. `Europe/Berlin` (default `UTC`).
    /// Daylight-saving changes are followed: a start that falls in a skipped hour opens
    /// at the end of the gap, a repeated hour opens at its first occurrence.
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: String,
}

fn default_time_zone() -> String {
    "UTC".to_string()
}

/// A change freeze: no ring admits new devices between `from` and `until`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, kube::KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.until > self.from").message("until must be after from"))]
pub struct Freeze {
    /// When the freeze begins (RFC 3339).
    #[schemars(with = "Time")]
    pub from: jiff::Timestamp,
    /// When the freeze ends by itself (RFC 3339).
    #[schemars(with = "Time")]
    pub until: jiff::Timestamp,
    /// Why the freeze is in place (holiday, incident, DR test, …).
    #[schemars(length(min = 1))]
    pub reason: String,
    /// Who asked for it.
    #[schemars(length(min = 1))]
    pub owner: String,
}

/// A reference to a single condition type, as used in every kind's `status.conditions`.
pub mod condition {
    /// The object's decisions are current and it is doing what it should.
    pub const READY: &str = "Ready";
    /// The operator is still moving the object towards its desired state.
    pub const RECONCILING: &str = "Reconciling";
    /// The object cannot make progress without a person.
    pub const STALLED: &str = "Stalled";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_refuses_a_multibyte_unit_without_panicking() {
        for bad in ["5é", "é", "7日", "", "d", "12"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad:?}");
        }
        assert_eq!("36h".parse::<Duration>(), Ok(Duration::hours(36)));
    }
}
