//! What the apt backend's real tests stand on: tiny `.deb` packages built with
//! `dpkg-deb`, a flat `file:` repository indexed with `apt-ftparchive` (trusted, unsigned),
//! and a confined root of its own (empty dpkg database, its own `etc/apt`, and a static
//! busybox as `/bin/sh` for the maintainer scripts dpkg runs chrooted there).
//!
//! The tools come from Debian's `dpkg` and `apt` (always there on Debian), `dpkg-dev`
//! (`dpkg-deb --root-owner-group`), `apt-utils` (`apt-ftparchive`) and `busybox-static`.
//! Without one of them, or without root (dpkg chroots to run maintainer scripts), the
//! tests print `skipped: …` and return.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ringmaster::agent::linux::apt::{Apt, AptConfig};
use ringmaster::agent::linux::runner::SystemRunner;

use crate::agent_sh::TempDir;

/// The demo package's name.
pub const DEMO: &str = "ringmaster-demo";
/// A package whose postinst hangs.
pub const HANG: &str = "ringmaster-hang";

/// The postinst of a good version.
const POSTINST_OK: &str = "#!/bin/sh\necho \"ringmaster-demo configured ($1 $2)\"\nexit 0\n";
/// The postinst of version 1.0-3: it fails.
pub const POSTINST_FAILS_WITH: &str = "ringmaster-demo postinst: cannot configure 1.0-3";
/// The postinst of the hanging package: writes its pid (the `sleep` it becomes), hangs.
const POSTINST_HANGS: &str = "#!/bin/sh\necho \"ringmaster-hang postinst: hanging\"\n\
    echo $$ > /tmp/ringmaster-hang.pid\nexec sleep 300\n";

/// A repository and a confined root in a temp dir.
pub struct Fixture {
    /// Holds everything; removed when dropped.
    pub dir: TempDir,
    /// The flat repository (`deb [trusted=yes] file:<repo> ./`).
    pub repo: PathBuf,
    /// The confined root.
    pub root: PathBuf,
}

/// The host's package state, to show that a test left it alone.
#[derive(Debug, PartialEq, Eq)]
pub struct HostState {
    status: Vec<u8>,
    etc_apt: Vec<(PathBuf, u64, Option<std::time::SystemTime>)>,
}

impl HostState {
    /// The host's dpkg status file and every file of its `/etc/apt` (size, mtime).
    pub fn read() -> Self {
        let status = std::fs::read("/var/lib/dpkg/status").unwrap_or_default();
        let mut etc_apt = Vec::new();
        walk(Path::new("/etc/apt"), &mut etc_apt);
        etc_apt.sort();
        Self { status, etc_apt }
    }
}

fn walk(dir: &Path, into: &mut Vec<(PathBuf, u64, Option<std::time::SystemTime>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(&path, into);
        } else {
            into.push((path, meta.len(), meta.modified().ok()));
        }
    }
}

/// Why the real tests cannot run here, if they cannot.
pub fn missing_tools() -> Option<String> {
    let tools = [
        ("dpkg-deb", "dpkg"),
        ("dpkg", "dpkg"),
        ("dpkg-query", "dpkg"),
        ("apt-get", "apt"),
        ("apt-cache", "apt"),
        ("apt-ftparchive", "apt-utils"),
    ];
    for (tool, package) in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} is missing (Debian package {package})"));
        }
    }
    let uid = Command::new("id").arg("-u").output().ok();
    if uid.is_none_or(|o| String::from_utf8_lossy(&o.stdout).trim() != "0") {
        return Some("not root: dpkg chroots into the test root to run maintainer scripts".into());
    }
    if static_busybox().is_none() {
        return Some("no static busybox (Debian package busybox-static)".into());
    }
    None
}

/// A statically linked busybox: it runs inside a root that holds nothing else.
fn static_busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| {
            let Ok(bytes) = std::fs::read(path) else {
                return false;
            };
            let head = &bytes[..bytes.len().min(4096)];
            head.starts_with(b"\x7fELF")
                && !head.windows(6).any(|w| w == b"ld-lin" || w == b"ld-mus")
        })
}

