//! Installed packages and the OS release, as the package database and `/etc/os-release`
//! say (pure parsers; the backends run the commands).

/// A distribution release, as OSV spells its ecosystem (`Debian:12`, `Ubuntu:22.04:LTS`,
/// `AlmaLinux:9`, `Rocky Linux:9`) — what `Patch.spec.packages[].ecosystem` holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ecosystem(pub String);

/// Which version ordering a package database uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// dpkg (Debian, Ubuntu).
    Deb,
    /// RPM (AlmaLinux, Rocky, RHEL, Fedora).
    Rpm,
}

/// One installed binary package.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct InstalledPackage {
    /// The binary package's name.
    pub name: String,
    /// Its architecture (`amd64`, `all`, `x86_64`, `noarch`).
    pub arch: String,
    /// Its version (dpkg: `[epoch:]upstream[-revision]`; RPM: `[epoch:]version-release`).
    pub version: String,
    /// The source package it was built from and that source's version (dpkg's
    /// `source:Package` / `source:Version`; RPM's source name without `.src.rpm`, and
    /// the binary's own version).
    pub source: String,
    /// The source package's version.
    pub source_version: String,
}

/// Every installed package.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    /// The version ordering.
    pub flavour: Option<Flavour>,
    /// The packages, sorted by name and architecture.
    pub packages: Vec<InstalledPackage>,
}
