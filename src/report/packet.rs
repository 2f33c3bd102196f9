//! The packet's integrity layer: a `SHA256SUMS` manifest over every file, the
//! `inputs.json` statement of what produced it, an optional ed25519 signature of the
//! manifest (`SHA256SUMS.sig`), and the checks that find any changed, missing or added
//! byte.
//!
//! The core is pure: [`Packet::seal`] turns files and [`Inputs`] into a [`Sealed`] packet
//! (the same files, inputs and key always give the same bytes), and [`verify`] judges a
//! map of files. [`write_dir`] and [`verify_dir`] are the thin I/O around them.
//!
//! What each check proves: the manifest alone proves the files are the ones it lists
//! (integrity), but anyone who can change the files can rewrite it. The signature proves
//! the holder of the private key wrote the manifest; the packet digest ([`packet_digest`],
//! the sha256 of `SHA256SUMS`) matched against the one a `PatchReport` records proves it
//! is the packet the operator produced.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::inputs::{Inputs, hex};

/// The manifest's file name.
pub const SUMS: &str = "SHA256SUMS";
/// The signature's file name: the raw 64-byte ed25519 signature of `SHA256SUMS`.
pub const SIG: &str = "SHA256SUMS.sig";
/// The statement of inputs' file name.
pub const INPUTS: &str = "inputs.json";

/// The files a renderer produced, by relative path (`/` between directories), before
/// they are sealed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Packet {
    files: BTreeMap<String, Vec<u8>>,
}

/// A sealed packet: the renderers' files plus `inputs.json`, `SHA256SUMS` and, when
/// signed, `SHA256SUMS.sig`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    files: BTreeMap<String, Vec<u8>>,
}

/// Why files cannot make a packet.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PacketError {
    /// The path is not a plain relative path inside the packet.
    #[error("{path:?} cannot be a packet file: {why}")]
    BadPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The path is one the integrity layer writes itself.
    #[error("{path} is written by the integrity layer, not by a renderer")]
    Reserved {
        /// The path as given.
        path: String,
    },
    /// A path is both a file and the directory of another file.
    #[error("{path} is both a file and a directory")]
    FileAndDirectory {
        /// The path as given.
        path: String,
    },
}

impl Packet {
    /// A packet of `files` (relative path → bytes). Paths use `/`, have no empty, `.` or
    /// `..` components, no control characters or backslashes (which `sha256sum` would
    /// escape), and are not `inputs.json`, `SHA256SUMS` or `SHA256SUMS.sig`.
    pub fn new(files: BTreeMap<String, Vec<u8>>) -> Result<Packet, PacketError> {
        for path in files.keys() {
            if let Some(problem) = path_problem(path) {
                let why = match problem {
                    PathProblem::Escapes => "it leads outside the packet directory",
                    PathProblem::Malformed(why) => why,
                };
                return Err(PacketError::BadPath {
                    path: path.clone(),
                    why,
                });
            }
            if [SUMS, SIG, INPUTS].contains(&path.as_str()) {
                return Err(PacketError::Reserved { path: path.clone() });
            }
            let as_dir = format!("{path}/");
            if files
                .range(as_dir.clone()..)
                .next()
                .is_some_and(|(k, _)| k.starts_with(&as_dir))
            {
                return Err(PacketError::FileAndDirectory { path: path.clone() });
            }
        }
        Ok(Packet { files })
    }

    /// The renderers' files.
    pub fn files(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.files
    }

    /// Adds `inputs.json`, then `SHA256SUMS` over every file, then, with a key,
    /// `SHA256SUMS.sig`. Deterministic: ed25519 signatures are, and nothing reads a clock.
    pub fn seal(self, inputs: &Inputs, key: Option<&SigningKey>) -> Sealed {
        let mut files = self.files;
        files.insert(INPUTS.to_string(), inputs.to_json());
        let sums = manifest(&files);
        if let Some(key) = key {
            let signature: Signature = key.sign(&sums);
            files.insert(SIG.to_string(), signature.to_bytes().to_vec());
        }
        files.insert(SUMS.to_string(), sums);
        Sealed { files }
    }
}

impl Sealed {
    /// Every file of the packet, the integrity layer's included.
    pub fn files(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.files
    }

    /// The bytes of `SHA256SUMS`.
    pub fn sums(&self) -> &[u8] {
        self.files.get(SUMS).map_or(&[], Vec::as_slice)
    }

