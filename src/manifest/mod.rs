//! Offline manifests: loading YAML files and checking each document against its kind's
//! CRD the way an API server would (`kubectl apply --validate=strict`), without a
//! cluster.
//!
//! - [`load_paths`] reads files and directories into [`Document`]s, all or nothing.
//!
//! ```no_run
//! use std::path::PathBuf;
//! let docs = ringmaster::manifest::load_paths(&[PathBuf::from("examples/")])?;
//! for doc in &docs {
//!     println!("{}: {}", doc.source, doc.value["kind"]);
//! }
//! # Ok::<(), ringmaster::manifest::LoadErrors>(())
//! ```

mod load;

pub use load::{Document, LoadError, LoadErrors, Source, load_paths, parse_yaml};
