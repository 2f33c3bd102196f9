//! The dnf backend: drives `dnf` and `rpm` through their command lines only (never
//! linking libdnf or librpm), with `LC_ALL=C` so that what they print can be classified
//! into a typed [`BackendError`].
//!
//! dnf 4 (RHEL 8 and 9, and Debian's `dnf` package) is the syntax spoken; dnf 5 (Fedora
//! 41 and later) is detected from `dnf --version` on the host and differs where it must: no
//! `exit_on_lock` (dnf 5 rejects unknown options), no `--showduplicates` on `repoquery`
//! (dnf 5 lists every version by default), `--no-plugins`, and `dnf needs-restarting`
//! from the dnf5-plugins package instead of dnf-utils' `needs-restarting -r`.
//!
//! Every command runs with:
//! - `--setopt=exit_on_lock=True` (dnf 4): dnf 4 otherwise waits *forever* for another
//!   dnf ("Waiting for process with pid …"); with it, dnf exits at once with code 200
//!   ("RPMDB already locked by …"), which is [`BackendError::Locked`]. Should a dnf still
//!   wait (a dnf older than the option, which it then only warns about, or
//!   `exit_on_lock=False` among the extra options), the runner's time limit kills it and a time-out whose output shows a lock wait is
//!   `Locked` too, with what it printed; any other time-out is `TimedOut`.
//! - `PYTHONUNBUFFERED=1`, so that what dnf 4 printed before a time-out is not lost in
//!   Python's buffer when its process group is killed.
//! - `--setopt=color=never`, and the configured extra `--setopt`s last, so they win.
//!
//! Transactions add `-y` and `--setopt=install_weak_deps=False` (a fix installs what it
//! needs, not what it recommends). Local configuration is kept by rpm itself: a
//! `%config(noreplace)` file changed locally stays and the package's version lands
//! beside it as `.rpmnew`; a changed plain `%config` file is replaced and saved as
//! `.rpmsave`. There is no prompt to answer, unlike dpkg's conffile question.
//!
//! A failing `%post` does *not* fail the transaction: rpm prints `warning:
//! %post(…) scriptlet failed`, dnf prints `Error in POSTIN scriptlet` and still exits 0
//! with the new version installed. The backend returns success there (the agent's
//! post-patch validation and health checks judge the result) with the scriptlet's lines
//! kept in the message. A failing `%pre` aborts that package's install: dnf exits 1,
//! which is [`BackendError::Failed`].
//!
//! `install` is `dnf install NAME-[EPOCH:]VERSION-RELEASE[.ARCH]…` in one transaction:
//! it installs a package that is not there yet and upgrades one that is. dnf 4 goes to
//! exactly that version, *downward* too when the installed one is newer (`dnf upgrade`
//! would instead do nothing and exit 0, and refuses packages not yet installed), so the
//! agent asks `install` only for versions at least the fixed one.
//!
//! `downgrade` is `dnf downgrade NAME-EVR…`, not `dnf history undo`: the agent knows the
//! version each package had, a pin is idempotent (downgrading to the installed version is
//! "Nothing to do"), and undo would need the transaction's id and revert everything that
//! transaction did, dependencies included. Before running anything it refuses
//! [`NO_ROLLBACK`] packages, then asks `repoquery` whether the version is still offered.
//!
//! A confined root (for tests) is `--installroot=ROOT --setopt=reposdir=ROOT/etc/yum.repos.d`
//! with `--noplugins` (a host plugin such as subscription-manager must not act for a
//! test root), and `rpm --root ROOT`. dnf 4 itself puts its cache, logs and history
//! inside the installroot. No `--dbpath` is given to rpm: dnf has no such option, so
//! both must use rpm's default `%_dbpath` under the root to see the same database
//! (`/var/lib/rpm` on RHEL; `~/.rpmdb` on Debian, whose rpm is patched so).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use super::applicability::Candidate;
use super::backend::{Backend, BackendError, Pin, RebootNeed};
use super::inventory::{self, Ecosystem, Flavour, InstalledPackage, Inventory};
use super::runner::{self, Cmd, Output, RunError, Runner};

use rpmver::Evr;

/// How many of the package manager's last lines a message keeps.
const TAIL_LINES: usize = 20;
/// How many earlier key lines (errors, failed scriptlets) a message may add before them.
const KEY_LINES: usize = 10;

/// `rpm -qa`'s format: the shared inventory's ([`inventory::RPM_QUERY_FORMAT`]).
pub use super::inventory::RPM_QUERY_FORMAT;

/// `dnf repoquery`'s format: name, epoch (0 when unset), version, release and arch. The
/// trailing newline is needed by dnf 5; dnf 4 adds its own, leaving blank lines.
pub const REPOQUERY_FORMAT: &str = "%{name}\\t%{epoch}\\t%{version}\\t%{release}\\t%{arch}\\n";

/// Packages the backend refuses to downgrade, as name patterns (`*` at the end: any
/// name with that prefix), each with the reason given in [`BackendError::CannotRollBack`].
pub const NO_ROLLBACK: &[(&str, &str)] = &[
    (
        "kernel*",
        "kernels are installed side by side (installonly); roll back by booting the previous kernel",
    ),
    (
        "glibc*",
        "downgrading the C library under running processes is unsupported and can leave the host unusable",
    ),
    (
        "rpm",
        "the package manager itself is not downgraded by the agent",
    ),
    (
        "rpm-*",
        "the package manager itself is not downgraded by the agent",
    ),
    (
        "python3-rpm",
        "the package manager itself is not downgraded by the agent",
    ),
    (
        "dnf",
        "the package manager itself is not downgraded by the agent",
    ),
    (
        "dnf-*",
        "the package manager itself is not downgraded by the agent",
    ),
    (
        "dnf5*",
        "the package manager itself is not downgraded by the agent",
    ),
    (
        "libdnf*",
        "the package manager itself is not downgraded by the agent",
    ),
    (
        "python3-dnf*",
        "the package manager itself is not downgraded by the agent",
    ),
    (
        "python3-libdnf*",
        "the package manager itself is not downgraded by the agent",
    ),
    (
        "yum",
        "the package manager itself is not downgraded by the agent",
    ),
    (
        "yum-*",
        "the package manager itself is not downgraded by the agent",
    ),
    (
        "libsolv*",
        "the package manager itself is not downgraded by the agent",
    ),
    (
        "shim*",
        "an older boot loader may be revoked by Secure Boot (SBAT) and leave the host unbootable",
    ),
    (
        "grub2*",
        "an older boot loader may be revoked by Secure Boot (SBAT) and leave the host unbootable",
    ),
    ("gpg-pubkey", "a signing key, not a package"),
];

/// Architectures a pin's package may end with (`openssl-libs.x86_64`).
const ARCHES: &[&str] = &[
    "noarch", "x86_64", "i686", "i586", "i386", "aarch64", "ppc64le", "s390x", "armv7hl",
];

/// Lines that say another process holds dnf's or rpm's lock.
const LOCK_MARKERS: &[&str] = &[
    "Waiting for process with pid",
    "already locked by",
    "can't create transaction lock",
    "waiting for transaction lock",
    "database is locked",
    "Failed to obtain rpm transaction lock",
];

/// Lines that say the rpm database is broken.
const BROKEN_MARKERS: &[&str] = &[
    "rpmdb open failed",
    "DB_RUNRECOVERY",
    "cannot open Packages",
    "database disk image is malformed",
    "file is not a database",
];

/// dnf 4's exit code when it would not wait for another dnf's lock.
const DNF_LOCK_EXIT: i32 = 200;

/// Which dnf the host has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnfGeneration {
    /// dnf 4 (Python): RHEL/AlmaLinux/Rocky 8 and 9, Debian's `dnf`.
    Dnf4,
    /// dnf 5 (C++): Fedora 41 and later.
    Dnf5,
}

/// How long each kind of command may run before it is killed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnfTimeouts {
    /// Local queries: `rpm -qa`, `uname -r`, `dnf --version`, `needs-restarting`.
    pub query: Duration,
    /// `dnf repoquery`, which may download repository metadata.
    pub metadata: Duration,
    /// `dnf install` and `dnf downgrade` (downloads and scriptlets included).
    pub transaction: Duration,
}

impl Default for DnfTimeouts {
    fn default() -> Self {
        Self {
            query: Duration::from_secs(120),
            metadata: Duration::from_secs(600),
            transaction: Duration::from_secs(1800),
        }
    }
}

