//! The apt backend: `apt-get`, `apt-cache` and `dpkg-query` (and through apt-get, `dpkg`)
//! driven through their command lines only, on the host or on a confined root.
//!
//! # What every command gets
//!
//! Environment (every command): `LC_ALL=C`, so the messages classified below are apt's
//! and dpkg's own C-locale text whatever the host's language; `DEBIAN_FRONTEND=noninteractive`
//! and `DEBCONF_NONINTERACTIVE_SEEN=true` (debconf never asks); `APT_LISTCHANGES_FRONTEND=none`
//! and `APT_LISTBUGS_FRONTEND=none` (those hooks never page or ask); `UCF_FORCE_CONFFOLD=1`
//! (configuration files managed by ucf keep the local version, as dpkg's are below).
//!
//! Options of `apt-get` and `apt-cache` (each `-o`):
//! - `DPkg::Options::=--force-confdef` and `DPkg::Options::=--force-confold`: a changed
//!   configuration file takes the package's default action, and where there is none the
//!   local file is kept, without a prompt;
//! - `DPkg::Lock::Timeout=N` ([`AptConfig::lock_wait`], whole seconds): apt waits this long
//!   for dpkg's frontend lock, then fails with "Could not get lock" ([`BackendError::Locked`]).
//!   The wait counts inside the command's own time limit, so that limit must be longer;
//! - `Dpkg::Use-Pty=0`: dpkg writes through a plain pipe. With a pty apt starts dpkg in a
//!   session of its own, out of the command's process group, and a time-out would kill
//!   apt-get but leave dpkg and its maintainer script running;
//! - [`AptConfig::options`], last, so they win.
//!
//! The commands:
//! - install: `apt-get install -y --no-install-recommends --no-remove pkg=version…`. No
//!   `--only-upgrade`: each pin names one exact version, apt refuses to downgrade without
//!   `--allow-downgrades`, and `--only-upgrade` would make apt skip a pin whose package is
//!   not installed *and exit 0*. `--no-remove` makes apt stop rather than remove a package
//!   to satisfy a conflict: a patch never removes software.
//! - downgrade: the same with `--allow-downgrades --only-upgrade`: a rollback never
//!   installs a package that is not there. A version that no repository offers any more
//!   but that is still in `/var/cache/apt/archives` is installed from that file.
//! - available: `apt-get update` when asked to refresh, then `apt-cache madison pkg…`.
//! - inventory: `dpkg-query -W -f='${binary:Package}\t${Version}\t${source:Package}\t${source:Version}\t${db:Status-Abbrev}\n'`.
//! - reboot: `uname -r` (unless [`AptConfig::running_kernel`] says it).
//!
//! # A confined root
//!
//! With [`AptConfig::root`] set, every apt and dpkg path lies inside it:
//! - apt reads its configuration from the root and never from the host: the backend
//!   writes `ROOT/etc/apt/ringmaster-root.conf` holding only `Dir "ROOT/";` and points
//!   `APT_CONFIG` at it. apt reads `APT_CONFIG` *before* its `apt.conf.d`, whose place it
//!   takes from `Dir`, so the root's `etc/apt/apt.conf.d` is read and the host's is not (a
//!   `-o` on the command line comes too late for that: the host's hooks, such as a
//!   `DPkg::Post-Invoke` that empties `/var/cache/apt/archives`, would run). `Dir` puts
//!   apt's state, lists, cache, logs, sources and `Dir::State::status` in the root; it
//!   is passed again as `-o Dir=ROOT/` so that the command line in logs shows the root;
//! - dpkg gets `--root=ROOT` (its admin dir becomes `ROOT/var/lib/dpkg`, its install dir
//!   `ROOT`, and it runs maintainer scripts chrooted into `ROOT`) and
//!   `--log=ROOT/var/log/dpkg.log` (the host's `/etc/dpkg/dpkg.cfg` names the host's log);
//! - dpkg-query gets `--root=ROOT`; the reboot flags, `os-release` and the archive cache
//!   are read under `ROOT`.
//!
//! Maintainer scripts run chrooted, so the root needs a `/bin/sh` (a static busybox does).
//! `--force-script-chrootless` would need none, but it runs the scripts on the host with
//! only `DPKG_ROOT` set, and a script that ignores it changes the host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::applicability::Candidate;
use super::backend::{Backend, BackendError, Pin, RebootNeed};
use super::inventory::{self, Ecosystem, Flavour, Inventory};
use super::runner::{self, Cmd, Output, RunError, Runner, SystemRunner};

/// How many of the package manager's last lines an error or a result keeps.
const TAIL_LINES: usize = 20;

use super::inventory::DPKG_QUERY_FORMAT;

/// Where, under a confined root, the backend writes the file `APT_CONFIG` names.
const ROOT_APT_CONF: &str = "etc/apt/ringmaster-root.conf";

/// How the apt backend runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AptConfig {
    /// A confined root (tests, or a host's root mounted into a container): every apt and
    /// dpkg path points inside it. `None` manages the host itself.
    pub root: Option<PathBuf>,
    /// The time limit of the commands that only read or fetch metadata (`apt-get update`,
    /// `apt-cache`, `dpkg-query`, `uname`).
    pub metadata_timeout: Duration,
    /// The time limit of an install or a downgrade.
    pub install_timeout: Duration,
    /// How long apt waits for dpkg's lock (`DPkg::Lock::Timeout`, whole seconds) before
    /// it fails with [`BackendError::Locked`]. Counts inside the command's time limit.
    pub lock_wait: Duration,
    /// Extra apt options, each `Name=value`, passed as `-o Name=value` after the
    /// backend's own.
    pub options: Vec<String>,
    /// The running kernel's release, as `uname -r` prints it; `None` runs `uname -r`.
    /// A confined root's kernels are not the running one's, so its tests say it here.
    pub running_kernel: Option<String>,
    /// Where the agent itself reads the host's files (`/etc/os-release`, the reboot
    /// flags, apt's archive cache) when its commands run on the host through a prefix
    /// (node mode: the host's root mounted at `/host`). None: where the commands see them
    /// (`root`, or `/`).
    pub host_files: Option<PathBuf>,
}

impl Default for AptConfig {
    fn default() -> Self {
        Self {
            root: None,
            metadata_timeout: Duration::from_secs(10 * 60),
            install_timeout: Duration::from_secs(60 * 60),
            lock_wait: Duration::from_secs(120),
            options: Vec::new(),
            running_kernel: None,
            host_files: None,
        }
    }
}

/// A configuration the backend cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum AptConfigError {
    /// The confined root is a relative path.
    #[error("the confined root {0:?} is not an absolute path")]
    RootNotAbsolute(PathBuf),
    /// The confined root cannot be written in apt's configuration or on a command line.
    #[error(
        "the confined root {0:?} is not valid UTF-8 or holds a quote or a line break, \
         which apt's configuration cannot spell"
    )]
    RootUnspellable(PathBuf),
}

/// The apt backend (Debian, Ubuntu): [`Backend`] over a [`Runner`].
#[derive(Debug)]
pub struct Apt<R = SystemRunner> {
    runner: R,
    config: AptConfig,
    /// The confined root, checked, without a trailing slash.
    root: Option<String>,
}

impl<R: Runner> Apt<R> {
    /// The backend running its commands with `runner`, as `config` says.
    pub fn new(runner: R, config: AptConfig) -> Result<Self, AptConfigError> {
        let root = config.root.as_deref().map(checked_root).transpose()?;
        Ok(Self {
            runner,
            config,
            root,
        })
    }

    /// The runner the backend's commands go through.
    pub fn runner(&self) -> &R {
        &self.runner
    }

    /// The backend's configuration.
    pub fn config(&self) -> &AptConfig {
        &self.config
    }

    /// A path of the managed system: under the confined root, or the host's own.
    fn system_path(&self, path: &str) -> PathBuf {
        match &self.root {
            Some(root) => Path::new(root).join(path.trim_start_matches('/')),
            None => PathBuf::from(path),
        }
    }

    /// Where the agent itself reads a file of the system (see [`AptConfig::host_files`]).
    fn host_file(&self, path: &str) -> PathBuf {
        match &self.config.host_files {
            Some(files) => files.join(
                self.system_path(path)
                    .strip_prefix("/")
                    .unwrap_or(Path::new(path)),
            ),
            None => self.system_path(path),
        }
    }

