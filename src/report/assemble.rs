//! A month's packet put together: every rendering of its report, the statement of its
//! inputs, sealed.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;

use crate::engine::Snapshot;

use super::inputs::{InputObject, Inputs};
use super::model::MonthReport;
use super::month::Month;
use super::packet::{Packet, PacketError, Sealed};
use super::{csv, html, json, markdown};

/// Every rendering of a report: the packet's files before it is sealed.
pub fn render(r: &MonthReport) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    files.insert("report.html".to_string(), html::html(r).into_bytes());
    files.insert("report.md".to_string(), markdown::markdown(r).into_bytes());
    files.insert("report.json".to_string(), json::json(r));
    files.insert("report.schema.json".to_string(), json::json_schema());
    files.extend(csv::csv_files(r));
    files
}

/// The statement of what a month's report was built from: every object of the snapshot.
pub fn inputs(snap: &Snapshot<'_>, month: &Month) -> Inputs {
    let mut objects: Vec<InputObject> = Vec::new();
    objects.extend(snap.policies.iter().map(|o| InputObject::of(*o)));
    objects.extend(snap.rings.iter().map(|o| InputObject::of(*o)));
    objects.extend(snap.exceptions.iter().map(|o| InputObject::of(*o)));
    objects.extend(snap.devices.iter().map(|o| InputObject::of(*o)));
    objects.extend(snap.rollouts.iter().map(|o| InputObject::of(*o)));
    objects.extend(snap.patches.iter().map(|o| InputObject::of(*o)));
    Inputs::for_month(snap.namespace, month, objects)
}

/// A month's report rendered, with the statement of its inputs, sealed (and signed with
/// `key`).
pub fn packet(
    r: &MonthReport,
    snap: &Snapshot<'_>,
    month: &Month,
    key: Option<&SigningKey>,
) -> Result<Sealed, PacketError> {
    Ok(Packet::new(render(r))?.seal(&inputs(snap, month), key))
}