/// How the dnf backend runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnfConfig {
    /// A confined root (tests): `dnf --installroot`, `rpm --root`, the root's
    /// `etc/yum.repos.d` and `etc/os-release`, no dnf plugins and no `needs-restarting`
    /// (which judges the running host). `None`: the host.
    pub root: Option<PathBuf>,
    /// `--releasever` (needed for a confined root whose rpmdb has no release package).
    pub releasever: Option<String>,
    /// Extra `--setopt`s (`key=value`), given after the backend's own so they win.
    pub setopts: Vec<String>,
    /// Time limits.
    pub timeouts: DnfTimeouts,
    /// The dnf program.
    pub dnf_program: String,
    /// The rpm program.
    pub rpm_program: String,
    /// dnf-utils' `needs-restarting` (dnf 4).
    pub needs_restarting_program: String,
    /// The running kernel's release as `uname -r` prints it; `None` runs `uname -r`.
    pub running_kernel: Option<String>,
    /// Which dnf; `None` detects it with `dnf --version` on the host. With a confined
    /// root and no generation given, dnf 4 is assumed: `dnf --version` reads the *host's*
    /// rpmdb even with `--installroot` (and creates an empty one on Debian).
    pub generation: Option<DnfGeneration>,
    /// Where the agent itself reads the host's files (`/etc/os-release`) when its
    /// commands run on the host through a prefix (node mode: the host's root mounted at
    /// `/host`). None: under `root`, or `/`.
    pub host_files: Option<PathBuf>,
}

impl Default for DnfConfig {
    fn default() -> Self {
        Self {
            root: None,
            releasever: None,
            setopts: Vec::new(),
            timeouts: DnfTimeouts::default(),
            dnf_program: "dnf".into(),
            rpm_program: "rpm".into(),
            needs_restarting_program: "needs-restarting".into(),
            running_kernel: None,
            generation: None,
            host_files: None,
        }
    }
}

/// The dnf backend over a [`Runner`].
pub struct Dnf<R: Runner> {
    runner: R,
    config: DnfConfig,
    detected: OnceLock<DnfGeneration>,
}

impl<R: Runner> Dnf<R> {
    /// The versions the repositories offer for each package (`name` or `name.arch`),
    /// newest first, by `dnf repoquery`.
    fn offered_versions(
        &self,
        packages: &[String],
        refresh: bool,
    ) -> Result<BTreeMap<String, Vec<String>>, BackendError> {
        let mut offered: BTreeMap<String, Vec<Evr>> =
            packages.iter().map(|p| (p.clone(), Vec::new())).collect();
        if packages.is_empty() {
            return Ok(BTreeMap::new());
        }
        if let Some(bad) = packages.iter().find(|p| !valid_name(p)) {
            return Err(BackendError::Parse {
                what: "the package list".into(),
                detail: format!("`{bad}` is not an RPM package name"),
            });
        }
        let generation = self.generation()?;
        let mut args = self.dnf_args(generation, false);
        if refresh {
            args.push("--refresh".into());
        }
        args.extend(["-q".into(), "repoquery".into(), "--available".into()]);
        if generation == DnfGeneration::Dnf4 {
            args.push("--showduplicates".into());
        }
        args.push(format!("--queryformat={REPOQUERY_FORMAT}"));
        args.extend(packages.iter().cloned());
        let cmd = self.cmd(
            &self.config.dnf_program,
            args,
            self.config.timeouts.metadata,
        );
        let out = self.run(&cmd, &[])?;
        for (name, arch, evr) in parse_repoquery(&out.stdout)? {
            let with_arch = format!("{name}.{arch}");
            for (wanted, versions) in offered.iter_mut() {
                if (*wanted == name || *wanted == with_arch) && !versions.contains(&evr) {
                    versions.push(evr.clone());
                }
            }
        }
        Ok(offered
            .into_iter()
            .map(|(package, mut versions)| {
                versions.sort_by(|a, b| b.rpm_cmp(a));
                (package, versions.iter().map(Evr::to_string).collect())
            })
            .collect())
    }