    /// The environment of every command.
    fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("LC_ALL", "C"),
            ("DEBIAN_FRONTEND", "noninteractive"),
            ("DEBCONF_NONINTERACTIVE_SEEN", "true"),
            ("APT_LISTCHANGES_FRONTEND", "none"),
            ("APT_LISTBUGS_FRONTEND", "none"),
            ("UCF_FORCE_CONFFOLD", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Some(root) = &self.root {
            env.push(("APT_CONFIG".into(), format!("{root}/{ROOT_APT_CONF}")));
        }
        env
    }

    /// The `-o` options of every `apt-get` and `apt-cache` (see the module's doc).
    fn apt_options(&self) -> Vec<String> {
        let mut options = Vec::new();
        if let Some(root) = &self.root {
            options.push(format!("Dir={root}/"));
            options.push(format!("DPkg::Options::=--root={root}"));
            options.push(format!("DPkg::Options::=--log={root}/var/log/dpkg.log"));
        }
        options.push("DPkg::Options::=--force-confdef".into());
        options.push("DPkg::Options::=--force-confold".into());
        let wait =
            self.config.lock_wait.as_secs() + u64::from(self.config.lock_wait.subsec_nanos() > 0);
        options.push(format!("DPkg::Lock::Timeout={wait}"));
        options.push("Dpkg::Use-Pty=0".into());
        options.extend(self.config.options.iter().cloned());
        options
            .into_iter()
            .flat_map(|o| ["-o".to_string(), o])
            .collect()
    }

    /// Under a confined root, writes the file `APT_CONFIG` names (when it is not already
    /// there as it should be), so that apt reads the root's configuration, never the
    /// host's.
    fn prepare_apt_config(&self) -> Result<(), BackendError> {
        let Some(root) = &self.root else {
            return Ok(());
        };
        let path = Path::new(root).join(ROOT_APT_CONF);
        let wanted = format!(
            "// Written by ringmaster's apt backend, which manages the root {root}:\n\
             // apt reads this root's etc/apt, never the host's.\n\
             Dir \"{root}/\";\n"
        );
        if std::fs::read_to_string(&path).is_ok_and(|text| text == wanted) {
            return Ok(());
        }
        std::fs::write(&path, wanted).map_err(|e| BackendError::Failed {
            command: format!("writing {}", path.display()),
            code: None,
            tail: e.to_string(),
        })
    }

    /// Runs one command and hands back what it printed, whatever its exit code.
    fn run(
        &self,
        program: &str,
        args: Vec<String>,
        timeout: Duration,
    ) -> Result<Ran, BackendError> {
        if program.starts_with("apt") {
            self.prepare_apt_config()?;
        }
        let mut cmd = Cmd::new(program, args, timeout);
        cmd.env = self.env();
        tracing::debug!(command = %cmd.display(), "running");
        match self.runner.run(&cmd) {
            Ok(output) => Ok(Ran {
                command: cmd.display(),
                output,
            }),
            Err(RunError::TimedOut {
                command,
                after,
                partial,
            }) => Err(BackendError::TimedOut {
                command,
                after,
                tail: runner::tail(&partial, TAIL_LINES),
            }),
            Err(spawn @ RunError::Spawn { .. }) => Err(BackendError::Missing(spawn)),
        }
    }

    /// Runs one command that must succeed; a failure is classified (see [`classify`]).
    fn run_ok(
        &self,
        program: &str,
        args: Vec<String>,
        timeout: Duration,
        pins: &[Pin],
    ) -> Result<Output, BackendError> {
        let ran = self.run(program, args, timeout)?;
        if ran.output.success() {
            Ok(ran.output)
        } else {
            Err(classify(&ran.command, &ran.output, pins))
        }
    }

    /// `dpkg-query`'s arguments for the root.
    fn dpkg_query_args(&self) -> Vec<String> {
        let mut args: Vec<String> = self
            .root
            .iter()
            .map(|root| format!("--root={root}"))
            .collect();
        args.extend(["-W".to_string(), format!("-f={DPKG_QUERY_FORMAT}")]);
        args
    }

    /// `apt-get update`; its warnings (a repository that could not be fetched) are logged,
    /// and the agent goes on with the metadata it has.
    fn update(&self) -> Result<(), BackendError> {
        let mut args = self.apt_options();
        args.push("update".into());
        let output = self.run_ok("apt-get", args, self.config.metadata_timeout, &[])?;
        for warning in output
            .stdout
            .lines()
            .chain(output.stderr.lines())
            .filter(|l| l.starts_with("W: "))
        {
            tracing::warn!(warning, "apt-get update");
        }
        Ok(())
    }

    /// The versions the repositories offer for each package, newest first (`apt-cache
    /// madison`); a package no repository knows has none.
    fn offered(&self, packages: &[String]) -> Result<BTreeMap<String, Vec<String>>, BackendError> {
        if packages.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut args = self.apt_options();
        args.push("madison".into());
        args.extend(packages.iter().cloned());
        let output = self.run_ok("apt-cache", args, self.config.metadata_timeout, &[])?;
        let lines = parse_madison(&output.stdout)?;
        Ok(packages
            .iter()
            .map(|package| {
                let name = base_name(package);
                let mut versions: Vec<String> = Vec::new();
                for (_, version) in lines.iter().filter(|(n, _)| n == name) {
                    if !versions.contains(version) {
                        versions.push(version.clone());
                    }
                }
                (package.clone(), versions)
            })
            .collect())
    }

    /// The source version of each offered (package, version) whose source version is not
    /// its own, from `apt-cache show` (`Source: util-linux (2.38.1-5+deb12u1)`), for the
    /// packages that have any version offered.
    fn source_versions(
        &self,
        offered: &BTreeMap<String, Vec<String>>,
    ) -> Result<BTreeMap<(String, String), String>, BackendError> {
        let known: Vec<String> = offered
            .iter()
            .filter(|(_, versions)| !versions.is_empty())
            .map(|(package, _)| package.clone())
            .collect();
        if known.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut args = self.apt_options();
        args.push("show".into());
        args.extend(known);
        let output = self.run_ok("apt-cache", args, self.config.metadata_timeout, &[])?;
        Ok(parse_show(&output.stdout))
    }

    /// The `.deb` of this exact version in apt's archive cache, if it is still there
    /// (apt names them `name_version_arch.deb`, the epoch's colon spelt `%3a`).
    fn cached_archive(&self, pin: &Pin) -> Option<String> {
        let (name, arch) = match pin.package.split_once(':') {
            Some((name, arch)) => (name, Some(arch)),
            None => (pin.package.as_str(), None),
        };
        let prefix = format!("{name}_{}_", pin.version.replace(':', "%3a"));
        let dir = self.system_path("/var/cache/apt/archives");
        let entries = std::fs::read_dir(self.host_file("/var/cache/apt/archives")).ok()?;
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
            .find(|file| {
                file.strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(".deb"))
                    .is_some_and(|a| arch.is_none_or(|want| a == want))
            })
            .and_then(|file| dir.join(file).to_str().map(str::to_string))
    }

    /// `apt-get install` of these targets (`pkg=version`, or a `.deb`'s path).
    fn apt_install(
        &self,
        targets: Vec<String>,
        downgrade: bool,
        pins: &[Pin],
    ) -> Result<String, BackendError> {
        let mut args = self.apt_options();
        args.extend(["install", "-y", "--no-install-recommends", "--no-remove"].map(String::from));
        if downgrade {
            args.extend(["--allow-downgrades", "--only-upgrade"].map(String::from));
        }
        args.extend(targets);
        let output = self.run_ok("apt-get", args, self.config.install_timeout, pins)?;
        Ok(runner::tail(&output, TAIL_LINES))
    }

    /// The running kernel's release.
    fn running_kernel(&self) -> Result<String, BackendError> {
        if let Some(release) = &self.config.running_kernel {
            return Ok(release.clone());
        }
        let output = self.run_ok(
            "uname",
            vec!["-r".into()],
            self.config.metadata_timeout,
            &[],
        )?;
        let release = output.stdout.trim();
        if release.is_empty() {
            return Err(BackendError::Parse {
                what: "uname -r".into(),
                detail: "it printed nothing".into(),
            });
        }
        Ok(release.to_string())
    }

    /// Where the distribution's reboot flag may be: `/run/reboot-required`, and
    /// `/var/run/reboot-required` when `var/run` is a directory of its own (on a host it is
    /// a symlink to `/run`, which under a confined root would lead out of the root).
    fn reboot_flag_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.host_file("/run/reboot-required")];
        let var_run = self.host_file("/var/run");
        if !var_run.is_symlink() {
            paths.push(var_run.join("reboot-required"));
        }
        paths
    }

    /// The reasons the distribution's `reboot-required` flag gives, if it is set.
    fn reboot_flag(&self) -> Vec<String> {
        for flag in self.reboot_flag_paths() {
            if !flag.exists() {
                continue;
            }
            let pkgs = std::fs::read_to_string(flag.with_extension("pkgs")).unwrap_or_default();
            let mut reasons: Vec<String> = Vec::new();
            for package in pkgs.lines().map(str::trim).filter(|p| !p.is_empty()) {
                let reason = format!("{package} asks for a reboot (reboot-required.pkgs)");
                if !reasons.contains(&reason) {
                    reasons.push(reason);
                }
            }
            if reasons.is_empty() {
                reasons.push("/var/run/reboot-required is set".into());
            }
            return reasons;
        }
        Vec::new()
    }

    /// A reason when an installed kernel is newer than the running one (of the same
    /// flavour: `amd64`, `generic`, `cloud-amd64`, …).
    fn newer_kernel(&self) -> Result<Option<String>, BackendError> {
        let inventory = self.inventory()?;
        let installed: Vec<&str> = inventory
            .packages
            .iter()
            .filter_map(|p| kernel_release(&p.name))
            .collect();
        if installed.is_empty() {
            return Ok(None);
        }
        let running = self.running_kernel()?;
        let newest = installed
            .into_iter()
            .filter(|release| kernel_flavour(release) == kernel_flavour(&running))
            .max_by(|a, b| natural_cmp(a, b));
        Ok(newest
            .filter(|newest| natural_cmp(newest, &running).is_gt())
            .map(|newest| format!("kernel {newest} is installed but {running} is running")))
    }
}

