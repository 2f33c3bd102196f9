//! The monthly evidence packet: what an MSP hands its client and their auditor.
//!
//! - [`inputs`]: `inputs.json`, the statement of what produced a packet.
//! - [`keys`]: ed25519 signing keys in OpenSSL's PEM files.

pub mod inputs;
pub mod keys;
