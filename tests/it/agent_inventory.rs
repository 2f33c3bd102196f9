//! The inventory formats against the real tools: `dpkg-query` reading this machine's own
//! package database (read only), and `rpm` listing packages built by `rpmbuild` and
//! recorded in an rpm database under a temporary root. A tool that is absent is skipped
//! with a printed reason.

use std::path::{Path, PathBuf};
use std::process::Command;

use ringmaster::agent::linux::inventory::{
    DPKG_QUERY_FORMAT, Flavour, InstalledPackage, RPM_QUERY_FORMAT, parse_dpkg_query,
    parse_rpm_query,
};

fn installed(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("runs");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn dpkg_query_output_in_our_format_reads_back() {
    if !installed("dpkg-query") || !Path::new("/var/lib/dpkg/status").is_file() {
        eprintln!("skipped: dpkg-query or a dpkg database is not installed");
        return;
    }
    let out = run(Command::new("dpkg-query").args(["-W", "-f", DPKG_QUERY_FORMAT]));
    let inventory = parse_dpkg_query(&out).expect("our format reads back");
    assert_eq!(inventory.flavour, Some(Flavour::Deb));
    let own =
        run(Command::new("dpkg-query").args(["-W", "-f", "${Version}\t${Architecture}", "dpkg"]));
    let (version, arch) = own.split_once('\t').expect("version and arch");
    let dpkg: Vec<&InstalledPackage> = inventory
        .packages
        .iter()
        .filter(|p| p.name == "dpkg")
        .collect();
    assert_eq!(dpkg.len(), 1, "{dpkg:?}");
    assert_eq!(
        (dpkg[0].version.as_str(), dpkg[0].arch.as_str()),
        (version, arch)
    );
    assert_eq!(dpkg[0].source, "dpkg");
    let mut sorted = inventory.packages.clone();
    sorted.sort();
    assert_eq!(
        sorted, inventory.packages,
        "sorted by name and architecture"
    );
}

/// A temporary directory removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ringmaster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A spec with a main package and a subpackage of another name; `epoch` when given.
fn spec(name: &str, epoch: Option<u32>, version: &str, release: &str) -> String {
    let epoch = epoch.map(|e| format!("Epoch: {e}\n")).unwrap_or_default();
    format!(
        "Name: {name}\n{epoch}Version: {version}\nRelease: {release}\nSummary: test\n\
         License: Apache-2.0\nBuildArch: noarch\n%description\ntest\n\
         %package -n {name}-libs\nSummary: sub\n%description -n {name}-libs\nsub\n\
         %files\n%files -n {name}-libs\n"
    )
}

#[test]
fn rpm_query_output_in_our_format_reads_back() {
    if !installed("rpm") || !installed("rpmbuild") {
        eprintln!("skipped: rpm not installed (rpm and rpmbuild are needed)");
        return;
    }
    let scratch = Scratch::new("rpm-inventory");
    let top = scratch.0.join("build");
    let root = scratch.0.join("root");
    std::fs::create_dir_all(top.join("SPECS")).expect("specs dir");
    std::fs::create_dir_all(&root).expect("root dir");
    let specs = [
        ("rm-epoch", spec("rm-epoch", Some(3), "1.0", "1.el9_3")),
        (
            "rm-plain",
            spec("rm-plain", None, "2.4.0", "7.module_el9.4.0+66+eb9878bc"),
        ),
    ];
    for (name, text) in &specs {
        let path = top.join("SPECS").join(format!("{name}.spec"));
        std::fs::write(&path, text).expect("spec written");
        // HOME in the scratch dir: Debian's rpm tools open (and create) `~/.rpmdb`, and
        // the host's must stay untouched (agent_dnf checks it).
        run(Command::new("rpmbuild")
            .env("HOME", &top)
            .arg("--quiet")
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .arg("-bb")
            .arg(&path));
    }
    let rpms: Vec<PathBuf> = std::fs::read_dir(top.join("RPMS/noarch"))
        .expect("built rpms")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(rpms.len(), 4, "{rpms:?}");
    let rooted = |args: &[&str]| {
        let mut command = Command::new("rpm");
        command
            .env("HOME", &top)
            .arg("--root")
            .arg(&root)
            .args(args);
        command
    };
    run(&mut rooted(&["--initdb"]));
    run(rooted(&["-i", "--justdb", "--nodeps", "--nosignature"]).args(&rpms));
    let out = run(&mut rooted(&["-qa", "--qf", RPM_QUERY_FORMAT]));
    let inventory = parse_rpm_query(&out).expect("our format reads back");
    assert_eq!(inventory.flavour, Some(Flavour::Rpm));
    let pkg = |name: &str, version: &str, source: &str| InstalledPackage {
        name: name.into(),
        arch: "noarch".into(),
        version: version.into(),
        source: source.into(),
        source_version: version.into(),
    };
    let (e, p) = ("3:1.0-1.el9_3", "2.4.0-7.module_el9.4.0+66+eb9878bc");
    assert_eq!(
        inventory.packages,
        vec![
            pkg("rm-epoch", e, "rm-epoch"),
            pkg("rm-epoch-libs", e, "rm-epoch"),
            pkg("rm-plain", p, "rm-plain"),
            pkg("rm-plain-libs", p, "rm-plain"),
        ]
    );
}