/// Runs a command that must succeed and returns its standard output.
pub fn run(program: &str, args: &[&str], dir: &Path) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Fixture {
    /// The demo package in versions 1.0-1, 1.0-2 and 1.0-3 (whose postinst fails), the
    /// hanging package, their repository, and an empty root using it.
    pub fn new(test: &str) -> Self {
        let dir = TempDir::new(&format!("agent-apt-{test}"));
        let repo = dir.0.join("repo");
        let root = dir.0.join("root");
        std::fs::create_dir_all(&repo).expect("repo dir");
        let fixture = Fixture { dir, repo, root };
        fixture.build(DEMO, "1.0-1", POSTINST_OK);
        fixture.build(DEMO, "1.0-2", POSTINST_OK);
        let failing = format!("#!/bin/sh\necho \"{POSTINST_FAILS_WITH}\" >&2\nexit 1\n");
        fixture.build(DEMO, "1.0-3", &failing);
        fixture.build(HANG, "1.0-1", POSTINST_HANGS);
        fixture.index();
        fixture.make_root();
        fixture
    }

    /// `repo/<name>_<version>_all.deb`: `Essential: no`, `Architecture: all`, one file
    /// (`/usr/share/<name>/version`) and this postinst.
    fn build(&self, name: &str, version: &str, postinst: &str) {
        let tree = self.dir.0.join(format!("build/{name}-{version}"));
        let debian = tree.join("DEBIAN");
        let share = tree.join(format!("usr/share/{name}"));
        std::fs::create_dir_all(&debian).expect("DEBIAN");
        std::fs::create_dir_all(&share).expect("share");
        let control = format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\nEssential: no\n\
             Priority: optional\nSection: misc\n\
             Maintainer: ringmaster tests <tests@ringmaster.invalid>\n\
             Description: ringmaster's apt backend test package\n One file and a postinst.\n"
        );
        std::fs::write(debian.join("control"), control).expect("control");
        std::fs::write(debian.join("postinst"), postinst).expect("postinst");
        let exec = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(debian.join("postinst"), exec).expect("chmod postinst");
        std::fs::write(share.join("version"), format!("{version}\n")).expect("payload");
        let deb = self.deb(name, version);
        run(
            "dpkg-deb",
            &[
                "--root-owner-group",
                "-Zgzip",
                "--build",
                path(&tree),
                path(&deb),
            ],
            &self.dir.0,
        );
    }

    /// Where a built package lies in the repository.
    pub fn deb(&self, name: &str, version: &str) -> PathBuf {
        self.repo.join(format!("{name}_{version}_all.deb"))
    }

    /// (Re)writes the repository's `Packages` and `Release` from its `.deb` files.
    pub fn index(&self) {
        let packages = run("apt-ftparchive", &["packages", "."], &self.repo);
        std::fs::write(self.repo.join("Packages"), packages).expect("Packages");
        let _ = std::fs::remove_file(self.repo.join("Release"));
        let release = run("apt-ftparchive", &["release", "."], &self.repo);
        std::fs::write(self.repo.join("Release"), release).expect("Release");
    }

    /// An empty Debian 12 root whose only source is the repository, with busybox as
    /// `/bin/sh` (and `sleep`, `echo`, `cat`) for the maintainer scripts.
    fn make_root(&self) {
        for dir in [
            "etc/apt/apt.conf.d",
            "etc/apt/preferences.d",
            "etc/apt/sources.list.d",
            "etc/apt/trusted.gpg.d",
            "var/lib/dpkg/info",
            "var/lib/dpkg/updates",
            "var/lib/dpkg/triggers",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/log/apt",
            "bin",
            "tmp",
            "run",
        ] {
            std::fs::create_dir_all(self.root.join(dir)).expect("root dir");
        }
        std::fs::write(self.root.join("var/lib/dpkg/status"), "").expect("status");
        std::fs::write(
            self.root.join("etc/os-release"),
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n\
             VERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\n",
        )
        .expect("os-release");
        // apt reads the root's apt.conf.d (and so not the host's, as it reads one): this
        // hook, run on the host by apt before dpkg, leaves a mark in the root.
        let hook = format!(
            "DPkg::Pre-Invoke {{ \"touch {}\"; }};\n",
            self.root.join("tmp/root-apt-conf-read").display()
        );
        std::fs::write(self.root.join("etc/apt/apt.conf.d/50ringmaster-test"), hook)
            .expect("apt.conf.d");
        let source = format!("deb [trusted=yes] file:{} ./\n", self.repo.display());
        std::fs::write(self.root.join("etc/apt/sources.list"), source).expect("sources.list");
        let busybox = static_busybox().expect("a static busybox (checked by missing_tools)");
        std::fs::copy(busybox, self.root.join("bin/busybox")).expect("copying busybox");
        for applet in ["sh", "sleep", "echo", "cat"] {
            std::os::unix::fs::symlink("busybox", self.root.join("bin").join(applet))
                .expect("busybox applet");
        }
    }

    /// The configuration of the backend on this root: short limits, and a running
    /// kernel of its own (the host's has nothing to do with the root's packages).
    pub fn config(&self) -> AptConfig {
        AptConfig {
            root: Some(self.root.clone()),
            metadata_timeout: Duration::from_secs(30),
            install_timeout: Duration::from_secs(30),
            lock_wait: Duration::from_secs(2),
            options: Vec::new(),
            running_kernel: Some("6.1.0-18-amd64".into()),
            host_files: None,
        }
    }

    /// The real backend on this root.
    pub fn apt(&self, config: AptConfig) -> Apt<SystemRunner> {
        Apt::new(SystemRunner, config).expect("a valid configuration")
    }

    /// What dpkg's database says of a package: `(version, db:Status-Abbrev)`.
    pub fn dpkg_status(&self, package: &str) -> (String, String) {
        let out = run(
            "dpkg-query",
            &[
                &format!("--root={}", self.root.display()),
                "-W",
                "-f=${Version}\t${db:Status-Abbrev}",
                package,
            ],
            &self.dir.0,
        );
        let (version, status) = out.split_once('\t').expect("version and status");
        (version.to_string(), status.trim_end().to_string())
    }

    /// The payload file's content in the root (which version's files are there).
    pub fn payload(&self, package: &str) -> String {
        std::fs::read_to_string(self.root.join(format!("usr/share/{package}/version")))
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}
