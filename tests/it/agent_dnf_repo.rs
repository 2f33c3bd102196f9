//! What the real dnf tests stand on: tiny RPMs built with `rpmbuild` from generated
//! specs, a local repository made by `createrepo_c`, a confined root that dnf installs
//! into, and a snapshot of the host's package databases to prove they were not touched.
//!
//! Nothing here touches the host's rpmdb: `rpmbuild` runs with `--nodeps` and its own
//! `_dbpath` (without them it opens, and on Debian creates, `~/.rpmdb`), and dnf and rpm
//! run only with `--installroot`/`--root`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// A directory under the system's temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "ringmaster-dnf-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Why the real tests cannot run here, if they cannot: a missing tool (Debian packages
/// `rpm` for rpm and rpmbuild, `dnf`, `createrepo-c`, `busybox-static`), or not root
/// (rpm chroots into the root to run scriptlets).
pub fn missing_prerequisite() -> Option<String> {
    for tool in ["rpm", "rpmbuild", "dnf", "createrepo_c", "chroot"] {
        if !on_path(tool) {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        return Some("not root: rpm chroots into the test root to run scriptlets".into());
    }
    if !static_busybox_runs() {
        return Some("/bin/busybox is absent or not static (busybox-static)".into());
    }
    None
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

/// Whether `/bin/busybox` works as `/bin/sh` alone in an otherwise empty root: what the
/// test packages' scriptlets need once rpm has chrooted.
fn static_busybox_runs() -> bool {
    let dir = TempDir::new("busybox-check");
    let bin = dir.0.join("bin");
    if std::fs::create_dir_all(&bin).is_err()
        || std::fs::copy("/bin/busybox", bin.join("busybox")).is_err()
        || std::os::unix::fs::symlink("busybox", bin.join("sh")).is_err()
    {
        return false;
    }
    Command::new("chroot")
        .arg(&dir.0)
        .args(["/bin/sh", "-c", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

/// One test package: `name version-release`, its scriptlets and what it ships.
pub struct Package<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub release: &'a str,
    pub pre: &'a str,
    pub post: &'a str,
}

impl Package<'_> {
    fn spec(&self) -> String {
        let Package {
            name,
            version,
            release,
            pre,
            post,
        } = self;
        format!(
            "Name: {name}\nVersion: {version}\nRelease: {release}\n\
             Summary: a ringmaster dnf backend test package\nLicense: Apache-2.0\n\
             BuildArch: noarch\n%global debug_package %{{nil}}\n\
             %description\nInstalled, upgraded and rolled back by ringmaster's tests.\n\
             %install\nmkdir -p %{{buildroot}}/etc/{name}\n\
             echo 'shipped by {version}-{release}' > %{{buildroot}}/etc/{name}/{name}.conf\n\
             %files\n%config(noreplace) /etc/{name}/{name}.conf\n\
             %pre\n{pre}\n%post\n{post}\n"
        )
    }
}

/// The package that gives the root its `/bin/sh`: a static busybox. Copying busybox into
/// the root is not enough: rpmbuild makes every package with scriptlets require
/// `/bin/sh`, and dnf resolves that from the rpmdb, not the file system. As a package,
/// rpm also orders it before the first scriptlet that needs it.
const SHELL_SPEC: &str = "Name: ringmaster-test-shell\nVersion: 1\nRelease: 1\n\
Summary: busybox as /bin/sh for ringmaster's test root\nLicense: GPL-2.0-only\n\
%global debug_package %{nil}\n\
%description\nA static busybox as the test root's /bin/sh.\n\
%install\nmkdir -p %{buildroot}/bin\ncp /bin/busybox %{buildroot}/bin/busybox\n\
ln -s busybox %{buildroot}/bin/sh\n\
%files\n/bin/busybox\n/bin/sh\n";

/// A local repository of built packages.
pub struct Repo {
    pub dir: TempDir,
}

impl Repo {
    /// Builds the shell package and `packages` into a repository with `createrepo_c`.
    pub fn build(packages: &[Package<'_>]) -> Self {
        let dir = TempDir::new("repo");
        let top = dir.0.join("top");
        for sub in ["SPECS", "tmp", "rpmdb"] {
            std::fs::create_dir_all(top.join(sub)).expect("rpmbuild dirs");
        }
        let mut specs = vec![(
            "ringmaster-test-shell-1-1".to_string(),
            SHELL_SPEC.to_string(),
        )];
        for p in packages {
            specs.push((format!("{}-{}-{}", p.name, p.version, p.release), p.spec()));
        }
        for (label, spec) in specs {
            let file = top.join("SPECS").join(format!("{label}.spec"));
            std::fs::write(&file, spec).expect("spec");
            rpmbuild(&top, &file);
        }
        let repo = dir.0.join("repo");
        std::fs::create_dir_all(&repo).expect("repo dir");
        for rpm in rpms_under(&top.join("RPMS")) {
            let name = rpm.file_name().expect("file name");
            std::fs::copy(&rpm, repo.join(name)).expect("copy rpm");
        }
        run(Command::new("createrepo_c").arg("-q").arg(&repo));
        Self { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.0.join("repo")
    }

    /// The built `.rpm` of a package, e.g. `ringmaster-slow-1-1` (not in the repository
    /// metadata's way: used with `rpm -i` directly).
    pub fn rpm(&self, label: &str) -> PathBuf {
        rpms_under(&self.dir.0.join("top/RPMS"))
            .into_iter()
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(label))
            })
            .unwrap_or_else(|| panic!("no rpm {label}"))
    }
}

fn rpmbuild(top: &Path, spec: &Path) {
    run(Command::new("rpmbuild")
        .arg("-bb")
        .arg("--nodeps")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("--define")
        .arg(format!("_dbpath {}", top.join("rpmdb").display()))
        .arg("--define")
        .arg(format!("_tmppath {}", top.join("tmp").display()))
        .arg(spec)
        .env("LC_ALL", "C"));
}

fn rpms_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(rpms_under(&path));
        } else if path.extension().is_some_and(|e| e == "rpm") {
            found.push(path);
        }
    }
    found
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A confined root: its own repo file (`gpgcheck=0`, a `file://` baseurl), its own
/// dnf.conf (dnf 4 reads the installroot's before the host's), and an os-release.
pub fn root(repo: &Repo) -> TempDir {
    let root = TempDir::new("root");
    let etc = root.0.join("etc");
    std::fs::create_dir_all(etc.join("yum.repos.d")).expect("repos dir");
    std::fs::create_dir_all(etc.join("dnf")).expect("dnf dir");
    std::fs::write(
        etc.join("yum.repos.d/ringmaster-test.repo"),
        format!(
            "[ringmaster-test]\nname=ringmaster test packages\nbaseurl=file://{}\n\
             gpgcheck=0\nenabled=1\n",
            repo.path().display()
        ),
    )
    .expect("repo file");
    std::fs::write(
        etc.join("dnf/dnf.conf"),
        "[main]\ngpgcheck=0\ninstallonly_limit=3\nskip_if_unavailable=False\n",
    )
    .expect("dnf.conf");
    std::fs::write(
        etc.join("os-release"),
        "NAME=\"AlmaLinux\"\nID=\"almalinux\"\nVERSION_ID=\"9.3\"\n",
    )
    .expect("os-release");
    root
}

