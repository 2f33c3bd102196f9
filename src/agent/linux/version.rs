//! The Debian (dpkg) and RPM version orderings, as `dpkg --compare-versions` and rpm's
//! `rpm.vercmp` order versions (pure; no package manager is run).
//!
//! Both are written here rather than taken from a crate: `debversion` compares like dpkg
//! but accepts versions dpkg rejects (`1.0-`, `a:1.0`, epochs past `i32::MAX`) and
//! rejects ones dpkg only warns about (`1.0_1`), and pulls in chrono, lazy-regex and
//! num-bigint; `rpm-version` splits `[epoch:]version-release` at the first `:` and the
//! first `-` (rpm: leading digits before `:`, the last `-`) and treats a missing release
//! like an empty one, which rpm does not. The `rpm` crate re-exports the latter with a
//! few dozen more dependencies, and `rpmvercmp` loads librpm.
//!
//! **dpkg** (deb-version(5), dpkg's `parseversion` and `verrevcmp`):
//! `[epoch:]upstream[-revision]`. Blanks around the version are ignored; blanks inside,
//! an empty or non-numeric or negative or too large epoch, nothing after the colon, an
//! empty upstream part or an empty revision are errors. An upstream part that does not
//! start with a digit, or characters outside the policy's set, are only warnings for
//! dpkg: such versions are compared like any other. Epochs compare as numbers; the
//! upstream and revision parts compare run by run: a run of non-digits character by
//! character (`~` before the end of the string, before letters, before anything else),
//! then a run of digits as a number.
//!
//! **RPM** (rpm's `parseEVR`, `rpmverCmp` and `rpmvercmp`): `[epoch:]version[-release]`,
//! the epoch being the leading digits before a `:` (an empty one is `0`), the release
//! what follows the last `-`. Epochs, versions and releases compare segment by segment:
//! runs of letters or digits, with everything else a separator; digits compare as
//! numbers and beat letters; `~` sorts before anything, even the end of the string; `^`
//! sorts after the end of the string but before anything else. A version with a release
//! is newer than the same version without one. Only an empty version is an error.

use std::cmp::Ordering;

use super::inventory::Flavour;

/// A version that the package manager would reject.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The version is empty (or only blanks).
    #[error("the version is empty")]
    Empty,
    /// The version has a NUL byte, which no package database can hold.
    #[error("version {version:?} contains a NUL byte")]
    Nul {
        /// The version as given.
        version: String,
    },
    /// dpkg: blanks inside the version.
    #[error("version `{version}` has embedded spaces")]
    EmbeddedSpace {
        /// The version as given.
        version: String,
    },
    /// dpkg: nothing before the epoch's colon.
    #[error("version `{version}`: the epoch before `:` is empty")]
    EpochEmpty {
        /// The version as given.
        version: String,
    },
    /// dpkg: the epoch is not a number.
    #[error("version `{version}`: the epoch before `:` is not a number")]
    EpochNotNumber {
        /// The version as given.
        version: String,
    },
    /// dpkg: the epoch is negative.
    #[error("version `{version}`: the epoch is negative")]
    EpochNegative {
        /// The version as given.
        version: String,
    },
    /// dpkg: the epoch is larger than 2147483647.
    #[error("version `{version}`: the epoch is too big")]
    EpochTooBig {
        /// The version as given.
        version: String,
    },
    /// dpkg: the version ends with the epoch's colon.
    #[error("version `{version}`: nothing after the epoch's colon")]
    NothingAfterColon {
        /// The version as given.
        version: String,
    },
    /// dpkg: the upstream part (before the revision's `-`) is empty.
    #[error("version `{version}`: the upstream version is empty")]
    UpstreamEmpty {
        /// The version as given.
        version: String,
    },
    /// dpkg: the version ends with `-`: the revision is empty.
    #[error("version `{version}`: the revision after `-` is empty")]
    RevisionEmpty {
        /// The version as given.
        version: String,
    },
}

/// Compares two versions in the package database's ordering.
pub fn compare(flavour: Flavour, a: &str, b: &str) -> Result<Ordering, VersionError> {
    match flavour {
        Flavour::Deb => compare_deb(a, b),
        Flavour::Rpm => compare_rpm(a, b),
    }
}

/// Whether `installed` is at least `fixed`: the fix is in.
pub fn at_least(flavour: Flavour, installed: &str, fixed: &str) -> Result<bool, VersionError> {
    compare(flavour, installed, fixed).map(Ordering::is_ge)
}

