//! The command line: `ringmaster` (the operator, the simulator and the daily tools) and
//! `kubectl-ringmaster` (the same commands as a kubectl plugin: `kubectl ringmaster …`).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::{manifest, sim, validate};
use clap::{Parser, Subcommand, ValueEnum};

/// Risk-based patch management, run declaratively.
#[derive(Parser)]
#[command(name = "ringmaster", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// `simulate`'s output: Markdown is the preview's (`--baseline`) pull-request comment.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SimFormat {
    Text,
    Json,
    Markdown,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator: watch the cluster (or the given namespaces) and reconcile.
    Run(crate::operator::RunOptions),
    /// Run a device agent: the real Linux agent (`--backend apt|dnf|auto`) for this host's
    /// ManagedDevice, or a simulated fleet (`--simulate`) for demos, end-to-end and load
    /// tests.
    Agent(Box<crate::agent::AgentOptions>),
    /// Enroll a device's agent (run as an administrator): its ManagedDevice, its own
    /// ServiceAccount and RBAC, and a kubeconfig with a token it renews itself.
    Enroll(crate::enroll::EnrollOptions),
    /// Print every CustomResourceDefinition as multi-document YAML.
    Crds,
    /// Play a directory of manifests forward in virtual time, without a cluster, and
    /// print the timeline of every decision and the SLA report.
    #[command(group(clap::ArgGroup::new("against").args(["baseline", "from_cluster"])))]
    Simulate {
        /// Files or directories of manifests: the ringmaster kinds plus one
        /// `kind: Fleet` (apiVersion sim.ringmaster.dev/v1alpha1) describing the devices.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// How many days to run (default: the Fleet's `days`, else 30).
        #[arg(long)]
        days: Option<u32>,
        /// When to start, RFC 3339 (default: the Fleet's `start`).
        #[arg(long)]
        start: Option<jiff::Timestamp>,
        /// Seed for every random draw; the same inputs and seed give the same output.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output format (markdown: only with --baseline or --from-cluster).
        #[arg(long, value_enum, default_value_t = SimFormat::Text)]
        format: SimFormat,
        /// Preview a change: play these manifests (the head) and the baseline's over the
        /// same period with the same seed, and print what the change does, before and
        /// after. The period (start, days, time zone) is the baseline's Fleet's unless
        /// given. Exits 0, 1 when --max-compliance-drop is exceeded, 2 on unreadable
        /// input. See docs/preview.md.
        #[arg(long, value_name = "BASE_DIR", conflicts_with_all = ["report", "sign_key"])]
        baseline: Option<PathBuf>,
        /// Preview a change against a live cluster: the baseline is namespace -n's
        /// PatchPolicies, DeploymentRings, PatchExceptions and ManagedDevices (labels and
        /// reported patch states) and the cluster's Patch catalog; the head is these
        /// manifests applied over them (a kind they hold replaces the cluster's policies,
        /// rings or exceptions; devices and patches are applied one by one). Both are
        /// played from now (the next whole hour) for 30 days unless --start and --days
        /// say otherwise. Exit codes as --baseline. See docs/preview.md.
        #[arg(long, requires = "namespace", conflicts_with_all = ["report", "sign_key"])]
        from_cluster: bool,
        /// With --from-cluster: the tenant's namespace.
        #[arg(short = 'n', long, value_name = "NAMESPACE", requires = "from_cluster")]
        namespace: Option<String>,
        /// With --from-cluster: the kubeconfig to use (default: $KUBECONFIG, else
        /// ~/.kube/config, else the in-cluster service account).
        #[arg(long, value_name = "FILE", requires = "from_cluster")]
        kubeconfig: Option<PathBuf>,
        /// With --from-cluster: the kubeconfig context (default: its current one).
        #[arg(long, value_name = "NAME", requires = "from_cluster")]
        context: Option<String>,
        /// With --baseline or --from-cluster: exit 1 when any compliance figure (overall,
        /// per policy × tier × severity, per ring) drops by more than PCT percentage
        /// points.
        #[arg(long, value_name = "PCT", requires = "against")]
        max_compliance_drop: Option<f64>,
        /// Feed files or directories (MSRC CVRF, OSV records, CISA's KEV, FIRST's EPSS;
        /// each told by its content) imported into the manifests' catalog first, as
        /// `ringmaster catalog import` would import them into a cluster's.
        #[arg(long, num_args = 1..)]
        catalog: Vec<PathBuf>,
        /// Write the evidence packet of every month the run touches under DIR/YYYY-MM/:
        /// each month that ends during the run as the operator would close it, and the
        /// month the run ends in as it stood then.
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
        /// The tenant's time zone for the packet's months (default: the Fleet's
        /// `timeZone`, else UTC; with --from-cluster, the Namespace's
        /// patching.ringmaster.dev/time-zone annotation, else UTC).
        #[arg(long, value_name = "IANA")]
        time_zone: Option<String>,
        /// Sign the packets with this ed25519 key (PKCS#8 PEM).
        #[arg(long, value_name = "KEY.pem", requires = "report")]
        sign_key: Option<PathBuf>,
    },
    /// Fill the shared patch catalog from the feeds vendors publish.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// The monthly evidence packet of one tenant, from the cluster; `verify` checks one,
    /// `keygen` makes a signing key.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Examples:\n  \
        ringmaster report --namespace acme --month 2023-11 --out packets/acme/2023-11\n  \
        ringmaster report --namespace acme --out packets/acme/last --sign-key acme-signing.key\n  \
        ringmaster report verify packets/acme/2023-11 --key acme-signing.pub"
    )]
    Report {
        #[command(subcommand)]
        command: Option<ReportCommand>,
        #[command(flatten)]
        make: ReportArgs,
    },
    /// One tenant at a glance: rings × active patches, SLA at risk, what is halted,
    /// paused or frozen and why, approvals waiting for a person.
    #[command(after_help = "Examples:\n  kubectl ringmaster status -n acme\n  \
        ringmaster status -n acme -o json\n\n\
        Exit codes: 0 shown, 1 the cluster refused, 2 the command could not run.")]
    Status {
        #[command(flatten)]
        target: crate::lever::pull::Target,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = crate::lever::pull::Output::Text)]
        output: crate::lever::pull::Output,
    },
    /// Why a device has no plan entry, or why a ring is not moving, in the operator's
    /// own words (its pass, run now over what the cluster holds).
    #[command(
        after_help = "Exit codes: 0 answered, 1 no such device, rollout or ring (or \
        the cluster refused), 2 the command could not run."
    )]
    Why {
        #[command(subcommand)]
        what: crate::lever::show::WhyTarget,
        #[command(flatten)]
        target: crate::lever::pull::Target,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = crate::lever::pull::Output::Text, global = true)]
        output: crate::lever::pull::Output,
    },
    /// Approve a patch for a policy now, whatever its rules say: a PatchApproval, kept
    /// apart from the policy so a GitOps sync never reverts it.
    #[command(after_help = LEVER_HELP_APPROVE)]
    Approve(DecideArgs),
    /// Reject a patch for a policy: no ring admits it, and a rollout under way is aborted.
    #[command(after_help = LEVER_HELP_REJECT)]
    Reject(DecideArgs),
    /// Promote a ring of a rollout past its manual gate or its halt (default: the current
    /// ring).
    #[command(
        after_help = "Examples:\n  ringmaster promote workstations.kb5036893 -n acme\n  \
        kubectl ringmaster promote workstations.kb5036893 --ring ring-1-pilot -n acme"
    )]
    Promote(RolloutArgs),
    /// Pause a rollout (no admission, no promotion), or one ring of it with --ring.
    #[command(
        after_help = "Examples:\n  ringmaster pause workstations.kb5036893 -n acme\n  \
        kubectl ringmaster pause workstations.kb5036893 --ring ring-2-broad -n acme"
    )]
    Pause(RolloutArgs),
    /// Resume a paused rollout, or one paused ring of it with --ring.
    #[command(after_help = "Example:\n  kubectl ringmaster resume workstations.kb5036893 -n acme")]
    Resume(RolloutArgs),
    /// Abort a rollout for good: devices that have not started are released.
    #[command(after_help = "Example:\n  kubectl ringmaster abort workstations.kb5036893 -n acme")]
    Abort {
        /// The PatchRollout.
        rollout: String,
        #[command(flatten)]
        target: crate::lever::pull::Target,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = crate::lever::pull::Output::Text)]
        output: crate::lever::pull::Output,
    },
    /// Freeze changes on the tenant, or on some rings, until a set time: a PatchFreeze
    /// that lifts itself.
    #[command(after_help = "Examples:\n  \
        kubectl ringmaster freeze -n acme --for 12h --reason 'incident INC-42'\n  \
        kubectl ringmaster freeze -n acme --ring ring-2-broad --until 2027-01-02T00:00:00Z \
        --reason 'year-end' --owner cab@acme.example")]
    Freeze {
        #[command(flatten)]
        freeze: crate::lever::pull::FreezeArgs,
        #[command(flatten)]
        target: crate::lever::pull::Target,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = crate::lever::pull::Output::Text)]
        output: crate::lever::pull::Output,
    },
    /// Let devices skip patches until a set time: a PatchException, with an owner, a
    /// reason, a ticket, compensating controls and an expiry.
    #[command(
        after_help = "Example:\n  kubectl ringmaster except pos-terminals -n acme \
        --patch KB5036893 --device pos-1 --device pos-2 --for 30d \
        --reason 'vendor has not certified it' --ticket CHG-1234 --control 'POS VLAN isolated'"
    )]
    Except {
        #[command(flatten)]
        except: crate::lever::pull::ExceptArgs,
        #[command(flatten)]
        target: crate::lever::pull::Target,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = crate::lever::pull::Output::Text)]
        output: crate::lever::pull::Output,
    },
    /// Check manifests offline: schema, CEL rules and cross-object checks. Prints one
    /// line per problem; exits 1 when there are problems, 2 when input is unreadable.
    Validate {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Judge time-dependent rules (exception lengths and expiry) at this instant,
        /// RFC 3339 (default: a Fleet's `start` if one is among the files, else now).
        #[arg(long)]
        at: Option<jiff::Timestamp>,
    },
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Import a feed into the cluster's Patches (server-side apply, one field manager per
    /// feed, so people and other feeds can add to the same Patch). A re-import of
    /// unchanged data writes nothing; nothing is ever deleted; a bad record is skipped and
    /// reported. Exits 0 when all was imported, 1 when records were skipped or writes
    /// failed (the rest went in), 2 when nothing could be imported.
    Import {
        /// The feed: msrc (CVRF, JSON or XML), osv (records, directories or the zip
        /// export), kev (CISA's catalog JSON) or epss (FIRST's CSV, plain or gzipped).
        #[arg(value_enum)]
        source: SourceArg,
        /// Files, directories or URLs (default: the publisher's own URL).
        inputs: Vec<String>,
        /// Print what would change, and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
        output: Format,
    },
}

