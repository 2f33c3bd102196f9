//! Installed packages and the OS release, as the package database and `/etc/os-release`
//! say (pure parsers; the backends run the commands).
//!
//! - [`parse_os_release`] reads os-release(5); [`OsRelease::ecosystem`] names the OSV
//!   ecosystem of the release: `Debian:12`, `Ubuntu:22.04:LTS` (LTS releases carry the
//!   suffix, as Ubuntu's OSV records spell them; interim ones do not: `Ubuntu:24.10`),
//!   `AlmaLinux:9` and `Rocky Linux:9` (the major release of `VERSION_ID` 9.3).
//! - [`parse_dpkg_query`] reads `dpkg-query -W -f` output in [`DPKG_QUERY_FORMAT`];
//!   [`parse_rpm_query`] reads `rpm -qa --qf` output in [`RPM_QUERY_FORMAT`]. Errors
//!   name the line.

use std::collections::BTreeMap;

use super::version::{self, VersionError};

/// A distribution release, as OSV spells its ecosystem (`Debian:12`, `Ubuntu:22.04:LTS`,
/// `AlmaLinux:9`, `Rocky Linux:9`) — what `Patch.spec.packages[].ecosystem` holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ecosystem(pub String);

impl Ecosystem {
    /// The version ordering of the ecosystem's distribution, when it is one the agent
    /// knows (`Debian`, `Ubuntu` → dpkg; `AlmaLinux`, `Rocky Linux` → RPM).
    pub fn flavour(&self) -> Option<Flavour> {
        let (distribution, _) = self.0.split_once(':')?;
        match distribution {
            "Debian" | "Ubuntu" => Some(Flavour::Deb),
            "AlmaLinux" | "Rocky Linux" => Some(Flavour::Rpm),
            _ => None,
        }
    }

    /// Whether a fix an advisory lists under `fix_ecosystem` is for a device of this
    /// ecosystem: the same ecosystem, or for an Ubuntu LTS release, Ubuntu Pro's updates
    /// of that release (`Ubuntu:Pro:18.04:LTS` for `Ubuntu:18.04:LTS`: the packages are
    /// the release's own, fixed in the ESM archives). Pro's FIPS and real-time variants
    /// (`Ubuntu:Pro:FIPS:…`) are other package sets and do not count.
    pub fn covers(&self, fix_ecosystem: &str) -> bool {
        if fix_ecosystem == self.0 {
            return true;
        }
        match (
            self.0.strip_prefix("Ubuntu:"),
            fix_ecosystem.strip_prefix("Ubuntu:Pro:"),
        ) {
            (Some(release), Some(pro)) => release.ends_with(":LTS") && release == pro,
            _ => false,
        }
    }
}

impl std::fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

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

/// What `/etc/os-release` says (os-release(5)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// `ID`: the distribution (`debian`, `ubuntu`, `almalinux`, `rocky`); `linux` when
    /// absent, as os-release(5) says.
    pub id: String,
    /// `ID_LIKE`: the distributions it derives from.
    pub id_like: Vec<String>,
    /// `VERSION_ID`: the release (`12`, `22.04`, `9.3`).
    pub version_id: Option<String>,
    /// `VERSION`: the release in words (`22.04.4 LTS (Jammy Jellyfish)`).
    pub version: Option<String>,
    /// `VERSION_CODENAME` (`bookworm`, `jammy`).
    pub version_codename: Option<String>,
    /// `PRETTY_NAME`, for people.
    pub pretty_name: Option<String>,
    /// Every variable of the file, unquoted.
    pub fields: BTreeMap<String, String>,
}

