//! The read-only verbs against a cluster: `status` and `why` read one tenant (page by
//! page, and the catalog), run the views of [`super::status`] and [`super::why`] at
//! `now`, and render them as text (colour only when asked) or as JSON or YAML.

use jiff::Timestamp;
use kube::Client;
use serde::Serialize;

use super::pull::{Output, PullError};
use super::why::WhyError;
use crate::report::cluster::{Objects, read};

/// What `why` asks about.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum WhyTarget {
    /// Why a device has no plan entry: for one patch, or for every patch it misses.
    #[command(
        after_help = "Examples:\n  kubectl ringmaster why device ws-broad-010 -n acme\n  \
        kubectl ringmaster why device ws-broad-010 --patch KB5032007 -n acme -o json"
    )]
    Device {
        /// The ManagedDevice.
        name: String,
        /// Only this patch id.
        #[arg(long)]
        patch: Option<String>,
    },
    /// Why a rollout's ring is not moving: phases, gates, soak, window, freeze, pause.
    #[command(
        after_help = "Examples:\n  kubectl ringmaster why rollout workstations.kb5032007 -n acme\n  \
        kubectl ringmaster why rollout workstations.kb5032007 --ring ring-1-pilot -n acme"
    )]
    Rollout {
        /// The PatchRollout.
        name: String,
        /// Only this ring.
        #[arg(long)]
        ring: Option<String>,
    },
}

/// How a read-only verb failed.
#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    /// Reaching or reading the cluster failed.
    #[error(transparent)]
    Pull(#[from] PullError),
    /// The object asked about is not there.
    #[error(transparent)]
    Why(#[from] WhyError),
}

impl ShowError {
    /// 1 when what was asked about is not there (or the cluster refused), 2 when the
    /// command could not run.
    pub fn exit_code(&self) -> u8 {
        match self {
            ShowError::Pull(e) => e.exit_code(),
            ShowError::Why(_) => 1,
        }
    }
}

/// Reads the tenant `ns` as the operator's stores would hold it.
pub async fn tenant(client: &Client, ns: &str) -> Result<Objects, PullError> {
    read(client, ns)
        .await
        .map_err(|e| PullError::kube(format!("reading namespace {ns}"), e))
}

/// `status`: the tenant at a glance.
pub fn status(objects: &Objects, now: Timestamp, output: Output, color: bool) -> String {
    let view = super::status::status(objects, now);
    match output {
        Output::Text => super::status::render_status(&view, color),
        _ => serialized(&view, output),
    }
}

/// `why device` / `why rollout`.
pub fn why(
    objects: &Objects,
    target: &WhyTarget,
    now: Timestamp,
    output: Output,
    color: bool,
) -> Result<String, WhyError> {
    use super::why::{render_why_device, render_why_rollout, why_device, why_rollout};
    Ok(match target {
        WhyTarget::Device { name, patch } => {
            let view = why_device(objects, name, patch.as_deref(), now)?;
            match output {
                Output::Text => render_why_device(&view, color),
                _ => serialized(&view, output),
            }
        }
        WhyTarget::Rollout { name, ring } => {
            let view = why_rollout(objects, name, ring.as_deref(), now)?;
            match output {
                Output::Text => render_why_rollout(&view, color),
                _ => serialized(&view, output),
            }
        }
    })
}

fn serialized<T: Serialize>(view: &T, output: Output) -> String {
    match output {
        Output::Yaml => serde_yaml::to_string(view).unwrap_or_default(),
        _ => {
            let mut s = serde_json::to_string_pretty(view).unwrap_or_default();
            s.push('\n');
            s
        }
    }
}

/// Whether to colour text for this process's standard output: a terminal, and no
/// `NO_COLOR` in the environment (<https://no-color.org>).
pub fn colour_stdout() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