const LEVER_HELP_APPROVE: &str = "Examples:\n  \
    ringmaster approve KB5036893 --policy workstations --reason 'CAB 2026-11-12' -n acme\n  \
    kubectl ringmaster approve KB5036893 --policy workstations --reason 'CAB 2026-11-12'\n\n\
    Exit codes: 0 done (or already so), 1 the cluster refused or an object is missing,\n\
    2 the command could not run (usage, kubeconfig, API server unreachable).";

const LEVER_HELP_REJECT: &str = "Example:\n  \
    kubectl ringmaster reject KB5036893 --policy workstations --reason 'breaks the POS driver'";

/// `approve` / `reject`.
#[derive(clap::Args)]
struct DecideArgs {
    /// The patch id, as in Patch.spec.id.
    patch: String,
    /// The PatchPolicy the decision is for.
    #[arg(long)]
    policy: String,
    /// Why (recorded on the PatchApproval).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    target: crate::lever::pull::Target,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = crate::lever::pull::Output::Text)]
    output: crate::lever::pull::Output,
}

/// `promote` / `pause` / `resume`.
#[derive(clap::Args)]
struct RolloutArgs {
    /// The PatchRollout (`kubectl get prl`).
    rollout: String,
    /// One ring of it.
    #[arg(long)]
    ring: Option<String>,
    #[command(flatten)]
    target: crate::lever::pull::Target,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = crate::lever::pull::Output::Text)]
    output: crate::lever::pull::Output,
}

