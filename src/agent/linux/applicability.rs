//! Whether a catalog Patch applies to the device, and what an install must upgrade (pure).
//!
//! A Patch lists, per distribution release, the packages it fixes and their first fixed
//! versions (`Patch.spec.packages`, from the OSV importer). [`assess`] reads them against
//! the device's [`Inventory`]:
//!
//! - Only fixes of the device's ecosystem count ([`Ecosystem::covers`]: the same
//!   ecosystem, or Ubuntu Pro's updates of the device's LTS release).
//! - A [`PackageKind::Source`] fix (Debian, Ubuntu) names a source package: every installed
//!   binary package built from it is concerned (only those named in `binaries` when the
//!   advisory lists them), and its installed *source* version is what is compared. A
//!   [`PackageKind::Binary`] fix (AlmaLinux, Rocky) names binary packages: every installed
//!   architecture of that name is concerned, and its own version is compared.
//! - A package listed with several fixed versions (module streams: one build per stream)
//!   is fixed when its installed version is at least one of them, that is at least the
//!   smallest; that smallest is the upgrade's target.
//! - A package installed at several versions at once (RPM kernels, which are installed
//!   side by side) counts with its newest version.
//! - [`Applicability::NotApplicable`] when nothing listed is installed,
//!   [`Applicability::Installed`] when everything listed and installed is fixed (a fix
//!   installed outside ringmaster included), else [`Applicability::Missing`] with the
//!   packages to upgrade.
//!
//! [`choose_version`] and [`choose_upgrade`] then pick the version to install among those
//! a repository offers: the smallest one that fixes.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::api::{PackageFix, PackageKind};

use super::inventory::{Ecosystem, Flavour, InstalledPackage, Inventory};
use super::version::{self, VersionError};

/// What a Patch means for the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applicability {
    /// None of the packages it fixes (in the device's ecosystem) is installed.
    NotApplicable,
    /// Some installed packages are older than their fixed versions.
    Missing {
        /// What to upgrade, sorted by package and architecture.
        upgrades: Vec<Upgrade>,
    },
    /// Every listed package that is installed is at least at its fixed version.
    Installed,
}

/// One installed package that must be upgraded.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Upgrade {
    /// The package as apt or dnf take it: dpkg `name:arch` (plain `name` for `all`
    /// packages), so that a foreign-architecture package is never taken for the native
    /// one; RPM `name.arch` when the name is installed for more than one architecture
    /// (multilib), plain `name` otherwise.
    pub package: String,
    /// Its architecture.
    pub arch: String,
    /// Its installed version (the binary package's, in the package manager's syntax).
    pub installed: String,
    /// The first version that fixes it: a version of [`Upgrade::source`] when that is set,
    /// of the package itself otherwise.
    pub fixed: String,
    /// Debian and Ubuntu: the advisory names a source package, and `fixed` is one of its
    /// versions; a candidate fixes when the source version it was built from is at least
    /// `fixed` (its own version may differ: binNMUs, epochs, other version schemes).
    pub source: Option<FromSource>,
}

/// The source package a Debian or Ubuntu advisory names, as installed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FromSource {
    /// The source package.
    pub name: String,
    /// The source version the installed binary package was built from.
    pub installed: String,
}

/// A version a repository offers, with the version of the source package it was built
/// from (dpkg: `apt-cache show`'s `Source: name (version)`, the package's own version
/// when that field gives none; RPM: the version itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The binary package's version.
    pub version: String,
    /// Its source package's version.
    pub source_version: String,
}

/// Why a Patch could not be assessed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssessError {
    /// Neither the inventory nor the ecosystem says which version ordering to use.
    #[error("no version ordering is known for ecosystem `{ecosystem}`")]
    UnknownFlavour {
        /// The device's ecosystem.
        ecosystem: String,
    },
    /// A fixed version the package manager would reject.
    #[error("the advisory's fixed version `{fixed}` of {package}: {source}")]
    FixedVersion {
        /// The package the advisory names.
        package: String,
        /// The version.
        fixed: String,
        /// What is wrong with it.
        #[source]
        source: VersionError,
    },
    /// An installed version the package manager would reject.
    #[error("installed {package} {version}: {source}")]
    InstalledVersion {
        /// The installed package.
        package: String,
        /// Its version.
        version: String,
        /// What is wrong with it.
        #[source]
        source: VersionError,
    },
}