/// An os-release file that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OsReleaseError {
    /// A line that is neither a comment nor `KEY=value`.
    #[error("os-release line {line}: not KEY=value: `{text}`")]
    NotAssignment {
        /// The line's number, from 1.
        line: usize,
        /// The line.
        text: String,
    },
    /// A quoted value without its closing quote.
    #[error("os-release line {line}: the quote is not closed: `{text}`")]
    UnterminatedQuote {
        /// The line's number, from 1.
        line: usize,
        /// The line.
        text: String,
    },
    /// Text after a quoted value's closing quote.
    #[error("os-release line {line}: text after the closing quote: `{text}`")]
    TrailingText {
        /// The line's number, from 1.
        line: usize,
        /// The line.
        text: String,
    },
}

/// A release that has no OSV ecosystem the agent can match advisories against.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EcosystemError {
    /// A distribution whose advisories the catalog does not import.
    #[error(
        "no OSV ecosystem for distribution `{id}` (supported: debian, ubuntu, almalinux, rocky)"
    )]
    Unsupported {
        /// os-release's `ID`.
        id: String,
    },
    /// No `VERSION_ID` (Debian testing and unstable have none).
    #[error("os-release of `{id}` has no VERSION_ID, so no release to match advisories to")]
    NoVersion {
        /// os-release's `ID`.
        id: String,
    },
    /// A `VERSION_ID` that does not start with a release number.
    #[error("os-release of `{id}` has VERSION_ID `{version_id}`, which is not a release number")]
    BadVersion {
        /// os-release's `ID`.
        id: String,
        /// The value.
        version_id: String,
    },
}

/// Reads an os-release file.
pub fn parse_os_release(text: &str) -> Result<OsRelease, OsReleaseError> {
    let mut fields = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let bad = || OsReleaseError::NotAssignment {
            line,
            text: raw.to_string(),
        };
        let (key, value) = trimmed.split_once('=').ok_or_else(bad)?;
        let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
        if key.is_empty() || !key.chars().all(name_char) {
            return Err(bad());
        }
        fields.insert(key.to_string(), unquote(value, line, raw)?);
    }
    let get = |key: &str| fields.get(key).filter(|v| !v.is_empty()).cloned();
    Ok(OsRelease {
        id: get("ID").unwrap_or_else(|| "linux".to_string()),
        id_like: get("ID_LIKE")
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        version_id: get("VERSION_ID"),
        version: get("VERSION"),
        version_codename: get("VERSION_CODENAME"),
        pretty_name: get("PRETTY_NAME"),
        fields,
    })
}