/// `ringmaster report --namespace NS …`.
#[derive(clap::Args)]
struct ReportArgs {
    /// The tenant (namespace).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// The month, YYYY-MM (default: the last month that has ended). A month not yet
    /// ended is written as it stands now, marked not closed.
    #[arg(long)]
    month: Option<String>,
    /// The tenant's time zone (default: the annotation patching.ringmaster.dev/time-zone
    /// on its Namespace, else UTC).
    #[arg(long, value_name = "IANA")]
    time_zone: Option<String>,
    /// The packet's directory (created; a directory holding another packet is refused).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Sign the packet with this ed25519 key (PKCS#8 PEM).
    #[arg(long, value_name = "KEY.pem")]
    sign_key: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Check a packet against its SHA256SUMS, signature and digest.
    ///
    /// Every file is checked against SHA256SUMS (changed, missing or unlisted files,
    /// malformed or escaping lines), and the signature (--key) and packet digest
    /// (--digest, or the one PatchReport --report records) when given. Without either it
    /// proves integrity only: whoever changed the files could have rewritten SHA256SUMS.
    /// Exits 0 when it verifies, 1 when it does not (every problem is printed), 2 when
    /// the packet, the key or the PatchReport cannot be read.
    #[command(after_help = "Examples:\n  \
        ringmaster report verify packets/acme/2023-11\n  \
        ringmaster report verify packets/acme/2023-11 --key acme-signing.pub\n  \
        ringmaster report verify packets/acme/2023-11 --digest 9f86d081884c7d65…\n  \
        ringmaster report verify --report acme/2023-11   \
        # where and what the tenant's PatchReport records\n  \
        ringmaster report verify s3://evidence/ringmaster/acme/2023-11 --report acme/2023-11")]
    Verify {
        /// The packet: a directory (holding SHA256SUMS), a file:// URL, or an s3:// URL
        /// (credentials and endpoint from the AWS_* environment). With --report, default:
        /// where the PatchReport says the packet is.
        #[arg(value_name = "LOCATION", required_unless_present = "report")]
        location: Option<String>,
        /// The signer's ed25519 public key (SPKI PEM, as `openssl pkey -pubout` writes
        /// it); SHA256SUMS.sig must then be its signature of SHA256SUMS.
        #[arg(long, value_name = "PUB.pem")]
        key: Option<PathBuf>,
        /// The expected packet digest: the sha256 of SHA256SUMS, hex (optionally
        /// `sha256:`), as the PatchReport records it.
        #[arg(long, value_name = "HEX", conflicts_with = "report")]
        digest: Option<String>,
        /// Check the packet against the digest the cluster records: PatchReport
        /// NAMESPACE/NAME (from the kubeconfig's cluster), which must be closed.
        #[arg(long, value_name = "NS/NAME")]
        report: Option<String>,
    },
    /// Make an ed25519 key pair for signing packets.
    ///
    /// Writes PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub (SPKI PEM), the same
    /// files `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` write.
    /// Never overwrites a key.
    #[command(after_help = "Example:\n  ringmaster report keygen --out acme-signing")]
    Keygen {
        /// Where to write: PREFIX.key and PREFIX.pub.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
}

/// A feed, as named on the command line.
#[derive(Clone, Copy, ValueEnum)]
enum SourceArg {
    Msrc,
    Osv,
    Kev,
    Epss,
}

impl From<SourceArg> for crate::catalog::Source {
    fn from(s: SourceArg) -> Self {
        use crate::catalog::Source;
        match s {
            SourceArg::Msrc => Source::Msrc,
            SourceArg::Osv => Source::Osv,
            SourceArg::Kev => Source::Kev,
            SourceArg::Epss => Source::Epss,
        }
    }
}

/// Which binary runs the command line: its name in `--help` and usage lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    /// `ringmaster`.
    Ringmaster,
    /// `kubectl-ringmaster`, run by kubectl as `kubectl ringmaster`.
    KubectlPlugin,
}