/// Checks that the package manager accepts `version`.
pub fn validate(flavour: Flavour, version: &str) -> Result<(), VersionError> {
    match flavour {
        Flavour::Deb => DebVersion::parse(version).map(drop),
        Flavour::Rpm => RpmVersion::parse(version).map(drop),
    }
}

/// A dpkg version, split as dpkg splits it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebVersion<'a> {
    /// The epoch (0 when absent).
    pub epoch: u32,
    /// The upstream version.
    pub upstream: &'a str,
    /// The Debian revision (empty when absent, which compares like `0`).
    pub revision: &'a str,
}

impl<'a> DebVersion<'a> {
    /// Splits a version the way dpkg's `parseversion` does, with its errors; its
    /// warnings (an upstream part not starting with a digit, odd characters) are not
    /// errors.
    pub fn parse(version: &'a str) -> Result<Self, VersionError> {
        let owned = || version.to_string();
        if version.contains('\0') {
            return Err(VersionError::Nul { version: owned() });
        }
        let blank = |c: char| c == ' ' || c == '\t';
        let text = version.trim_matches(blank);
        if text.is_empty() {
            return Err(VersionError::Empty);
        }
        if text.contains(blank) {
            return Err(VersionError::EmbeddedSpace { version: owned() });
        }
        let (epoch, rest) = match text.split_once(':') {
            Some((_, "")) => {
                deb_epoch(&text[..text.len() - 1], version)?;
                return Err(VersionError::NothingAfterColon { version: owned() });
            }
            Some((epoch, rest)) => (deb_epoch(epoch, version)?, rest),
            None => (0, text),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((_, "")) => return Err(VersionError::RevisionEmpty { version: owned() }),
            Some((upstream, revision)) => (upstream, revision),
            None => (rest, ""),
        };
        if upstream.is_empty() {
            return Err(VersionError::UpstreamEmpty { version: owned() });
        }
        Ok(Self {
            epoch,
            upstream,
            revision,
        })
    }
}

impl Ord for DebVersion<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream.as_bytes(), other.upstream.as_bytes()))
            .then_with(|| verrevcmp(self.revision.as_bytes(), other.revision.as_bytes()))
    }
}

impl PartialOrd for DebVersion<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// dpkg's epoch: what C's `strtol` reads (an optional sign, then digits) must end at the
/// colon, and be within 0..=i32::MAX.
fn deb_epoch(epoch: &str, version: &str) -> Result<u32, VersionError> {
    let owned = || version.to_string();
    let (negative, digits) = match epoch.as_bytes().first() {
        Some(b'-') => (true, &epoch[1..]),
        Some(b'+') => (false, &epoch[1..]),
        _ => (false, epoch),
    };
    let numeric = digits.bytes().take_while(u8::is_ascii_digit).count();
    if numeric == 0 {
        return Err(VersionError::EpochEmpty { version: owned() });
    }
    if numeric != digits.len() {
        return Err(VersionError::EpochNotNumber { version: owned() });
    }
    let value = digits.trim_start_matches('0');
    if negative && !value.is_empty() {
        return Err(VersionError::EpochNegative { version: owned() });
    }
    match value.parse::<u32>() {
        Ok(n) if n <= i32::MAX as u32 => Ok(n),
        Err(_) if value.is_empty() => Ok(0),
        _ => Err(VersionError::EpochTooBig { version: owned() }),
    }
}

/// dpkg's weight of a character in a non-digit run: `~` first, then the end of the
/// string (and digits), then letters, then everything else. Bytes are C `char`s, signed
/// or not as the platform's C compiler has them, as dpkg sees them.
fn deb_order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => c_char_value(c) + 256,
    }
}

/// A byte's value as a C `char` on this platform.
#[allow(clippy::unnecessary_cast)] // `c_char` is `i8` or `u8` depending on the target.
fn c_char_value(c: u8) -> i32 {
    (c as std::ffi::c_char) as i32
}

/// dpkg's `verrevcmp`: compares upstream versions or revisions.
fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (deb_order(a.get(i).copied()), deb_order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            first_diff = first_diff.then(a[i].cmp(&b[j]));
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// Compares two dpkg versions, as `dpkg --compare-versions` does.
pub fn compare_deb(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(DebVersion::parse(a)?.cmp(&DebVersion::parse(b)?))
}

/// An RPM version, split as rpm splits `[epoch:]version[-release]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RpmVersion<'a> {
    /// The epoch's digits, when the version has one (`Some("0")` for `:1.0`).
    pub epoch: Option<&'a str>,
    /// The version.
    pub version: &'a str,
    /// The release, when the version has one.
    pub release: Option<&'a str>,
}

