//! `ringmaster enroll`: gives one device's agent its identity, in one command run by an
//! administrator (docs/enroll.md), and lets the agent renew that identity's token.
//!
//! For device `HOST` in namespace `NS`, with agents in namespace `AGENTS`
//! (`ringmaster-agents` by default), enrollment ensures:
//!
//! | object | where | what |
//! | --- | --- | --- |
//! | Namespace `AGENTS` | | created when missing |
//! | ServiceAccount [`service_account_name`]`(NS, HOST)` | `AGENTS` | the agent's identity (no token mounted) |
//! | ManagedDevice `HOST` | `NS` | the labels given, `spec.hostname`, `spec.os.family`, and `ringmaster.dev/agent: system:serviceaccount:AGENTS:<sa>` |
//! | Lease `HOST` | `NS` | the device's check-in, labelled `ringmaster.dev/device: HOST`, held by `system:serviceaccount:AGENTS:<sa>`, never renewed (the agent renews it); an existing one is left as it is |
//! | Role + RoleBinding `ringmaster-agent:HOST` | `NS` | get/list/watch `manageddevices` `[HOST]`, get/patch `manageddevices/status` `[HOST]`, get/list/watch `deploymentrings`, get/update/patch `leases` `[HOST]` (its check-in); no create on `leases` |
//! | Role + RoleBinding `ringmaster-agent-token:<sa>` | `AGENTS` | create `serviceaccounts/token` `[<sa>]`: the agent renews its own token |
//! | ClusterRole `ringmaster:agent-catalog-reader` + ClusterRoleBinding `ringmaster:agent-catalog-reader:AGENTS` | cluster | get/list/watch `patches`, for the group `system:serviceaccounts:AGENTS`; skipped when a SubjectAccessReview shows the agents can read the catalog already (the chart's `agents.rbac.create`) |
//!
//! then asks the TokenRequest API for a token (`--token-ttl`) and writes the agent's
//! kubeconfig. Each object is read first and written only when missing or different,
//! so enrolling again changes nothing; labels given again with other values are updated
//! (labels not given are kept). The device's plan and status are never touched.
//!
//! RBAC cannot limit a create to a name, so the agent gets no create on Leases (it could
//! create Leases of any name, another device's check-in among them): enrollment creates
//! its check-in Lease instead. An agent whose Lease was deleted is refused the create
//! and checks in by `status.lastSeen` until enrolling it again creates the Lease. An
//! agent enrolled by an older enroll, with create on Leases, loses it when enrolled again
//! (its Role is patched to exactly these rules) and gets its Lease.
//!
//! RBAC limits `list` and `watch` to named objects only for requests that select the
//! name: the agent lists or watches its device with the field selector
//! `metadata.name=HOST`. The chart's admission policy (`<release>-device-agent`) still
//! decides what the agent may change: only its own device's status, never
//! `status.compliance`; the enroller is an administrator, not an agent.
//!
//! The agent reads its token's expiry with [`token_expiry`] (or [`renewal_due`]) and,
//! once 80% of its lifetime has passed, calls [`renew_token`], which finds its
//! ServiceAccount from the token's `sub` claim.

mod apply;
mod kubeconfig;
mod names;
mod objects;
mod token;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use jiff::Timestamp;

pub use apply::{MIN_TOKEN_TTL, enroll, renew_token, request_token};
pub use kubeconfig::{
    ClusterAccess, DEVICE_EXTENSION, Out, agent_kubeconfig, enrolled_device, renewal_due,
    token_claims, token_expiry, write_private,
};
pub use names::{
    CATALOG_CLUSTER_ROLE, catalog_binding_name, device_role_name, service_account_name,
    token_role_name,
};
pub use token::{ClaimsError, TokenClaims};

use crate::api::Duration;