/// Parses the process's arguments and runs the command; the process's exit code.
pub fn main(binary: Binary) -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let mut command = Cli::command();
    if binary == Binary::KubectlPlugin {
        command = command
            .name("kubectl-ringmaster")
            .bin_name("kubectl ringmaster");
    }
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match cli.command {
        Command::Run(opts) => run(opts),
        Command::Agent(opts) => agent(*opts),
        Command::Enroll(opts) => enroll(opts),
        Command::Crds => crds(),
        Command::Simulate {
            paths,
            days,
            start,
            seed,
            format,
            catalog,
            report,
            time_zone,
            sign_key,
            baseline,
            from_cluster,
            namespace,
            kubeconfig,
            context,
            max_compliance_drop,
        } => match (baseline, from_cluster.then_some(namespace).flatten()) {
            (Some(baseline), _) => preview(
                &paths,
                Against::Dir(baseline),
                &catalog,
                (days, start, seed),
                time_zone,
                format,
                max_compliance_drop,
            ),
            (None, Some(namespace)) => preview(
                &paths,
                Against::Cluster {
                    namespace,
                    kubeconfig,
                    context,
                },
                &catalog,
                (days, start, seed),
                time_zone,
                format,
                max_compliance_drop,
            ),
            (None, None) if format == SimFormat::Markdown => {
                eprintln!(
                    "error: --format markdown is the preview's: give --baseline BASE_DIR or --from-cluster -n NAMESPACE"
                );
                ExitCode::from(2)
            }
            (None, None) => simulate(
                &paths,
                &catalog,
                (days, start, seed),
                format,
                report.map(|dir| (dir, time_zone, sign_key)),
            ),
        },
        Command::Catalog {
            command:
                CatalogCommand::Import {
                    source,
                    inputs,
                    dry_run,
                    output,
                },
        } => catalog_import(source.into(), inputs, dry_run, output),
        Command::Report { command, make } => ExitCode::from(report(command, make)),
        Command::Status { target, output } => status(&target, output),
        Command::Why {
            what,
            target,
            output,
        } => why(&target, &what, output),
        Command::Approve(a) => decide(a, crate::api::Decision::Approve),
        Command::Reject(a) => decide(a, crate::api::Decision::Reject),
        Command::Promote(a) => {
            let lever = crate::lever::pull::RolloutLever::Promote(a.ring.clone());
            rollout_lever(a, lever)
        }
        Command::Pause(a) => {
            let lever = crate::lever::pull::RolloutLever::Pause(a.ring.clone());
            rollout_lever(a, lever)
        }
        Command::Resume(a) => {
            let lever = crate::lever::pull::RolloutLever::Resume(a.ring.clone());
            rollout_lever(a, lever)
        }
        Command::Abort {
            rollout,
            target,
            output,
        } => rollout_lever(
            RolloutArgs {
                rollout,
                ring: None,
                target,
                output,
            },
            crate::lever::pull::RolloutLever::Abort,
        ),
        Command::Freeze {
            freeze,
            target,
            output,
        } => pull(&target, output, |client, ns| async move {
            crate::lever::pull::freeze(&client, &ns, freeze, jiff::Timestamp::now()).await
        }),
        Command::Except {
            except,
            target,
            output,
        } => pull(&target, output, |client, ns| async move {
            crate::lever::pull::except(&client, &ns, except, jiff::Timestamp::now()).await
        }),
        Command::Validate { paths, at } => validate_paths(&paths, at),
    }
}