    /// The bytes of `SHA256SUMS.sig`, when the packet is signed.
    pub fn signature(&self) -> Option<&[u8]> {
        self.files.get(SIG).map(Vec::as_slice)
    }

    /// The packet digest: [`packet_digest`] of `SHA256SUMS`.
    pub fn digest(&self) -> String {
        packet_digest(self.sums())
    }

    /// The files, by value.
    pub fn into_files(self) -> BTreeMap<String, Vec<u8>> {
        self.files
    }
}

/// The manifest of `files`, as GNU `sha256sum` writes it: `<64 lowercase hex>  <path>\n`
/// per file, in path byte order. `SHA256SUMS` and `SHA256SUMS.sig` are never listed.
pub fn manifest(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, bytes) in files {
        if path == SUMS || path == SIG {
            continue;
        }
        out.extend_from_slice(hex(&Sha256::digest(bytes)).as_bytes());
        out.extend_from_slice(b"  ");
        out.extend_from_slice(path.as_bytes());
        out.push(b'\n');
    }
    out
}

/// The packet's digest: the sha256 of the `SHA256SUMS` bytes, lowercase hex. This is what
/// a `PatchReport` records, and what `verify --digest` compares.
pub fn packet_digest(sums: &[u8]) -> String {
    hex(&Sha256::digest(sums))
}

/// What is wrong with a relative path, if anything.
#[derive(Debug, PartialEq, Eq)]
enum PathProblem {
    /// Absolute, or with a `..` component.
    Escapes,
    /// Not in the one spelling a packet uses.
    Malformed(&'static str),
}

/// Checks that `path` is a plain relative path inside the packet, spelt one way only.
fn path_problem(path: &str) -> Option<PathProblem> {
    if path.is_empty() {
        return Some(PathProblem::Malformed("empty path"));
    }
    if path.starts_with('/') || path.split('/').any(|c| c == "..") {
        return Some(PathProblem::Escapes);
    }
    if path.chars().any(char::is_control) {
        return Some(PathProblem::Malformed("control character in the path"));
    }
    if path.contains('\\') {
        return Some(PathProblem::Malformed("backslash in the path"));
    }
    match path.split('/').find(|c| c.is_empty() || *c == ".") {
        Some("") => Some(PathProblem::Malformed("empty path component")),
        Some(_) => Some(PathProblem::Malformed("`.` path component")),
        None => None,
    }
}

/// Why a packet does not verify, or could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A file's bytes differ from those the manifest lists.
    #[error("changed: {path} (its sha256 is not the one SHA256SUMS lists)")]
    Changed {
        /// The file, relative to the packet.
        path: String,
    },
    /// A file the manifest lists (or the packet requires) is not there.
    #[error("missing: {path} (not in the directory)")]
    Missing {
        /// The file, relative to the packet.
        path: String,
    },
    /// A file is there that the manifest does not list.
    #[error("added: {path} (in the directory, not listed in SHA256SUMS)")]
    Added {
        /// The file, relative to the packet.
        path: String,
    },
    /// A manifest line is not `<64 lowercase hex>  <path>`.
    #[error("malformed: SHA256SUMS line {line}: {why}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
    /// A manifest path is absolute or goes up out of the packet.
    #[error("escapes: SHA256SUMS lists {path:?}, which is outside the packet directory")]
    Escapes {
        /// The path as listed.
        path: String,
    },
    /// The signature is not the given key's signature of the manifest.
    #[error("bad signature: SHA256SUMS.sig is not the given key's signature of SHA256SUMS")]
    BadSignature,
    /// A key was given, but the packet has no signature.
    #[error("no signature: a key was given but the packet has no SHA256SUMS.sig")]
    NoSignature,
    /// The manifest's digest is not the expected one.
    #[error("digest mismatch: SHA256SUMS has digest {found}, expected {expected}")]
    DigestMismatch {
        /// The digest asked for.
        expected: String,
        /// The digest of the manifest found.
        found: String,
    },
    /// A file or directory cannot be read.
    #[error("unreadable: {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The public key cannot be used.
    #[error("unreadable key: {path}: {why}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

impl VerifyError {
    /// True for input that could not be read (exit 2), false for a packet that does not
    /// verify (exit 1).
    pub fn is_unreadable(&self) -> bool {
        matches!(self, VerifyError::Io { .. } | VerifyError::Key { .. })
    }
}

impl From<super::keys::KeyError> for VerifyError {
    fn from(e: super::keys::KeyError) -> Self {
        let path = e.path().map(Path::to_path_buf).unwrap_or_default();
        let why = match e {
            super::keys::KeyError::Io { source, .. } => source.to_string(),
            super::keys::KeyError::Parse { why, .. } => why,
            other => other.to_string(),
        };
        VerifyError::Key { path, why }
    }
}

/// What a packet that verifies was checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// How many files SHA256SUMS lists (all matched).
    pub files: usize,
    /// The packet digest ([`packet_digest`] of SHA256SUMS).
    pub digest: String,
    /// What became of the signature.
    pub signature: SignatureCheck,
    /// True when the digest was compared with an expected one (and matched).
    pub digest_checked: bool,
    /// The packet's `inputs.json`, when it reads as [`Inputs`].
    pub inputs: Option<Inputs>,
}