/// What the fixes of one package (by kind and name) ask for.
#[derive(Debug)]
struct Wanted {
    /// What the name names.
    kind: PackageKind,
    /// The smallest listed fixed version.
    fixed: String,
    /// The binary packages the advisory restricts a source fix to; `None` for all.
    binaries: Option<BTreeSet<String>>,
}

/// Whether the Patch with these `fixes` applies to a device of `ecosystem` with
/// `inventory`, and if it is missing, what to upgrade.
pub fn assess(
    fixes: &[PackageFix],
    ecosystem: &Ecosystem,
    inventory: &Inventory,
) -> Result<Applicability, AssessError> {
    let flavour = inventory
        .flavour
        .or_else(|| ecosystem.flavour())
        .ok_or_else(|| AssessError::UnknownFlavour {
            ecosystem: ecosystem.0.clone(),
        })?;
    let wanted = wanted(fixes, ecosystem, flavour)?;
    let mut concerned = false;
    let mut upgrades: BTreeMap<(String, String), Upgrade> = BTreeMap::new();
    for ((_, name), want) in &wanted {
        for (package, compared) in installed(inventory, name, want, flavour)? {
            concerned = true;
            if at_least(flavour, compared, &want.fixed, package)? {
                continue;
            }
            let upgrade = upgrade(flavour, inventory, package, want.kind, &want.fixed);
            tracing::debug!(package = %upgrade.package, installed = %upgrade.installed,
                fixed = %upgrade.fixed, "older than its fixed version");
            let key = (upgrade.package.clone(), upgrade.arch.clone());
            upgrades.entry(key).or_insert(upgrade);
        }
    }
    Ok(match (concerned, upgrades.is_empty()) {
        (false, _) => Applicability::NotApplicable,
        (true, true) => Applicability::Installed,
        (true, false) => Applicability::Missing {
            upgrades: upgrades.into_values().collect(),
        },
    })
}

/// The fixes of the device's ecosystem, by kind (source first) and name, with their smallest fixed
/// version and the binaries they are restricted to.
fn wanted(
    fixes: &[PackageFix],
    ecosystem: &Ecosystem,
    flavour: Flavour,
) -> Result<BTreeMap<(bool, String), Wanted>, AssessError> {
    let mut wanted: BTreeMap<(bool, String), Wanted> = BTreeMap::new();
    for fix in fixes.iter().filter(|f| ecosystem.covers(&f.ecosystem)) {
        version::validate(flavour, &fix.fixed).map_err(|source| AssessError::FixedVersion {
            package: fix.name.clone(),
            fixed: fix.fixed.clone(),
            source,
        })?;
        let binaries = (!fix.binaries.is_empty()).then(|| fix.binaries.iter().cloned().collect());
        let key = (fix.kind != PackageKind::Source, fix.name.clone());
        let Some(entry) = wanted.get_mut(&key) else {
            let (kind, fixed) = (fix.kind, fix.fixed.clone());
            wanted.insert(
                key,
                Wanted {
                    kind,
                    fixed,
                    binaries,
                },
            );
            continue;
        };
        if version::compare(flavour, &fix.fixed, &entry.fixed) == Ok(Ordering::Less) {
            entry.fixed = fix.fixed.clone();
        }
        entry.binaries = match (entry.binaries.take(), binaries) {
            (Some(mut all), Some(more)) => {
                all.extend(more);
                Some(all)
            }
            _ => None,
        };
    }
    Ok(wanted)
}

/// The installed packages a fix concerns, each (name and architecture) once at its
/// newest, with the version to compare: the source version for a source fix, the
/// package's own otherwise.
fn installed<'a>(
    inventory: &'a Inventory,
    name: &str,
    want: &Wanted,
    flavour: Flavour,
) -> Result<Vec<(&'a InstalledPackage, &'a str)>, AssessError> {
    let mut newest: BTreeMap<(&str, &str), (&InstalledPackage, &str)> = BTreeMap::new();
    for package in &inventory.packages {
        let compared = match want.kind {
            PackageKind::Source if package.source == name => package.source_version.as_str(),
            PackageKind::Binary if package.name == name => package.version.as_str(),
            _ => continue,
        };
        if want
            .binaries
            .as_ref()
            .is_some_and(|only| !only.contains(&package.name))
        {
            continue;
        }
        let key = (package.name.as_str(), package.arch.as_str());
        match newest.get(&key) {
            Some((_, seen)) if !at_least(flavour, compared, seen, package)? => {}
            _ => {
                newest.insert(key, (package, compared));
            }
        }
    }
    Ok(newest.into_values().collect())
}