/// `crds`: every CRD as YAML.
fn crds() -> ExitCode {
    match crate::crds::render_all() {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `validate`: the manifests' problems, one a line; exit 1 when there are any, 2 when
/// they cannot be read.
fn validate_paths(paths: &[std::path::PathBuf], at: Option<jiff::Timestamp>) -> ExitCode {
    let docs = match manifest::load_paths(paths) {
        Ok(d) => d,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    let problems = validate::check(docs, at, jiff::Timestamp::now());
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        eprintln!("ok: no problems found");
        ExitCode::SUCCESS
    } else {
        eprintln!("{} problem(s)", problems.len());
        ExitCode::from(1)
    }
}

/// `status`.
fn status(target: &crate::lever::pull::Target, output: crate::lever::pull::Output) -> ExitCode {
    show(target, |objects| {
        Ok(crate::lever::show::status(
            objects,
            jiff::Timestamp::now(),
            output,
            crate::lever::show::colour_stdout(),
        ))
    })
}

/// `why device|rollout`.
fn why(
    target: &crate::lever::pull::Target,
    what: &crate::lever::show::WhyTarget,
    output: crate::lever::pull::Output,
) -> ExitCode {
    show(target, |objects| {
        crate::lever::show::why(
            objects,
            what,
            jiff::Timestamp::now(),
            output,
            crate::lever::show::colour_stdout(),
        )
        .map_err(Into::into)
    })
}

/// `status` / `why`: reads the target's tenant, prints what `view` makes of it.
fn show<F>(target: &crate::lever::pull::Target, view: F) -> ExitCode
where
    F: FnOnce(&crate::report::cluster::Objects) -> Result<String, crate::lever::show::ShowError>,
{
    at_cluster(target, |client, ns| async move {
        let objects = crate::lever::show::tenant(&client, &ns).await?;
        view(&objects)
    })
}

/// `approve` / `reject`.
fn decide(a: DecideArgs, decision: crate::api::Decision) -> ExitCode {
    let DecideArgs {
        patch,
        policy,
        reason,
        target,
        output,
    } = a;
    pull(&target, output, |client, ns| async move {
        crate::lever::pull::decide(&client, &ns, &policy, &patch, decision, &reason).await
    })
}

/// `promote` / `pause` / `resume` / `abort`.
fn rollout_lever(a: RolloutArgs, lever: crate::lever::pull::RolloutLever) -> ExitCode {
    let name = a.rollout.clone();
    pull(&a.target, a.output, |client, ns| async move {
        crate::lever::pull::rollout(&client, &ns, &name, &lever).await
    })
}

/// Connects to the target's cluster, pulls one lever, prints what it did.
fn pull<F, Fut>(
    target: &crate::lever::pull::Target,
    output: crate::lever::pull::Output,
    lever: F,
) -> ExitCode
where
    F: FnOnce(kube::Client, String) -> Fut,
    Fut: std::future::Future<
            Output = Result<crate::lever::pull::Pulled, crate::lever::pull::PullError>,
        >,
{
    at_cluster(target, |client, ns| async move {
        Ok(lever(client, ns).await?.render(output))
    })
}

/// Connects to the target's cluster and runs `verb` in its namespace; prints its text,
/// or the error, and exits as [`crate::lever::show::ShowError::exit_code`] says.
fn at_cluster<F, Fut>(target: &crate::lever::pull::Target, verb: F) -> ExitCode
where
    F: FnOnce(kube::Client, String) -> Fut,
    Fut: std::future::Future<Output = Result<String, crate::lever::show::ShowError>>,
{
    let Some(runtime) = runtime() else {
        return ExitCode::from(2);
    };
    let result = runtime.block_on(async {
        let (client, ns) = crate::lever::pull::connect(target).await?;
        verb(client, ns).await
    });
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// `ringmaster report …`: the packet's exit code.
fn report(command: Option<ReportCommand>, make: ReportArgs) -> u8 {
    use crate::report::cli;
    match command {
        Some(ReportCommand::Verify {
            location,
            key,
            digest,
            report,
        }) => {
            let Some(runtime) = runtime() else {
                return 2;
            };
            let args = cli::VerifyArgs {
                location,
                key,
                digest,
                report,
            };
            runtime.block_on(cli::verify(&args))
        }
        Some(ReportCommand::Keygen { out }) => cli::keygen(&out),
        None => {
            let (Some(namespace), Some(out)) = (make.namespace, make.out) else {
                eprintln!("error: give --namespace and --out (or a subcommand: verify, keygen)");
                return 2;
            };
            let Some(runtime) = runtime() else {
                return 2;
            };
            let args = cli::FromCluster {
                namespace,
                month: make.month,
                time_zone: make.time_zone,
                out,
                sign_key: make.sign_key,
            };
            runtime.block_on(cli::from_cluster(&args, jiff::Timestamp::now()))
        }
    }
}

/// The async runtime of `run` and `agent`; None (having said why) if it cannot start.
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            None
        }
    }
}

fn run(opts: crate::operator::RunOptions) -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(crate::operator::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the operator stopped");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn catalog_import(
    source: crate::catalog::Source,
    mut inputs: Vec<String>,
    dry_run: bool,
    output: Format,
) -> ExitCode {
    use crate::catalog::import;
    let defaults = inputs.is_empty();
    if defaults {
        inputs = source.default_urls(jiff::Timestamp::now());
    }
    let Some(runtime) = runtime() else {
        return ExitCode::from(2);
    };
    let outcome = runtime.block_on(async {
        let (loaded, unpublished) = import::load(source, &inputs, defaults)
            .await
            .map_err(|e| e.to_string())?;
        for url in &unpublished {
            eprintln!("note: {url} is not published yet (404)");
        }
        let (feed, skipped) = import::parse(source, &loaded).map_err(|e| e.to_string())?;
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("kubernetes client: {e}"))?;
        let api: kube::Api<crate::api::Patch> = kube::Api::all(client);
        import::import(&api, source, &feed, &skipped, dry_run)
            .await
            .map_err(|e| format!("listing Patches: {e}"))
    });
    let summary = match outcome {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("nothing was imported");
            return ExitCode::from(2);
        }
    };
    match output {
        Format::Json => match serde_json::to_string_pretty(&summary) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("error: {e}"),
        },
        Format::Text => print_summary(&summary),
    }
    ExitCode::from(summary.exit_code())
}