/// The field manager of enrollment's writes.
pub const FIELD_MANAGER: &str = "ringmaster-enroll";
/// `app.kubernetes.io/managed-by` on the objects enrollment creates.
pub const MANAGED_BY: &str = "ringmaster-enroll";
/// The label on an agent's ServiceAccount, Roles and bindings; its value is the
/// ServiceAccount's name.
pub const ENROLLED_LABEL: &str = "ringmaster.dev/enrolled-agent";
/// The agents' namespace unless `--agents-namespace` says otherwise (the chart's
/// admission policy counts `system:serviceaccounts:ringmaster-agents` as agents).
pub const DEFAULT_AGENTS_NAMESPACE: &str = "ringmaster-agents";
/// Where the agent reads its kubeconfig on its host.
pub const AGENT_KUBECONFIG: &str = "/etc/ringmaster/agent.kubeconfig";

/// The flags of `ringmaster enroll`.
#[derive(Clone, Debug, clap::Args)]
pub struct EnrollOptions {
    /// The namespace (tenant) of the device; it must exist.
    #[arg(long)]
    pub namespace: String,
    /// The device: its ManagedDevice's name and `spec.hostname`.
    #[arg(long)]
    pub name: String,
    /// A label on the device, `KEY=VALUE` (repeatable): what policies and rings select.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// The device's `spec.os.family`.
    #[arg(long, default_value = "linux")]
    pub os_family: String,
    /// The namespace of the agents' ServiceAccounts (created when missing).
    #[arg(long, default_value = DEFAULT_AGENTS_NAMESPACE)]
    pub agents_namespace: String,
    /// How long the agent's first token is valid (at least 10m); the agent renews it.
    #[arg(long, default_value = "24h")]
    pub token_ttl: Duration,
    /// The API server's URL as the device reaches it (default: the one this command uses).
    #[arg(long)]
    pub server: Option<String>,
    /// A PEM file of the certificate authorities the device trusts for the API server
    /// (default: those this command trusts).
    #[arg(long, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,
    /// Where to write the agent's kubeconfig (mode 0600), or `-` for standard output
    /// (default: `<name>.kubeconfig`).
    #[arg(long, value_name = "FILE")]
    pub out: Option<String>,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected KEY=VALUE"))?;
    Ok((k.to_string(), v.to_string()))
}

impl EnrollOptions {
    /// The enrollment these flags describe.
    pub fn enrollment(&self) -> Enrollment {
        Enrollment {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            labels: self.labels.iter().cloned().collect(),
            os_family: Some(self.os_family.clone()),
            agents_namespace: self.agents_namespace.clone(),
            token_ttl: self.token_ttl,
        }
    }
}

/// One device to enroll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrollment {
    /// The device's namespace.
    pub namespace: String,
    /// The device's name (also its `spec.hostname`).
    pub name: String,
    /// Labels set on the device (others it carries are kept).
    pub labels: BTreeMap<String, String>,
    /// `spec.os.family`; None leaves `spec.os` as it is.
    pub os_family: Option<String>,
    /// The namespace of the agent's ServiceAccount.
    pub agents_namespace: String,
    /// How long the token is valid.
    pub token_ttl: Duration,
}

impl Enrollment {
    /// Device `name` in `namespace`, no labels, OS family `linux`, agents in
    /// [`DEFAULT_AGENTS_NAMESPACE`], a 24-hour token.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            labels: BTreeMap::new(),
            os_family: Some("linux".into()),
            agents_namespace: DEFAULT_AGENTS_NAMESPACE.into(),
            token_ttl: Duration::hours(24),
        }
    }

    /// Checks every name, label and the token's lifetime before anything is sent.
    pub fn check(&self) -> Result<(), Error> {
        names::check_namespace("--namespace", &self.namespace)?;
        names::check_namespace("--agents-namespace", &self.agents_namespace)?;
        names::check_device_name(&self.name)?;
        for (k, v) in &self.labels {
            names::check_label(k, v)?;
        }
        if let Some(family) = &self.os_family
            && !names::is_dns_label(family)
        {
            return Err(Error::InvalidName {
                what: "--os-family",
                value: family.clone(),
                rule: "a lower-case word such as linux, windows or macos",
            });
        }
        if self.token_ttl < MIN_TOKEN_TTL {
            return Err(Error::TokenTtl {
                ttl: self.token_ttl,
            });
        }
        Ok(())
    }

    /// The agent's ServiceAccount ([`service_account_name`]).
    pub fn service_account(&self) -> String {
        names::service_account_name(&self.namespace, &self.name)
    }

    /// The agent's user name, as the device's `ringmaster.dev/agent` annotation holds it.
    pub fn agent_username(&self) -> String {
        names::service_account_user(&self.agents_namespace, &self.service_account())
    }
}