    /// A backend running its commands with `runner`.
    pub fn new(runner: R, config: DnfConfig) -> Self {
        Self {
            runner,
            config,
            detected: OnceLock::new(),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &DnfConfig {
        &self.config
    }

    /// Which dnf it drives: the configured generation, else (on the host) what
    /// `dnf --version` says, detected once.
    pub fn generation(&self) -> Result<DnfGeneration, BackendError> {
        if let Some(generation) = self.config.generation.or(self.detected.get().copied()) {
            return Ok(generation);
        }
        let generation = if self.config.root.is_some() {
            DnfGeneration::Dnf4
        } else {
            let cmd = self.cmd(
                &self.config.dnf_program,
                vec!["--version".into()],
                self.config.timeouts.query,
            );
            parse_generation(&self.run(&cmd, &[])?.stdout)?
        };
        tracing::debug!(?generation, "dnf generation");
        let _ = self.detected.set(generation);
        Ok(generation)
    }

    fn cmd(&self, program: &str, args: Vec<String>, timeout: Duration) -> Cmd {
        let mut cmd = Cmd::new(program, args, timeout);
        cmd.env = vec![
            ("LC_ALL".into(), "C".into()),
            ("PYTHONUNBUFFERED".into(), "1".into()),
        ];
        cmd
    }

    /// dnf's global options; `transaction` adds `-y` and no weak dependencies.
    fn dnf_args(&self, generation: DnfGeneration, transaction: bool) -> Vec<String> {
        let mut args = vec!["--setopt=color=never".to_string()];
        if generation == DnfGeneration::Dnf4 {
            args.push("--setopt=exit_on_lock=True".into());
        }
        if let Some(root) = &self.config.root {
            args.push(format!("--installroot={}", root.display()));
            let reposdir = root.join("etc/yum.repos.d");
            args.push(format!("--setopt=reposdir={}", reposdir.display()));
            args.push(match generation {
                DnfGeneration::Dnf4 => "--noplugins".into(),
                DnfGeneration::Dnf5 => "--no-plugins".into(),
            });
        }
        if let Some(releasever) = &self.config.releasever {
            args.push(format!("--releasever={releasever}"));
        }
        if transaction {
            args.push("-y".into());
            args.push("--setopt=install_weak_deps=False".into());
        }
        args.extend(self.config.setopts.iter().map(|o| format!("--setopt={o}")));
        args
    }

    /// Runs `cmd`; a failure is classified (`pins` name the packages it was about).
    fn run(&self, cmd: &Cmd, pins: &[Pin]) -> Result<Output, BackendError> {
        tracing::debug!(command = %cmd.display(), "running");
        match self.runner.run(cmd) {
            Ok(out) if out.success() => Ok(out),
            Ok(out) => Err(classify(cmd, &out, pins)),
            Err(RunError::TimedOut {
                command,
                after,
                partial,
            }) => Err(timed_out(command, after, &partial)),
            Err(err @ RunError::Spawn { .. }) => Err(BackendError::Missing(err)),
        }
    }

    /// `dnf -y install|downgrade SPEC…` in one transaction.
    fn transaction(&self, verb: &str, pins: &[Pin]) -> Result<Output, BackendError> {
        let specs = pins.iter().map(spec).collect::<Result<Vec<_>, _>>()?;
        let mut args = self.dnf_args(self.generation()?, true);
        args.push(verb.into());
        args.extend(specs);
        let cmd = self.cmd(
            &self.config.dnf_program,
            args,
            self.config.timeouts.transaction,
        );
        self.run(&cmd, pins)
    }

    /// Refuses, before anything runs, a downgrade to a version no repository offers
    /// (dnf keeps no copy of the packages it replaced unless `keepcache` is set).
    fn check_offered(&self, pins: &[Pin]) -> Result<(), BackendError> {
        let names: Vec<String> = pins.iter().map(|p| p.package.clone()).collect();
        let offered = self.offered_versions(&names, false)?;
        for pin in pins {
            let wanted = parse_pin_version(pin)?;
            let versions = offered
                .get(&pin.package)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if !versions
                .iter()
                .any(|v| Evr::parse(v).as_ref() == Some(&wanted))
            {
                let offered = if versions.is_empty() {
                    "none".to_string()
                } else {
                    versions.join(", ")
                };
                return Err(BackendError::CannotRollBack {
                    package: pin.package.clone(),
                    reason: format!(
                        "version {} is not offered by any configured repository (offered: {offered})",
                        pin.version
                    ),
                });
            }
        }
        Ok(())
    }

    /// `needs-restarting -r`'s lines when it says a reboot is needed; nothing when it is
    /// absent or the backend works on a confined root.
    fn needs_restarting(&self) -> Result<Vec<String>, BackendError> {
        if self.config.root.is_some() {
            return Ok(Vec::new());
        }
        let generation = self.generation()?;
        let (program, args) = match generation {
            DnfGeneration::Dnf4 => (
                &self.config.needs_restarting_program,
                vec!["-r".to_string()],
            ),
            DnfGeneration::Dnf5 => (
                &self.config.dnf_program,
                vec!["needs-restarting".to_string()],
            ),
        };
        let cmd = self.cmd(program, args, self.config.timeouts.query);
        let out = match self.runner.run(&cmd) {
            Ok(out) => out,
            Err(RunError::Spawn { program, source }) => {
                tracing::debug!(%program, %source, "needs-restarting is not installed");
                return Ok(Vec::new());
            }
            Err(RunError::TimedOut {
                command,
                after,
                partial,
            }) => return Err(timed_out(command, after, &partial)),
        };
        let lines: Vec<String> = out
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        match out.code {
            Some(0) => Ok(Vec::new()),
            Some(1) if !lines.is_empty() => Ok(lines),
            _ if generation == DnfGeneration::Dnf5 => {
                tracing::warn!(tail = %runner::tail(&out, 3), "dnf needs-restarting failed; is dnf5-plugins installed?");
                Ok(Vec::new())
            }
            _ => Err(classify(&cmd, &out, &[])),
        }
    }

    /// The running kernel's release: the configured one, else `uname -r`.
    fn running_kernel(&self) -> Result<String, BackendError> {
        if let Some(kernel) = &self.config.running_kernel {
            return Ok(kernel.clone());
        }
        let cmd = self.cmd("uname", vec!["-r".into()], self.config.timeouts.query);
        let out = self.run(&cmd, &[])?;
        let release = out.stdout.trim();
        if release.is_empty() {
            return Err(BackendError::Parse {
                what: "uname -r".into(),
                detail: "it printed nothing".into(),
            });
        }
        Ok(release.to_string())
    }

    /// Says so when an installed kernel is newer than the running one.
    fn newer_kernel(&self) -> Result<Option<String>, BackendError> {
        let inventory = self.inventory()?;
        let mut newest: Option<(&InstalledPackage, Evr)> = None;
        for package in inventory.packages.iter().filter(|p| is_kernel(&p.name)) {
            let Some(evr) = Evr::parse(&package.version) else {
                continue;
            };
            if newest
                .as_ref()
                .is_none_or(|(_, best)| evr.rpm_cmp(best).is_gt())
            {
                newest = Some((package, evr));
            }
        }
        let Some((package, evr)) = newest else {
            return Ok(None);
        };
        let uname = self.running_kernel()?;
        let running = parse_uname(&uname).ok_or_else(|| BackendError::Parse {
            what: "uname -r".into(),
            detail: format!("`{uname}` is not a kernel release (version-release.arch)"),
        })?;
        Ok(evr.rpm_cmp(&running).is_gt().then(|| {
            format!(
                "{} {} is installed but {} is running",
                package.name, package.version, uname
            )
        }))
    }
}

impl<R: Runner> Backend for Dnf<R> {
    fn name(&self) -> &'static str {
        "dnf"
    }

    fn ecosystem(&self) -> Result<Ecosystem, BackendError> {
        let base = self
            .config
            .host_files
            .as_deref()
            .or(self.config.root.as_deref())
            .unwrap_or(Path::new("/"));
        let candidates = [base.join("etc/os-release"), base.join("usr/lib/os-release")];
        let mut last_error = None;
        for path in &candidates {
            match std::fs::read_to_string(path) {
                Ok(text) => return ecosystem_of(&text, &path.display().to_string()),
                Err(err) => last_error = Some(format!("{}: {err}", path.display())),
            }
        }
        Err(BackendError::Parse {
            what: "os-release".into(),
            detail: last_error.unwrap_or_default(),
        })
    }

    fn inventory(&self) -> Result<Inventory, BackendError> {
        let mut args = Vec::new();
        if let Some(root) = &self.config.root {
            args.push("--root".to_string());
            args.push(root.display().to_string());
        }
        args.extend([
            "-qa".into(),
            "--queryformat".into(),
            RPM_QUERY_FORMAT.into(),
        ]);
        let cmd = self.cmd(&self.config.rpm_program, args, self.config.timeouts.query);
        let out = self.run(&cmd, &[])?;
        // rpm has been known to print database errors and still exit 0: an empty list
        // read from a broken database must not pass for "nothing installed".
        if has_marker(&out.stderr, BROKEN_MARKERS) {
            return Err(BackendError::Broken {
                tail: message(&out),
            });
        }
        Ok(Inventory {
            flavour: Some(Flavour::Rpm),
            packages: inventory::parse_rpm_query(&out.stdout)
                .map_err(|e| BackendError::Parse {
                    what: "rpm -qa".into(),
                    detail: e.to_string(),
                })?
                .packages,
        })
    }

    fn available(
        &self,
        packages: &[String],
        refresh: bool,
    ) -> Result<BTreeMap<String, Vec<Candidate>>, BackendError> {
        // An RPM advisory names binary packages, whose own versions it compares.
        Ok(self
            .offered_versions(packages, refresh)?
            .into_iter()
            .map(|(package, versions)| {
                let candidates = versions
                    .into_iter()
                    .map(|version| Candidate {
                        source_version: version.clone(),
                        version,
                    })
                    .collect();
                (package, candidates)
            })
            .collect())
    }

    fn install(&self, pins: &[Pin]) -> Result<String, BackendError> {
        if pins.is_empty() {
            return Ok(String::new());
        }
        let out = self.transaction("install", pins)?;
        let text = message(&out);
        if has_marker(
            &format!("{}\n{}", out.stdout, out.stderr),
            &["scriptlet failed"],
        ) {
            tracing::warn!(tail = %text, "dnf install succeeded but a scriptlet failed");
        }
        Ok(text)
    }

    fn downgrade(&self, pins: &[Pin]) -> Result<String, BackendError> {
        if pins.is_empty() {
            return Ok(String::new());
        }
        for pin in pins {
            spec(pin)?;
            if let Some(reason) = refusal(&pin.package) {
                return Err(BackendError::CannotRollBack {
                    package: pin.package.clone(),
                    reason: reason.into(),
                });
            }
        }
        self.check_offered(pins)?;
        match self.transaction("downgrade", pins) {
            Ok(out) => Ok(message(&out)),
            Err(BackendError::Unavailable {
                package,
                wanted,
                tail,
            }) => Err(BackendError::CannotRollBack {
                package,
                reason: format!("no configured repository offers version {wanted}: {tail}"),
            }),
            Err(err) => Err(err),
        }
    }

    fn reboot_required(&self) -> Result<RebootNeed, BackendError> {
        let mut reasons = self.needs_restarting()?;
        if let Some(kernel) = self.newer_kernel()? {
            reasons.push(kernel);
        }
        Ok(if reasons.is_empty() {
            RebootNeed::None
        } else {
            RebootNeed::Required(reasons)
        })
    }
}

/// `dnf --version`: dnf 4 prints its version alone on the first line (`4.14.0`), dnf 5
/// `dnf5 version 5.2.8.1`.
fn parse_generation(stdout: &str) -> Result<DnfGeneration, BackendError> {
    let first = stdout
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let version = first.strip_prefix("dnf5 version ").unwrap_or(first);
    match version.split('.').next() {
        Some("4") => Ok(DnfGeneration::Dnf4),
        Some("5") => Ok(DnfGeneration::Dnf5),
        _ => Err(BackendError::Parse {
            what: "dnf --version".into(),
            detail: format!("`{first}` names neither dnf 4 nor dnf 5"),
        }),
    }
}

/// A failed command's typed error, from its exit code and what it printed.
fn classify(cmd: &Cmd, out: &Output, pins: &[Pin]) -> BackendError {
    let text = format!("{}\n{}", out.stdout, out.stderr);
    let tail = message(out);
    if out.code == Some(DNF_LOCK_EXIT) || has_marker(&text, LOCK_MARKERS) {
        return BackendError::Locked { tail };
    }
    if has_marker(&text, BROKEN_MARKERS) {
        return BackendError::Broken { tail };
    }
    let unavailable: Vec<&str> = text.lines().filter(|l| says_unavailable(l)).collect();
    if !unavailable.is_empty() {
        let named = pins
            .iter()
            .find(|pin| spec(pin).is_ok_and(|s| unavailable.iter().any(|l| names_spec(l, &s))));
        if let Some(pin) = named.or(pins.first()) {
            return BackendError::Unavailable {
                package: pin.package.clone(),
                wanted: pin.version.clone(),
                tail,
            };
        }
    }
    BackendError::Failed {
        command: cmd.display(),
        code: out.code,
        tail,
    }
}

/// A time-out: `Locked` when what it printed shows it waiting for a lock (dnf 4 waits
/// forever for another dnf without `exit_on_lock`), else `TimedOut`.
fn timed_out(command: String, after: Duration, partial: &Output) -> BackendError {
    let tail = message(partial);
    let text = format!("{}\n{}", partial.stdout, partial.stderr);
    if has_marker(&text, LOCK_MARKERS) {
        BackendError::Locked { tail }
    } else {
        BackendError::TimedOut {
            command,
            after,
            tail,
        }
    }
}

fn has_marker(text: &str, markers: &[&str]) -> bool {
    markers.iter().any(|m| text.contains(m))
}

/// dnf's ways of saying a requested package or version is not there.
fn says_unavailable(line: &str) -> bool {
    let line = line.trim();
    line.contains("No match for argument")
        || line.contains("Unable to find a match")
        || line.contains("All matches were filtered out")
        || (line.starts_with("No package ") && line.ends_with(" available."))
}

/// Whether dnf's line names exactly this spec (not a longer one it is a prefix of).
fn names_spec(line: &str, spec: &str) -> bool {
    line.match_indices(spec).any(|(at, _)| {
        let after = &line[at + spec.len()..];
        after.is_empty() || after == "." || after.starts_with(char::is_whitespace)
    })
}

/// The package manager's last lines, preceded by earlier error and failed-scriptlet
/// lines that a long transaction pushed out of them (and the line before each failed
/// scriptlet: usually the scriptlet's own last word).
fn message(out: &Output) -> String {
    let tail = runner::tail(out, TAIL_LINES);
    let text = format!("{}\n{}", out.stdout, out.stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    let mut key: Vec<&str> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let scriptlet = line.contains("scriptlet failed");
        if scriptlet && i > 0 && !key.contains(&lines[i - 1]) {
            key.push(lines[i - 1]);
        }
        let error = line.starts_with("error:") || line.starts_with("Error");
        if (scriptlet || error) && !key.contains(line) {
            key.push(*line);
        }
    }
    let tail_lines: Vec<&str> = tail.lines().collect();
    let missing: Vec<&str> = key
        .into_iter()
        .filter(|l| !tail_lines.contains(l))
        .take(KEY_LINES)
        .collect();
    if missing.is_empty() {
        tail
    } else {
        format!("{}\n[…]\n{tail}", missing.join("\n"))
    }
}

/// An RPM package name as the agent accepts it: no option-like or glob characters.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
}