/// The import's changes, one line each, the skipped records on stderr, and the total.
fn print_summary(s: &crate::catalog::import::Summary) {
    let (create, update) = if s.dry_run {
        ("would create", "would update")
    } else {
        ("created", "updated")
    };
    for name in &s.created {
        println!("patch/{name} {create}");
    }
    for name in &s.updated {
        println!("patch/{name} {update}");
    }
    for f in &s.failed {
        eprintln!("patch/{}: write failed: {}", f.name, f.error);
    }
    for k in &s.skipped {
        let id =
            k.id.as_deref()
                .map(|i| format!(" ({i})"))
                .unwrap_or_default();
        eprintln!("skipped: {}: {}{id}: {}", k.file, k.at, k.problem);
    }
    println!("{}", s.line());
}

/// Imports feed files into the simulator's catalog, saying on stderr what each feed did
/// and which records it skipped; false (having said why) when a file cannot be used.
fn import_offline(
    patches: &mut std::collections::BTreeMap<String, crate::api::Patch>,
    files: &[PathBuf],
) -> bool {
    match crate::catalog::offline::apply_files(patches, files) {
        Ok(done) => {
            for (source, applied) in done {
                for s in &applied.skipped {
                    eprintln!("skipped: {s}");
                }
                for (name, why) in &applied.refused {
                    eprintln!("refused: patch/{name}: {why}");
                }
                eprintln!(
                    "catalog {source}: {} created, {} updated, {} skipped",
                    applied.created,
                    applied.updated,
                    applied.skipped.len()
                );
            }
            true
        }
        Err(e) => {
            eprintln!("error: {e}");
            false
        }
    }
}

fn agent(opts: crate::agent::AgentOptions) -> ExitCode {
    if !opts.simulate {
        return linux_agent(opts);
    }
    let fleet = opts.fleet();
    until_stopped(opts.log_format, |stopped| async move {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("kubernetes client: {e}"))?;
        crate::agent::run(client, fleet, stopped)
            .await
            .map_err(|e| e.to_string())
    })
}

fn enroll(opts: crate::enroll::EnrollOptions) -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(crate::enroll::run(&opts)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Where `simulate --report` writes packets: the directory, the time zone, the key.
type PacketArgs = (PathBuf, Option<String>, Option<PathBuf>);

/// The manifests under `paths`, each checked against its schema; or exit code 2, after
/// saying every problem on stderr.
fn checked_manifests(
    paths: &[PathBuf],
) -> Result<Vec<(manifest::Source, manifest::Object)>, ExitCode> {
    let docs = manifest::load_paths(paths).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!("nothing was simulated");
        ExitCode::from(2)
    })?;
    let (objects, problems) = manifest::parse_documents(docs);
    if problems.is_empty() {
        return Ok(objects);
    }
    for p in &problems {
        eprintln!("{p}");
    }
    eprintln!("{} problem(s); nothing was simulated", problems.len());
    Err(ExitCode::from(2))
}

/// Loads one tenant's manifests for the simulator, with `catalog` imported: the world
/// and fleet, or the exit code after saying on stderr why not. Cross-object problems are
/// warnings (judged at `start`, else the Fleet's, else now).
fn load_side(
    paths: &[PathBuf],
    catalog: &[PathBuf],
    start: Option<jiff::Timestamp>,
) -> Result<(sim::World, sim::FleetSpec), ExitCode> {
    let objects = checked_manifests(paths)?;
    // Problems across objects are what the operator would report on their status: the
    // run goes ahead so their effect can be seen.
    let warn_at = start.or_else(|| {
        objects.iter().find_map(|(_, o)| match o {
            manifest::Object::Extension { kind, value, .. } if kind == "Fleet" => {
                value["spec"]["start"].as_str().and_then(|s| s.parse().ok())
            }
            _ => None,
        })
    });
    for p in validate::cross_check(&objects, warn_at.unwrap_or_else(jiff::Timestamp::now)) {
        eprintln!("warning: {p}");
    }
    let (mut world, fleet) = match sim::load::world_from(objects) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("nothing was simulated");
            return Err(ExitCode::from(2));
        }
    };
    if !catalog.is_empty() && !import_offline(&mut world.patches, catalog) {
        eprintln!("nothing was simulated");
        return Err(ExitCode::from(2));
    }
    Ok((world, fleet))
}