impl<'a> RpmVersion<'a> {
    /// Splits a version the way rpm's `parseEVR` does: the epoch is the leading digits
    /// when a `:` follows them, the release what follows the last `-`.
    pub fn parse(evr: &'a str) -> Result<Self, VersionError> {
        if evr.is_empty() {
            return Err(VersionError::Empty);
        }
        if evr.contains('\0') {
            return Err(VersionError::Nul {
                version: evr.to_string(),
            });
        }
        let digits = evr.bytes().take_while(u8::is_ascii_digit).count();
        let hyphen = evr[digits..].rfind('-').map(|k| k + digits);
        let (epoch, start) = if evr.as_bytes().get(digits) == Some(&b':') {
            (
                Some(if digits == 0 { "0" } else { &evr[..digits] }),
                digits + 1,
            )
        } else {
            (None, 0)
        };
        let (version, release) = match hyphen {
            Some(k) => (&evr[start..k], Some(&evr[k + 1..])),
            None => (&evr[start..], None),
        };
        Ok(Self {
            epoch,
            version,
            release,
        })
    }
}

impl Ord for RpmVersion<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        let epoch = |v: &Self| v.epoch.unwrap_or("0");
        rpmvercmp(epoch(self), epoch(other))
            .then_with(|| rpmvercmp(self.version, other.version))
            .then_with(|| match (self.release, other.release) {
                (Some(a), Some(b)) => rpmvercmp(a, b),
                (a, b) => a.is_some().cmp(&b.is_some()),
            })
    }
}

impl PartialOrd for RpmVersion<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares two RPM versions (`[epoch:]version[-release]`), as rpm's `rpm.vercmp` does.
pub fn compare_rpm(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(RpmVersion::parse(a)?.cmp(&RpmVersion::parse(b)?))
}

/// rpm's `rpmvercmp`: compares one epoch, version or release with another.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let separator = |c: &u8| !c.is_ascii_alphanumeric() && *c != b'~' && *c != b'^';
    let (mut one, mut two) = (0, 0);
    while one < a.len() || two < b.len() {
        one += a[one..].iter().take_while(|c| separator(c)).count();
        two += b[two..].iter().take_while(|c| separator(c)).count();
        let (x, y) = (a.get(one).copied(), b.get(two).copied());
        if let Some(order) = rpm_tilde_or_caret(x, y) {
            match order {
                Ordering::Equal => {
                    one += 1;
                    two += 1;
                    continue;
                }
                decided => return decided,
            }
        }
        if x.is_none() || y.is_none() {
            break;
        }
        let numeric = a[one].is_ascii_digit();
        let class = |c: &&u8| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let end1 = one + a[one..].iter().take_while(class).count();
        let end2 = two + b[two..].iter().take_while(class).count();
        if end2 == two {
            // A number against letters: the number is newer.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let order = rpm_segment(&a[one..end1], &b[two..end2], numeric);
        if order != Ordering::Equal {
            return order;
        }
        (one, two) = (end1, end2);
    }
    (one < a.len()).cmp(&(two < b.len()))
}

/// rpmvercmp's `~` and `^` rules at the current position: `Some(Equal)` when both have
/// the same one (skip it), `Some(order)` when that decides, `None` when neither has one.
fn rpm_tilde_or_caret(x: Option<u8>, y: Option<u8>) -> Option<Ordering> {
    let (tilde, caret) = (Some(b'~'), Some(b'^'));
    if x == tilde || y == tilde {
        return Some(match (x == tilde, y == tilde) {
            (true, true) => Ordering::Equal,
            (false, _) => Ordering::Greater,
            (true, false) => Ordering::Less,
        });
    }
    if x == caret || y == caret {
        return Some(match (x, y) {
            (None, _) => Ordering::Less,
            (_, None) => Ordering::Greater,
            (x, y) if x == y => Ordering::Equal,
            (x, _) if x != caret => Ordering::Greater,
            _ => Ordering::Less,
        });
    }
    None
}