/// The pin's version as an EVR, or a typed error naming what was wrong.
fn parse_pin_version(pin: &Pin) -> Result<Evr, BackendError> {
    let chars_ok = pin
        .version
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._+~^:-".contains(&b));
    Evr::parse(&pin.version)
        .filter(|_| chars_ok)
        .ok_or_else(|| BackendError::Parse {
            what: format!("the pin for {}", pin.package),
            detail: format!(
                "`{}` is not an RPM version ([epoch:]version-release)",
                pin.version
            ),
        })
}

/// `name.arch` → (`name`, `Some(arch)`) when the suffix is a known architecture.
fn split_arch(package: &str) -> (&str, Option<&str>) {
    match package.rsplit_once('.') {
        Some((name, arch)) if ARCHES.contains(&arch) => (name, Some(arch)),
        _ => (package, None),
    }
}

/// dnf's spec for a pin: `name-[epoch:]version-release[.arch]`.
fn spec(pin: &Pin) -> Result<String, BackendError> {
    if !valid_name(&pin.package) {
        return Err(BackendError::Parse {
            what: format!("the pin for {}", pin.package),
            detail: format!("`{}` is not an RPM package name", pin.package),
        });
    }
    parse_pin_version(pin)?;
    Ok(match split_arch(&pin.package) {
        (name, Some(arch)) => format!("{name}-{}.{arch}", pin.version),
        (name, None) => format!("{name}-{}", pin.version),
    })
}

/// Why this package is never downgraded by the agent, if it is one of [`NO_ROLLBACK`].
fn refusal(package: &str) -> Option<&'static str> {
    let (name, _) = split_arch(package);
    NO_ROLLBACK.iter().find_map(|(pattern, reason)| {
        let matches = match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *pattern,
        };
        matches.then_some(*reason)
    })
}

/// Kernel packages whose version is the kernel that boots (not -devel, -headers, …).
fn is_kernel(name: &str) -> bool {
    matches!(
        name,
        "kernel" | "kernel-core" | "kernel-uek" | "kernel-uek-core"
    ) || (name.starts_with("kernel-") && name.ends_with("-core"))
}

/// `uname -r` (`5.14.0-362.8.1.el9_3.x86_64`, `…x86_64+debug`) → its version-release.
fn parse_uname(release: &str) -> Option<Evr> {
    let release = release.trim();
    let release = release.split_once('+').map_or(release, |(r, _)| r);
    let release = match release.rsplit_once('.') {
        Some((rest, arch)) if ARCHES.contains(&arch) => rest,
        _ => release,
    };
    let (version, rel) = release.split_once('-')?;
    Evr::parse(&format!("{version}-{rel}"))
}

/// The OSV ecosystem of an os-release file (`ID=almalinux VERSION_ID=9.3` →
/// `AlmaLinux:9`), refused unless it is an RPM distribution.
fn ecosystem_of(text: &str, what: &str) -> Result<Ecosystem, BackendError> {
    let parse_error = |detail: String| BackendError::Parse {
        what: what.to_string(),
        detail,
    };
    let release = inventory::parse_os_release(text).map_err(|e| parse_error(e.to_string()))?;
    let ecosystem = release
        .ecosystem()
        .map_err(|e| parse_error(e.to_string()))?;
    match ecosystem.flavour() {
        Some(Flavour::Rpm) => Ok(ecosystem),
        _ => Err(parse_error(format!(
            "ID `{}` is not a distribution dnf drives (almalinux, rocky)",
            release.id
        ))),
    }
}

/// `dnf repoquery` with [`REPOQUERY_FORMAT`] → (name, arch, EVR) rows. Lines without a
/// tab are not rows (dnf's own words); a row with the wrong number of fields is an error.
fn parse_repoquery(stdout: &str) -> Result<Vec<(String, String, Evr)>, BackendError> {
    let mut rows = Vec::new();
    for line in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !line.contains('\t') {
            tracing::debug!(%line, "repoquery: not a row");
            continue;
        }
        let bad = |detail: &str| BackendError::Parse {
            what: "dnf repoquery".into(),
            detail: format!("{detail}: `{line}`"),
        };
        let [name, epoch, version, release, arch] = line.split('\t').collect::<Vec<_>>()[..] else {
            return Err(bad("expected name, epoch, version, release and arch"));
        };
        let epoch: u64 = match epoch {
            "" | "(none)" => 0,
            e => e.parse().map_err(|_| bad("the epoch is not a number"))?,
        };
        let evr =
            Evr::new(epoch, version, release).ok_or_else(|| bad("empty version or release"))?;
        rows.push((name.to_string(), arch.to_string(), evr));
    }
    Ok(rows)
}

/// EVRs as the backend handles them; their ordering is the shared version module's
/// `rpmvercmp`.
mod rpmver {
    use std::cmp::Ordering;
    use std::fmt;