/// What became of a packet's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Checked with the given key, and good.
    Good,
    /// `SHA256SUMS.sig` is there, but no key was given to check it.
    NotChecked,
    /// There is no `SHA256SUMS.sig` (and no key was given).
    Absent,
}

/// One parsed manifest line.
struct Listed<'a> {
    sha256: &'a str,
    path: &'a str,
}

/// Judges a packet given as its files (relative path → bytes): the manifest must be well
/// formed and list exactly the files there (besides itself and its signature), each with
/// its sha256, and `inputs.json` among them; with `key`, `SHA256SUMS.sig` must be its
/// signature of the manifest; with `digest` (hex, optionally `sha256:`), the manifest
/// must have that digest. Every problem found is returned, not only the first.
pub fn verify(
    files: &BTreeMap<String, Vec<u8>>,
    key: Option<&VerifyingKey>,
    digest: Option<&str>,
) -> Result<Verified, Vec<VerifyError>> {
    let Some(sums) = files.get(SUMS) else {
        return Err(vec![VerifyError::Missing { path: SUMS.into() }]);
    };
    let mut errors = Vec::new();
    let found = packet_digest(sums);
    if let Some(expected) = digest
        && normalize_digest(expected) != found
    {
        errors.push(VerifyError::DigestMismatch {
            expected: expected.trim().to_string(),
            found: found.clone(),
        });
    }
    let signature = check_signature(sums, files.get(SIG), key, &mut errors);
    let listed = parse_manifest(sums, &mut errors);
    compare(&listed, files, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Verified {
        files: listed.len(),
        digest: found,
        signature,
        digest_checked: digest.is_some(),
        inputs: files
            .get(INPUTS)
            .and_then(|b| serde_json::from_slice(b).ok()),
    })
}

/// `HEX` or `sha256:HEX`, trimmed and lowercased.
fn normalize_digest(d: &str) -> String {
    let d = d.trim();
    d.strip_prefix("sha256:").unwrap_or(d).to_ascii_lowercase()
}

/// Checks the signature against `key`, if one is given; a bad or missing one is added to
/// `errors` (the check returned is only used when there are none).
fn check_signature(
    sums: &[u8],
    sig: Option<&Vec<u8>>,
    key: Option<&VerifyingKey>,
    errors: &mut Vec<VerifyError>,
) -> SignatureCheck {
    let Some(key) = key else {
        return match sig {
            Some(_) => SignatureCheck::NotChecked,
            None => SignatureCheck::Absent,
        };
    };
    let Some(sig) = sig else {
        errors.push(VerifyError::NoSignature);
        return SignatureCheck::Absent;
    };
    let good = Signature::from_slice(sig).is_ok_and(|s| key.verify_strict(sums, &s).is_ok());
    if !good {
        errors.push(VerifyError::BadSignature);
    }
    SignatureCheck::Good
}