/// A command's output with the command line, for its errors.
struct Ran {
    command: String,
    output: Output,
}

impl<R: Runner> Backend for Apt<R> {
    fn name(&self) -> &'static str {
        "apt"
    }

    fn ecosystem(&self) -> Result<Ecosystem, BackendError> {
        let etc = self.host_file("/etc/os-release");
        let usr = self.host_file("/usr/lib/os-release");
        let (path, text) = match std::fs::read_to_string(&etc) {
            Ok(text) => (etc, text),
            Err(_) => match std::fs::read_to_string(&usr) {
                Ok(text) => (usr, text),
                Err(e) => {
                    return Err(BackendError::Parse {
                        what: format!("{} (or {})", etc.display(), usr.display()),
                        detail: e.to_string(),
                    });
                }
            },
        };
        ecosystem_from_os_release(&text).map_err(|detail| BackendError::Parse {
            what: path.display().to_string(),
            detail,
        })
    }

    fn inventory(&self) -> Result<Inventory, BackendError> {
        let output = self.run_ok(
            "dpkg-query",
            self.dpkg_query_args(),
            self.config.metadata_timeout,
            &[],
        )?;
        Ok(Inventory {
            flavour: Some(Flavour::Deb),
            packages: inventory::parse_dpkg_query(&output.stdout)
                .map_err(|e| BackendError::Parse {
                    what: "dpkg-query -W".into(),
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
        for package in packages {
            check_package_name(package, "")?;
        }
        if refresh {
            self.update()?;
        }
        let offered = self.offered(packages)?;
        let sources = self.source_versions(&offered)?;
        Ok(offered
            .into_iter()
            .map(|(package, versions)| {
                let name = base_name(&package).to_string();
                let candidates = versions
                    .into_iter()
                    .map(|version| Candidate {
                        source_version: sources
                            .get(&(name.clone(), version.clone()))
                            .cloned()
                            .unwrap_or_else(|| version.clone()),
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
        check_pins(pins)?;
        let targets = pins
            .iter()
            .map(|p| format!("{}={}", p.package, p.version))
            .collect();
        tracing::info!(?pins, "apt: installing");
        self.apt_install(targets, false, pins)
    }

    fn downgrade(&self, pins: &[Pin]) -> Result<String, BackendError> {
        if pins.is_empty() {
            return Ok(String::new());
        }
        check_pins(pins)?;
        if let Some((pin, reason)) = pins
            .iter()
            .find_map(|p| refused_rollback(&p.package).map(|r| (p, r)))
        {
            return Err(BackendError::CannotRollBack {
                package: pin.package.clone(),
                reason: reason.to_string(),
            });
        }
        let packages: Vec<String> = pins.iter().map(|p| p.package.clone()).collect();
        let offered = self.offered(&packages)?;
        let mut targets = Vec::new();
        for pin in pins {
            targets.push(self.rollback_target(pin, &offered)?);
        }
        tracing::info!(?pins, "apt: downgrading");
        self.apt_install(targets, true, pins)
    }

    fn reboot_required(&self) -> Result<RebootNeed, BackendError> {
        let mut reasons = self.reboot_flag();
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

impl<R: Runner> Apt<R> {
    /// What apt-get installs to roll `pin` back: `pkg=version` when a repository still
    /// offers it, else the cached `.deb`, else [`BackendError::CannotRollBack`].
    fn rollback_target(
        &self,
        pin: &Pin,
        offered: &BTreeMap<String, Vec<String>>,
    ) -> Result<String, BackendError> {
        let in_repo = offered
            .get(&pin.package)
            .is_some_and(|versions| versions.contains(&pin.version));
        if in_repo {
            return Ok(format!("{}={}", pin.package, pin.version));
        }
        self.cached_archive(pin)
            .ok_or_else(|| BackendError::CannotRollBack {
                package: pin.package.clone(),
                reason: format!(
                    "version {} is no longer offered by any configured repository \
                     nor kept in /var/cache/apt/archives",
                    pin.version
                ),
            })
    }
}

/// The confined root as apt's configuration and the command lines spell it.
fn checked_root(root: &Path) -> Result<String, AptConfigError> {
    if !root.is_absolute() {
        return Err(AptConfigError::RootNotAbsolute(root.to_path_buf()));
    }
    let text = root
        .to_str()
        .filter(|t| !t.contains(['"', '\n', '\r']))
        .ok_or_else(|| AptConfigError::RootUnspellable(root.to_path_buf()))?;
    let trimmed = text.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_string())
}

/// Sorts out a failed command's output into the typed error (the C locale's text,
/// `LC_ALL=C` being set for every command):
/// - a lock held ("Could not get lock", "Unable to acquire the dpkg frontend lock",
///   dpkg's "… is locked by another process") → [`BackendError::Locked`];
/// - a database to repair ("dpkg was interrupted, you must manually run 'dpkg
///   --configure -a'", a status file dpkg cannot parse, a package dpkg wants
///   reinstalled, "Unmet dependencies. Try 'apt --fix-broken install'") →
///   [`BackendError::Broken`];
/// - a version or package no repository offers ("E: Version 'v' for 'p' was not
///   found", "E: Unable to locate package p", "has no installation candidate") →
///   [`BackendError::Unavailable`];
/// - anything else → [`BackendError::Failed`] with the exit code.
///
/// Lock messages count on error lines only: apt prints "Waiting for cache lock: Could
/// not get lock …" while it waits, and may get the lock and fail for another reason.
fn classify(command: &str, output: &Output, pins: &[Pin]) -> BackendError {
    let tail = runner::tail(output, TAIL_LINES);
    let text = format!("{}\n{}", output.stdout, output.stderr);
    let errors: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("E: ") || l.contains("error:"))
        .collect();
    if errors.iter().any(|l| is_lock_error(l)) {
        return BackendError::Locked { tail };
    }
    if text.lines().any(is_broken_database) {
        return BackendError::Broken { tail };
    }
    if let Some((package, wanted)) = errors.iter().find_map(|l| unavailable(l, pins)) {
        return BackendError::Unavailable {
            package,
            wanted,
            tail,
        };
    }
    BackendError::Failed {
        command: command.to_string(),
        code: output.code,
        tail,
    }
}

/// An error line saying that another process holds apt's or dpkg's lock.
fn is_lock_error(line: &str) -> bool {
    const LOCKED: &[&str] = &[
        "Could not get lock",
        "Unable to acquire the dpkg frontend lock",
        "Unable to lock the administration directory",
        "Unable to lock directory",
        "is locked by another process",
        "lock was locked by another process",
    ];
    LOCKED.iter().any(|phrase| line.contains(phrase))
}

/// A line saying that the package database must be repaired before anything else.
fn is_broken_database(line: &str) -> bool {
    const BROKEN: &[&str] = &[
        "dpkg was interrupted, you must manually run",
        "very bad inconsistent state",
        "needs to be reinstalled, but I can't find an archive",
        "Try 'apt --fix-broken install'",
    ];
    let status_unreadable = (line.contains("error: parsing file '")
        || line.contains("Unable to parse package file"))
        && line.contains("var/lib/dpkg/status");
    status_unreadable || BROKEN.iter().any(|phrase| line.contains(phrase))
}

/// The package and version of an error line saying no repository offers them.
fn unavailable(line: &str, pins: &[Pin]) -> Option<(String, String)> {
    let wanted = |package: &str| {
        pins.iter()
            .find(|p| p.package == package)
            .map(|p| p.version.clone())
            .unwrap_or_default()
    };
    if let Some(rest) = line.strip_prefix("E: Version '") {
        let (version, rest) = rest.split_once("' for '")?;
        let package = rest.strip_suffix("' was not found")?;
        return Some((package.to_string(), version.to_string()));
    }
    if let Some(package) = line.strip_prefix("E: Unable to locate package ") {
        let package = package.trim();
        return Some((package.to_string(), wanted(package)));
    }
    let rest = line.strip_prefix("E: Package '")?;
    let package = rest.strip_suffix("' has no installation candidate")?;
    Some((package.to_string(), wanted(package)))
}

/// `apt-cache madison`'s lines (`name | version | origin`) as (name, version), in apt's
/// order (its version list, newest first); source versions (`… Sources`) are left out.
fn parse_madison(text: &str) -> Result<Vec<(String, String)>, BackendError> {
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [name, version, origin] = fields[..] else {
            return Err(madison_error(index, line, "not `name | version | origin`"));
        };
        if name.is_empty() || version.is_empty() {
            return Err(madison_error(index, line, "an empty name or version"));
        }
        if origin.ends_with(" Sources") {
            continue;
        }
        lines.push((name.to_string(), version.to_string()));
    }
    Ok(lines)
}

/// `apt-cache show`'s stanzas: (package, version) → source version, for the binaries
/// whose `Source:` field names a version of its own (`Source: util-linux
/// (2.38.1-5+deb12u1)`); the others are built from a source of their own version.
fn parse_show(text: &str) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let (Some(package), Some(version)) = (field("Package"), field("Version")) else {
            continue;
        };
        let source_version = field("Source")
            .and_then(|s| s.split_once('('))
            .and_then(|(_, v)| v.strip_suffix(')'))
            .map(str::trim);
        if let Some(source_version) = source_version {
            out.insert(
                (package.to_string(), version.to_string()),
                source_version.to_string(),
            );
        }
    }
    out
}

fn madison_error(index: usize, line: &str, what: &str) -> BackendError {
    BackendError::Parse {
        what: format!("apt-cache madison's line {}", index + 1),
        detail: format!("{what}: {line:?}"),
    }
}

/// The OSV ecosystem of an `os-release` file, refused unless it is a dpkg distribution.
fn ecosystem_from_os_release(text: &str) -> Result<Ecosystem, String> {
    let release = inventory::parse_os_release(text).map_err(|e| e.to_string())?;
    let ecosystem = release.ecosystem().map_err(|e| e.to_string())?;
    match ecosystem.flavour() {
        Some(Flavour::Deb) => Ok(ecosystem),
        _ => Err(format!("ID={} is neither Debian nor Ubuntu", release.id)),
    }
}

/// A package name without its `:arch` qualifier.
fn base_name(package: &str) -> &str {
    package.split_once(':').map_or(package, |(name, _)| name)
}

/// Each pin names a package and a version apt can be given (so that no pin is ever read
/// as an option: a plan comes from the cluster).
fn check_pins(pins: &[Pin]) -> Result<(), BackendError> {
    for pin in pins {
        check_package_name(&pin.package, &pin.version)?;
        let valid = pin.version.starts_with(|c: char| c.is_ascii_digit())
            && pin
                .version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+~:-".contains(c));
        if !valid {
            return Err(BackendError::Unavailable {
                package: pin.package.clone(),
                wanted: pin.version.clone(),
                tail: format!("{:?} is not a dpkg version", pin.version),
            });
        }
    }
    Ok(())
}

/// A dpkg package name (`[a-z0-9][a-z0-9+.-]+`), with an optional `:arch`.
fn check_package_name(package: &str, wanted: &str) -> Result<(), BackendError> {
    let (name, arch) = match package.split_once(':') {
        Some((name, arch)) => (name, Some(arch)),
        None => (package, None),
    };
    let name_ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c));
    let arch_ok = arch.is_none_or(|a| {
        !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    });
    if name_ok && arch_ok {
        return Ok(());
    }
    Err(BackendError::Unavailable {
        package: package.to_string(),
        wanted: wanted.to_string(),
        tail: format!("{package:?} is not a dpkg package name"),
    })
}

/// Why the agent never rolls this package back, if it does not.
fn refused_rollback(package: &str) -> Option<&'static str> {
    let name = base_name(package);
    let kernel = ["linux-image-", "linux-modules-", "linux-signed-"]
        .iter()
        .any(|prefix| name.starts_with(prefix));
    if kernel {
        return Some(
            "a kernel is not rolled back in place: the running kernel stays until a reboot \
             and the previous one is still installed; boot it instead",
        );
    }
    let glibc = name == "libc6"
        || name.starts_with("libc6-")
        || name.starts_with("libc6.")
        || [
            "libc-bin",
            "libc-dev-bin",
            "libc-l10n",
            "locales",
            "locales-all",
            "nscd",
        ]
        .contains(&name);
    if glibc {
        return Some(
            "glibc is not rolled back: every running program is linked against it, \
             and Debian does not support downgrading it",
        );
    }
    if [
        "systemd",
        "systemd-sysv",
        "libsystemd0",
        "libsystemd-shared",
        "udev",
        "libudev1",
    ]
    .contains(&name)
    {
        return Some("systemd runs as PID 1 and is not rolled back under a running system");
    }
    if ["dpkg", "apt"].contains(&name) || name.starts_with("libapt-pkg") {
        return Some("the package manager does not roll itself back");
    }
    if ["libgcc-s1", "libstdc++6"].contains(&name) {
        return Some(
            "the compiler runtime is not rolled back: programs built against the newer one \
             would break",
        );
    }
    None
}

/// A kernel image package's release (`linux-image-6.1.0-18-amd64` → `6.1.0-18-amd64`,
/// Ubuntu's `linux-image-unsigned-…` and Debian's `…-unsigned` alike); meta packages
/// (`linux-image-amd64`) and debug symbols have none.
fn kernel_release(package: &str) -> Option<&str> {
    let rest = package.strip_prefix("linux-image-")?;
    let rest = rest.strip_prefix("unsigned-").unwrap_or(rest);
    let rest = rest.strip_suffix("-unsigned").unwrap_or(rest);
    (rest.starts_with(|c: char| c.is_ascii_digit()) && !rest.ends_with("-dbg")).then_some(rest)
}

/// A kernel release's flavour: what follows its numbered parts (`6.1.0-18-amd64` →
/// `amd64`, `5.15.0-91-generic` → `generic`).
fn kernel_flavour(release: &str) -> String {
    release
        .split('-')
        .skip_while(|part| part.starts_with(|c: char| c.is_ascii_digit()))
        .collect::<Vec<_>>()
        .join("-")
}

/// Compares two strings with their runs of digits as numbers (`6.1.0-18` > `6.1.0-9`),
/// as needrestart orders kernel releases.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        let (Some(x), Some(y)) = (a.chars().next(), b.chars().next()) else {
            return a.len().cmp(&b.len());
        };
        let order = if x.is_ascii_digit() && y.is_ascii_digit() {
            let (na, ra) = split_digits(a);
            let (nb, rb) = split_digits(b);
            (a, b) = (ra, rb);
            let (na, nb) = (na.trim_start_matches('0'), nb.trim_start_matches('0'));
            na.len().cmp(&nb.len()).then_with(|| na.cmp(nb))
        } else {
            (a, b) = (&a[x.len_utf8()..], &b[y.len_utf8()..]);
            x.cmp(&y)
        };
        if order.is_ne() {
            return order;
        }
    }
}