/// Compares two segments of the same kind: numbers by value (leading zeros dropped,
/// then the longer is larger), letters byte by byte.
fn rpm_segment(a: &[u8], b: &[u8], numeric: bool) -> Ordering {
    if numeric {
        let skip = |s: &[u8]| s.iter().take_while(|c| **c == b'0').count();
        let (a, b) = (&a[skip(a)..], &b[skip(b)..]);
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    } else {
        a.cmp(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};

    /// A table of version pairs and their expected order, as kept in
    /// `tests/fixtures/agent/versions/*.tsv`: `A<TAB>B<TAB>Less|Equal|Greater|Error` lines,
    /// `#` comments (tests/it/agent_versions.rs reads them too).
    fn parse_case_table(text: &str) -> Vec<(String, String, Option<Ordering>)> {
        text.lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                let [a, b, want] = fields[..] else {
                    panic!("not A<TAB>B<TAB>ORDER: {line:?}");
                };
                let want = match want {
                    "Less" => Some(Ordering::Less),
                    "Equal" => Some(Ordering::Equal),
                    "Greater" => Some(Ordering::Greater),
                    "Error" => None,
                    other => panic!("unknown order {other:?} in {line:?}"),
                };
                (a.to_string(), b.to_string(), want)
            })
            .collect()
    }

    const DEB_TABLE: &str = include_str!("../../../tests/fixtures/agent/versions/deb.tsv");
    const RPM_TABLE: &str = include_str!("../../../tests/fixtures/agent/versions/rpm.tsv");

    fn check_table(flavour: Flavour, table: &str) -> usize {
        let cases = parse_case_table(table);
        for (a, b, want) in &cases {
            let got = compare(flavour, a, b);
            match want {
                Some(want) => {
                    assert_eq!(got, Ok(*want), "{flavour:?}: {a:?} vs {b:?}");
                    assert_eq!(
                        compare(flavour, b, a),
                        Ok(want.reverse()),
                        "{flavour:?}: {b:?} vs {a:?}"
                    );
                }
                None => assert!(got.is_err(), "{flavour:?}: {a:?} vs {b:?} gave {got:?}"),
            }
        }
        cases.len()
    }

    #[test]
    fn the_dpkg_table_holds() {
        let n = check_table(Flavour::Deb, DEB_TABLE);
        assert!(n >= 150, "only {n} dpkg cases");
    }

    #[test]
    fn the_rpm_table_holds() {
        let n = check_table(Flavour::Rpm, RPM_TABLE);
        assert!(n >= 150, "only {n} rpm cases");
    }

    fn deb_err(version: &str) -> VersionError {
        DebVersion::parse(version).expect_err(version)
    }

    #[test]
    fn dpkg_rejects_what_dpkg_rejects_with_the_right_error() {
        let v = |s: &str| s.to_string();
        assert_eq!(deb_err(""), VersionError::Empty);
        assert_eq!(deb_err(" \t "), VersionError::Empty);
        assert_eq!(
            deb_err("1.0 1"),
            VersionError::EmbeddedSpace {
                version: v("1.0 1")
            }
        );
        assert_eq!(
            deb_err("1.0\t1"),
            VersionError::EmbeddedSpace {
                version: v("1.0\t1")
            }
        );
        assert_eq!(
            deb_err(":1.0"),
            VersionError::EpochEmpty { version: v(":1.0") }
        );
        assert_eq!(
            deb_err("a:1.0"),
            VersionError::EpochEmpty {
                version: v("a:1.0")
            }
        );
        assert_eq!(
            deb_err("+:1.0"),
            VersionError::EpochEmpty {
                version: v("+:1.0")
            }
        );
        assert_eq!(
            deb_err("1a:1.0"),
            VersionError::EpochNotNumber {
                version: v("1a:1.0")
            }
        );
        assert_eq!(
            deb_err("1.0-1:2"),
            VersionError::EpochNotNumber {
                version: v("1.0-1:2")
            }
        );
        assert_eq!(
            deb_err("-1:1.0"),
            VersionError::EpochNegative {
                version: v("-1:1.0")
            }
        );
        assert_eq!(
            deb_err("2147483648:1"),
            VersionError::EpochTooBig {
                version: v("2147483648:1")
            }
        );
        assert_eq!(
            deb_err("1:"),
            VersionError::NothingAfterColon { version: v("1:") }
        );
        assert_eq!(deb_err("x:"), VersionError::EpochEmpty { version: v("x:") });
        assert_eq!(
            deb_err("1.0-"),
            VersionError::RevisionEmpty { version: v("1.0-") }
        );
        assert_eq!(
            deb_err("1:-"),
            VersionError::RevisionEmpty { version: v("1:-") }
        );
        assert_eq!(
            deb_err("-1"),
            VersionError::UpstreamEmpty { version: v("-1") }
        );
        assert_eq!(
            deb_err("1:-1"),
            VersionError::UpstreamEmpty { version: v("1:-1") }
        );
        assert_eq!(
            deb_err("1\u{0}"),
            VersionError::Nul {
                version: v("1\u{0}")
            }
        );
    }

    #[test]
    fn dpkg_splits_like_dpkg() {
        let parsed = DebVersion::parse("  2:1.0-1:2-3+deb12u1\t").expect("valid");
        assert_eq!(
            parsed,
            DebVersion {
                epoch: 2,
                upstream: "1.0-1:2",
                revision: "3+deb12u1"
            }
        );
        // What dpkg only warns about is compared all the same.
        assert!(DebVersion::parse("a1.0_~%").is_ok());
        assert_eq!(DebVersion::parse("+1:1").expect("strtol reads +1").epoch, 1);
        assert_eq!(DebVersion::parse("-0:1").expect("strtol reads -0").epoch, 0);
        assert_eq!(
            DebVersion::parse("2147483647:1").expect("max").epoch,
            2147483647
        );
        assert_eq!(compare_deb("1.0  ", "1.0"), Ok(Equal));
        assert_eq!(compare_deb("\t1.0", "1.0"), Ok(Equal));
        // Only blanks are trimmed: a newline is a character (after the end of the string).
        assert_eq!(compare_deb("1.0\n", "1.0"), Ok(Greater));
    }

    #[test]
    fn rpm_splits_like_rpm() {
        let split = |s| RpmVersion::parse(s).expect("valid");
        let evr = |epoch, version, release| RpmVersion {
            epoch,
            version,
            release,
        };
        assert_eq!(split("1:2.3-4.el9"), evr(Some("1"), "2.3", Some("4.el9")));
        assert_eq!(split("2.3-4-5"), evr(None, "2.3-4", Some("5")));
        assert_eq!(split(":2.3"), evr(Some("0"), "2.3", None));
        assert_eq!(split("1a:2"), evr(None, "1a:2", None));
        assert_eq!(split("2.3-"), evr(None, "2.3", Some("")));
        assert_eq!(split("-1"), evr(None, "", Some("1")));
        assert_eq!(RpmVersion::parse(""), Err(VersionError::Empty));
        assert!(matches!(
            RpmVersion::parse("1\u{0}"),
            Err(VersionError::Nul { .. })
        ));
        assert_eq!(compare_rpm("", "1"), Err(VersionError::Empty));
    }

    #[test]
    fn rpmvercmp_segments() {
        assert_eq!(rpmvercmp("1.0", "1.0"), Equal);
        assert_eq!(rpmvercmp("el9_3", "el9.3"), Equal);
        assert_eq!(rpmvercmp("1.0~rc1", "1.0"), Less);
        assert_eq!(rpmvercmp("1.0^1", "1.0"), Greater);
        assert_eq!(rpmvercmp("1.0^1", "1.0.1"), Less);
        assert_eq!(rpmvercmp("a", "1"), Less);
        assert_eq!(rpmvercmp("", ""), Equal);
        assert_eq!(rpmvercmp("", "~"), Greater);
        assert_eq!(rpmvercmp("", "^"), Less);
    }

    #[test]
    fn at_least_and_validate() {
        assert_eq!(at_least(Flavour::Deb, "1.0-2", "1.0-1"), Ok(true));
        assert_eq!(at_least(Flavour::Deb, "1.0-1", "1.0-1"), Ok(true));
        assert_eq!(at_least(Flavour::Deb, "1.0~rc1-1", "1.0-1"), Ok(false));
        assert_eq!(at_least(Flavour::Rpm, "1.0-1.el9_3", "1.0-1.el9"), Ok(true));
        assert!(at_least(Flavour::Deb, "1:", "1.0").is_err());
        assert_eq!(validate(Flavour::Rpm, "1:"), Ok(()));
        assert!(validate(Flavour::Deb, "1:").is_err());
        assert_eq!(validate(Flavour::Deb, "1:2.3-4"), Ok(()));
    }

    #[test]
    fn dpkg_high_bytes_follow_the_c_char_of_the_platform() {
        // dpkg orders a byte that is neither a letter, a digit nor `~` by its value as a C
        // `char` plus 256: signed on x86 (below ASCII punctuation), unsigned on ARM.
        let order = compare_deb("1.0\u{e9}", "1.0.").expect("valid");
        let signed = std::ffi::c_char::MIN != 0;
        assert_eq!(order, if signed { Less } else { Greater });
    }
}