/// The manifest's lines that are well formed and stay inside the packet; a problem with
/// any line is added to `errors`.
fn parse_manifest<'a>(sums: &'a [u8], errors: &mut Vec<VerifyError>) -> Vec<Listed<'a>> {
    let Some(body) = sums.strip_suffix(b"\n") else {
        let why = if sums.is_empty() {
            "the manifest is empty"
        } else {
            "no newline at the end"
        };
        errors.push(VerifyError::Malformed {
            line: sums.split(|&b| b == b'\n').count(),
            why: why.into(),
        });
        return Vec::new();
    };
    let mut listed: Vec<Listed<'a>> = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let malformed = |why: &str| VerifyError::Malformed {
            line: i + 1,
            why: why.to_string(),
        };
        match parse_line(line) {
            Err(why) => errors.push(malformed(why)),
            Ok(l) if !seen.insert(l.path) => errors.push(malformed("the path is listed twice")),
            Ok(l) => match path_problem(l.path) {
                Some(PathProblem::Escapes) => errors.push(VerifyError::Escapes {
                    path: l.path.to_string(),
                }),
                Some(PathProblem::Malformed(why)) => errors.push(malformed(why)),
                None if l.path == SUMS || l.path == SIG => errors.push(malformed(
                    "the manifest cannot list itself or its signature",
                )),
                None => listed.push(l),
            },
        }
    }
    listed
}

/// `<64 lowercase hex>  <path>`, the one form the manifest is written in.
fn parse_line(line: &[u8]) -> Result<Listed<'_>, &'static str> {
    let line = std::str::from_utf8(line).map_err(|_| "not UTF-8")?;
    let (sha256, path) = line
        .split_at_checked(64)
        .ok_or("too short for a sha256 and a path")?;
    if !sha256
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("does not start with 64 lowercase hex digits");
    }
    let path = path
        .strip_prefix("  ")
        .ok_or("the sha256 is not followed by two spaces")?;
    if path.is_empty() {
        return Err("no path");
    }
    Ok(Listed { sha256, path })
}

/// Compares the listed files with those present: changed, missing and added files.
fn compare(
    listed: &[Listed<'_>],
    files: &BTreeMap<String, Vec<u8>>,
    errors: &mut Vec<VerifyError>,
) {
    for l in listed {
        match files.get(l.path) {
            None => errors.push(VerifyError::Missing {
                path: l.path.to_string(),
            }),
            Some(bytes) if hex(&Sha256::digest(bytes)) != l.sha256 => {
                errors.push(VerifyError::Changed {
                    path: l.path.to_string(),
                })
            }
            Some(_) => {}
        }
    }
    let names: BTreeSet<&str> = listed.iter().map(|l| l.path).collect();
    if !names.contains(INPUTS) && !files.contains_key(INPUTS) {
        errors.push(VerifyError::Missing {
            path: INPUTS.into(),
        });
    }
    for path in files.keys() {
        if path != SUMS && path != SIG && !names.contains(path.as_str()) {
            errors.push(VerifyError::Added { path: path.clone() });
        }
    }
}

/// Reads a packet directory and [`verify`]s it. A file whose name is not UTF-8 cannot
/// be listed, so it is reported as added; anything but files and directories (a
/// symbolic link, a socket) makes the directory unreadable as a packet.
pub fn verify_dir(
    dir: &Path,
    key: Option<&VerifyingKey>,
    digest: Option<&str>,
) -> Result<Verified, Vec<VerifyError>> {
    let tree = read_tree(dir).map_err(|e| vec![e])?;
    let mut errors: Vec<VerifyError> = tree
        .odd_names
        .into_iter()
        .map(|(path, _)| VerifyError::Added { path })
        .collect();
    match verify(&tree.files, key, digest) {
        Ok(v) if errors.is_empty() => Ok(v),
        Ok(_) => Err(errors),
        Err(mut more) => {
            errors.append(&mut more);
            Err(errors)
        }
    }
}

/// Reads a packet directory's files, recursively, as [`verify`] takes them (relative
/// path, `/` between directories → bytes). Where [`verify_dir`] reports a file whose name
/// is not UTF-8 as added, this refuses the directory: such a file cannot be named in a
/// map of files, so the error is [`VerifyError::Io`] naming it. Symbolic links and
/// special files are refused too.
pub fn read_dir_files(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, VerifyError> {
    let tree = read_tree(dir)?;
    match tree.odd_names.into_iter().next() {
        Some((_, path)) => Err(VerifyError::Io {
            path,
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the file name is not UTF-8, so no packet can list it",
            ),
        }),
        None => Ok(tree.files),
    }
}

/// A directory's files, read recursively.
struct Tree {
    /// Relative path (`/`-separated) → bytes.
    files: BTreeMap<String, Vec<u8>>,
    /// Files (and directories) whose names are not UTF-8: the relative path, lossily
    /// decoded, and the full path.
    odd_names: Vec<(String, PathBuf)>,
}

/// Reads every file under `dir`; symbolic links and special files are an error.
fn read_tree(dir: &Path) -> Result<Tree, VerifyError> {
    let mut tree = Tree {
        files: BTreeMap::new(),
        odd_names: Vec::new(),
    };
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, prefix)) = pending.pop() {
        let io = |source| VerifyError::Io {
            path: path.clone(),
            source,
        };
        for entry in std::fs::read_dir(&path).map_err(io)? {
            let entry = entry.map_err(io)?;
            let full = entry.path();
            let kind = entry.file_type().map_err(|source| VerifyError::Io {
                path: full.clone(),
                source,
            })?;
            let name = match entry.file_name().into_string() {
                Ok(name) => format!("{prefix}{name}"),
                Err(raw) => {
                    let lossy = format!("{prefix}{}", raw.to_string_lossy());
                    tree.odd_names.push((lossy, full));
                    continue;
                }
            };
            if kind.is_dir() {
                pending.push((full, format!("{name}/")));
            } else if kind.is_file() {
                let bytes = std::fs::read(&full).map_err(|source| VerifyError::Io {
                    path: full.clone(),
                    source,
                })?;
                tree.files.insert(name, bytes);
            } else {
                return Err(VerifyError::Io {
                    path: full,
                    source: std::io::Error::other(
                        "not a regular file or directory: a packet holds only files",
                    ),
                });
            }
        }
    }
    Ok(tree)
}

