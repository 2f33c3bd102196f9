//! Real advisories from the OSV feed files (../shared/feeds/osv, when it is there), read
//! by the catalog's OSV importer and assessed against hand-made device inventories: the
//! importer's output and the agent's assessment must fit together.

use std::path::{Path, PathBuf};

use ringmaster::agent::linux::applicability::{Applicability, Upgrade, assess, choose_version};
use ringmaster::agent::linux::inventory::{Ecosystem, Flavour, InstalledPackage, Inventory};
use ringmaster::api::PatchSpec;
use ringmaster::catalog::osv;

/// The shared feed folder: beside the checkout (CI, the main tree) or beside the
/// worktrees' folder (a developer's worktree under wt/).
fn feeds() -> Option<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = ["../shared/feeds/osv", "../../shared/feeds/osv"]
        .iter()
        .map(|p| here.join(p))
        .find(|p| p.is_dir());
    if found.is_none() {
        eprintln!("skipped: ../shared/feeds/osv is absent, real OSV records not assessed");
    }
    found
}

/// The one Patch of a real record file.
fn record(feeds: &Path, file: &str) -> PatchSpec {
    let path = feeds.join(file);
    let bytes = std::fs::read(&path).expect("record readable");
    let parsed = osv::parse(&path.display().to_string(), &bytes).expect("record parses");
    assert_eq!(parsed.skipped, vec![], "{file}");
    parsed.records.into_iter().next().expect("one record")
}

fn pkg(name: &str, arch: &str, version: &str, source: &str, sv: &str) -> InstalledPackage {
    InstalledPackage {
        name: name.into(),
        arch: arch.into(),
        version: version.into(),
        source: source.into(),
        source_version: sv.into(),
    }
}

fn rpm(name: &str, arch: &str, version: &str) -> InstalledPackage {
    pkg(name, arch, version, name, version)
}

fn inventory(flavour: Flavour, mut packages: Vec<InstalledPackage>) -> Inventory {
    packages.sort();
    Inventory {
        flavour: Some(flavour),
        packages,
    }
}

fn upgrades(result: Applicability) -> Vec<Upgrade> {
    match result {
        Applicability::Missing { upgrades } => upgrades,
        other => panic!("not missing: {other:?}"),
    }
}

fn names(upgrades: &[Upgrade]) -> Vec<&str> {
    upgrades.iter().map(|u| u.package.as_str()).collect()
}

#[test]
fn a_debian_advisory_applies_to_the_binaries_of_its_source_package() {
    let Some(feeds) = feeds() else { return };
    let dsa = record(&feeds, "debian/DSA-3029-1.json");
    let wheezy = Ecosystem("Debian:7".into());
    let nginx = |version: &str| {
        vec![
            pkg("nginx-common", "all", version, "nginx", version),
            pkg("nginx-full", "amd64", version, "nginx", version),
            pkg(
                "openssl",
                "amd64",
                "1.0.1e-2+deb7u12",
                "openssl",
                "1.0.1e-2+deb7u12",
            ),
        ]
    };
    let old = inventory(Flavour::Deb, nginx("1.2.1-2.2+wheezy2"));
    let missing = upgrades(assess(&dsa.packages, &wheezy, &old).expect("assessed"));
    assert_eq!(names(&missing), ["nginx-common", "nginx-full:amd64"]);
    assert!(missing.iter().all(|u| u.fixed == "1.2.1-2.2+wheezy3"));
    assert!(
        missing
            .iter()
            .all(|u| u.source.as_ref().is_some_and(|s| s.name == "nginx"))
    );
    let offered = [
        "1.2.1-2.2+wheezy2".to_string(),
        "1.2.1-2.2+wheezy4".to_string(),
    ];
    assert_eq!(
        choose_version(Flavour::Deb, &offered, &missing[0].fixed).as_deref(),
        Some("1.2.1-2.2+wheezy4")
    );

    let fixed = inventory(Flavour::Deb, nginx("1.2.1-2.2+wheezy3"));
    assert_eq!(
        assess(&dsa.packages, &wheezy, &fixed),
        Ok(Applicability::Installed)
    );
    let bookworm = Ecosystem("Debian:12".into());
    assert_eq!(
        assess(&dsa.packages, &bookworm, &old),
        Ok(Applicability::NotApplicable)
    );
    let without = inventory(Flavour::Deb, nginx("1.2.1-2.2+wheezy2")[2..].to_vec());
    assert_eq!(
        assess(&dsa.packages, &wheezy, &without),
        Ok(Applicability::NotApplicable)
    );
}