/// `installed >= fixed`, with a bad version named.
fn at_least(
    flavour: Flavour,
    installed: &str,
    fixed: &str,
    package: &InstalledPackage,
) -> Result<bool, AssessError> {
    version::validate(flavour, installed).map_err(|source| AssessError::InstalledVersion {
        package: package.name.clone(),
        version: installed.to_string(),
        source,
    })?;
    version::at_least(flavour, installed, fixed).map_err(|source| AssessError::FixedVersion {
        package: package.name.clone(),
        fixed: fixed.to_string(),
        source,
    })
}

/// The upgrade of one installed package to `fixed`.
fn upgrade(
    flavour: Flavour,
    inventory: &Inventory,
    package: &InstalledPackage,
    kind: PackageKind,
    fixed: &str,
) -> Upgrade {
    let name = match flavour {
        Flavour::Deb if package.arch == "all" => package.name.clone(),
        Flavour::Deb => format!("{}:{}", package.name, package.arch),
        Flavour::Rpm if multilib(inventory, &package.name) => {
            format!("{}.{}", package.name, package.arch)
        }
        Flavour::Rpm => package.name.clone(),
    };
    let source = (kind == PackageKind::Source).then(|| FromSource {
        name: package.source.clone(),
        installed: package.source_version.clone(),
    });
    Upgrade {
        package: name,
        arch: package.arch.clone(),
        installed: package.version.clone(),
        fixed: fixed.to_string(),
        source,
    }
}

/// Whether `name` is installed for more than one architecture.
fn multilib(inventory: &Inventory, name: &str) -> bool {
    let mut arches = inventory
        .packages
        .iter()
        .filter(|p| p.name == name)
        .map(|p| p.arch.as_str());
    let first = arches.next();
    arches.any(|a| Some(a) != first)
}

/// The version to pin an install to: the smallest of the `available` versions that is at
/// least `fixed`. Versions the package manager would reject are passed over (and
/// logged); `None` when none fixes (or `fixed` itself is invalid).
pub fn choose_version(flavour: Flavour, available: &[String], fixed: &str) -> Option<String> {
    let candidates: Vec<Candidate> = available
        .iter()
        .map(|v| Candidate {
            version: v.clone(),
            source_version: v.clone(),
        })
        .collect();
    smallest_fixing(flavour, &candidates, fixed, |c| &c.version)
}

/// The version to pin `upgrade` to among what a repository offers: the smallest offered
/// version that fixes it — whose source version is at least `fixed` when the advisory
/// names a source package ([`Upgrade::source`]), whose own version is otherwise.
pub fn choose_upgrade(
    flavour: Flavour,
    upgrade: &Upgrade,
    offered: &[Candidate],
) -> Option<String> {
    match upgrade.source {
        Some(_) => smallest_fixing(flavour, offered, &upgrade.fixed, |c| &c.source_version),
        None => smallest_fixing(flavour, offered, &upgrade.fixed, |c| &c.version),
    }
}