/// A string's leading digits, and the rest.
fn split_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// A runner that records each command and answers with the next scripted result.
    #[derive(Debug, Default)]
    struct Fake {
        calls: Mutex<Vec<Cmd>>,
        answers: Mutex<VecDeque<Result<Output, RunError>>>,
    }

    impl Fake {
        fn calls(&self) -> Vec<Cmd> {
            self.calls.lock().expect("calls").clone()
        }
    }

    impl Runner for Fake {
        fn run(&self, cmd: &Cmd) -> Result<Output, RunError> {
            self.calls.lock().expect("calls").push(cmd.clone());
            self.answers
                .lock()
                .expect("answers")
                .pop_front()
                .unwrap_or_else(|| panic!("unexpected command: {}", cmd.display()))
        }
    }

    fn out(code: i32, stdout: &str, stderr: &str) -> Result<Output, RunError> {
        Ok(Output {
            code: Some(code),
            stdout: stdout.into(),
            stderr: stderr.into(),
        })
    }

    fn ok(stdout: &str) -> Result<Output, RunError> {
        out(0, stdout, "")
    }

    /// The backend on the host (nothing is run: the fake answers), or on a root.
    fn apt_with(config: AptConfig, answers: Vec<Result<Output, RunError>>) -> Apt<Fake> {
        let fake = Fake {
            answers: Mutex::new(answers.into()),
            ..Fake::default()
        };
        Apt::new(fake, config).expect("a valid configuration")
    }

    fn apt(answers: Vec<Result<Output, RunError>>) -> Apt<Fake> {
        apt_with(AptConfig::default(), answers)
    }

    fn pin(package: &str, version: &str) -> Pin {
        Pin {
            package: package.into(),
            version: version.into(),
        }
    }

    /// A confined root in a temp dir with `etc/apt`, removed when dropped.
    struct Root(PathBuf);

    impl Root {
        fn new(test: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("ringmaster-apt-unit-{test}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("etc/apt")).expect("creating the root");
            Root(dir)
        }

        fn config(&self) -> AptConfig {
            AptConfig {
                root: Some(self.0.clone()),
                ..AptConfig::default()
            }
        }

        fn write(&self, path: &str, text: &str) {
            let path = self.0.join(path);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(path, text).expect("writing a file in the root");
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn has(cmd: &Cmd, args: &[&str]) -> bool {
        cmd.args.windows(args.len()).any(|w| w == args)
    }

    fn env<'a>(cmd: &'a Cmd, key: &str) -> Option<&'a str> {
        cmd.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    const POSTINST_FAILED: &str = "Setting up ringmaster-demo (1.0-3) ...\n\
        ringmaster-demo postinst: refusing to configure\n\
        dpkg: error processing package ringmaster-demo (--configure):\n \
        installed ringmaster-demo package post-installation script subprocess returned error exit status 1\n\
        Errors were encountered while processing:\n ringmaster-demo\n";

    #[test]
    fn install_runs_apt_get_non_interactively_with_exact_pins() {
        let apt = apt(vec![ok("Setting up ringmaster-demo (1.0-2) ...\n")]);
        let tail = apt
            .install(&[
                pin("ringmaster-demo", "1.0-2"),
                pin("libfoo1:amd64", "1:2.3-4"),
            ])
            .expect("installs");
        assert_eq!(tail, "Setting up ringmaster-demo (1.0-2) ...");
        let calls = apt.runner().calls();
        let [cmd] = &calls[..] else {
            panic!("one command: {calls:?}")
        };
        assert_eq!(cmd.program, "apt-get");
        assert_eq!(cmd.timeout, AptConfig::default().install_timeout);
        assert!(
            has(
                cmd,
                &["install", "-y", "--no-install-recommends", "--no-remove"]
            ),
            "{cmd:?}"
        );
        assert!(
            has(cmd, &["ringmaster-demo=1.0-2", "libfoo1:amd64=1:2.3-4"]),
            "{cmd:?}"
        );
        assert!(has(cmd, &["-o", "DPkg::Options::=--force-confdef"]));
        assert!(has(cmd, &["-o", "DPkg::Options::=--force-confold"]));
        assert!(has(cmd, &["-o", "DPkg::Lock::Timeout=120"]));
        assert!(has(cmd, &["-o", "Dpkg::Use-Pty=0"]));
        assert!(
            !cmd.args
                .iter()
                .any(|a| a.contains("downgrade") || a == "--only-upgrade")
        );
        assert_eq!(env(cmd, "LC_ALL"), Some("C"));
        assert_eq!(env(cmd, "DEBIAN_FRONTEND"), Some("noninteractive"));
        assert_eq!(env(cmd, "UCF_FORCE_CONFFOLD"), Some("1"));
        assert_eq!(env(cmd, "APT_CONFIG"), None, "the host's own configuration");
    }

    #[test]
    fn nothing_to_install_runs_nothing() {
        let apt = apt(vec![]);
        assert_eq!(apt.install(&[]).expect("nothing to do"), "");
        assert_eq!(apt.downgrade(&[]).expect("nothing to do"), "");
        assert!(apt.runner().calls().is_empty());
    }

    #[test]
    fn a_pin_that_could_be_read_as_an_option_is_refused_before_running() {
        for bad in [
            pin("--allow-unauthenticated", "1.0"),
            pin("-oDebug::pkgProblemResolver=1", "1.0"),
            pin("Foo", "1.0"),
            pin("foo", "1.0 bar"),
            pin("foo", "-1"),
            pin("foo", ""),
            pin("foo:", "1.0"),
        ] {
            let apt = apt(vec![]);
            let err = apt
                .install(std::slice::from_ref(&bad))
                .expect_err("refused");
            let BackendError::Unavailable {
                package, wanted, ..
            } = &err
            else {
                panic!("{bad:?}: {err:?}");
            };
            assert_eq!((package, wanted), (&bad.package, &bad.version));
            assert!(apt.runner().calls().is_empty(), "{bad:?} ran something");
        }
    }

    #[test]
    fn a_failed_maintainer_script_is_a_failure_with_its_message() {
        let apt = apt(vec![out(
            100,
            POSTINST_FAILED,
            "E: Sub-process /usr/bin/dpkg returned an error code (1)\n",
        )]);
        let err = apt
            .install(&[pin("ringmaster-demo", "1.0-3")])
            .expect_err("fails");
        let BackendError::Failed {
            command,
            code,
            tail,
        } = err
        else {
            panic!("{err:?}");
        };
        assert!(command.starts_with("apt-get -o "), "{command}");
        assert!(command.ends_with("ringmaster-demo=1.0-3"), "{command}");
        assert_eq!(code, Some(100));
        assert!(tail.contains("postinst: refusing to configure"), "{tail}");
        assert!(tail.ends_with("returned an error code (1)"), "{tail}");
    }

    #[test]
    fn the_tail_keeps_the_last_twenty_lines() {
        let chatter: String = (1..=50).map(|i| format!("line {i}\n")).collect();
        let apt = apt(vec![out(1, &chatter, "")]);
        let err = apt.install(&[pin("foo", "1")]).expect_err("fails");
        let BackendError::Failed { tail, .. } = err else {
            panic!("{err:?}");
        };
        assert_eq!(tail.lines().count(), 20);
        assert!(
            tail.starts_with("line 31\n") && tail.ends_with("line 50"),
            "{tail}"
        );
    }

    #[test]
    fn a_held_lock_is_locked() {
        let cases = [
            "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)\n\
             E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?\n",
            "E: Could not get lock /var/lib/dpkg/lock. It is held by process 4242 (dpkg)\n\
             E: Unable to lock the administration directory (/var/lib/dpkg/), is another process using it?\n",
            "dpkg: error: dpkg frontend lock was locked by another process with pid 4242\n",
            "dpkg: error: dpkg status database is locked by another process\n",
            "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 7 (apt-get)\n\
             E: Unable to lock directory /var/lib/apt/lists/\n",
        ];
        for stderr in cases {
            let apt = apt(vec![out(100, "Reading package lists...\n", stderr)]);
            let err = apt.install(&[pin("foo", "1")]).expect_err("locked");
            let BackendError::Locked { tail } = &err else {
                panic!("{stderr}: {err:?}");
            };
            assert!(tail.contains("lock"), "{tail}");
        }
    }

    /// apt says "Could not get lock" while it waits; when it then gets the lock and fails
    /// for another reason, that is not a lock.
    #[test]
    fn waiting_for_the_lock_then_failing_otherwise_is_not_locked() {
        let stdout = "Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend. \
                      It is held by process 4242 (apt-get)...\n"
            .to_string()
            + POSTINST_FAILED;
        let apt = apt(vec![out(
            100,
            &stdout,
            "E: Sub-process /usr/bin/dpkg returned an error code (1)\n",
        )]);
        let err = apt
            .install(&[pin("ringmaster-demo", "1.0-3")])
            .expect_err("fails");
        assert!(
            matches!(
                err,
                BackendError::Failed {
                    code: Some(100),
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_database_to_repair_is_broken() {
        let cases = [
            "E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem. \n",
            "E: Unable to parse package file /var/lib/dpkg/status (1)\n\
             W: You may want to run apt-get update to correct these problems\n\
             E: The package cache file is corrupted\n",
            "dpkg: error: parsing file '/tmp/root/var/lib/dpkg/status' near line 3 package 'x':\n \
             missing 'Version' field\nE: Sub-process /usr/bin/dpkg returned an error code (2)\n",
            "E: The package foo needs to be reinstalled, but I can't find an archive for it.\n",
            "E: Unmet dependencies. Try 'apt --fix-broken install' with no packages (or specify a solution).\n",
        ];
        for stderr in cases {
            let apt = apt(vec![out(100, "", stderr)]);
            let err = apt.install(&[pin("foo", "1")]).expect_err("broken");
            assert!(
                matches!(err, BackendError::Broken { .. }),
                "{stderr}: {err:?}"
            );
        }
    }

    /// A list file apt cannot parse is repaired by `apt-get update`, not by dpkg.
    #[test]
    fn an_unreadable_list_file_is_not_a_broken_database() {
        let stderr = "E: Unable to parse package file /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages (1)\n";
        let apt = apt(vec![out(100, "", stderr)]);
        let err = apt.install(&[pin("foo", "1")]).expect_err("fails");
        assert!(matches!(err, BackendError::Failed { .. }), "{err:?}");
    }

    #[test]
    fn a_version_or_package_no_repository_offers_is_unavailable() {
        let cases = [
            (
                "E: Version '9.9' for 'ringmaster-demo' was not found\n",
                "ringmaster-demo",
                "9.9",
            ),
            ("E: Unable to locate package nosuch\n", "nosuch", "1.0"),
            (
                "E: Package 'nosuch' has no installation candidate\n",
                "nosuch",
                "1.0",
            ),
        ];
        for (stderr, want_package, want_version) in cases {
            let apt = apt(vec![out(100, "Reading package lists...\n", stderr)]);
            let err = apt
                .install(&[pin("ringmaster-demo", "9.9"), pin("nosuch", "1.0")])
                .expect_err("unavailable");
            let BackendError::Unavailable {
                package,
                wanted,
                tail,
            } = &err
            else {
                panic!("{stderr}: {err:?}");
            };
            assert_eq!(
                (package.as_str(), wanted.as_str()),
                (want_package, want_version)
            );
            assert!(tail.contains(want_package), "{tail}");
        }
    }

    #[test]
    fn a_command_that_runs_over_is_timed_out_with_what_it_printed() {
        let partial = Output {
            code: None,
            stdout: "Setting up ringmaster-hang (1.0) ...\n".into(),
            stderr: String::new(),
        };
        let apt = apt(vec![Err(RunError::TimedOut {
            command: "apt-get … install".into(),
            after: Duration::from_secs(3),
            partial,
        })]);
        let err = apt
            .install(&[pin("ringmaster-hang", "1.0")])
            .expect_err("times out");
        let BackendError::TimedOut { after, tail, .. } = err else {
            panic!("{err:?}");
        };
        assert_eq!(after, Duration::from_secs(3));
        assert_eq!(tail, "Setting up ringmaster-hang (1.0) ...");
    }

    #[test]
    fn a_missing_program_is_missing() {
        let apt = apt(vec![Err(RunError::Spawn {
            program: "dpkg-query".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })]);
        let err = apt.inventory().expect_err("missing");
        assert!(
            matches!(err, BackendError::Missing(RunError::Spawn { .. })),
            "{err:?}"
        );
    }

    const MADISON: &str = "\
ringmaster-demo |      1.0-3 | file:/repo ./ Packages
ringmaster-demo |      1.0-3 | http://mirror/debian bookworm/main amd64 Packages
ringmaster-demo |      1.0-2 | file:/repo ./ Packages
ringmaster-demo |    1:0.9-1 | file:/repo ./ Packages
ringmaster-demo |      2.0-1 | http://mirror/debian bookworm/main Sources
       libfoo1 |      2.3-4 | http://mirror/debian bookworm/main amd64 Packages
";

    /// `apt-cache show` for the packages madison found: one binary built from a source
    /// of another version (an epoch the source does not have).
    const SHOW: &str = "\
Package: ringmaster-demo
Version: 1.0-3
Architecture: all

Package: ringmaster-demo
Version: 1:0.9-1
Source: ringmaster (0.9-1)
Architecture: all

Package: libfoo1
Version: 2.3-4
Source: foo
Architecture: amd64
";

    fn versions(candidates: &[Candidate]) -> Vec<(&str, &str)> {
        candidates
            .iter()
            .map(|c| (c.version.as_str(), c.source_version.as_str()))
            .collect()
    }

    #[test]
    fn available_refreshes_then_lists_offered_versions_newest_first() {
        let apt = apt(vec![
            ok("Reading package lists...\n"),
            ok(MADISON),
            ok(SHOW),
        ]);
        let packages = ["ringmaster-demo", "libfoo1:amd64", "nosuch"].map(String::from);
        let offered = apt.available(&packages, true).expect("offered");
        assert_eq!(
            versions(&offered["ringmaster-demo"]),
            [("1.0-3", "1.0-3"), ("1.0-2", "1.0-2"), ("1:0.9-1", "0.9-1")]
        );
        assert_eq!(versions(&offered["libfoo1:amd64"]), [("2.3-4", "2.3-4")]);
        assert!(offered["nosuch"].is_empty());
        let calls = apt.runner().calls();
        let [update, madison, show] = &calls[..] else {
            panic!("{calls:?}")
        };
        assert!(
            has(show, &["show", "libfoo1:amd64", "ringmaster-demo"]),
            "{show:?}"
        );
        assert_eq!(
            (
                update.program.as_str(),
                update.args.last().map(String::as_str)
            ),
            ("apt-get", Some("update"))
        );
        assert_eq!(madison.program, "apt-cache");
        assert!(has(
            madison,
            &["madison", "ringmaster-demo", "libfoo1:amd64", "nosuch"]
        ));
        assert_eq!(madison.timeout, AptConfig::default().metadata_timeout);
    }

    #[test]
    fn available_without_refresh_only_reads() {
        let apt = apt(vec![ok(MADISON), ok(SHOW)]);
        let offered = apt.available(&["libfoo1".into()], false).expect("offered");
        assert_eq!(versions(&offered["libfoo1"]), [("2.3-4", "2.3-4")]);
        assert_eq!(apt.runner().calls().len(), 2);
        assert!(apt.available(&[], false).expect("nothing").is_empty());
        assert_eq!(apt.runner().calls().len(), 2, "nothing asked, nothing run");
    }

    #[test]
    fn a_failed_refresh_is_classified() {
        let apt = apt(vec![out(
            100,
            "",
            "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 7 (apt-get)\n",
        )]);
        let err = apt.available(&["foo".into()], true).expect_err("locked");
        assert!(matches!(err, BackendError::Locked { .. }), "{err:?}");
    }

    #[test]
    fn unreadable_madison_output_is_a_parse_error() {
        let apt = apt(vec![ok("ringmaster-demo | 1.0-3\n")]);
        let err = apt
            .available(&["ringmaster-demo".into()], false)
            .expect_err("parse");
        let BackendError::Parse { what, detail } = err else {
            panic!("{err:?}");
        };
        assert_eq!(what, "apt-cache madison's line 1");
        assert!(detail.contains("ringmaster-demo | 1.0-3"), "{detail}");
    }

    #[test]
    fn a_downgrade_allows_downgrades_of_installed_packages_only() {
        let apt = apt(vec![
            ok(MADISON),
            ok("Setting up ringmaster-demo (1.0-2) ...\n"),
        ]);
        apt.downgrade(&[pin("ringmaster-demo", "1.0-2")])
            .expect("downgrades");
        let calls = apt.runner().calls();
        let [madison, install] = &calls[..] else {
            panic!("{calls:?}")
        };
        assert!(has(madison, &["madison", "ringmaster-demo"]));
        assert!(
            has(
                install,
                &[
                    "--no-remove",
                    "--allow-downgrades",
                    "--only-upgrade",
                    "ringmaster-demo=1.0-2"
                ]
            ),
            "{install:?}"
        );
        assert_eq!(install.timeout, AptConfig::default().install_timeout);
    }

    #[test]
    fn kernels_glibc_systemd_and_apt_are_never_rolled_back() {
        for package in [
            "linux-image-6.1.0-18-amd64",
            "linux-image-amd64",
            "linux-modules-5.15.0-91-generic",
            "libc6",
            "libc6:i386",
            "libc6-dev",
            "libc-bin",
            "locales",
            "systemd",
            "libsystemd0",
            "dpkg",
            "apt",
            "libapt-pkg6.0",
            "libstdc++6",
        ] {
            let apt = apt(vec![]);
            let err = apt
                .downgrade(&[pin("ringmaster-demo", "1.0-2"), pin(package, "1.0")])
                .expect_err("refused");
            let BackendError::CannotRollBack {
                package: refused,
                reason,
            } = &err
            else {
                panic!("{package}: {err:?}");
            };
            assert_eq!(refused, package);
            assert!(!reason.is_empty());
            assert!(apt.runner().calls().is_empty(), "{package}: ran something");
        }
        for fine in [
            "apt-utils",
            "linux-base",
            "linux-headers-6.1.0-18-amd64",
            "libcurl4",
        ] {
            assert_eq!(refused_rollback(fine), None, "{fine}");
        }
    }

    #[test]
    fn a_version_no_longer_offered_nor_cached_cannot_be_rolled_back() {
        let root = Root::new("gone");
        let apt = apt_with(root.config(), vec![ok(MADISON)]);
        let err = apt
            .downgrade(&[pin("ringmaster-demo", "1.0-1")])
            .expect_err("gone");
        let BackendError::CannotRollBack { package, reason } = err else {
            panic!("{err:?}");
        };
        assert_eq!(package, "ringmaster-demo");
        assert!(reason.contains("1.0-1 is no longer offered"), "{reason}");
        assert_eq!(apt.runner().calls().len(), 1, "only madison ran");
    }

    #[test]
    fn a_version_kept_in_the_archive_cache_is_installed_from_its_file() {
        let root = Root::new("cached");
        root.write(
            "var/cache/apt/archives/ringmaster-demo_1%3a0.8-1_all.deb",
            "!<arch>",
        );
        root.write(
            "var/cache/apt/archives/ringmaster-demo_1%3a0.8-10_all.deb",
            "!<arch>",
        );
        let apt = apt_with(root.config(), vec![ok(MADISON), ok("Setting up …\n")]);
        apt.downgrade(&[pin("ringmaster-demo", "1:0.8-1")])
            .expect("downgrades");
        let calls = apt.runner().calls();
        let deb = root
            .0
            .join("var/cache/apt/archives/ringmaster-demo_1%3a0.8-1_all.deb");
        assert_eq!(calls[1].args.last().map(String::as_str), deb.to_str());
    }

    #[test]
    fn a_confined_root_confines_every_path() {
        let root = Root::new("confined");
        let r = root.0.to_str().expect("utf-8").to_string();
        let config = AptConfig {
            lock_wait: Duration::from_millis(1500),
            options: vec!["Acquire::Retries=0".into()],
            ..root.config()
        };
        let apt = apt_with(config, vec![ok(""), ok("")]);
        apt.install(&[pin("foo", "1")]).expect("installs");
        apt.inventory().expect("reads");
        let calls = apt.runner().calls();
        let install = &calls[0];
        assert!(has(install, &["-o", &format!("Dir={r}/")]));
        assert!(has(
            install,
            &["-o", &format!("DPkg::Options::=--root={r}")]
        ));
        assert!(has(
            install,
            &["-o", &format!("DPkg::Options::=--log={r}/var/log/dpkg.log")]
        ));
        assert!(has(install, &["-o", "DPkg::Lock::Timeout=2"]), "rounded up");
        let extra = install.args.iter().position(|a| a == "Acquire::Retries=0");
        assert_eq!(
            extra,
            Some(
                install
                    .args
                    .iter()
                    .position(|a| a == "install")
                    .expect("install")
                    - 1
            ),
            "extra options come last"
        );
        let conf = format!("{r}/etc/apt/ringmaster-root.conf");
        assert_eq!(env(install, "APT_CONFIG"), Some(conf.as_str()));
        let written = std::fs::read_to_string(&conf).expect("the apt configuration");
        assert!(written.contains(&format!("Dir \"{r}/\";")), "{written}");
        assert_eq!(calls[1].program, "dpkg-query");
        assert_eq!(calls[1].args[0], format!("--root={r}"));
    }

    #[test]
    fn a_root_apt_cannot_be_told_is_refused() {
        let relative = AptConfig {
            root: Some("relative/root".into()),
            ..AptConfig::default()
        };
        let err = Apt::new(Fake::default(), relative).expect_err("relative");
        assert!(matches!(err, AptConfigError::RootNotAbsolute(_)), "{err:?}");
        let quoted = AptConfig {
            root: Some("/tmp/a\"b".into()),
            ..AptConfig::default()
        };
        let err = Apt::new(Fake::default(), quoted).expect_err("quoted");
        assert!(matches!(err, AptConfigError::RootUnspellable(_)), "{err:?}");
    }

    #[test]
    fn a_root_without_etc_apt_is_a_failure_not_a_host_run() {
        let root = Root::new("no-etc-apt");
        std::fs::remove_dir_all(root.0.join("etc")).expect("rm etc");
        let apt = apt_with(root.config(), vec![]);
        let err = apt.install(&[pin("foo", "1")]).expect_err("no apt config");
        let BackendError::Failed {
            command,
            code: None,
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert!(command.contains("ringmaster-root.conf"), "{command}");
        assert!(apt.runner().calls().is_empty());
    }

    const DPKG_QUERY: &str = "iF \tringmaster-demo\tall\t1.0-3\tringmaster-demo\t1.0-3\n\
        ii \tlibc6\tamd64\t2.36-9+deb12u4\tglibc\t2.36-9+deb12u4\n\
        ii \tlibc6\ti386\t2.36-9+deb12u4\tglibc\t2.36-9+deb12u4\n\
        rc \told-thing\tall\t0.1\told-thing\t0.1\n\
        un \tpurged\tamd64\t\t\t\n\
        hi \tbash\tamd64\t5.2.15-2+b2\tbash\t5.2.15-2\n";

    #[test]
    fn the_inventory_reads_dpkg_query() {
        let apt = apt(vec![ok(DPKG_QUERY)]);
        let inventory = apt.inventory().expect("reads");
        assert_eq!(inventory.flavour, Some(Flavour::Deb));
        let seen: Vec<(&str, &str, &str, &str, &str)> = inventory
            .packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.arch.as_str(),
                    p.version.as_str(),
                    p.source.as_str(),
                    p.source_version.as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("bash", "amd64", "5.2.15-2+b2", "bash", "5.2.15-2"),
                (
                    "libc6",
                    "amd64",
                    "2.36-9+deb12u4",
                    "glibc",
                    "2.36-9+deb12u4"
                ),
                ("libc6", "i386", "2.36-9+deb12u4", "glibc", "2.36-9+deb12u4"),
            ],
            "a half-configured package (iF) fixes nothing: it is not listed"
        );
        let cmd = &apt.runner().calls()[0];
        assert_eq!(cmd.program, "dpkg-query");
        assert_eq!(cmd.args, ["-W", &format!("-f={DPKG_QUERY_FORMAT}")]);
    }

    #[test]
    fn unreadable_dpkg_query_output_is_a_parse_error() {
        for (line, detail) in [
            ("ii \tfoo\tall\t1.0\tfoo\n", "expected 6"),
            ("zz \tfoo\tall\t1.0\tfoo\t1.0\n", "status"),
            ("ii \t\tall\t1.0\tfoo\t1.0\n", "Package"),
        ] {
            let apt = apt(vec![ok(&format!(
                "ii \tbash\tamd64\t5.2\tbash\t5.2\n{line}"
            ))]);
            let err = apt.inventory().expect_err("parse");
            let BackendError::Parse { what, detail: got } = &err else {
                panic!("{line:?}: {err:?}");
            };
            assert_eq!(what, "dpkg-query -W");
            assert!(got.contains("line 2") && got.contains(detail), "{got}");
        }
    }

    #[test]
    fn a_status_file_dpkg_query_cannot_parse_is_broken() {
        let apt = apt(vec![out(
            2,
            "",
            "dpkg-query: error: parsing file '/var/lib/dpkg/status' near line 0:\n end of file after field name 'garbage'\n",
        )]);
        let err = apt.inventory().expect_err("broken");
        assert!(matches!(err, BackendError::Broken { .. }), "{err:?}");
    }

    #[test]
    fn the_ecosystem_comes_from_os_release() {
        let cases = [
            (
                "ID=debian\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\n",
                "Debian:12",
            ),
            (
                "# comment\nID=ubuntu\nVERSION_ID=\"22.04\"\nVERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\n",
                "Ubuntu:22.04:LTS",
            ),
            (
                "ID='ubuntu'\nVERSION_ID=23.10\nVERSION=\"23.10 (Mantic Minotaur)\"\n",
                "Ubuntu:23.10",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(ecosystem_from_os_release(text), Ok(Ecosystem(want.into())));
        }
        let sid =
            ecosystem_from_os_release("ID=debian\nPRETTY_NAME=\"Debian GNU/Linux trixie/sid\"\n");
        assert!(sid.is_err_and(|e| e.contains("VERSION_ID")));
        let alma = ecosystem_from_os_release("ID=\"almalinux\"\nVERSION_ID=\"9.4\"\n");
        assert!(alma.is_err_and(|e| e.contains("almalinux")));
    }

    #[test]
    fn the_ecosystem_is_read_under_the_root_with_usr_lib_as_fallback() {
        let root = Root::new("os-release");
        let apt = apt_with(root.config(), vec![]);
        let err = apt.ecosystem().expect_err("no os-release");
        assert!(matches!(err, BackendError::Parse { .. }), "{err:?}");
        root.write("usr/lib/os-release", "ID=debian\nVERSION_ID=\"11\"\n");
        assert_eq!(
            apt.ecosystem().expect("fallback"),
            Ecosystem("Debian:11".into())
        );
        root.write("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n");
        assert_eq!(apt.ecosystem().expect("etc"), Ecosystem("Debian:12".into()));
        root.write("etc/os-release", "ID=debian\n");
        let err = apt.ecosystem().expect_err("no version");
        let BackendError::Parse { what, .. } = err else {
            panic!("{err:?}");
        };
        assert!(what.ends_with("etc/os-release"), "{what}");
    }

    #[test]
    fn the_reboot_flag_and_its_packages_are_reasons() {
        let root = Root::new("reboot-flag");
        let apt = apt_with(root.config(), vec![ok(""), ok("")]);
        std::fs::create_dir_all(root.0.join("run")).expect("run");
        assert_eq!(apt.reboot_required().expect("reads"), RebootNeed::None);
        root.write(
            "var/run/reboot-required",
            "*** System restart required ***\n",
        );
        root.write(
            "var/run/reboot-required.pkgs",
            "libc6\nlinux-image-6.1.0-18-amd64\nlibc6\n",
        );
        let RebootNeed::Required(reasons) = apt.reboot_required().expect("reads") else {
            panic!("a reboot");
        };
        assert_eq!(
            reasons,
            [
                "libc6 asks for a reboot (reboot-required.pkgs)",
                "linux-image-6.1.0-18-amd64 asks for a reboot (reboot-required.pkgs)"
            ]
        );
    }

    #[test]
    fn a_flag_without_packages_is_one_reason() {
        let root = Root::new("reboot-bare");
        root.write("run/reboot-required", "");
        let apt = apt_with(root.config(), vec![ok("")]);
        assert_eq!(
            apt.reboot_required().expect("reads"),
            RebootNeed::Required(vec!["/var/run/reboot-required is set".into()])
        );
    }

    /// Under a root, `var/run` → `/run` would read the agent's own /run.
    #[test]
    fn a_var_run_symlink_is_not_followed_out_of_the_root() {
        let root = Root::new("reboot-symlink");
        let outside = Root::new("reboot-outside");
        outside.write("reboot-required", "");
        std::fs::create_dir_all(root.0.join("var")).expect("var");
        std::os::unix::fs::symlink(&outside.0, root.0.join("var/run")).expect("symlink");
        let apt = apt_with(root.config(), vec![ok("")]);
        assert_eq!(apt.reboot_required().expect("reads"), RebootNeed::None);
    }

    #[test]
    fn a_newer_installed_kernel_than_the_running_one_needs_a_reboot() {
        let root = Root::new("reboot-kernel");
        let kernels = "ii \tlinux-image-6.1.0-9-amd64\tamd64\t6.1.27-1\tlinux-signed-amd64\t6.1.27+1\n\
            ii \tlinux-image-6.1.0-18-amd64\tamd64\t6.1.76-1\tlinux-signed-amd64\t6.1.76+1\n\
            ii \tlinux-image-6.1.0-20-rt-amd64\tamd64\t6.1.85-1\tlinux-signed-amd64\t6.1.85+1\n\
            ii \tlinux-image-amd64\tamd64\t6.1.76-1\tlinux-signed-amd64\t6.1.76+1\n";
        let apt = apt_with(root.config(), vec![ok(kernels), ok("6.1.0-9-amd64\n")]);
        assert_eq!(
            apt.reboot_required().expect("reads"),
            RebootNeed::Required(vec![
                "kernel 6.1.0-18-amd64 is installed but 6.1.0-9-amd64 is running".into()
            ])
        );
        let calls = apt.runner().calls();
        assert_eq!(
            (calls[1].program.as_str(), calls[1].args.as_slice()),
            ("uname", &["-r".to_string()][..])
        );
        let apt = apt_with(root.config(), vec![ok(kernels), ok("6.1.0-18-amd64\n")]);
        assert_eq!(apt.reboot_required().expect("reads"), RebootNeed::None);
        let config = AptConfig {
            running_kernel: Some("6.1.0-18-amd64".into()),
            ..root.config()
        };
        let apt = apt_with(config, vec![ok(kernels)]);
        assert_eq!(apt.reboot_required().expect("reads"), RebootNeed::None);
        assert_eq!(apt.runner().calls().len(), 1, "uname not run");
    }

    #[test]
    fn no_kernel_package_needs_no_uname() {
        let root = Root::new("reboot-nokernel");
        let apt = apt_with(
            root.config(),
            vec![ok("ii \tbash\tamd64\t5.2\tbash\t5.2\n")],
        );
        assert_eq!(apt.reboot_required().expect("reads"), RebootNeed::None);
        let apt = apt_with(
            root.config(),
            vec![
                ok(
                    "ii \tlinux-image-6.1.0-18-amd64\tamd64\t6.1.76-1\tlinux-signed-amd64\t6.1.76+1\n",
                ),
                ok("\n"),
            ],
        );
        let err = apt.reboot_required().expect_err("empty uname");
        assert!(matches!(err, BackendError::Parse { .. }), "{err:?}");
    }

    #[test]
    fn kernel_releases_order_naturally_within_their_flavour() {
        assert_eq!(
            kernel_release("linux-image-6.1.0-18-amd64"),
            Some("6.1.0-18-amd64")
        );
        assert_eq!(
            kernel_release("linux-image-6.1.0-18-amd64-unsigned"),
            Some("6.1.0-18-amd64")
        );
        assert_eq!(
            kernel_release("linux-image-unsigned-5.15.0-91-generic"),
            Some("5.15.0-91-generic")
        );
        assert_eq!(kernel_release("linux-image-amd64"), None);
        assert_eq!(kernel_release("linux-image-6.1.0-18-amd64-dbg"), None);
        assert_eq!(kernel_flavour("6.1.0-18-cloud-amd64"), "cloud-amd64");
        assert_eq!(kernel_flavour("5.15.0-91-generic"), "generic");
        use std::cmp::Ordering::*;
        assert_eq!(natural_cmp("6.1.0-18-amd64", "6.1.0-9-amd64"), Greater);
        assert_eq!(natural_cmp("5.15.0-91-generic", "6.1.0-1-generic"), Less);
        assert_eq!(natural_cmp("6.1.0-018", "6.1.0-18"), Equal);
        assert_eq!(natural_cmp("6.1.0", "6.1.0-1"), Less);
        assert_eq!(natural_cmp("6.10.0", "6.9.0"), Greater);
    }
}
