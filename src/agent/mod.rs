//! `ringmaster agent`: device agents. `--backend apt|dnf|auto` runs the real Linux agent
//! ([`linux`]) for one device; `--simulate` runs a fleet of simulated device agents
//! against a real cluster, for demos, end-to-end tests and load tests.
//!
//! Each simulated device is a `ManagedDevice` the fleet registers (labelled
//! `sim.ringmaster.dev/fleet: <prefix>` and annotated `ringmaster.dev/agent: <the
//! fleet's identity>`, as the chart's admission policy expects of an agent). Like a real
//! pull-based agent it checks in every `--check-in`, reports its patches in
//! `status` when they change (merge patches of `lastSeen`, `patches` and `agent`, never
//! `compliance` and never `spec`), renews its check-in Lease every `--heartbeat` when
//! nothing changed ([`lease`]), and follows its `spec.plan`: it starts an entry only inside its window,
//! attempts it once, and uninstalls before it installs. It also watches its devices, so
//! a new plan entry is picked up at once rather than at the next check-in.
//!
//! | module | holds |
//! | --- | --- |
//! | [`device`] | one device's agent state and plan-following rules (pure) |
//! | [`fleet`] | registration, the watch, the check-in schedule and the status writes |
//! | [`lease`] | a device's check-in Lease, renewed at every heartbeat instead of a status write |
//! | [`linux`] | the real Linux agent: apt and dnf, reboots, health checks, rollback |

pub mod device;
pub mod fleet;
pub mod lease;
pub mod linux;

use std::collections::BTreeMap;

pub use device::{Behaviour, SimDevice};
pub use fleet::{Fleet, FleetConfig, run};

/// The label on every device of a simulated fleet; its value is the fleet's prefix.
pub const FLEET_LABEL: &str = "sim.ringmaster.dev/fleet";
/// The annotation naming the identity allowed to report for a device.
pub const AGENT_ANNOTATION: &str = "ringmaster.dev/agent";
/// The field manager of the fleet's writes.
pub const FIELD_MANAGER: &str = "ringmaster-agent";

/// The flags of `ringmaster agent`.
#[derive(Clone, Debug, clap::Args)]
pub struct AgentOptions {
    /// Simulate a fleet of agents instead of running the real one.
    #[arg(long, conflicts_with = "backend")]
    pub simulate: bool,
    /// Run the real Linux agent for this device with this package manager (`auto`
    /// reads `/etc/os-release`).
    #[arg(long, value_enum)]
    pub backend: Option<linux::run::BackendKind>,
    /// The device's ManagedDevice name (real agent; default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// A confined root the package manager works in instead of `/` (real agent; for
    /// tests and images).
    #[arg(long, value_name = "DIR")]
    pub root: Option<std::path::PathBuf>,
    /// A command prefix every host command runs through, split at spaces (real agent in
    /// a container: `nsenter --target 1 --mount --uts --ipc --net --pid --`).
    #[arg(long, value_name = "PREFIX")]
    pub host_exec: Option<String>,
    /// Where the host's root is mounted, for the files the agent reads itself
    /// (`/etc/os-release`, reboot flags) while its commands run through `--host-exec`
    /// (real agent in a container: `/host`).
    #[arg(long, value_name = "DIR")]
    pub host_root: Option<std::path::PathBuf>,
    /// Where the real agent keeps its state file.
    #[arg(long, default_value = "/var/lib/ringmaster-agent")]
    pub state_dir: std::path::PathBuf,
    /// How long one install or downgrade may take before it is killed (real agent).
    #[arg(long, default_value = "1h")]
    pub install_timeout: crate::api::Duration,
    /// How long reading repository metadata may take before it is killed (real agent).
    #[arg(long, default_value = "10m")]
    pub metadata_timeout: crate::api::Duration,
    /// A shell command that reboots the device (real agent; default `shutdown -r
    /// +MINUTES "MESSAGE"`). It sees RINGMASTER_GRACE_MINUTES, RINGMASTER_GRACE_SECONDS
    /// and RINGMASTER_PATCH.
    #[arg(long)]
    pub reboot_command: Option<String>,
    /// The file holding the current boot's id (real agent).
    #[arg(long, default_value = linux::reboot::BOOT_ID)]
    pub boot_id_file: std::path::PathBuf,
    /// One check-in, then exit (real agent; for a systemd timer or cron).
    #[arg(long)]
    pub once: bool,
    /// Node mode (real agent in the chart's DaemonSet): the device is this Kubernetes
    /// node, registered by the agent if it does not exist, cordoned and drained before an
    /// install, a rollback or a reboot, and uncordoned once the install is validated.
    #[arg(long)]
    pub node_mode: bool,
    /// How long draining the node may take before the install or reboot is given up
    /// (node mode).
    #[arg(long, default_value = "30m")]
    pub drain_timeout: crate::api::Duration,
    /// How many devices (simulated fleet).
    #[arg(long, default_value_t = 10)]
    pub devices: u32,
    /// The namespace (tenant) the devices live in.
    #[arg(long)]
    pub namespace: String,
    /// Device names are `<prefix>-001` …; also the value of the fleet label.
    #[arg(long, default_value = "sim")]
    pub prefix: String,
    /// A label on every device, `key=value` (repeatable): what policies and rings select.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_pair::<String>)]
    pub labels: Vec<(String, String)>,
    /// A patch id every device reports (repeatable). None: every Patch in the catalog
    /// released so far, and each new one as it appears.
    #[arg(long = "patch", value_name = "ID")]
    pub patches: Vec<String>,
    /// Probability (0–1) that an install fails.
    #[arg(long, default_value_t = 0.0)]
    pub failure_rate: f64,
    /// Failure probability for one patch, `ID=RATE` (repeatable).
    #[arg(long = "fail", value_name = "ID=RATE", value_parser = parse_pair::<f64>)]
    pub fail: Vec<(String, f64)>,
    /// The shortest install, e.g. `5s`.
    #[arg(long, default_value = "5s")]
    pub install_min: crate::api::Duration,
    /// The longest install, e.g. `20s`.
    #[arg(long, default_value = "20s")]
    pub install_max: crate::api::Duration,
    /// How often each device checks in (spread evenly over the fleet).
    #[arg(long, default_value = "30s")]
    pub check_in: crate::api::Duration,
    /// A device with nothing new still checks in this often, by renewing its Lease (no
    /// status write).
    #[arg(long, default_value = "5m")]
    pub heartbeat: crate::api::Duration,
    /// Seed of the random draws (install times, failures).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The most API requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The identity written in each device's `ringmaster.dev/agent` annotation (default:
    /// the client's own user name, from a SelfSubjectReview).
    #[arg(long)]
    pub identity: Option<String>,
    /// Only register and report; never act on a plan (to measure the operator alone).
    #[arg(long)]
    pub report_only: bool,
    /// Log format; the level comes from `RUST_LOG` (default `info`).
    #[arg(long, value_enum, default_value_t = crate::operator::LogFormat::Text)]
    pub log_format: crate::operator::LogFormat,
}