/// What enrollment did to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// It did not exist.
    Created,
    /// It differed, and was patched.
    Updated,
    /// It was as wanted: nothing was sent.
    Unchanged,
    /// Access that another grant gives already (nothing created).
    Granted,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
            Change::Granted => "granted already",
        })
    }
}

/// One object and what enrollment did to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// `Kind namespace/name`, or `Kind name` for cluster-wide objects.
    pub object: String,
    /// What was done.
    pub change: Change,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.change)
    }
}

/// A finished enrollment.
#[derive(Clone)]
pub struct Enrolled {
    /// Every object, in the order it was ensured.
    pub steps: Vec<Step>,
    /// The agent's ServiceAccount (in the agents' namespace).
    pub service_account: String,
    /// The agent's token.
    pub token: String,
    /// When the token expires (as the API server granted it).
    pub expires_at: Timestamp,
}

impl fmt::Debug for Enrolled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrolled")
            .field("steps", &self.steps)
            .field("service_account", &self.service_account)
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What is wrong with a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigProblem {
    /// It is not YAML.
    #[error("not YAML: {0}")]
    Yaml(String),
    /// `current-context` is absent or empty.
    #[error("no current-context")]
    NoCurrentContext,
    /// The current context is not among `contexts`.
    #[error("current-context {0:?} is not among its contexts")]
    NoContext(String),
    /// The current context names no user.
    #[error("the current context names no user")]
    NoUserInContext,
    /// The current context's user is not among `users`.
    #[error("user {0:?} is not among its users")]
    NoUser(String),
    /// The current user has no token to renew.
    #[error("the current user has no token")]
    NoToken,
    /// The token's claims cannot be read.
    #[error(transparent)]
    Claims(#[from] ClaimsError),
    /// The token is not a ServiceAccount's (no `sub` of the form
    /// `system:serviceaccount:<namespace>:<name>`).
    #[error(
        "the token is not a ServiceAccount token (no sub: system:serviceaccount:<namespace>:<name>)"
    )]
    NotAServiceAccountToken,
    /// The device extension lacks its namespace or name.
    #[error("its {DEVICE_EXTENSION} extension lacks namespace or name")]
    BadDeviceExtension,
}

/// What can go wrong enrolling a device or renewing its token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A namespace or name that the API server would refuse.
    #[error("{what} {value:?}: must be {rule}")]
    InvalidName {
        /// The flag.
        what: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        rule: &'static str,
    },
    /// A label the API server would refuse.
    #[error("--label {label:?}: {why}")]
    InvalidLabel {
        /// `KEY=VALUE`.
        label: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A token lifetime the TokenRequest API refuses.
    #[error("--token-ttl {ttl}: the API server issues tokens for at least 10m")]
    TokenTtl {
        /// The lifetime asked for.
        ttl: Duration,
    },
    /// The device's namespace does not exist.
    #[error("namespace {namespace} does not exist: create the tenant's namespace first")]
    NamespaceMissing {
        /// The namespace.
        namespace: String,
    },
    /// A binding enrollment manages exists with another role (a role reference is
    /// immutable, so it is not overwritten).
    #[error("{binding} exists and binds {has}: delete it, then enroll again")]
    RoleRefConflict {
        /// The binding.
        binding: String,
        /// The role it binds.
        has: String,
    },
    /// A request to the API server failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The TokenRequest answer held no token.
    #[error("the API server returned no token for ServiceAccount {service_account}")]
    NoToken {
        /// `namespace/name`.
        service_account: String,
    },
    /// No client configuration (no kubeconfig, not in a cluster).
    #[error("kubernetes client configuration: {0}")]
    Config(#[from] kube::config::InferConfigError),
    /// `--server` is not an https URL with a host.
    #[error("--server {value:?}: expected an https:// URL with a host")]
    ServerUrl {
        /// The value given.
        value: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A certificate-authority file without a PEM certificate.
    #[error("{}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it", path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
    },
    /// A kubeconfig that cannot be used.
    #[error("kubeconfig {}: {problem}", path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: KubeconfigProblem,
    },
    /// The kubeconfig could not be serialized.
    #[error("writing the kubeconfig as YAML: {0}")]
    Serialize(String),
}

