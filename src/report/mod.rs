//! The monthly evidence packet: what an MSP hands its client and their auditor.
//!
//! - [`model`]: one tenant's month, the model every rendering draws from; [`build`] makes
//!   it from durable state through the engine's ledger, for a [`month::Month`].
//! - [`cluster`]: reading a tenant's objects from a cluster.
//! - [`html`] (with [`svg`]'s charts): the page for the client and the auditor;
//!   [`markdown`], [`csv`], [`json`]: the renderings for a ticket, a spreadsheet and tools
//!   (with the JSON Schema); [`assemble`]: all of them, with the inputs, sealed.
//! - [`packet`]: the integrity layer: `SHA256SUMS`, its optional signature, the packet
//!   digest, writing a sealed packet and verifying one.
//! - [`store`]: where the operator keeps packets: a directory or an S3-compatible bucket.
//! - [`schedule`]: when a tenant's months close, and which `PatchReport`s to make;
//!   [`record`]: closing a month for the operator, and what its `PatchReport` records.
//! - [`inputs`]: `inputs.json`, the statement of what produced a packet.
//! - [`keys`]: ed25519 signing keys in OpenSSL's PEM files.
//! - [`cli`]: `ringmaster report verify` and `ringmaster report keygen`.

pub mod assemble;
pub mod build;
pub mod cli;
pub mod cluster;
pub mod csv;
pub mod html;
pub mod inputs;
pub mod json;
pub mod keys;
pub mod markdown;
pub mod model;
pub mod month;
pub mod packet;
pub mod record;
pub mod schedule;
pub mod store;
pub mod svg;
