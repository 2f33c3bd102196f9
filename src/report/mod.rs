//! The monthly evidence packet: what an MSP hands its client and their auditor.
//!
//! - [`packet`]: the integrity layer: `SHA256SUMS`, its optional signature, the packet
//!   digest, writing a sealed packet and verifying one.
//! - [`inputs`]: `inputs.json`, the statement of what produced a packet.
//! - [`keys`]: ed25519 signing keys in OpenSSL's PEM files.
//! - [`cli`]: `ringmaster report verify` and `ringmaster report keygen`.

pub mod cli;
pub mod inputs;
pub mod keys;
pub mod packet;