/// Why a sealed packet was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The directory already holds something else: a closed month never changes.
    #[error(
        "{dir} is not empty and does not hold this same packet; a closed month's packet never changes, so nothing was written"
    )]
    NotThisPacket {
        /// The packet directory.
        dir: PathBuf,
    },
    /// The path exists and is not a directory.
    #[error("{dir} exists and is not a directory; nothing was written")]
    NotADirectory {
        /// The packet directory.
        dir: PathBuf,
    },
    /// A file or directory cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// What [`write_dir`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The packet was written.
    Created,
    /// The directory already held exactly this packet; nothing was written.
    Unchanged,
}

/// Writes a sealed packet to `dir`, creating it (and its parents). The files are written
/// to a sibling directory first and renamed into place, so `dir` never holds half a
/// packet. A `dir` that exists must be empty, or already hold exactly this packet (then
/// nothing is written); otherwise nothing is written and the error names `dir`.
pub fn write_dir(dir: &Path, sealed: &Sealed) -> Result<Written, WriteError> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(WriteError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
        Ok(meta) if !meta.is_dir() => {
            return Err(WriteError::NotADirectory {
                dir: dir.to_path_buf(),
            });
        }
        Ok(_) => {
            let there = read_tree(dir).map_err(|_| WriteError::NotThisPacket {
                dir: dir.to_path_buf(),
            })?;
            if there.odd_names.is_empty() && there.files == sealed.files {
                return Ok(Written::Unchanged);
            }
            if !there.files.is_empty() || !there.odd_names.is_empty() || has_entries(dir) {
                return Err(WriteError::NotThisPacket {
                    dir: dir.to_path_buf(),
                });
            }
        }
    }
    let staging = staging_dir(dir)?;
    let written = write_tree(&staging, sealed).and_then(|()| {
        std::fs::rename(&staging, dir).map_err(|source| WriteError::Io {
            path: dir.to_path_buf(),
            source,
        })
    });
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    written.map(|()| Written::Created)
}

/// True when `dir` has any entry (an empty subdirectory counts).
fn has_entries(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_some())
}

/// A fresh, empty sibling of `dir` to write into before the rename.
fn staging_dir(dir: &Path) -> Result<PathBuf, WriteError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError::Io { path, source }
    };
    let name = dir.file_name().ok_or_else(|| WriteError::NotADirectory {
        dir: dir.to_path_buf(),
    })?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let mut staging_name = std::ffi::OsString::from(".");
    staging_name.push(name);
    staging_name.push(format!(".partial-{}", std::process::id()));
    let staging = parent.join(staging_name);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    std::fs::create_dir(&staging).map_err(io(&staging))?;
    Ok(staging)
}

