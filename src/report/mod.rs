//! The monthly evidence packet: one tenant's month as a model built from durable state
//! ([`model`]), its renderings, and the packet's integrity.

pub mod html;
pub mod model;
mod svg;