/// The smallest candidate version whose `judged` version is at least `fixed`.
fn smallest_fixing(
    flavour: Flavour,
    candidates: &[Candidate],
    fixed: &str,
    judged: impl Fn(&Candidate) -> &String,
) -> Option<String> {
    if let Err(e) = version::validate(flavour, fixed) {
        tracing::warn!(fixed, error = %e, "the fixed version is invalid; no candidate chosen");
        return None;
    }
    let mut best: Option<&str> = None;
    for candidate in candidates {
        match version::at_least(flavour, judged(candidate), fixed)
            .and_then(|fixes| version::validate(flavour, &candidate.version).map(|()| fixes))
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(version = %candidate.version, error = %e, "offered version passed over");
                continue;
            }
        }
        let smaller = best
            .is_none_or(|b| version::compare(flavour, &candidate.version, b) == Ok(Ordering::Less));
        if smaller {
            best = Some(&candidate.version);
        }
    }
    best.map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(
        ecosystem: &str,
        name: &str,
        kind: PackageKind,
        fixed: &str,
        bins: &[&str],
    ) -> PackageFix {
        PackageFix {
            ecosystem: ecosystem.into(),
            name: name.into(),
            kind,
            fixed: fixed.into(),
            binaries: bins.iter().map(|b| b.to_string()).collect(),
        }
    }

    fn src(ecosystem: &str, name: &str, fixed: &str) -> PackageFix {
        fix(ecosystem, name, PackageKind::Source, fixed, &[])
    }

    fn bin(ecosystem: &str, name: &str, fixed: &str) -> PackageFix {
        fix(ecosystem, name, PackageKind::Binary, fixed, &[])
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

    fn eco(s: &str) -> Ecosystem {
        Ecosystem(s.into())
    }

    fn debian() -> Inventory {
        inventory(
            Flavour::Deb,
            vec![
                pkg(
                    "libc6",
                    "amd64",
                    "2.36-9+deb12u4",
                    "glibc",
                    "2.36-9+deb12u4",
                ),
                pkg("libc6", "i386", "2.36-9+deb12u4", "glibc", "2.36-9+deb12u4"),
                pkg(
                    "libc-bin",
                    "amd64",
                    "2.36-9+deb12u4",
                    "glibc",
                    "2.36-9+deb12u4",
                ),
                pkg(
                    "locales",
                    "all",
                    "2.36-9+deb12u4",
                    "glibc",
                    "2.36-9+deb12u4",
                ),
                pkg("bash", "amd64", "5.2.15-2+b8", "bash", "5.2.15-2"),
                pkg(
                    "bsdutils",
                    "amd64",
                    "1:2.38.1-5+deb12u3",
                    "util-linux",
                    "2.38.1-5+deb12u3",
                ),
                pkg(
                    "util-linux",
                    "amd64",
                    "2.38.1-5+deb12u3",
                    "util-linux",
                    "2.38.1-5+deb12u3",
                ),
            ],
        )
    }

    fn upgrade(
        package: &str,
        arch: &str,
        installed: &str,
        fixed: &str,
        source: Option<(&str, &str)>,
    ) -> Upgrade {
        Upgrade {
            package: package.into(),
            arch: arch.into(),
            installed: installed.into(),
            fixed: fixed.into(),
            source: source.map(|(name, installed)| FromSource {
                name: name.into(),
                installed: installed.into(),
            }),
        }
    }

    fn missing(result: Result<Applicability, AssessError>) -> Vec<Upgrade> {
        match result.expect("assessed") {
            Applicability::Missing { upgrades } => upgrades,
            other => panic!("not missing: {other:?}"),
        }
    }

    #[test]
    fn a_source_fix_concerns_every_binary_built_from_it() {
        let fixes = [
            src("Debian:12", "glibc", "2.36-9+deb12u7"),
            src("Debian:11", "glibc", "2.31-13+deb11u11"),
        ];
        let glibc = Some(("glibc", "2.36-9+deb12u4"));
        assert_eq!(
            missing(assess(&fixes, &eco("Debian:12"), &debian())),
            vec![
                upgrade(
                    "libc-bin:amd64",
                    "amd64",
                    "2.36-9+deb12u4",
                    "2.36-9+deb12u7",
                    glibc
                ),
                upgrade(
                    "libc6:amd64",
                    "amd64",
                    "2.36-9+deb12u4",
                    "2.36-9+deb12u7",
                    glibc
                ),
                upgrade(
                    "libc6:i386",
                    "i386",
                    "2.36-9+deb12u4",
                    "2.36-9+deb12u7",
                    glibc
                ),
                upgrade("locales", "all", "2.36-9+deb12u4", "2.36-9+deb12u7", glibc),
            ]
        );
    }

    #[test]
    fn only_the_fixes_of_the_device_ecosystem_count() {
        let fixes = [
            src("Debian:11", "glibc", "2.99-1"),
            src("Ubuntu:22.04:LTS", "bash", "9.9-1"),
        ];
        assert_eq!(
            assess(&fixes, &eco("Debian:12"), &debian()),
            Ok(Applicability::NotApplicable)
        );
        assert_eq!(
            assess(&[], &eco("Debian:12"), &debian()),
            Ok(Applicability::NotApplicable)
        );
        let other = [src("Debian:12", "openssl", "3.0.15-1~deb12u1")];
        assert_eq!(
            assess(&other, &eco("Debian:12"), &debian()),
            Ok(Applicability::NotApplicable)
        );
    }

    #[test]
    fn the_source_version_is_compared_not_the_binary_one() {
        // bash's binNMU (+b8) does not make it newer than a fixed source version…
        let bash = [src("Debian:12", "bash", "5.2.15-2+deb12u1")];
        assert_eq!(
            missing(assess(&bash, &eco("Debian:12"), &debian())),
            vec![upgrade(
                "bash:amd64",
                "amd64",
                "5.2.15-2+b8",
                "5.2.15-2+deb12u1",
                Some(("bash", "5.2.15-2"))
            )]
        );
        // …and bsdutils' epoch (1:) does not make it fixed.
        let util_linux = [src("Debian:12", "util-linux", "2.38.1-5+deb12u4")];
        let upgrades = missing(assess(&util_linux, &eco("Debian:12"), &debian()));
        let names: Vec<&str> = upgrades.iter().map(|u| u.package.as_str()).collect();
        assert_eq!(names, ["bsdutils:amd64", "util-linux:amd64"]);
        // A fix installed by other means is installed.
        let done = [src("Debian:12", "bash", "5.2.15-2")];
        assert_eq!(
            assess(&done, &eco("Debian:12"), &debian()),
            Ok(Applicability::Installed)
        );
    }

    #[test]
    fn listed_binaries_restrict_a_source_fix() {
        let fixes = [fix(
            "Debian:12",
            "glibc",
            PackageKind::Source,
            "2.36-9+deb12u7",
            &["libc6", "libc6-dev"],
        )];
        let upgrades = missing(assess(&fixes, &eco("Debian:12"), &debian()));
        let names: Vec<&str> = upgrades.iter().map(|u| u.package.as_str()).collect();
        assert_eq!(names, ["libc6:amd64", "libc6:i386"]);
        // Two entries for the same source: the union of their lists, the smallest fix.
        let two = [
            fix(
                "Debian:12",
                "glibc",
                PackageKind::Source,
                "2.36-9+deb12u9",
                &["libc6"],
            ),
            fix(
                "Debian:12",
                "glibc",
                PackageKind::Source,
                "2.36-9+deb12u7",
                &["locales"],
            ),
        ];
        let upgrades = missing(assess(&two, &eco("Debian:12"), &debian()));
        let got: Vec<(&str, &str)> = upgrades
            .iter()
            .map(|u| (u.package.as_str(), u.fixed.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("libc6:amd64", "2.36-9+deb12u7"),
                ("libc6:i386", "2.36-9+deb12u7"),
                ("locales", "2.36-9+deb12u7")
            ]
        );
    }

    #[test]
    fn a_partly_upgraded_source_is_missing_the_rest() {
        let mut inv = debian();
        for p in &mut inv.packages {
            if p.name == "libc6" {
                p.version = "2.36-9+deb12u7".into();
                p.source_version = "2.36-9+deb12u7".into();
            }
        }
        let fixes = [src("Debian:12", "glibc", "2.36-9+deb12u7")];
        let upgrades = missing(assess(&fixes, &eco("Debian:12"), &inv));
        let names: Vec<&str> = upgrades.iter().map(|u| u.package.as_str()).collect();
        assert_eq!(names, ["libc-bin:amd64", "locales"]);
    }

    fn alma() -> Inventory {
        inventory(
            Flavour::Rpm,
            vec![
                rpm("glibc", "x86_64", "2.34-60.el9"),
                rpm("glibc", "i686", "2.34-60.el9"),
                rpm("glibc-common", "x86_64", "2.34-60.el9"),
                rpm("kernel-core", "x86_64", "5.14.0-427.22.1.el9_4"),
                rpm("kernel-core", "x86_64", "5.14.0-427.26.1.el9_4"),
                rpm("postgresql", "x86_64", "16.4-1.module+el9.4.0+20000+abc"),
            ],
        )
    }

    #[test]
    fn a_binary_fix_concerns_every_architecture_of_that_name() {
        let fixes = [
            bin("AlmaLinux:9", "glibc", "2.34-60.el9_2.7"),
            bin("AlmaLinux:9", "glibc-common", "2.34-60.el9_2.7"),
            bin("AlmaLinux:9", "glibc-devel", "2.34-60.el9_2.7"),
            bin("AlmaLinux:8", "glibc", "2.28-225.el8_8.6"),
        ];
        let f = "2.34-60.el9_2.7";
        assert_eq!(
            missing(assess(&fixes, &eco("AlmaLinux:9"), &alma())),
            vec![
                upgrade("glibc-common", "x86_64", "2.34-60.el9", f, None),
                upgrade("glibc.i686", "i686", "2.34-60.el9", f, None),
                upgrade("glibc.x86_64", "x86_64", "2.34-60.el9", f, None),
            ]
        );
    }

    #[test]
    fn module_streams_list_several_fixed_versions_and_the_smallest_counts() {
        let fixes = [
            bin(
                "AlmaLinux:9",
                "postgresql",
                "16.6-1.module_el9.5.0+128+1095dce2",
            ),
            bin(
                "AlmaLinux:9",
                "postgresql",
                "16.6-1.module_el9.5.0+127+50ff03a9",
            ),
        ];
        assert_eq!(
            missing(assess(&fixes, &eco("AlmaLinux:9"), &alma())),
            vec![upgrade(
                "postgresql",
                "x86_64",
                "16.4-1.module+el9.4.0+20000+abc",
                "16.6-1.module_el9.5.0+127+50ff03a9",
                None
            )]
        );
        let mut inv = alma();
        inv.packages.retain(|p| p.name != "postgresql");
        inv.packages.push(rpm(
            "postgresql",
            "x86_64",
            "16.6-1.module_el9.5.0+127+50ff03a9",
        ));
        assert_eq!(
            assess(&fixes, &eco("AlmaLinux:9"), &inv),
            Ok(Applicability::Installed)
        );
    }

    #[test]
    fn side_by_side_kernels_count_with_the_newest() {
        let fixed = [bin("AlmaLinux:9", "kernel-core", "5.14.0-427.26.1.el9_4")];
        assert_eq!(
            assess(&fixed, &eco("AlmaLinux:9"), &alma()),
            Ok(Applicability::Installed)
        );
        let newer = [bin("AlmaLinux:9", "kernel-core", "5.14.0-503.11.1.el9_5")];
        assert_eq!(
            missing(assess(&newer, &eco("AlmaLinux:9"), &alma())),
            vec![upgrade(
                "kernel-core",
                "x86_64",
                "5.14.0-427.26.1.el9_4",
                "5.14.0-503.11.1.el9_5",
                None
            )]
        );
    }

    #[test]
    fn an_ubuntu_lts_device_takes_ubuntu_pro_fixes_of_its_release() {
        let inv = inventory(
            Flavour::Deb,
            vec![pkg(
                "squid",
                "amd64",
                "3.5.27-1ubuntu1.14",
                "squid3",
                "3.5.27-1ubuntu1.14",
            )],
        );
        let fixes = [
            fix(
                "Ubuntu:Pro:18.04:LTS",
                "squid3",
                PackageKind::Source,
                "3.5.27-1ubuntu1.14+esm1",
                &["squid"],
            ),
            fix(
                "Ubuntu:Pro:16.04:LTS",
                "squid3",
                PackageKind::Source,
                "3.5.12-1ubuntu7.16+esm2",
                &["squid"],
            ),
        ];
        let upgrades = missing(assess(&fixes, &eco("Ubuntu:18.04:LTS"), &inv));
        assert_eq!(upgrades[0].fixed, "3.5.27-1ubuntu1.14+esm1");
        assert_eq!(
            assess(&fixes, &eco("Ubuntu:20.04:LTS"), &inv),
            Ok(Applicability::NotApplicable)
        );
    }

    #[test]
    fn bad_versions_and_unknown_orderings_are_typed_errors() {
        let bad_fix = [src("Debian:12", "bash", "1:")];
        assert!(matches!(
            assess(&bad_fix, &eco("Debian:12"), &debian()),
            Err(AssessError::FixedVersion { package, .. }) if package == "bash"
        ));
        let mut inv = debian();
        inv.packages
            .push(pkg("broken", "amd64", "1.0", "broken", "1.0-"));
        let fixes = [src("Debian:12", "broken", "1.0-1")];
        assert!(matches!(
            assess(&fixes, &eco("Debian:12"), &inv),
            Err(AssessError::InstalledVersion { package, .. }) if package == "broken"
        ));
        let unknown = Inventory::default();
        assert_eq!(
            assess(&fixes, &eco("Alpine:v3.19"), &unknown),
            Err(AssessError::UnknownFlavour {
                ecosystem: "Alpine:v3.19".into()
            })
        );
        // Without a flavour in the inventory, the ecosystem's is used.
        assert_eq!(
            assess(&fixes, &eco("Debian:12"), &unknown),
            Ok(Applicability::NotApplicable)
        );
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_pinned_version_is_the_smallest_that_fixes() {
        let offered = strings(&[
            "2.36-9+deb12u9",
            "2.36-9+deb12u4",
            "2.36-9+deb12u7",
            "2.36-9+deb12u10",
        ]);
        assert_eq!(
            choose_version(Flavour::Deb, &offered, "2.36-9+deb12u7").as_deref(),
            Some("2.36-9+deb12u7")
        );
        assert_eq!(
            choose_version(Flavour::Deb, &offered, "2.36-9+deb12u8").as_deref(),
            Some("2.36-9+deb12u9")
        );
        assert_eq!(
            choose_version(Flavour::Deb, &offered, "2.36-9+deb12u11"),
            None
        );
        assert_eq!(choose_version(Flavour::Deb, &offered, "1:"), None);
        assert_eq!(choose_version(Flavour::Deb, &[], "1.0"), None);
        let with_junk = strings(&["1:", "2.0-1", "1.5-1"]);
        assert_eq!(
            choose_version(Flavour::Deb, &with_junk, "1.0").as_deref(),
            Some("1.5-1")
        );
        let rpms = strings(&[
            "2.34-83.el9_3.12",
            "2.34-60.el9_2.7",
            "2.34-60.el9",
            "2.34-60.el9_2.10",
        ]);
        assert_eq!(
            choose_version(Flavour::Rpm, &rpms, "2.34-60.el9_2.7").as_deref(),
            Some("2.34-60.el9_2.7")
        );
        assert_eq!(
            choose_version(Flavour::Rpm, &rpms, "2.34-60.el9_2.8").as_deref(),
            Some("2.34-60.el9_2.10")
        );
    }

    #[test]
    fn a_source_fix_is_pinned_by_the_candidates_source_version() {
        let fixes = [src("Debian:12", "util-linux", "2.38.1-5+deb12u4")];
        let upgrades = missing(assess(&fixes, &eco("Debian:12"), &debian()));
        let bsdutils = &upgrades[0];
        let offered = [
            Candidate {
                version: "1:2.38.1-5+deb12u3".into(),
                source_version: "2.38.1-5+deb12u3".into(),
            },
            Candidate {
                version: "1:2.38.1-5+deb12u5".into(),
                source_version: "2.38.1-5+deb12u5".into(),
            },
            Candidate {
                version: "1:2.38.1-5+deb12u4".into(),
                source_version: "2.38.1-5+deb12u4".into(),
            },
        ];
        // By its own version every bsdutils (epoch 1) would look fixed; by source, only two.
        assert_eq!(
            choose_upgrade(Flavour::Deb, bsdutils, &offered).as_deref(),
            Some("1:2.38.1-5+deb12u4")
        );
        let versions: Vec<String> = offered.iter().map(|c| c.version.clone()).collect();
        assert_eq!(
            choose_version(Flavour::Deb, &versions, &bsdutils.fixed).as_deref(),
            Some("1:2.38.1-5+deb12u3"),
            "why choose_upgrade exists"
        );
        let rpm_upgrade = upgrade("glibc", "x86_64", "2.34-60.el9", "2.34-60.el9_2.7", None);
        let rpm_offered = [Candidate {
            version: "2.34-60.el9_2.7".into(),
            source_version: "ignored".into(),
        }];
        assert_eq!(
            choose_upgrade(Flavour::Rpm, &rpm_upgrade, &rpm_offered).as_deref(),
            Some("2.34-60.el9_2.7")
        );
    }
}
