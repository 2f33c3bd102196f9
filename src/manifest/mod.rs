//! Offline manifests: loading YAML files and checking each document against its kind's
//! CRD the way an API server would (`kubectl apply --validate=strict`), without a
//! cluster.
//!
//! - [`load_paths`] reads files and directories into [`Document`]s, all or nothing.
//! - [`parse_documents`] turns documents into typed [`Object`]s and lists every
//!   [`Problem`]: unknown kinds, metadata, OpenAPI schema violations, CEL rules, typed
//!   decoding and duplicate objects.
//!
//! ```no_run
//! use std::path::PathBuf;
//! let docs = ringmaster::manifest::load_paths(&[PathBuf::from("examples/")])?;
//! let (objects, problems) = ringmaster::manifest::parse_documents(docs);
//! for p in &problems {
//!     eprintln!("{p}");
//! }
//! # Ok::<(), ringmaster::manifest::LoadErrors>(())
//! ```

mod load;
mod parse;
mod schema;

pub use load::{Document, LoadError, LoadErrors, Source, load_paths, parse_yaml};
pub use parse::{EXTENSION_GROUP, Object, Problem, Schemas, parse_documents};