impl Error {
    fn kube(what: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            what: what.into(),
            source: Box::new(source),
        }
    }

    /// The exit status of `ringmaster enroll` failing with this error: 2 for input
    /// refused before anything was sent, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::InvalidName { .. }
            | Error::InvalidLabel { .. }
            | Error::TokenTtl { .. }
            | Error::ServerUrl { .. }
            | Error::NotPem { .. } => 2,
            _ => 1,
        }
    }
}

/// What `ringmaster enroll` prints: each object and what was done, the token, where
/// the kubeconfig went and what to do next.
pub fn summary(e: &Enrollment, enrolled: &Enrolled, out: &Out) -> String {
    let mut s = String::new();
    for step in &enrolled.steps {
        s.push_str(&format!("{step}\n"));
    }
    s.push_str(&format!(
        "token: ServiceAccount {}/{}, valid until {} (the agent renews it)\n",
        e.agents_namespace, enrolled.service_account, enrolled.expires_at
    ));
    match out {
        Out::File(path) => {
            let file = path.display();
            s.push_str(&format!(
                "kubeconfig: {file} (mode 0600)\n\n\
                 Next, copy {file} to {host} and install it there as {AGENT_KUBECONFIG}\n\
                 (owner root, mode 0600):\n  \
                 install -D -m 0600 -o root -g root {file} {AGENT_KUBECONFIG}\n",
                host = e.name,
            ));
        }
        Out::Stdout => s.push_str(&format!(
            "\nNext, save the kubeconfig printed on standard output on {host} as\n\
             {AGENT_KUBECONFIG} (owner root, mode 0600).\n",
            host = e.name,
        )),
    }
    s.push_str(&format!(
        "Then name its device there and start the agent (docs/agent.md):\n  \
         printf 'RINGMASTER_NAMESPACE={ns}\\nRINGMASTER_AGENT_ARGS=\"--name {host}\"\\n' > /etc/default/ringmaster-agent\n  \
         systemctl enable --now ringmaster-agent\n",
        ns = e.namespace,
        host = e.name,
    ));
    s
}

/// `ringmaster enroll`: enrolls with the client configuration of the environment
/// (`KUBECONFIG`, or in-cluster), writes the agent's kubeconfig and prints what it did.
pub async fn run(opts: &EnrollOptions) -> Result<Enrolled, Error> {
    opts.enrollment().check()?;
    run_with(kube::Config::infer().await?, opts).await
}

/// [`run`] with the given client configuration.
pub async fn run_with(config: kube::Config, opts: &EnrollOptions) -> Result<Enrolled, Error> {
    let e = opts.enrollment();
    e.check()?;
    let out = Out::parse(opts.out.as_deref(), &e.name);
    let mut access = ClusterAccess::from_config(&config)?;
    if let Some(server) = &opts.server {
        access = access.with_server(server)?;
    }
    if let Some(ca) = &opts.certificate_authority {
        access = access.with_certificate_authority(ca)?;
    }
    let client =
        kube::Client::try_from(config).map_err(|e| Error::kube("building the client", e))?;
    let enrolled = enroll(&client, &e).await?;
    let yaml = agent_kubeconfig(&access, &e, &enrolled.token)?;
    let report = summary(&e, &enrolled, &out);
    match &out {
        Out::Stdout => {
            print!("{yaml}");
            eprint!("{report}");
        }
        Out::File(path) => {
            write_private(path, yaml.as_bytes())?;
            print!("{report}");
        }
    }
    Ok(enrolled)
}