impl AgentOptions {
    /// The real Linux agent these flags describe (with `--backend`); the device name
    /// defaults to the host name.
    pub fn linux(&self) -> Option<linux::run::Options> {
        let backend = self.backend?;
        let name = self.name.clone().or_else(host_name)?;
        let std = |d: crate::api::Duration| d.span().unsigned_abs();
        Some(linux::run::Options {
            namespace: self.namespace.clone(),
            name,
            backend,
            root: self.root.clone(),
            host_exec: self
                .host_exec
                .as_deref()
                .map(|p| p.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            host_root: self.host_root.clone(),
            state_dir: self.state_dir.clone(),
            check_in: std(self.check_in),
            heartbeat: std(self.heartbeat),
            install_timeout: std(self.install_timeout),
            metadata_timeout: std(self.metadata_timeout),
            reboot: linux::reboot::Config {
                command: self.reboot_command.clone(),
                boot_id_file: self.boot_id_file.clone(),
            },
            once: self.once,
            node_mode: self.node_mode,
            drain_timeout: std(self.drain_timeout),
            kubeconfig: std::env::var_os("KUBECONFIG")
                .map(std::path::PathBuf::from)
                .filter(|p| p.is_file()),
        })
    }

    /// The fleet these flags describe.
    pub fn fleet(&self) -> FleetConfig {
        FleetConfig {
            namespace: self.namespace.clone(),
            devices: self.devices,
            prefix: self.prefix.clone(),
            labels: self.labels.iter().cloned().collect(),
            patches: self.patches.clone(),
            behaviour: Behaviour {
                install_min: self.install_min.span(),
                install_max: self.install_max.span(),
                failure_rate: self.failure_rate,
                patch_failure: self.fail.iter().cloned().collect::<BTreeMap<_, _>>(),
            },
            check_in: self.check_in.span(),
            heartbeat: self.heartbeat.span(),
            seed: self.seed,
            concurrency: self.concurrency.max(1),
            identity: self.identity.clone(),
            follow_plans: !self.report_only,
        }
    }
}

/// The kernel's host name, as the default device name.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn parse_pair<T: std::str::FromStr>(s: &str) -> Result<(String, T), String>
where
    T::Err: std::fmt::Display,
{
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected KEY=VALUE"))?;
    let v = v.parse().map_err(|e| format!("`{s}`: {e}"))?;
    Ok((k.to_string(), v))
}

/// What can go wrong in the simulated fleet.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The flags make no fleet.
    #[error("{0}")]
    Config(String),
}

impl Error {
    fn kube(what: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            what: what.into(),
            source: Box::new(source),
        }
    }
}