/// The rpm database file dnf made inside the root (wherever rpm's `%_dbpath` put it).
pub fn rpmdb_file(root: &Path) -> Option<PathBuf> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else if path
                .file_name()
                .is_some_and(|n| n == "rpmdb.sqlite" || n == "Packages")
            {
                return Some(path);
            }
        }
    }
    None
}

/// Every file of the host's package databases, dnf's state and logs, with size and
/// modification time, read from the file system only (opening the rpmdb with rpm would
/// create one on Debian).
#[derive(Debug, PartialEq, Eq)]
pub struct HostSnapshot(Vec<(PathBuf, Option<(u64, SystemTime)>)>);

impl HostSnapshot {
    pub fn take() -> Self {
        let mut roots = vec![
            PathBuf::from("/var/lib/rpm"),
            PathBuf::from("/var/lib/dnf"),
            PathBuf::from("/var/cache/dnf"),
            PathBuf::from("/var/log/dnf.log"),
            PathBuf::from("/var/log/dnf.rpm.log"),
            PathBuf::from("/var/log/dnf.librepo.log"),
            PathBuf::from("/var/log/hawkey.log"),
        ];
        if let Some(home) = std::env::var_os("HOME") {
            roots.push(Path::new(&home).join(".rpmdb"));
        }
        let mut entries = Vec::new();
        for root in roots {
            walk(&root, &mut entries);
        }
        Self(entries)
    }
}

fn walk(path: &Path, into: &mut Vec<(PathBuf, Option<(u64, SystemTime)>)>) {
    let meta = std::fs::symlink_metadata(path).ok();
    into.push((
        path.to_path_buf(),
        meta.as_ref()
            .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH))),
    ));
    if meta.is_some_and(|m| m.is_dir()) {
        let mut children: Vec<PathBuf> = std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        children.sort();
        for child in children {
            walk(&child, into);
        }
    }
}