/// Writes every file of `sealed` under `root`, synced to disk.
fn write_tree(root: &Path, sealed: &Sealed) -> Result<(), WriteError> {
    for (rel, bytes) in &sealed.files {
        let path = root.join(rel);
        let io = |source| WriteError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut f = std::fs::File::create(&path).map_err(io)?;
        f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        list.iter()
            .map(|(p, b)| (p.to_string(), b.as_bytes().to_vec()))
            .collect()
    }

    fn inputs() -> Inputs {
        Inputs::for_month(
            "acme",
            &crate::report::month::Month::parse("2023-11", "UTC").expect("month"),
            vec![],
        )
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn sealed(key: Option<&SigningKey>) -> Sealed {
        let p = Packet::new(files(&[
            ("report.md", "# November\n"),
            ("csv/pairs.csv", "device,patch\n"),
            ("report.json", "{}"),
        ]))
        .expect("packet");
        p.seal(&inputs(), key)
    }

    #[test]
    fn manifest_is_sha256sum_format_in_byte_order() {
        let sums = String::from_utf8(sealed(None).sums().to_vec()).expect("utf-8");
        let paths: Vec<&str> = sums.lines().map(|l| &l[66..]).collect();
        assert_eq!(
            paths,
            ["csv/pairs.csv", "inputs.json", "report.json", "report.md"]
        );
        let first = sums.lines().next().expect("a line");
        assert_eq!(&first[64..66], "  ");
        assert_eq!(
            &first[..64],
            hex(&Sha256::digest(b"device,patch\n")),
            "each line is the sha256 of its file"
        );
        assert!(sums.ends_with('\n'));
    }

    #[test]
    fn sealing_is_deterministic_and_digest_is_sha256_of_the_manifest() {
        let k = key(7);
        let (a, b) = (sealed(Some(&k)), sealed(Some(&k)));
        assert_eq!(a, b);
        assert_eq!(a.digest(), hex(&Sha256::digest(a.sums())));
        assert_eq!(a.signature().map(<[u8]>::len), Some(64));
        assert_eq!(sealed(None).signature(), None);
        assert_eq!(a.sums(), sealed(None).sums(), "the signature is not listed");
    }

    #[test]
    fn bad_paths_and_reserved_names_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/",
            "./a",
            "a\nb",
            "a\\b",
        ] {
            assert!(
                matches!(
                    Packet::new(files(&[(bad, "")])),
                    Err(PacketError::BadPath { .. })
                ),
                "{bad:?}"
            );
        }
        for reserved in [SUMS, SIG, INPUTS] {
            assert_eq!(
                Packet::new(files(&[(reserved, "")])),
                Err(PacketError::Reserved {
                    path: reserved.into()
                })
            );
        }
        assert_eq!(
            Packet::new(files(&[("csv", ""), ("csv/a.csv", "")])),
            Err(PacketError::FileAndDirectory { path: "csv".into() })
        );
        assert!(Packet::new(files(&[("csv.md", ""), ("csv/a.csv", "")])).is_ok());
    }

    #[test]
    fn a_sealed_packet_verifies() {
        let k = key(1);
        let s = sealed(Some(&k));
        let v = verify(s.files(), Some(&k.verifying_key()), Some(&s.digest())).expect("verifies");
        assert_eq!(v.files, 4);
        assert_eq!(v.signature, SignatureCheck::Good);
        assert!(v.digest_checked);
        assert_eq!(v.inputs, Some(inputs()));
        let v = verify(s.files(), None, None).expect("verifies");
        assert_eq!(
            (v.signature, v.digest_checked),
            (SignatureCheck::NotChecked, false)
        );
        let v = verify(
            sealed(None).files(),
            None,
            Some(&format!("sha256:{}", s.digest().to_uppercase())),
        )
        .expect("sha256: prefix and upper case are accepted");
        assert_eq!(v.signature, SignatureCheck::Absent);
    }

    /// The errors, as their Display, for compact assertions.
    fn problems(
        files: &BTreeMap<String, Vec<u8>>,
        key: Option<&VerifyingKey>,
        digest: Option<&str>,
    ) -> Vec<String> {
        match verify(files, key, digest) {
            Ok(v) => panic!("verified: {v:?}"),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn every_problem_is_reported() {
        let mut f = sealed(None).into_files();
        f.insert("report.md".into(), b"# October\n".to_vec());
        f.remove("csv/pairs.csv");
        f.insert("extra/notes.txt".into(), b"hi".to_vec());
        let p = problems(&f, None, None);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("missing: csv/pairs.csv"), "{p:?}");
        assert!(p[1].starts_with("changed: report.md"), "{p:?}");
        assert!(p[2].starts_with("added: extra/notes.txt"), "{p:?}");
    }

    #[test]
    fn malformed_and_escaping_lines_are_reported_with_their_line() {
        let good = hex(&Sha256::digest(b""));
        let sums = format!(
            "{good}  inputs.json\n{}  a\n{good} *b\n{good}  ../up\n{good}  /abs\n{good}  ./c\n{good}  inputs.json\n{good}  SHA256SUMS\nnonsense\n",
            good.to_uppercase()
        );
        let mut f = files(&[("inputs.json", "")]);
        f.insert(SUMS.into(), sums.into_bytes());
        let errors = verify(&f, None, None).expect_err("malformed");
        let lines: Vec<String> = errors
            .iter()
            .map(|e| match e {
                VerifyError::Malformed { line, .. } => format!("malformed {line}"),
                VerifyError::Escapes { path } => format!("escapes {path}"),
                other => other.to_string(),
            })
            .collect();
        assert_eq!(
            lines,
            [
                "malformed 2",
                "malformed 3",
                "escapes ../up",
                "escapes /abs",
                "malformed 6",
                "malformed 7",
                "malformed 8",
                "malformed 9"
            ]
        );
    }

    #[test]
    fn a_manifest_without_final_newline_or_empty_is_malformed() {
        for sums in ["", "x"] {
            let f = files(&[(SUMS, sums)]);
            assert!(
                matches!(
                    &verify(&f, None, None).expect_err("malformed")[..],
                    [VerifyError::Malformed { .. }, ..]
                ),
                "{sums:?}"
            );
        }
    }

    #[test]
    fn no_manifest_is_one_missing_file() {
        let f = files(&[("report.md", "x")]);
        assert_eq!(
            problems(&f, None, None),
            ["missing: SHA256SUMS (not in the directory)"]
        );
    }

    #[test]
    fn inputs_json_is_required() {
        let mut f = files(&[("report.md", "x")]);
        f.insert(SUMS.into(), manifest(&f));
        assert_eq!(
            problems(&f, None, None),
            ["missing: inputs.json (not in the directory)"]
        );
    }

    #[test]
    fn signature_and_digest_catch_a_rewritten_manifest() {
        let k = key(1);
        let s = sealed(Some(&k));
        let mut f = s.files().clone();
        f.insert("report.md".into(), b"# forged\n".to_vec());
        let forged = manifest(&f);
        f.insert(SUMS.into(), forged);
        assert!(
            verify(&f, None, None).is_ok(),
            "integrity alone cannot see it"
        );
        assert!(matches!(
            &verify(&f, Some(&k.verifying_key()), None).expect_err("bad sig")[..],
            [VerifyError::BadSignature]
        ));
        assert!(matches!(
            &verify(&f, None, Some(&s.digest())).expect_err("digest")[..],
            [VerifyError::DigestMismatch { .. }]
        ));
    }

    #[test]
    fn wrong_truncated_or_absent_signatures_fail_with_a_key() {
        let k = key(1);
        let s = sealed(Some(&k));
        let other = key(2).verifying_key();
        assert!(matches!(
            &verify(s.files(), Some(&other), None).expect_err("")[..],
            [VerifyError::BadSignature]
        ));
        let mut f = s.files().clone();
        f.get_mut(SIG).expect("sig").truncate(63);
        assert!(matches!(
            &verify(&f, Some(&k.verifying_key()), None).expect_err("")[..],
            [VerifyError::BadSignature]
        ));
        f.remove(SIG);
        assert!(matches!(
            &verify(&f, Some(&k.verifying_key()), None).expect_err("")[..],
            [VerifyError::NoSignature]
        ));
    }

    #[test]
    fn path_problems_tell_escapes_from_malformed() {
        assert_eq!(path_problem("a/b.csv"), None);
        assert_eq!(path_problem("a/..b"), None);
        assert_eq!(path_problem(".."), Some(PathProblem::Escapes));
        assert_eq!(path_problem("/a"), Some(PathProblem::Escapes));
        assert!(matches!(
            path_problem("a/./b"),
            Some(PathProblem::Malformed(_))
        ));
        assert!(matches!(
            path_problem("a\r"),
            Some(PathProblem::Malformed(_))
        ));
    }
}