/// A value as a shell would read it: in double quotes (with `\"`, `\\`, `\$` and `` \` ``
/// escapes), in single quotes, or bare.
fn unquote(value: &str, line: usize, raw: &str) -> Result<String, OsReleaseError> {
    let Some(quote) = value.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        return Ok(value.to_string());
    };
    let mut out = String::new();
    let mut chars = value[1..].chars();
    while let Some(c) = chars.next() {
        match c {
            c if c == quote => {
                if chars.as_str().trim().is_empty() {
                    return Ok(out);
                }
                return Err(OsReleaseError::TrailingText {
                    line,
                    text: raw.to_string(),
                });
            }
            '\\' if quote == '"' => match chars.next() {
                Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(OsReleaseError::UnterminatedQuote {
        line,
        text: raw.to_string(),
    })
}

impl OsRelease {
    /// The OSV ecosystem advisories for this release are listed under.
    pub fn ecosystem(&self) -> Result<Ecosystem, EcosystemError> {
        let (name, major_only) = match self.id.as_str() {
            "debian" => ("Debian", true),
            "ubuntu" => ("Ubuntu", false),
            "almalinux" => ("AlmaLinux", true),
            "rocky" => ("Rocky Linux", true),
            _ => {
                return Err(EcosystemError::Unsupported {
                    id: self.id.clone(),
                });
            }
        };
        let version_id = self
            .version_id
            .as_deref()
            .ok_or_else(|| EcosystemError::NoVersion {
                id: self.id.clone(),
            })?;
        let bad = || EcosystemError::BadVersion {
            id: self.id.clone(),
            version_id: version_id.to_string(),
        };
        let mut parts = version_id.split('.');
        let major = parts.next().filter(|p| is_number(p)).ok_or_else(bad)?;
        if major_only {
            return Ok(Ecosystem(format!("{name}:{major}")));
        }
        let minor = parts.next().filter(|p| is_number(p)).ok_or_else(bad)?;
        let release = format!("{major}.{minor}");
        if self.ubuntu_lts(major, minor) {
            Ok(Ecosystem(format!("Ubuntu:{release}:LTS")))
        } else {
            Ok(Ecosystem(format!("Ubuntu:{release}")))
        }
    }

    /// Whether an Ubuntu release is a long-term support one: `VERSION` says `LTS`, or,
    /// without `VERSION`, it is an April release of an even year (every LTS since 8.04).
    fn ubuntu_lts(&self, major: &str, minor: &str) -> bool {
        match &self.version {
            Some(words) => words.split_whitespace().any(|w| w == "LTS"),
            None => {
                let even_year = major.parse::<u32>().is_ok_and(|y| y % 2 == 0);
                even_year && minor == "04"
            }
        }
    }

    /// The version ordering of the release's package database, from `ID` or else
    /// `ID_LIKE` (`debian`, `ubuntu` → dpkg; `rhel`, `fedora`, `centos`, … → RPM).
    pub fn flavour(&self) -> Option<Flavour> {
        std::iter::once(&self.id)
            .chain(&self.id_like)
            .find_map(|id| match id.as_str() {
                "debian" | "ubuntu" => Some(Flavour::Deb),
                "almalinux" | "rocky" | "rhel" | "centos" | "fedora" | "ol" => Some(Flavour::Rpm),
                _ => None,
            })
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The `dpkg-query -W -f` format [`parse_dpkg_query`] reads: status, name, architecture,
/// version, source package and source version, tab-separated.
pub const DPKG_QUERY_FORMAT: &str = "${db:Status-Abbrev}\t${Package}\t${Architecture}\t${Version}\t${source:Package}\t${source:Version}\n";

/// The `rpm -qa --qf` format [`parse_rpm_query`] reads: name, epoch (`(none)` when
/// unset), version, release, architecture and source RPM, tab-separated.
pub const RPM_QUERY_FORMAT: &str =
    "%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\n";

/// A package database listing that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// A line without the format's fields.
    #[error("line {line}: expected {expected} tab-separated fields, found {found}: `{text}`")]
    Fields {
        /// The line's number, from 1.
        line: usize,
        /// How many the format has.
        expected: usize,
        /// How many the line has.
        found: usize,
        /// The line.
        text: String,
    },
    /// A field that may not be empty is.
    #[error("line {line}: {field} is empty: `{text}`")]
    Empty {
        /// The line's number, from 1.
        line: usize,
        /// The field.
        field: &'static str,
        /// The line.
        text: String,
    },
    /// dpkg's status is not its three-letter abbreviation.
    #[error("line {line}: `{status}` is not a dpkg status abbreviation: `{text}`")]
    Status {
        /// The line's number, from 1.
        line: usize,
        /// The status field.
        status: String,
        /// The line.
        text: String,
    },
    /// An RPM epoch that is not a number.
    #[error("line {line}: epoch `{epoch}` is not a number: `{text}`")]
    Epoch {
        /// The line's number, from 1.
        line: usize,
        /// The epoch field.
        epoch: String,
        /// The line.
        text: String,
    },
    /// A source RPM name that is not `name-version-release.src.rpm`.
    #[error("line {line}: source rpm `{source_rpm}` is not name-version-release.src.rpm")]
    SourceRpm {
        /// The line's number, from 1.
        line: usize,
        /// The field.
        source_rpm: String,
    },
    /// A version the package manager would reject.
    #[error("line {line}: package {package}: {source}")]
    Version {
        /// The line's number, from 1.
        line: usize,
        /// The package.
        package: String,
        /// What is wrong with the version.
        #[source]
        source: VersionError,
    },
}

/// The non-empty lines of a listing with their numbers, split at tabs into `n` fields.
fn records(
    output: &str,
    n: usize,
) -> impl Iterator<Item = Result<(usize, &str, Vec<&str>), InventoryError>> {
    output
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(move |(i, text)| {
            let fields: Vec<&str> = text.split('\t').collect();
            if fields.len() == n {
                Ok((i + 1, text, fields))
            } else {
                Err(InventoryError::Fields {
                    line: i + 1,
                    expected: n,
                    found: fields.len(),
                    text: text.to_string(),
                })
            }
        })
}

fn non_empty<'a>(
    value: &'a str,
    field: &'static str,
    line: usize,
    text: &str,
) -> Result<&'a str, InventoryError> {
    if value.is_empty() {
        return Err(InventoryError::Empty {
            line,
            field,
            text: text.to_string(),
        });
    }
    Ok(value)
}

fn checked(
    flavour: Flavour,
    version: &str,
    package: &str,
    line: usize,
) -> Result<(), InventoryError> {
    version::validate(flavour, version).map_err(|source| InventoryError::Version {
        line,
        package: package.to_string(),
        source,
    })
}

/// Reads `dpkg-query -W -f` output in [`DPKG_QUERY_FORMAT`]. Only installed packages are
/// kept: dpkg status `i` (installed) and `t`/`W` (installed, configured, waiting for
/// triggers); removed ones with their configuration files left (`rc`), half-installed or
/// unpacked ones are left out. A package without a `Source` field is its own source.
pub fn parse_dpkg_query(output: &str) -> Result<Inventory, InventoryError> {
    let mut packages = Vec::new();
    for record in records(output, 6) {
        let (line, text, f) = record?;
        let status = f[0].trim_end();
        let state = status.as_bytes();
        if !(2..=3).contains(&state.len()) || !b"uihrp".contains(&state[0]) {
            return Err(InventoryError::Status {
                line,
                status: f[0].to_string(),
                text: text.to_string(),
            });
        }
        if !matches!(state[1], b'i' | b't' | b'W') {
            continue;
        }
        let name = non_empty(f[1], "Package", line, text)?;
        let version = non_empty(f[3], "Version", line, text)?;
        checked(Flavour::Deb, version, name, line)?;
        let source_version = if f[5].is_empty() { version } else { f[5] };
        checked(Flavour::Deb, source_version, name, line)?;
        packages.push(InstalledPackage {
            name: name.to_string(),
            arch: non_empty(f[2], "Architecture", line, text)?.to_string(),
            version: version.to_string(),
            source: if f[4].is_empty() { name } else { f[4] }.to_string(),
            source_version: source_version.to_string(),
        });
    }
    packages.sort();
    Ok(Inventory {
        flavour: Some(Flavour::Deb),
        packages,
    })
}

/// Reads `rpm -qa --qf` output in [`RPM_QUERY_FORMAT`]. The version is
/// `[epoch:]version-release`, with the epoch only when the package sets one. The
/// `gpg-pubkey` pseudo-packages (imported signing keys) are left out. The source package
/// is the source RPM's name; its version is the binary's own.
pub fn parse_rpm_query(output: &str) -> Result<Inventory, InventoryError> {
    let mut packages = Vec::new();
    for record in records(output, 6) {
        let (line, text, f) = record?;
        let name = non_empty(f[0], "NAME", line, text)?;
        if name == "gpg-pubkey" {
            continue;
        }
        let epoch = match f[1] {
            "(none)" | "" => None,
            e if is_number(e) => Some(e),
            e => {
                return Err(InventoryError::Epoch {
                    line,
                    epoch: e.to_string(),
                    text: text.to_string(),
                });
            }
        };
        let ver = non_empty(f[2], "VERSION", line, text)?;
        let release = non_empty(f[3], "RELEASE", line, text)?;
        let version = match epoch {
            Some(e) => format!("{e}:{ver}-{release}"),
            None => format!("{ver}-{release}"),
        };
        checked(Flavour::Rpm, &version, name, line)?;
        packages.push(InstalledPackage {
            name: name.to_string(),
            arch: non_empty(f[4], "ARCH", line, text)?.to_string(),
            source: source_rpm_name(f[5], name, line)?,
            source_version: version.clone(),
            version,
        });
    }
    packages.sort();
    Ok(Inventory {
        flavour: Some(Flavour::Rpm),
        packages,
    })
}

/// `glibc-2.34-60.el9.src.rpm` → `glibc`; a package without one (`(none)`) is its own.
fn source_rpm_name(field: &str, name: &str, line: usize) -> Result<String, InventoryError> {
    if field == "(none)" || field.is_empty() {
        return Ok(name.to_string());
    }
    let bad = || InventoryError::SourceRpm {
        line,
        source_rpm: field.to_string(),
    };
    let stem = field
        .strip_suffix(".src.rpm")
        .or_else(|| field.strip_suffix(".nosrc.rpm"))
        .ok_or_else(bad)?;
    let mut parts = stem.rsplitn(3, '-');
    let (_release, _version) = (parts.next(), parts.next().ok_or_else(bad)?);
    match parts.next() {
        Some(source) if !source.is_empty() => Ok(source.to_string()),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_12: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"#;

    const UBUNTU_22_04: &str = r#"PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=jammy
"#;

    const UBUNTU_24_10: &str = r#"PRETTY_NAME="Ubuntu 24.10"
NAME="Ubuntu"
VERSION_ID="24.10"
VERSION="24.10 (Oracular Oriole)"
ID=ubuntu
ID_LIKE=debian
"#;

    const ALMA_9_3: &str = r#"NAME="AlmaLinux"
VERSION="9.3 (Shamrock Pampas Cat)"
ID="almalinux"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="AlmaLinux 9.3 (Shamrock Pampas Cat)"
ANSI_COLOR="0;34"
"#;

    const ROCKY_9_3: &str = r#"NAME="Rocky Linux"
VERSION="9.3 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
"#;

    fn ecosystem(text: &str) -> Result<Ecosystem, EcosystemError> {
        parse_os_release(text).expect("parses").ecosystem()
    }

    #[test]
    fn os_release_names_the_osv_ecosystem() {
        let e = |s: &str| Ok(Ecosystem(s.to_string()));
        assert_eq!(ecosystem(DEBIAN_12), e("Debian:12"));
        assert_eq!(ecosystem(UBUNTU_22_04), e("Ubuntu:22.04:LTS"));
        assert_eq!(ecosystem(UBUNTU_24_10), e("Ubuntu:24.10"));
        assert_eq!(ecosystem(ALMA_9_3), e("AlmaLinux:9"));
        assert_eq!(ecosystem(ROCKY_9_3), e("Rocky Linux:9"));
        // Without VERSION, an April release of an even year is an LTS one.
        assert_eq!(
            ecosystem("ID=ubuntu\nVERSION_ID=24.04\n"),
            e("Ubuntu:24.04:LTS")
        );
        assert_eq!(
            ecosystem("ID=ubuntu\nVERSION_ID=23.04\n"),
            e("Ubuntu:23.04")
        );
    }

    #[test]
    fn releases_without_an_ecosystem_are_typed_errors() {
        assert_eq!(
            ecosystem("ID=debian\nPRETTY_NAME=\"Debian GNU/Linux trixie/sid\"\n"),
            Err(EcosystemError::NoVersion {
                id: "debian".into()
            })
        );
        assert_eq!(
            ecosystem("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\nVERSION_ID=21.3\n"),
            Err(EcosystemError::Unsupported {
                id: "linuxmint".into()
            })
        );
        assert_eq!(
            ecosystem("ID=almalinux\nVERSION_ID=nine\n"),
            Err(EcosystemError::BadVersion {
                id: "almalinux".into(),
                version_id: "nine".into()
            })
        );
        assert_eq!(
            ecosystem("ID=ubuntu\nVERSION_ID=22\n"),
            Err(EcosystemError::BadVersion {
                id: "ubuntu".into(),
                version_id: "22".into()
            })
        );
        assert_eq!(
            ecosystem(""),
            Err(EcosystemError::Unsupported { id: "linux".into() })
        );
    }

    #[test]
    fn os_release_values_are_unquoted_like_a_shell_would() {
        let os = parse_os_release(
            "# comment\n\nA=\"say \\\"hi\\\" \\$HOME \\\\ \\n\"\nB='single \"x\"'\nC=bare\nD=\"trailing\"  \nE=\n",
        )
        .expect("parses");
        assert_eq!(os.fields["A"], r#"say "hi" $HOME \ \n"#);
        assert_eq!(os.fields["B"], r#"single "x""#);
        assert_eq!(os.fields["C"], "bare");
        assert_eq!(os.fields["D"], "trailing");
        assert_eq!(os.fields["E"], "");
        let alma = parse_os_release(ALMA_9_3).expect("parses");
        assert_eq!(alma.id_like, ["rhel", "centos", "fedora"]);
        assert_eq!(alma.version_id.as_deref(), Some("9.3"));
        assert_eq!(alma.flavour(), Some(Flavour::Rpm));
        let mint = parse_os_release("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n").expect("ok");
        assert_eq!(mint.flavour(), Some(Flavour::Deb));
    }

    #[test]
    fn broken_os_release_lines_are_named() {
        assert_eq!(
            parse_os_release("ID=debian\nthis is not an assignment\n"),
            Err(OsReleaseError::NotAssignment {
                line: 2,
                text: "this is not an assignment".into()
            })
        );
        assert_eq!(
            parse_os_release("ID=debian\nBAD KEY=1\n"),
            Err(OsReleaseError::NotAssignment {
                line: 2,
                text: "BAD KEY=1".into()
            })
        );
        assert_eq!(
            parse_os_release("\nNAME=\"Debian\n"),
            Err(OsReleaseError::UnterminatedQuote {
                line: 2,
                text: "NAME=\"Debian".into()
            })
        );
        assert_eq!(
            parse_os_release("NAME=\"Debian\"GNU\n"),
            Err(OsReleaseError::TrailingText {
                line: 1,
                text: "NAME=\"Debian\"GNU".into()
            })
        );
    }

    #[test]
    fn ecosystems_know_their_flavour_and_what_they_cover() {
        let e = |s: &str| Ecosystem(s.to_string());
        assert_eq!(e("Debian:12").flavour(), Some(Flavour::Deb));
        assert_eq!(e("Ubuntu:Pro:18.04:LTS").flavour(), Some(Flavour::Deb));
        assert_eq!(e("Rocky Linux:9").flavour(), Some(Flavour::Rpm));
        assert_eq!(e("AlmaLinux:8").flavour(), Some(Flavour::Rpm));
        assert_eq!(e("PyPI").flavour(), None);
        assert!(e("Debian:12").covers("Debian:12"));
        assert!(!e("Debian:12").covers("Debian:11"));
        assert!(!e("AlmaLinux:9").covers("AlmaLinux:8"));
        assert!(e("Ubuntu:18.04:LTS").covers("Ubuntu:Pro:18.04:LTS"));
        assert!(!e("Ubuntu:18.04:LTS").covers("Ubuntu:Pro:16.04:LTS"));
        assert!(!e("Ubuntu:20.04:LTS").covers("Ubuntu:Pro:FIPS:20.04:LTS"));
        assert!(!e("Ubuntu:24.10").covers("Ubuntu:Pro:24.10"));
        assert!(!e("Ubuntu:22.04:LTS").covers("Ubuntu:22.04"));
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

    #[test]
    fn dpkg_listing_keeps_installed_packages_with_their_sources() {
        let out = "ii \tlibc6\tamd64\t2.36-9+deb12u4\tglibc\t2.36-9+deb12u4\n\
                   ii \tlibc6\ti386\t2.36-9+deb12u4\tglibc\t2.36-9+deb12u4\n\
                   ii \tbsdutils\tamd64\t1:2.38.1-5+deb12u3\tutil-linux\t2.38.1-5+deb12u3\n\
                   hi \tbash\tamd64\t5.2.15-2+b8\tbash\t5.2.15-2\n\
                   it \ttzdata\tall\t2024a-0+deb12u1\ttzdata\t2024a-0+deb12u1\n\
                   rc \told-thing\tamd64\t1.0-1\told-thing\t1.0-1\n\
                   un \tnever\t\t\t\t\n\
                   iU \thalf\tamd64\t1.0-1\thalf\t1.0-1\n\
                   iF \thalfconf\tamd64\t1.0-1\thalfconf\t1.0-1\n\
                   ii \tnosource\tamd64\t3.0-1\t\t\n\
                   \n";
        let inv = parse_dpkg_query(out).expect("parses");
        assert_eq!(inv.flavour, Some(Flavour::Deb));
        assert_eq!(
            inv.packages,
            vec![
                pkg("bash", "amd64", "5.2.15-2+b8", "bash", "5.2.15-2"),
                pkg(
                    "bsdutils",
                    "amd64",
                    "1:2.38.1-5+deb12u3",
                    "util-linux",
                    "2.38.1-5+deb12u3"
                ),
                pkg(
                    "libc6",
                    "amd64",
                    "2.36-9+deb12u4",
                    "glibc",
                    "2.36-9+deb12u4"
                ),
                pkg("libc6", "i386", "2.36-9+deb12u4", "glibc", "2.36-9+deb12u4"),
                pkg("nosource", "amd64", "3.0-1", "nosource", "3.0-1"),
                pkg(
                    "tzdata",
                    "all",
                    "2024a-0+deb12u1",
                    "tzdata",
                    "2024a-0+deb12u1"
                ),
            ]
        );
    }

    #[test]
    fn broken_dpkg_lines_are_named() {
        let ok = "ii \tbash\tamd64\t5.2.15-2\tbash\t5.2.15-2\n";
        let err = |bad: &str| parse_dpkg_query(&format!("{ok}{bad}\n")).expect_err(bad);
        assert!(matches!(
            err("ii \tbash\tamd64\t5.2.15-2"),
            InventoryError::Fields {
                line: 2,
                expected: 6,
                found: 4,
                ..
            }
        ));
        assert!(matches!(
            err("xx \tbash\tamd64\t5.2\tbash\t5.2"),
            InventoryError::Status { line: 2, .. }
        ));
        assert!(matches!(
            err("ii \t\tamd64\t5.2\tbash\t5.2"),
            InventoryError::Empty {
                line: 2,
                field: "Package",
                ..
            }
        ));
        assert!(matches!(
            err("ii \tbash\tamd64\t\tbash\t5.2"),
            InventoryError::Empty {
                line: 2,
                field: "Version",
                ..
            }
        ));
        let InventoryError::Version {
            line,
            package,
            source,
        } = err("ii \tbash\tamd64\t1:\tbash\t5.2")
        else {
            panic!("not a version error");
        };
        assert_eq!((line, package.as_str()), (2, "bash"));
        assert!(matches!(source, VersionError::NothingAfterColon { .. }));
    }

    #[test]
    fn rpm_listing_has_epochs_only_when_set_and_no_signing_keys() {
        let out = "glibc\t(none)\t2.34\t60.el9_2.7\tx86_64\tglibc-2.34-60.el9_2.7.src.rpm\n\
                   glibc\t(none)\t2.34\t60.el9_2.7\ti686\tglibc-2.34-60.el9_2.7.src.rpm\n\
                   java-21-openjdk-headless\t1\t21.0.5.0.10\t3.el9.alma.1\tx86_64\tjava-21-openjdk-21.0.5.0.10-3.el9.alma.1.src.rpm\n\
                   gpg-pubkey\t(none)\tb86b3716\t61e69f29\t(none)\t(none)\n\
                   kernel-core\t(none)\t5.14.0\t427.22.1.el9_4\tx86_64\tkernel-5.14.0-427.22.1.el9_4.src.rpm\n\
                   kernel-core\t(none)\t5.14.0\t427.26.1.el9_4\tx86_64\tkernel-5.14.0-427.26.1.el9_4.src.rpm\n\
                   tzdata\t0\t2024a\t1.el9\tnoarch\ttzdata-2024a-1.el9.src.rpm\n";
        let inv = parse_rpm_query(out).expect("parses");
        assert_eq!(inv.flavour, Some(Flavour::Rpm));
        let v = "1:21.0.5.0.10-3.el9.alma.1";
        assert_eq!(
            inv.packages,
            vec![
                pkg(
                    "glibc",
                    "i686",
                    "2.34-60.el9_2.7",
                    "glibc",
                    "2.34-60.el9_2.7"
                ),
                pkg(
                    "glibc",
                    "x86_64",
                    "2.34-60.el9_2.7",
                    "glibc",
                    "2.34-60.el9_2.7"
                ),
                pkg(
                    "java-21-openjdk-headless",
                    "x86_64",
                    v,
                    "java-21-openjdk",
                    v
                ),
                pkg(
                    "kernel-core",
                    "x86_64",
                    "5.14.0-427.22.1.el9_4",
                    "kernel",
                    "5.14.0-427.22.1.el9_4"
                ),
                pkg(
                    "kernel-core",
                    "x86_64",
                    "5.14.0-427.26.1.el9_4",
                    "kernel",
                    "5.14.0-427.26.1.el9_4"
                ),
                pkg(
                    "tzdata",
                    "noarch",
                    "0:2024a-1.el9",
                    "tzdata",
                    "0:2024a-1.el9"
                ),
            ]
        );
    }

    #[test]
    fn broken_rpm_lines_are_named() {
        let ok = "bash\t(none)\t5.1.8\t6.el9\tx86_64\tbash-5.1.8-6.el9.src.rpm\n";
        let err = |bad: &str| parse_rpm_query(&format!("{ok}{bad}\n")).expect_err(bad);
        assert!(matches!(
            err("bash\t(none)\t5.1.8"),
            InventoryError::Fields {
                line: 2,
                found: 3,
                ..
            }
        ));
        assert!(matches!(
            err("bash\tone\t5.1.8\t6.el9\tx86_64\tbash-5.1.8-6.el9.src.rpm"),
            InventoryError::Epoch { line: 2, .. }
        ));
        assert!(matches!(
            err("bash\t(none)\t\t6.el9\tx86_64\tbash-5.1.8-6.el9.src.rpm"),
            InventoryError::Empty {
                line: 2,
                field: "VERSION",
                ..
            }
        ));
        assert_eq!(
            err("bash\t(none)\t5.1.8\t6.el9\tx86_64\tbash.src.rpm"),
            InventoryError::SourceRpm {
                line: 2,
                source_rpm: "bash.src.rpm".into()
            }
        );
        assert!(matches!(
            err("bash\t(none)\t5.1.8\t6.el9\tx86_64\tbash-5.1.8-6.el9.rpm"),
            InventoryError::SourceRpm { line: 2, .. }
        ));
        let no_source = parse_rpm_query("x\t(none)\t1\t1\tnoarch\t(none)\n").expect("parses");
        assert_eq!(no_source.packages[0].source, "x");
    }
}