#[test]
fn an_ubuntu_advisory_is_restricted_to_the_binaries_it_lists() {
    let Some(feeds) = feeds() else { return };
    let usn = record(&feeds, "ubuntu/USN-6409-1.json");
    let jammy = Ecosystem("Ubuntu:22.04:LTS".into());
    let v = "2.35-0ubuntu3.3";
    let device = inventory(
        Flavour::Deb,
        vec![
            pkg("libc6", "amd64", v, "glibc", v),
            pkg("libc-bin", "amd64", v, "glibc", v),
            // Built from glibc but not listed by the advisory.
            pkg("glibc-not-listed", "amd64", v, "glibc", v),
        ],
    );
    let missing = upgrades(assess(&usn.packages, &jammy, &device).expect("assessed"));
    assert_eq!(names(&missing), ["libc-bin:amd64", "libc6:amd64"]);
    assert!(missing.iter().all(|u| u.fixed == "2.35-0ubuntu3.4"));
}

#[test]
fn an_almalinux_advisory_applies_to_its_binary_packages_on_every_architecture() {
    let Some(feeds) = feeds() else { return };
    let alsa = record(&feeds, "almalinux/almalinux9/ALSA-2023:5453.json");
    let nine = Ecosystem("AlmaLinux:9".into());
    let device = inventory(
        Flavour::Rpm,
        vec![
            rpm("glibc", "x86_64", "2.34-60.el9"),
            rpm("glibc", "i686", "2.34-60.el9"),
            rpm("glibc-common", "x86_64", "2.34-60.el9_2.7"),
            rpm("glibc-langpack-en", "x86_64", "2.34-60.el9"),
            rpm("bash", "x86_64", "5.1.8-6.el9_1"),
        ],
    );
    let missing = upgrades(assess(&alsa.packages, &nine, &device).expect("assessed"));
    assert_eq!(
        names(&missing),
        ["glibc-langpack-en", "glibc.i686", "glibc.x86_64"]
    );
    assert!(
        missing
            .iter()
            .all(|u| u.fixed == "2.34-60.el9_2.7" && u.source.is_none())
    );
    let offered: Vec<String> = ["2.34-60.el9", "2.34-83.el9_3.7", "2.34-60.el9_2.7"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        choose_version(Flavour::Rpm, &offered, &missing[0].fixed).as_deref(),
        Some("2.34-60.el9_2.7")
    );
    let eight = Ecosystem("AlmaLinux:8".into());
    assert_eq!(
        assess(&alsa.packages, &eight, &device),
        Ok(Applicability::NotApplicable)
    );
}

#[test]
fn an_almalinux_module_advisory_is_fixed_by_any_of_its_stream_builds() {
    let Some(feeds) = feeds() else { return };
    let alsa = record(&feeds, "almalinux/almalinux9/ALSA-2024:10788.json");
    let nine = Ecosystem("AlmaLinux:9".into());
    let at = |version: &str| {
        inventory(
            Flavour::Rpm,
            vec![
                rpm("postgresql", "x86_64", version),
                rpm("postgresql-server", "x86_64", version),
            ],
        )
    };
    let old = at("16.4-1.module_el9.4.0+104+a1b2c3d4");
    let missing = upgrades(assess(&alsa.packages, &nine, &old).expect("assessed"));
    assert_eq!(names(&missing), ["postgresql", "postgresql-server"]);
    assert!(
        missing
            .iter()
            .all(|u| u.fixed == "16.6-1.module_el9.5.0+127+50ff03a9"),
        "{missing:?}"
    );
    for stream_build in [
        "16.6-1.module_el9.5.0+127+50ff03a9",
        "16.6-1.module_el9.5.0+128+1095dce2",
    ] {
        assert_eq!(
            assess(&alsa.packages, &nine, &at(stream_build)),
            Ok(Applicability::Installed),
            "{stream_build}"
        );
    }
}
