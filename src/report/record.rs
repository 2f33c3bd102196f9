//! Closing a month for the operator, and what its `PatchReport` records: the pure part of
//! the operator's report controller. [`seal`] makes a month's packet from a snapshot;
//! [`adopt`] checks a packet found in the store before it is recorded; [`closed`],
//! [`pending`] and [`failed`] are the statuses.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::api::{
    Headline, PatchReportStatus, ReportFile, ReportPhase, ReportReason, condition::READY,
};
use crate::engine::Snapshot;
use crate::engine::decision::Health;

use super::cli::TREND_MONTHS;
use super::inputs::{Inputs, hex};
use super::model::MonthReport;
use super::month::Month;
use super::packet::{PacketError, SIG, SUMS, Sealed, VerifyError, verify};
use super::{assemble, build};

/// Why a stored packet cannot be recorded as a month's.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// It does not verify.
    #[error("the stored packet does not verify: {}", list(.0))]
    DoesNotVerify(Vec<VerifyError>),
    /// Its `inputs.json` is not ringmaster's statement of inputs.
    #[error("the stored packet's inputs.json is not ringmaster's statement of inputs")]
    NoInputs,
    /// It is another tenant's, month's or time zone's packet.
    #[error(
        "the stored packet is {found}'s, not {wanted}'s: a closed month never changes, so it is left as it is"
    )]
    OtherMonth {
        /// Namespace, month and zone wanted.
        wanted: String,
        /// Namespace, month and zone found.
        found: String,
    },
    /// Its `report.json` cannot be read.
    #[error("the stored packet's report.json cannot be read: {0}")]
    Report(String),
}

fn list(errors: &[VerifyError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A closed month's packet as its `PatchReport` records it.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// `sha256:` and the packet digest.
    pub digest: String,
    /// The files `SHA256SUMS` lists.
    pub files: Vec<ReportFile>,
    /// The month's headline figures.
    pub headline: Headline,
    /// Whether it carries `SHA256SUMS.sig`.
    pub signed: bool,
    /// The ringmaster version that made it.
    pub ringmaster_version: String,
}

/// Builds `month`'s report for the tenant of `snap` as of `now` (its end, when it has
/// ended), with the trend of the months before it, and seals it (signed with `key`).
pub fn seal(
    snap: &Snapshot<'_>,
    month: &Month,
    now: Timestamp,
    key: Option<&SigningKey>,
) -> Result<(MonthReport, Sealed), PacketError> {
    let previous = build::trend_before(snap, month, TREND_MONTHS);
    let report = build::build(snap, month, now, &previous);
    let sealed = assemble::packet(&report, snap, month, key)?;
    Ok((report, sealed))
}

/// The record of a packet this operator just sealed.
pub fn of_sealed(report: &MonthReport, sealed: &Sealed) -> Record {
    Record {
        digest: format!("sha256:{}", sealed.digest()),
        files: listed(sealed.files()),
        headline: report.headline.clone(),
        signed: sealed.signature().is_some(),
        ringmaster_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// Checks a packet found in the store where `namespace`'s `month` goes, and records it
/// when it verifies and is that month's: a closed month is never made twice.
pub fn adopt(
    files: &BTreeMap<String, Vec<u8>>,
    namespace: &str,
    month: &Month,
) -> Result<Record, AdoptError> {
    let verified = verify(files, None, None).map_err(AdoptError::DoesNotVerify)?;
    let inputs: Inputs = verified.inputs.ok_or(AdoptError::NoInputs)?;
    let wanted = format!("{namespace} {} ({})", month.label(), month.time_zone());
    let found = format!(
        "{} {} ({})",
        inputs.namespace, inputs.month, inputs.time_zone
    );
    if wanted != found {
        return Err(AdoptError::OtherMonth { wanted, found });
    }
    let report: MonthReport = files
        .get("report.json")
        .ok_or_else(|| AdoptError::Report("missing".into()))
        .and_then(|b| serde_json::from_slice(b).map_err(|e| AdoptError::Report(e.to_string())))?;
    Ok(Record {
        digest: format!("sha256:{}", verified.digest),
        files: listed(files),
        headline: report.headline,
        signed: files.contains_key(SIG),
        ringmaster_version: inputs.ringmaster_version,
    })
}

/// The files `SHA256SUMS` lists (every file but it and its signature), with their
/// digests and sizes.
fn listed(files: &BTreeMap<String, Vec<u8>>) -> Vec<ReportFile> {
    files
        .iter()
        .filter(|(name, _)| *name != SUMS && *name != SIG)
        .map(|(name, bytes)| ReportFile {
            name: name.clone(),
            sha256: hex(&Sha256::digest(bytes)),
            size: bytes.len() as u64,
        })
        .collect()
}

/// The status of a report whose month is closed: final.
pub fn closed(
    old: &PatchReportStatus,
    generation: Option<i64>,
    month: &Month,
    record: Record,
    location: String,
    now: Timestamp,
) -> PatchReportStatus {
    let message = format!("{} closed; its packet is at {location}", month.label());
    PatchReportStatus {
        closed_at: Some(now),
        headline: Some(record.headline),
        digest: Some(record.digest),
        signed: record.signed,
        location: Some(location),
        files: record.files,
        ringmaster_version: Some(record.ringmaster_version),
        ..frame(
            old,
            generation,
            Some(month),
            ReportPhase::Closed,
            Health::ready(ReportReason::Closed.as_str(), message),
            now,
        )
    }
}

/// The status of a report whose month has not ended.
pub fn pending(
    old: &PatchReportStatus,
    generation: Option<i64>,
    month: &Month,
    now: Timestamp,
) -> PatchReportStatus {
    let message = format!(
        "{} has not ended; it closes at {}",
        month.label(),
        month.zoned(month.end())
    );
    let health = Health {
        ready: false,
        reason: ReportReason::MonthNotEnded.as_str(),
        message,
        reconciling: true,
        stalled: false,
    };
    frame(
        old,
        generation,
        Some(month),
        ReportPhase::Pending,
        health,
        now,
    )
}

/// The status of a report that could not be closed: `stalled` when only a person can
/// fix it (a bad month, a stored packet that is not this month's), otherwise the
/// operator tries again.
pub fn failed(
    old: &PatchReportStatus,
    generation: Option<i64>,
    month: Option<&Month>,
    reason: ReportReason,
    message: String,
    stalled: bool,
    now: Timestamp,
) -> PatchReportStatus {
    let health = Health {
        ready: false,
        reason: reason.as_str(),
        message,
        reconciling: !stalled,
        stalled,
    };
    frame(old, generation, month, ReportPhase::Failed, health, now)
}

/// The fields every status has: phase, conditions, message and the month's period.
fn frame(
    old: &PatchReportStatus,
    generation: Option<i64>,
    month: Option<&Month>,
    phase: ReportPhase,
    health: Health,
    now: Timestamp,
) -> PatchReportStatus {
    PatchReportStatus {
        observed_generation: generation,
        conditions: health.conditions(&old.conditions, generation, now),
        phase: Some(phase),
        message: Some(health.message),
        time_zone: month.map(|m| m.time_zone().to_string()),
        start: month.map(Month::start),
        end: month.map(Month::end),
        ..PatchReportStatus::default()
    }
}

/// Whether a status says the month is closed (Ready=True): such a status never changes.
pub fn is_closed(status: Option<&PatchReportStatus>) -> bool {
    status.is_some_and(|s| {
        s.phase == Some(ReportPhase::Closed)
            && s.conditions
                .iter()
                .any(|c| c.type_ == READY && c.status == "True")
    })
}