fn simulate(
    paths: &[PathBuf],
    catalog: &[PathBuf],
    (days, start, seed): (Option<u32>, Option<jiff::Timestamp>, u64),
    format: SimFormat,
    packets: Option<PacketArgs>,
) -> ExitCode {
    let (world, fleet) = match load_side(paths, catalog, start) {
        Ok(side) => side,
        Err(code) => return code,
    };
    let Some(start) = start.or(fleet.start) else {
        eprintln!("no start time: give --start or set spec.start in the Fleet");
        return ExitCode::from(2);
    };
    let options = sim::Options {
        start,
        days: days.or(fleet.days).unwrap_or(30),
        seed,
    };
    let key = match packets
        .as_ref()
        .map(|(_, _, key)| crate::report::cli::signing_key(key.as_deref()))
        .transpose()
    {
        Ok(key) => key.flatten(),
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("nothing was simulated");
            return ExitCode::from(2);
        }
    };
    let zone = packets
        .as_ref()
        .and_then(|(_, zone, _)| zone.clone())
        .or_else(|| fleet.time_zone.clone())
        .unwrap_or_else(|| "UTC".to_string());
    let mut simulation = sim::Simulation::new(world, fleet, options);
    if packets.is_some() {
        simulation = match simulation.close_months(&zone) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                eprintln!("nothing was simulated");
                return ExitCode::from(2);
            }
        };
    }
    let outcome = simulation.run();
    if let Some((dir, _, _)) = &packets {
        match crate::report::cli::write_simulated(dir, &outcome.months, key.as_ref()) {
            Ok(written) => {
                for w in &written {
                    eprintln!("{}", crate::report::cli::written_line(w));
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    match format {
        SimFormat::Text | SimFormat::Markdown => print!("{}", sim::report::text(&outcome)),
        SimFormat::Json => match sim::report::json(&outcome) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    }
    ExitCode::SUCCESS
}

/// What a preview's head is compared with.
enum Against {
    /// A directory of manifests (`--baseline`).
    Dir(PathBuf),
    /// A live tenant (`--from-cluster`).
    Cluster {
        namespace: String,
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
    },
}

/// Both sides of a preview, ready to play over one period.
struct Sides {
    base: (sim::World, sim::FleetSpec),
    head: (sim::World, sim::FleetSpec),
    options: sim::Options,
    zone: String,
    notes: Vec<String>,
}

/// `simulate HEAD --baseline BASE` or `--from-cluster -n NS`: both played over one period
/// with one seed, compared. Exits 0, 1 when the compliance gate is exceeded, 2 on
/// unreadable input (or a cluster that cannot be read).
fn preview(
    head: &[PathBuf],
    against: Against,
    catalog: &[PathBuf],
    (days, start, seed): (Option<u32>, Option<jiff::Timestamp>, u64),
    time_zone: Option<String>,
    format: SimFormat,
    max_drop: Option<f64>,
) -> ExitCode {
    if let Some(max) = max_drop
        && !(max.is_finite() && max >= 0.0)
    {
        eprintln!(
            "error: --max-compliance-drop {max}: give a number of percentage points, 0 or more"
        );
        return ExitCode::from(2);
    }
    let sides = match against {
        Against::Dir(baseline) => {
            preview_dirs(head, &baseline, catalog, (days, start, seed), time_zone)
        }
        Against::Cluster {
            namespace,
            kubeconfig,
            context,
        } => preview_cluster(
            head,
            (&namespace, kubeconfig.as_deref(), context.as_deref()),
            catalog,
            (days, start, seed),
            time_zone,
        ),
    };
    let Sides {
        base: (base_world, base_fleet),
        head: (head_world, head_fleet),
        options,
        zone,
        notes,
    } = match sides {
        Ok(sides) => sides,
        Err(code) => return code,
    };
    let days = options.days;
    let (before, after) = std::thread::scope(|s| {
        let o = options.clone();
        let base = s.spawn(move || sim::Simulation::new(base_world, base_fleet, o).run());
        let after = sim::Simulation::new(head_world, head_fleet, options).run();
        (base.join(), after)
    });
    let Ok(before) = before else {
        eprintln!("error: the baseline's run failed");
        return ExitCode::FAILURE;
    };
    let mut p = sim::preview::compare(
        &sim::preview::period_report(&before, &zone),
        &sim::preview::period_report(&after, &zone),
        seed,
        days,
    );
    p.notes = notes;
    if let Some(max) = max_drop {
        p = p.gate(max);
    }
    match format {
        SimFormat::Text => {
            use std::io::IsTerminal;
            print!(
                "{}",
                sim::preview::text(&p, std::io::stdout().is_terminal())
            );
        }
        SimFormat::Markdown => print!("{}", sim::preview::markdown(&p)),
        SimFormat::Json => match sim::preview::json(&p) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    }
    if p.gate_tripped() {
        if let Some(g) = &p.gate {
            for h in &g.exceeded {
                eprintln!(
                    "compliance drop: {}: {:.1} points, more than {}",
                    h.figure,
                    h.compliance.drop(),
                    g.max_compliance_drop
                );
            }
        }
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// The preview's sides from two directories: the period is `--start`, `--days`,
/// `--time-zone`, else the baseline's Fleet's.
fn preview_dirs(
    head: &[PathBuf],
    baseline: &std::path::Path,
    catalog: &[PathBuf],
    (days, start, seed): (Option<u32>, Option<jiff::Timestamp>, u64),
    time_zone: Option<String>,
) -> Result<Sides, ExitCode> {
    let (base_world, base_fleet) = load_side(&[baseline.to_path_buf()], catalog, start)?;
    let start = start.or(base_fleet.start);
    let (head_world, head_fleet) = load_side(head, catalog, start)?;
    let Some(start) = start else {
        eprintln!("no start time: give --start or set spec.start in the baseline's Fleet");
        return Err(ExitCode::from(2));
    };
    let days = days.or(base_fleet.days).unwrap_or(30);
    let zone = time_zone
        .or_else(|| base_fleet.time_zone.clone())
        .unwrap_or_else(|| "UTC".to_string());
    if jiff::tz::TimeZone::get(&zone).is_err() {
        eprintln!("error: time zone {zone:?}: not an IANA time zone name");
        return Err(ExitCode::from(2));
    }
    let notes = sim::preview::fleet_notes(&base_fleet, &head_fleet);
    Ok(Sides {
        base: (base_world, base_fleet),
        head: (head_world, head_fleet),
        options: sim::Options { start, days, seed },
        zone,
        notes,
    })
}

/// The preview's sides from a live tenant (`namespace`, through `kubeconfig` and
/// `context`) and the head's manifests applied over it (`sim::live`): the period is
/// `--start`, else the next whole hour, for `--days`, else 30; dates in `--time-zone`,
/// else the Namespace's annotation, else UTC.
fn preview_cluster(
    head: &[PathBuf],
    (namespace, kubeconfig, context): (&str, Option<&std::path::Path>, Option<&str>),
    catalog: &[PathBuf],
    (days, start, seed): (Option<u32>, Option<jiff::Timestamp>, u64),
    time_zone: Option<String>,
) -> Result<Sides, ExitCode> {
    let fail = |message: &dyn std::fmt::Display| {
        eprintln!("error: {message}");
        eprintln!("nothing was simulated");
        ExitCode::from(2)
    };
    // The head first: a broken manifest is reported without a round trip to the cluster.
    let objects = checked_manifests(head)?;
    if let Some(zone) = &time_zone
        && jiff::tz::TimeZone::get(zone).is_err()
    {
        return Err(fail(&format!(
            "time zone {zone:?}: not an IANA time zone name"
        )));
    }
    let runtime = runtime().ok_or(ExitCode::from(2))?;
    let live = runtime
        .block_on(async {
            let cluster = sim::cluster::connect(kubeconfig, context, namespace).await?;
            sim::cluster::read(&cluster, namespace).await
        })
        .map_err(|e| fail(&e))?;
    let annotated = time_zone.is_none() && live.time_zone.is_some();
    let zone = time_zone
        .or_else(|| live.time_zone.clone())
        .unwrap_or_else(|| "UTC".to_string());
    let Ok(tz) = jiff::tz::TimeZone::get(&zone) else {
        return Err(fail(&format!(
            "time zone {zone:?}{}: not an IANA time zone name",
            if annotated {
                format!(
                    " (namespace {namespace}'s annotation {})",
                    crate::report::cluster::TIME_ZONE_ANNOTATION
                )
            } else {
                String::new()
            }
        )));
    };
    let options = sim::Options {
        start: start.unwrap_or_else(|| sim::live::default_start(jiff::Timestamp::now(), &tz)),
        days: days.unwrap_or(sim::live::DEFAULT_DAYS),
        seed,
    };
    let prepared = sim::live::prepare(live.objects, objects, options).map_err(|e| {
        eprintln!("{e}");
        eprintln!("nothing was simulated");
        ExitCode::from(2)
    })?;
    for w in &prepared.warnings {
        eprintln!("{}", sim::live::warning(w));
    }
    let (mut base, mut head) = (prepared.baseline, prepared.head);
    let imported = catalog.is_empty()
        || (import_offline(&mut base.patches, catalog)
            && import_offline(&mut head.patches, catalog));
    if !imported {
        eprintln!("nothing was simulated");
        return Err(ExitCode::from(2));
    }
    let mut notes = live.notes;
    notes.extend(prepared.notes);
    Ok(Sides {
        base: (base, prepared.fleet.clone()),
        head: (head, prepared.fleet),
        options: prepared.options,
        zone,
        notes,
    })
}

/// `ringmaster agent --backend …`: the real Linux agent for one device.
fn linux_agent(opts: crate::agent::AgentOptions) -> ExitCode {
    if opts.namespace.trim().is_empty() {
        eprintln!(
            "error: --namespace is empty: name the device's namespace (the systemd unit reads RINGMASTER_NAMESPACE from /etc/default/ringmaster-agent)"
        );
        return ExitCode::from(2);
    }
    let Some(options) = opts.linux() else {
        eprintln!(
            "error: pass --backend apt|dnf|auto to run the Linux agent (with --name when the host name cannot be read), or --simulate for a simulated fleet"
        );
        return ExitCode::from(2);
    };
    until_stopped(opts.log_format, |stopped| async move {
        crate::agent::linux::run::run(options, stopped)
            .await
            .map_err(|e| e.to_string())
    })
}

/// Runs `work` with a receiver that turns true on SIGTERM or Ctrl-C; exits 0 when it
/// ends well, 1 with its error on stderr otherwise.
fn until_stopped<F, Fut>(log_format: crate::operator::LogFormat, work: F) -> ExitCode
where
    F: FnOnce(tokio::sync::watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    crate::operator::run::init_tracing(log_format);
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let outcome = runtime.block_on(async {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            crate::operator::run::shutdown_signal().await;
            let _ = stop.send(true);
        });
        work(stopped).await
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