    /// `[epoch:]version-release`; equality is textual (epoch 0 and none are equal),
    /// ordering is RPM's ([`Evr::rpm_cmp`]).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub(super) struct Evr {
        epoch: u64,
        version: String,
        release: String,
    }

    impl Evr {
        pub(super) fn new(epoch: u64, version: &str, release: &str) -> Option<Self> {
            (!version.is_empty() && !release.is_empty()).then(|| Self {
                epoch,
                version: version.to_string(),
                release: release.to_string(),
            })
        }

        /// `[epoch:]version-release`; `None` without a release or with a bad epoch.
        pub(super) fn parse(text: &str) -> Option<Self> {
            let (epoch, rest) = match text.split_once(':') {
                Some((epoch, rest)) => (epoch.parse().ok()?, rest),
                None => (0, text),
            };
            let (version, release) = rest.rsplit_once('-')?;
            Self::new(epoch, version, release)
        }

        /// RPM's ordering: epoch, then version, then release, each by [`vercmp`].
        pub(super) fn rpm_cmp(&self, other: &Self) -> Ordering {
            self.epoch
                .cmp(&other.epoch)
                .then_with(|| vercmp(&self.version, &other.version))
                .then_with(|| vercmp(&self.release, &other.release))
        }
    }

    impl fmt::Display for Evr {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            if self.epoch > 0 {
                write!(f, "{}:", self.epoch)?;
            }
            write!(f, "{}-{}", self.version, self.release)
        }
    }

    /// rpm's `rpmvercmp`, as the shared version module has it.
    pub(super) fn vercmp(a: &str, b: &str) -> Ordering {
        crate::agent::linux::version::rpmvercmp(a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What the fake runner answers to a command.
    #[derive(Clone)]
    enum Reply {
        Exit(i32, String, String),
        Spawn,
        TimedOut(String, String),
    }

    fn exit(code: i32, stdout: &str, stderr: &str) -> Reply {
        Reply::Exit(code, stdout.into(), stderr.into())
    }

    /// Answers each command with the first rule whose needle is in its command line,
    /// and records every command. A command no rule expects fails the test.
    #[derive(Clone, Default)]
    struct Fake {
        rules: Arc<Mutex<Vec<(String, Reply)>>>,
        calls: Arc<Mutex<Vec<Cmd>>>,
    }

    impl Fake {
        fn on(self, needle: &str, reply: Reply) -> Self {
            self.rules
                .lock()
                .expect("rules")
                .push((needle.into(), reply));
            self
        }

        fn calls(&self) -> Vec<Cmd> {
            self.calls.lock().expect("calls").clone()
        }

        fn lines(&self) -> Vec<String> {
            self.calls().iter().map(Cmd::display).collect()
        }
    }

    impl Runner for Fake {
        fn run(&self, cmd: &Cmd) -> Result<Output, RunError> {
            self.calls.lock().expect("calls").push(cmd.clone());
            let line = cmd.display();
            let reply = self
                .rules
                .lock()
                .expect("rules")
                .iter()
                .find(|(needle, _)| line.contains(needle.as_str()))
                .map(|(_, reply)| reply.clone());
            match reply {
                Some(Reply::Exit(code, stdout, stderr)) => Ok(Output {
                    code: Some(code),
                    stdout,
                    stderr,
                }),
                Some(Reply::Spawn) => Err(RunError::Spawn {
                    program: cmd.program.clone(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                }),
                Some(Reply::TimedOut(stdout, stderr)) => Err(RunError::TimedOut {
                    command: line,
                    after: cmd.timeout,
                    partial: Output {
                        code: None,
                        stdout,
                        stderr,
                    },
                }),
                None => panic!("unexpected command: {line}"),
            }
        }
    }

    fn host() -> DnfConfig {
        DnfConfig {
            generation: Some(DnfGeneration::Dnf4),
            running_kernel: Some("5.14.0-362.8.1.el9_3.x86_64".into()),
            ..DnfConfig::default()
        }
    }

    fn dnf(fake: &Fake, config: DnfConfig) -> Dnf<Fake> {
        Dnf::new(fake.clone(), config)
    }

    fn pin(package: &str, version: &str) -> Pin {
        Pin {
            package: package.into(),
            version: version.into(),
        }
    }

    const INSTALLED: &str = "Upgrading:\n ringmaster-demo noarch 1.0-2 test 6.1 k\nComplete!\n";

    const QA: &str = "bash\t(none)\t5.1.8\t6.el9_1\tx86_64\tbash-5.1.8-6.el9_1.src.rpm\n\
gpg-pubkey\t(none)\t8483c65d\t5ccc5b19\t(none)\t(none)\n\
openssl-libs\t1\t3.0.7\t25.el9_3\tx86_64\topenssl-3.0.7-25.el9_3.src.rpm\n\
openssl-libs\t1\t3.0.7\t25.el9_3\ti686\topenssl-3.0.7-25.el9_3.src.rpm\n\
kernel-core\t(none)\t5.14.0\t362.8.1.el9_3\tx86_64\tkernel-5.14.0-362.8.1.el9_3.src.rpm\n\
kernel-core\t(none)\t5.14.0\t427.13.1.el9_4\tx86_64\tkernel-5.14.0-427.13.1.el9_4.src.rpm\n\
kernel-headers\t(none)\t5.14.0\t500.el9\tx86_64\tkernel-5.14.0-500.el9.src.rpm\n";

    // --- install -------------------------------------------------------------------

    #[test]
    fn install_runs_one_non_interactive_transaction_of_exact_versions() {
        let fake = Fake::default().on(" install ", exit(0, INSTALLED, ""));
        let tail = dnf(&fake, host())
            .install(&[
                pin("ringmaster-demo", "1.0-2"),
                pin("openssl-libs.x86_64", "1:3.0.7-25.el9_3"),
            ])
            .expect("installs");
        assert!(tail.ends_with("Complete!"), "{tail}");
        let calls = fake.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].program, "dnf");
        assert_eq!(
            calls[0].args,
            [
                "--setopt=color=never",
                "--setopt=exit_on_lock=True",
                "-y",
                "--setopt=install_weak_deps=False",
                "install",
                "ringmaster-demo-1.0-2",
                "openssl-libs-1:3.0.7-25.el9_3.x86_64",
            ]
        );
        assert!(calls[0].env.contains(&("LC_ALL".into(), "C".into())));
        assert_eq!(calls[0].timeout, DnfTimeouts::default().transaction);
    }

    #[test]
    fn a_confined_root_is_the_installroot_its_repos_and_no_plugins() {
        let fake = Fake::default().on(" install ", exit(0, INSTALLED, ""));
        let config = DnfConfig {
            root: Some("/tmp/r".into()),
            releasever: Some("9".into()),
            setopts: vec!["keepcache=True".into()],
            ..host()
        };
        dnf(&fake, config)
            .install(&[pin("ringmaster-demo", "1.0-2")])
            .expect("installs");
        assert_eq!(
            fake.calls()[0].args,
            [
                "--setopt=color=never",
                "--setopt=exit_on_lock=True",
                "--installroot=/tmp/r",
                "--setopt=reposdir=/tmp/r/etc/yum.repos.d",
                "--noplugins",
                "--releasever=9",
                "-y",
                "--setopt=install_weak_deps=False",
                "--setopt=keepcache=True",
                "install",
                "ringmaster-demo-1.0-2",
            ]
        );
    }

    #[test]
    fn nothing_to_install_runs_nothing() {
        let fake = Fake::default();
        assert_eq!(dnf(&fake, host()).install(&[]).expect("no-op"), "");
        assert_eq!(dnf(&fake, host()).downgrade(&[]).expect("no-op"), "");
        assert!(fake.calls().is_empty());
    }

    #[test]
    fn a_failing_pre_scriptlet_is_a_failure_with_its_words() {
        let mut stdout = String::from("Running transaction\nringmaster-demo pre refused\n");
        stdout.push_str(
            "error: %prein(ringmaster-demo-1.0-3.noarch) scriptlet failed, exit status 1\n",
        );
        for i in 0..30 {
            stdout.push_str(&format!("  Verifying : package-{i}\n"));
        }
        let fake = Fake::default().on(
            " install ",
            exit(1, &stdout, "Error in PREIN scriptlet in rpm package ringmaster-demo\nError: Transaction failed\n"),
        );
        let err = dnf(&fake, host())
            .install(&[pin("ringmaster-demo", "1.0-3")])
            .expect_err("fails");
        let BackendError::Failed {
            command,
            code,
            tail,
        } = err
        else {
            panic!("not Failed: {err:?}");
        };
        assert_eq!(code, Some(1));
        assert!(command.starts_with("dnf ") && command.ends_with("install ringmaster-demo-1.0-3"));
        // The scriptlet's words survive the thirty lines that followed them.
        assert!(tail.contains("ringmaster-demo pre refused"), "{tail}");
        assert!(
            tail.contains("%prein(ringmaster-demo-1.0-3.noarch) scriptlet failed"),
            "{tail}"
        );
        assert!(tail.ends_with("Error: Transaction failed"), "{tail}");
    }

    #[test]
    fn a_failing_post_scriptlet_is_a_success_that_says_so() {
        let stdout = "ringmaster-demo post failed\nwarning: %post(ringmaster-demo-1.0-3.noarch) scriptlet failed, exit status 1\nComplete!\n";
        let fake = Fake::default().on(" install ", exit(0, stdout, "Error in POSTIN scriptlet\n"));
        let tail = dnf(&fake, host())
            .install(&[pin("ringmaster-demo", "1.0-3")])
            .expect("dnf exits 0");
        assert!(
            tail.contains("%post(ringmaster-demo-1.0-3.noarch) scriptlet failed"),
            "{tail}"
        );
    }

    #[test]
    fn a_version_no_repository_offers_is_unavailable_for_that_pin() {
        let fake = Fake::default().on(
            " install ",
            exit(
                1,
                "No match for argument: ringmaster-demo-9.9-9\n",
                "Error: Unable to find a match: ringmaster-demo-9.9-9\n",
            ),
        );
        let err = dnf(&fake, host())
            .install(&[
                pin("ringmaster-demo-extra", "1-1"),
                pin("ringmaster-demo", "9.9-9"),
            ])
            .expect_err("unavailable");
        let BackendError::Unavailable {
            package,
            wanted,
            tail,
        } = err
        else {
            panic!("not Unavailable: {err:?}");
        };
        assert_eq!(
            (package.as_str(), wanted.as_str()),
            ("ringmaster-demo", "9.9-9")
        );
        assert!(tail.contains("No match for argument"), "{tail}");
    }

    #[test]
    fn another_dnf_holding_the_lock_is_locked() {
        let fake = Fake::default().on(
            " install ",
            exit(
                200,
                "Running transaction check\n",
                "RPMDB already locked by 9035\n  The application with PID 9035 is: dnf\n",
            ),
        );
        let err = dnf(&fake, host())
            .install(&[pin("a", "1-1")])
            .expect_err("locked");
        assert!(
            matches!(&err, BackendError::Locked { tail } if tail.contains("already locked by 9035")),
            "{err:?}"
        );
    }

    #[test]
    fn rpms_transaction_lock_is_locked() {
        let fake = Fake::default().on(
            " install ",
            exit(1, "Running transaction\n", "RPM: error: can't create transaction lock on /var/lib/rpm/.rpm.lock (Resource temporarily unavailable)\nError: Could not run transaction.\n"),
        );
        let err = dnf(&fake, host())
            .install(&[pin("a", "1-1")])
            .expect_err("locked");
        assert!(matches!(err, BackendError::Locked { .. }), "{err:?}");
    }

    #[test]
    fn a_time_out_waiting_for_a_lock_is_locked_with_what_it_printed() {
        let fake = Fake::default().on(
            " install ",
            Reply::TimedOut(
                "Running transaction check\nWaiting for process with pid 4242 to finish.\n".into(),
                String::new(),
            ),
        );
        let err = dnf(&fake, host())
            .install(&[pin("a", "1-1")])
            .expect_err("locked");
        assert!(
            matches!(&err, BackendError::Locked { tail } if tail.contains("pid 4242")),
            "{err:?}"
        );
    }

    #[test]
    fn any_other_time_out_is_timed_out() {
        let fake = Fake::default().on(
            " install ",
            Reply::TimedOut("Downloading Packages:\n".into(), String::new()),
        );
        let config = DnfConfig {
            timeouts: DnfTimeouts {
                transaction: Duration::from_secs(7),
                ..DnfTimeouts::default()
            },
            ..host()
        };
        let err = dnf(&fake, config)
            .install(&[pin("a", "1-1")])
            .expect_err("timed out");
        let BackendError::TimedOut {
            command,
            after,
            tail,
        } = err
        else {
            panic!("not TimedOut: {err:?}");
        };
        assert_eq!(after, Duration::from_secs(7));
        assert!(command.ends_with("install a-1-1"), "{command}");
        assert_eq!(tail, "Downloading Packages:");
    }

    #[test]
    fn a_broken_rpmdb_is_broken() {
        let fake = Fake::default().on(
            " install ",
            exit(1, "", "error: rpmdb: BDB0113 Thread/process 1/2 failed: BDB1507 Thread died in Berkeley DB library\nerror: db5 error(-30973) from dbenv->failchk: BDB0087 DB_RUNRECOVERY: Fatal error, run database recovery\n"),
        );
        let err = dnf(&fake, host())
            .install(&[pin("a", "1-1")])
            .expect_err("broken");
        assert!(matches!(err, BackendError::Broken { .. }), "{err:?}");
    }

    #[test]
    fn any_other_failure_is_failed_with_its_exit_code() {
        let fake = Fake::default().on(
            " install ",
            exit(
                1,
                "",
                "Error: Failed to download metadata for repo 'baseos'\n",
            ),
        );
        let err = dnf(&fake, host())
            .install(&[pin("a", "1-1")])
            .expect_err("fails");
        assert!(
            matches!(err, BackendError::Failed { code: Some(1), .. }),
            "{err:?}"
        );
    }

    #[test]
    fn an_absent_dnf_is_missing() {
        let fake = Fake::default().on(" install ", Reply::Spawn);
        let err = dnf(&fake, host())
            .install(&[pin("a", "1-1")])
            .expect_err("missing");
        assert!(
            matches!(err, BackendError::Missing(RunError::Spawn { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn pins_that_are_not_rpm_names_and_versions_are_refused_before_anything_runs() {
        let fake = Fake::default();
        let backend = dnf(&fake, host());
        for bad in [
            pin("--setopt=gpgcheck=0", "1-1"),
            pin("", "1-1"),
            pin("kernel*", "1-1"),
            pin("ringmaster-demo", "1.0"),
            pin("ringmaster-demo", "x:1.0-1"),
            pin("ringmaster-demo", "1.0-1 --nogpgcheck"),
        ] {
            let err = backend
                .install(std::slice::from_ref(&bad))
                .expect_err("refused");
            assert!(
                matches!(&err, BackendError::Parse { what, .. } if what.contains(&bad.package)),
                "{bad:?}: {err:?}"
            );
        }
        assert!(fake.calls().is_empty());
    }

    // --- inventory -----------------------------------------------------------------

    #[test]
    fn inventory_reads_rpm_qa_without_signing_keys() {
        let fake = Fake::default().on("rpm ", exit(0, QA, ""));
        let inventory = dnf(&fake, host()).inventory().expect("reads");
        assert_eq!(inventory.flavour, Some(Flavour::Rpm));
        let names: Vec<(&str, &str, &str)> = inventory
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.arch.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("bash", "x86_64", "5.1.8-6.el9_1"),
                ("kernel-core", "x86_64", "5.14.0-362.8.1.el9_3"),
                ("kernel-core", "x86_64", "5.14.0-427.13.1.el9_4"),
                ("kernel-headers", "x86_64", "5.14.0-500.el9"),
                ("openssl-libs", "i686", "1:3.0.7-25.el9_3"),
                ("openssl-libs", "x86_64", "1:3.0.7-25.el9_3"),
            ]
        );
        let openssl = &inventory.packages[5];
        assert_eq!(openssl.source, "openssl");
        assert_eq!(openssl.source_version, "1:3.0.7-25.el9_3");
        assert_eq!(
            fake.calls()[0].args,
            ["-qa", "--queryformat", RPM_QUERY_FORMAT]
        );
    }

    #[test]
    fn inventory_of_a_confined_root_asks_rpm_about_that_root() {
        let fake = Fake::default().on("rpm ", exit(0, "", ""));
        let config = DnfConfig {
            root: Some("/tmp/r".into()),
            ..host()
        };
        assert!(
            dnf(&fake, config)
                .inventory()
                .expect("reads")
                .packages
                .is_empty()
        );
        assert_eq!(fake.calls()[0].args[..2], ["--root", "/tmp/r"]);
    }

    #[test]
    fn a_broken_rpmdb_breaks_the_inventory_even_when_rpm_exits_0() {
        let stderr = "error: cannot open Packages database in /var/lib/rpm\n";
        for code in [0, 1] {
            let fake = Fake::default().on("rpm ", exit(code, "", stderr));
            let err = dnf(&fake, host()).inventory().expect_err("broken");
            assert!(
                matches!(&err, BackendError::Broken { tail } if tail.contains("cannot open Packages")),
                "{err:?}"
            );
        }
    }

    #[test]
    fn rpm_output_that_is_not_the_format_is_a_parse_error() {
        for bad in [
            "bash 5.1.8-6.el9_1 x86_64\n",
            "bash\tx\t5.1.8\t6.el9_1\tx86_64\tbash-5.1.8-6.el9_1.src.rpm\n",
        ] {
            let fake = Fake::default().on("rpm ", exit(0, bad, ""));
            let err = dnf(&fake, host()).inventory().expect_err(bad);
            assert!(
                matches!(&err, BackendError::Parse { what, .. } if what == "rpm -qa"),
                "{err:?}"
            );
        }
    }

    // --- available -----------------------------------------------------------------

    const OFFERED: &str = "ringmaster-demo\t0\t1.0\t1\tnoarch\n\n\
ringmaster-demo\t0\t1.0\t10\tnoarch\n\n\
ringmaster-demo\t0\t1.0\t2\tnoarch\n\
ringmaster-demo\t0\t1.0\t2\tnoarch\n\
openssl-libs\t1\t3.0.7\t24.el9\tx86_64\n\
openssl-libs\t1\t3.0.7\t24.el9\ti686\n\
openssl-libs\t0\t9.9\t1.el9\tx86_64\n";

    #[test]
    fn available_lists_each_packages_versions_newest_first() {
        let fake = Fake::default().on("repoquery", exit(0, OFFERED, ""));
        let wanted: Vec<String> = ["ringmaster-demo", "openssl-libs.i686", "absent"]
            .map(String::from)
            .into();
        let offered = dnf(&fake, host())
            .available(&wanted, false)
            .expect("queries");
        let versions = |p: &str| -> Vec<String> {
            offered[p]
                .iter()
                .inspect(|c| assert_eq!(c.source_version, c.version))
                .map(|c| c.version.clone())
                .collect()
        };
        assert_eq!(versions("ringmaster-demo"), ["1.0-10", "1.0-2", "1.0-1"]);
        assert_eq!(versions("openssl-libs.i686"), ["1:3.0.7-24.el9"]);
        assert!(offered["absent"].is_empty());
        let call = &fake.calls()[0];
        assert_eq!(call.timeout, DnfTimeouts::default().metadata);
        assert_eq!(
            call.args,
            [
                "--setopt=color=never",
                "--setopt=exit_on_lock=True",
                "-q",
                "repoquery",
                "--available",
                "--showduplicates",
                &format!("--queryformat={REPOQUERY_FORMAT}"),
                "ringmaster-demo",
                "openssl-libs.i686",
                "absent",
            ]
        );
    }

    #[test]
    fn a_refresh_asks_dnf_for_fresh_metadata() {
        let fake = Fake::default().on("repoquery", exit(0, "", ""));
        dnf(&fake, host())
            .available(&["a".into()], true)
            .expect("queries");
        assert!(fake.calls()[0].args.contains(&"--refresh".to_string()));
    }

    #[test]
    fn available_for_no_package_runs_nothing_and_a_bad_name_is_refused() {
        let fake = Fake::default();
        assert!(
            dnf(&fake, host())
                .available(&[], true)
                .expect("empty")
                .is_empty()
        );
        let err = dnf(&fake, host())
            .available(&["-q".into()], false)
            .expect_err("refused");
        assert!(matches!(err, BackendError::Parse { .. }), "{err:?}");
        assert!(fake.calls().is_empty());
    }

    #[test]
    fn repoquery_rows_that_are_not_the_format_are_a_parse_error() {
        for bad in [
            "a\t0\t1.0\tnoarch\n",
            "a\tx\t1.0\t1\tnoarch\n",
            "a\t0\t\t1\tnoarch\n",
        ] {
            let fake = Fake::default().on("repoquery", exit(0, bad, ""));
            let err = dnf(&fake, host())
                .available(&["a".into()], false)
                .expect_err(bad);
            assert!(
                matches!(&err, BackendError::Parse { what, .. } if what == "dnf repoquery"),
                "{err:?}"
            );
        }
    }

    #[test]
    fn dnf5_gets_its_own_syntax() {
        let fake = Fake::default().on("repoquery", exit(0, OFFERED, ""));
        let config = DnfConfig {
            generation: Some(DnfGeneration::Dnf5),
            root: Some("/tmp/r".into()),
            ..host()
        };
        dnf(&fake, config)
            .available(&["a".into()], false)
            .expect("queries");
        let args = &fake.calls()[0].args;
        assert!(
            !args
                .iter()
                .any(|a| a.contains("exit_on_lock") || a == "--showduplicates"),
            "{args:?}"
        );
        assert!(args.contains(&"--no-plugins".to_string()), "{args:?}");
    }

    // --- downgrade -----------------------------------------------------------------

    #[test]
    fn downgrade_refuses_kernels_glibc_and_the_package_manager_before_running_anything() {
        let fake = Fake::default();
        for package in [
            "kernel-core.x86_64",
            "kernel",
            "glibc-common",
            "glibc",
            "rpm",
            "dnf",
            "shim-x64",
        ] {
            let err = dnf(&fake, host())
                .downgrade(&[pin("ringmaster-demo", "1.0-1"), pin(package, "1-1")])
                .expect_err("refused");
            assert!(
                matches!(&err, BackendError::CannotRollBack { package: p, .. } if p == package),
                "{err:?}"
            );
        }
        assert!(fake.calls().is_empty(), "{:?}", fake.lines());
        assert!(refusal("rpmfusion-free-release").is_none());
        assert!(refusal("openssl-libs.x86_64").is_none());
    }

    #[test]
    fn downgrade_to_a_version_no_repository_offers_cannot_roll_back() {
        let fake = Fake::default().on("repoquery", exit(0, OFFERED, ""));
        let err = dnf(&fake, host())
            .downgrade(&[pin("ringmaster-demo", "0.9-1")])
            .expect_err("not offered");
        let BackendError::CannotRollBack { package, reason } = err else {
            panic!("not CannotRollBack: {err:?}");
        };
        assert_eq!(package, "ringmaster-demo");
        assert!(
            reason.contains("0.9-1") && reason.contains("offered: 1.0-10, 1.0-2, 1.0-1"),
            "{reason}"
        );
        assert_eq!(
            fake.calls().len(),
            1,
            "only the query ran: {:?}",
            fake.lines()
        );
    }

    #[test]
    fn downgrade_runs_dnf_downgrade_of_the_offered_version() {
        let fake = Fake::default().on("repoquery", exit(0, OFFERED, "")).on(
            " downgrade ",
            exit(
                0,
                "Downgraded:\n  ringmaster-demo-1.0-1.noarch\nComplete!\n",
                "",
            ),
        );
        let tail = dnf(&fake, host())
            .downgrade(&[pin("ringmaster-demo", "0:1.0-1")])
            .expect("downgrades");
        assert!(tail.contains("Downgraded:"), "{tail}");
        let calls = fake.calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(
            calls[1].args[calls[1].args.len() - 2..],
            ["downgrade", "ringmaster-demo-0:1.0-1"]
        );
    }

    #[test]
    fn a_downgrade_dnf_cannot_find_cannot_roll_back() {
        let fake = Fake::default().on("repoquery", exit(0, OFFERED, "")).on(
            " downgrade ",
            exit(
                1,
                "No package ringmaster-demo-1.0-1 available.\n",
                "Error: No packages marked for downgrade.\n",
            ),
        );
        let err = dnf(&fake, host())
            .downgrade(&[pin("ringmaster-demo", "1.0-1")])
            .expect_err("gone meanwhile");
        assert!(
            matches!(&err, BackendError::CannotRollBack { reason, .. } if reason.contains("No package")),
            "{err:?}"
        );
    }

    #[test]
    fn a_locked_downgrade_is_locked() {
        let fake = Fake::default()
            .on("repoquery", exit(0, OFFERED, ""))
            .on(" downgrade ", exit(200, "", "RPMDB already locked by 77\n"));
        let err = dnf(&fake, host())
            .downgrade(&[pin("ringmaster-demo", "1.0-1")])
            .expect_err("locked");
        assert!(matches!(err, BackendError::Locked { .. }), "{err:?}");
    }

    // --- reboot --------------------------------------------------------------------

    const NEEDS_REBOOT: &str = "Core libraries or services have been updated since boot-up:\n  * kernel\n  * systemd\n\nReboot is required to fully utilize these updates.\n";

    #[test]
    fn needs_restarting_and_a_newer_kernel_both_ask_for_a_reboot() {
        let fake = Fake::default()
            .on("needs-restarting -r", exit(1, NEEDS_REBOOT, ""))
            .on("rpm ", exit(0, QA, ""));
        let need = dnf(&fake, host()).reboot_required().expect("judged");
        let RebootNeed::Required(reasons) = need else {
            panic!("no reboot: {need:?}");
        };
        assert_eq!(reasons[1], "* kernel");
        assert_eq!(
            reasons.last().map(String::as_str),
            Some(
                "kernel-core 5.14.0-427.13.1.el9_4 is installed but 5.14.0-362.8.1.el9_3.x86_64 is running"
            )
        );
    }

    #[test]
    fn no_reboot_when_nothing_says_so_and_needs_restarting_may_be_absent() {
        for needs_restarting in [
            exit(
                0,
                "No core libraries or services have been updated since boot-up.\n",
                "",
            ),
            Reply::Spawn,
        ] {
            let fake = Fake::default()
                .on("needs-restarting", needs_restarting)
                .on("rpm ", exit(0, QA, ""))
                .on(
                    "uname -r",
                    exit(0, "5.14.0-427.13.1.el9_4.x86_64+debug\n", ""),
                );
            let config = DnfConfig {
                running_kernel: None,
                ..host()
            };
            assert_eq!(
                dnf(&fake, config).reboot_required().expect("judged"),
                RebootNeed::None
            );
            assert!(
                fake.lines().contains(&"uname -r".to_string()),
                "{:?}",
                fake.lines()
            );
        }
    }

    #[test]
    fn needs_restarting_failing_is_a_failure_not_a_reboot() {
        let fake = Fake::default().on(
            "needs-restarting",
            exit(1, "", "Error: rpmdb open failed\n"),
        );
        let err = dnf(&fake, host()).reboot_required().expect_err("fails");
        assert!(matches!(err, BackendError::Broken { .. }), "{err:?}");
    }

    #[test]
    fn a_confined_root_never_asks_needs_restarting_about_the_host() {
        let fake = Fake::default().on("rpm ", exit(0, "", ""));
        let config = DnfConfig {
            root: Some("/tmp/r".into()),
            ..host()
        };
        assert_eq!(
            dnf(&fake, config).reboot_required().expect("judged"),
            RebootNeed::None
        );
        assert_eq!(fake.calls().len(), 1, "{:?}", fake.lines());
    }

    #[test]
    fn dnf5_asks_its_needs_restarting_plugin() {
        let fake = Fake::default()
            .on(
                "dnf needs-restarting",
                exit(
                    1,
                    "Reboot is required to fully utilize these updates.\n",
                    "",
                ),
            )
            .on("rpm ", exit(0, "", ""));
        let config = DnfConfig {
            generation: Some(DnfGeneration::Dnf5),
            ..host()
        };
        let need = dnf(&fake, config).reboot_required().expect("judged");
        assert!(
            matches!(need, RebootNeed::Required(ref r) if r.len() == 1),
            "{need:?}"
        );
    }

    #[test]
    fn a_running_kernel_that_is_no_release_is_a_parse_error() {
        let fake = Fake::default()
            .on("needs-restarting", Reply::Spawn)
            .on("rpm ", exit(0, QA, ""));
        let config = DnfConfig {
            running_kernel: Some("linux".into()),
            ..host()
        };
        let err = dnf(&fake, config).reboot_required().expect_err("bad uname");
        assert!(
            matches!(&err, BackendError::Parse { what, .. } if what == "uname -r"),
            "{err:?}"
        );
    }

    // --- generation, ecosystem -----------------------------------------------------

    #[test]
    fn the_generation_is_detected_once_from_dnf_version() {
        for (stdout, expected) in [
            (
                "4.14.0\n  Installed: dnf-0:4.14.0-9.el9.noarch\n",
                DnfGeneration::Dnf4,
            ),
            (
                "dnf5 version 5.2.8.1\ndnf5 plugin API version 2.0\n",
                DnfGeneration::Dnf5,
            ),
        ] {
            let fake = Fake::default().on("dnf --version", exit(0, stdout, ""));
            let backend = dnf(&fake, DnfConfig::default());
            assert_eq!(backend.generation().expect("detected"), expected);
            assert_eq!(backend.generation().expect("cached"), expected);
            assert_eq!(fake.calls().len(), 1);
        }
        let fake = Fake::default().on("dnf --version", exit(0, "yum 3.4.3\n", ""));
        let err = dnf(&fake, DnfConfig::default())
            .generation()
            .expect_err("unknown");
        assert!(matches!(err, BackendError::Parse { .. }), "{err:?}");
    }

    #[test]
    fn a_confined_root_never_runs_dnf_version_which_reads_the_hosts_rpmdb() {
        let fake = Fake::default();
        let config = DnfConfig {
            root: Some("/tmp/r".into()),
            ..DnfConfig::default()
        };
        assert_eq!(
            dnf(&fake, config).generation().expect("assumed"),
            DnfGeneration::Dnf4
        );
        assert!(fake.calls().is_empty());
    }

    #[test]
    fn the_ecosystem_is_the_osv_name_and_major_release() {
        let alma = "NAME=\"AlmaLinux\"\nID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n";
        assert_eq!(ecosystem_of(alma, "f").expect("alma").0, "AlmaLinux:9");
        let rocky = "ID='rocky'\nVERSION_ID=8.10\n";
        assert_eq!(ecosystem_of(rocky, "f").expect("rocky").0, "Rocky Linux:8");
        for bad in [
            "ID=rhel\nVERSION_ID=9.4\n",
            "ID=almalinux\n",
            "VERSION_ID=9\n",
            "ID=rocky\nVERSION_ID=x\n",
        ] {
            let err = ecosystem_of(bad, "f").expect_err(bad);
            assert!(matches!(err, BackendError::Parse { .. }), "{err:?}");
        }
    }

    #[test]
    fn the_ecosystem_is_read_from_the_roots_os_release() {
        let root =
            std::env::temp_dir().join(format!("ringmaster-dnf-osrel-{}", std::process::id()));
        std::fs::create_dir_all(root.join("usr/lib")).expect("dir");
        std::fs::write(
            root.join("usr/lib/os-release"),
            "ID=rocky\nVERSION_ID=\"9.4\"\n",
        )
        .expect("write");
        let config = DnfConfig {
            root: Some(root.clone()),
            ..host()
        };
        let backend = dnf(&Fake::default(), config.clone());
        assert_eq!(backend.ecosystem().expect("read").0, "Rocky Linux:9");
        std::fs::create_dir_all(root.join("etc")).expect("dir");
        std::fs::write(
            root.join("etc/os-release"),
            "ID=almalinux\nVERSION_ID=9.3\n",
        )
        .expect("write");
        assert_eq!(backend.ecosystem().expect("read").0, "AlmaLinux:9");
        let _ = std::fs::remove_dir_all(&root);
        let err = backend.ecosystem().expect_err("gone");
        assert!(matches!(err, BackendError::Parse { .. }), "{err:?}");
    }

    // --- small pieces --------------------------------------------------------------

    #[test]
    fn rpm_version_ordering() {
        use std::cmp::Ordering::{Equal, Greater, Less};
        for (a, b, expected) in [
            ("1.0", "1.0", Equal),
            ("1.0", "1.0.1", Less),
            ("1.0.1", "1.0a", Greater),
            ("2.0", "10", Less),
            ("1.010", "1.10", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0^git1", "1.0", Greater),
            ("1.0^git1", "1.0.1", Less),
            ("1.0^", "1.0", Greater),
            ("a", "1", Less),
            ("1_0", "1.0", Equal),
            ("362.8.1.el9_3", "427.13.1.el9_4", Less),
            ("1.el9", "1.el9_3", Less),
        ] {
            assert_eq!(rpmver::vercmp(a, b), expected, "{a} vs {b}");
            assert_eq!(rpmver::vercmp(b, a), expected.reverse(), "{b} vs {a}");
        }
        let (one, two) = (
            Evr::parse("1:1.0-1").expect("evr"),
            Evr::parse("2.0-1").expect("evr"),
        );
        assert!(one.rpm_cmp(&two).is_gt());
        assert_eq!(Evr::parse("0:1.0-1").expect("evr").to_string(), "1.0-1");
        assert_eq!(Evr::parse("1.0"), None);
    }

    #[test]
    fn the_running_kernel_is_its_version_and_release() {
        for uname in [
            "5.14.0-362.8.1.el9_3.x86_64",
            "5.14.0-362.8.1.el9_3.x86_64+debug",
            "5.14.0-362.8.1.el9_3",
        ] {
            assert_eq!(
                parse_uname(uname).expect(uname).to_string(),
                "5.14.0-362.8.1.el9_3"
            );
        }
        assert!(is_kernel("kernel-rt-core") && is_kernel("kernel") && !is_kernel("kernel-headers"));
    }

    #[test]
    fn dnf_lines_name_a_spec_only_exactly() {
        assert!(names_spec("No match for argument: a-1-1", "a-1-1"));
        assert!(names_spec("No package a-1-1 available.", "a-1-1"));
        assert!(!names_spec("No match for argument: a-1-10", "a-1-1"));
    }
}
