//! `ringmaster report …` and `simulate --report`: making packets, verifying them, and
//! signing keys. The commands print what they did and return the process's exit code.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

use super::assemble;
use super::keys::{self, KeyError};
use super::model::MonthReport;
use super::month::{Month, MonthError};
use super::packet::{
    self, PacketError, Sealed, SignatureCheck, Verified, VerifyError, WriteError, Written,
    verify_dir, write_dir,
};
use super::store::read_location;
use crate::api::{PatchReport, ReportPhase};
use crate::engine::Snapshot;
use crate::sim::run::Closed;

/// What `ringmaster report verify` checks.
#[derive(Clone, Debug, Default)]
pub struct VerifyArgs {
    /// The packet: a directory, a `file://` URL or an `s3://` URL; with `report` and
    /// without this, the location the PatchReport records.
    pub location: Option<String>,
    /// The signer's public key.
    pub key: Option<PathBuf>,
    /// The expected packet digest.
    pub digest: Option<String>,
    /// `NS/NAME` of the PatchReport whose recorded digest the packet must have.
    pub report: Option<String>,
}

/// `ringmaster report verify [LOCATION] [--key PUB.pem] [--digest HEX] [--report NS/NAME]`:
/// prints a summary and returns 0 when the packet verifies; prints every problem
/// (stdout) and returns 1 when it does not; says why on stderr and returns 2 when the
/// packet, the key or the PatchReport cannot be read.
pub async fn verify(a: &VerifyArgs) -> u8 {
    let key = match a.key.as_deref().map(keys::read_verifying_key).transpose() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {}", VerifyError::from(e));
            return 2;
        }
    };
    let recorded = match &a.report {
        Some(r) => match recorded(r).await {
            Ok(rec) => Some(rec),
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        },
        None => None,
    };
    let Some(location) = a
        .location
        .clone()
        .or_else(|| recorded.as_ref().map(|r| r.location.clone()))
    else {
        eprintln!("error: give the packet's location, or --report NS/NAME");
        return 2;
    };
    let digest = recorded
        .as_ref()
        .map(|r| r.digest.as_str())
        .or(a.digest.as_deref());
    let result = if location.contains("://") {
        match read_location(&location).await {
            Ok(files) => packet::verify(&files, key.as_ref(), digest),
            Err(e) => {
                eprintln!("error: {e}");
                eprintln!("error: {location} cannot be read as a packet");
                return 2;
            }
        }
    } else {
        verify_dir(Path::new(&location), key.as_ref(), digest)
    };
    match result {
        Ok(v) => {
            print!("{}", summary(&location, &v));
            if let Some(r) = &recorded {
                println!(
                    "cluster: the digest is the one PatchReport {} records",
                    r.name
                );
            }
            0
        }
        Err(errors) => report_problems(&location, &errors),
    }
}

/// What a closed month's PatchReport records.
struct Recorded {
    /// `NS/NAME`.
    name: String,
    /// Its packet digest.
    digest: String,
    /// Where its packet is.
    location: String,
}

/// Reads the digest and location a closed PatchReport records.
async fn recorded(report: &str) -> Result<Recorded, String> {
    let (ns, name) = report
        .split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
        .ok_or_else(|| format!("--report {report:?}: expected NAMESPACE/NAME"))?;
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("kubernetes client: {e}"))?;
    let api: kube::Api<PatchReport> = kube::Api::namespaced(client, ns);
    let r = api
        .get(name)
        .await
        .map_err(|e| format!("reading PatchReport {ns}/{name}: {e}"))?;
    let status = r.status.unwrap_or_default();
    let closed = status.phase == Some(ReportPhase::Closed);
    match (closed, status.digest, status.location) {
        (true, Some(digest), Some(location)) => Ok(Recorded {
            name: format!("{ns}/{name}"),
            digest,
            location,
        }),
        _ => Err(format!(
            "PatchReport {ns}/{name} is not closed (phase {}): it records no digest to check against",
            status
                .phase
                .map_or("none".to_string(), |p| format!("{p:?}"))
        )),
    }
}

/// Prints why `location` did not verify: problems on stdout (exit 1), or what could not
/// be read on stderr (exit 2). Returns the exit code.
fn report_problems(location: &str, errors: &[VerifyError]) -> u8 {
    let code = exit_code(errors);
    if code == 2 {
        for e in errors {
            eprintln!("error: {e}");
        }
        eprintln!("error: {location} cannot be read as a packet");
    } else {
        for e in errors {
            println!("{e}");
        }
        let n = errors.len();
        eprintln!("{location}: does not verify: {n} problem(s)");
    }
    code
}

/// 2 when any error is unreadable input, else 1 (0 for no errors).
pub fn exit_code(errors: &[VerifyError]) -> u8 {
    if errors.iter().any(VerifyError::is_unreadable) {
        2
    } else {
        u8::from(!errors.is_empty())
    }
}

/// The lines `verify` prints for a packet that verifies, saying exactly what was and was
/// not checked.
pub fn summary(location: &str, v: &Verified) -> String {
    let mut lines = vec![
        format!("ok: {location}: {} files match SHA256SUMS", v.files),
        format!("packet digest: {}", v.digest),
    ];
    lines.push(match &v.inputs {
        Some(i) => format!(
            "inputs: namespace {}, month {} ({}), {} input objects, rendered by ringmaster {}",
            i.namespace,
            i.month,
            i.time_zone,
            i.objects.len(),
            i.ringmaster_version
        ),
        None => "inputs: inputs.json is listed but is not ringmaster's statement of inputs".into(),
    });
    lines.push(
        match v.signature {
            SignatureCheck::Good => "signature: good (SHA256SUMS.sig is the given key's signature)",
            SignatureCheck::NotChecked => {
                "signature: SHA256SUMS.sig is present but was NOT checked (give --key PUB.pem)"
            }
            SignatureCheck::Absent => "signature: none (the packet is not signed)",
        }
        .into(),
    );
    if v.digest_checked {
        lines.push("digest: matches the expected packet digest".into());
    }
    if v.signature != SignatureCheck::Good && !v.digest_checked {
        lines.push(
            "integrity only: the files match SHA256SUMS, but SHA256SUMS itself was not \
             authenticated, and whoever could change the files could have rewritten it; \
             give --key (the signer's public key), or --report NS/NAME (the digest the \
             cluster's PatchReport records) or --digest, to check that this is the packet \
             that was produced"
                .into(),
        );
    }
    lines.join("\n") + "\n"
}

/// `ringmaster report keygen --out PREFIX`: writes `PREFIX.key` (private, mode 0600)
/// and `PREFIX.pub`; returns 0, or 2 (having said why) when they cannot be written.
pub fn keygen(prefix: &Path) -> u8 {
    match keys::write_new_pair(prefix) {
        Ok((private, public)) => {
            println!(
                "wrote {} (private key, mode 0600: keep it secret)",
                private.display()
            );
            println!(
                "wrote {} (public key: give it to whoever verifies)",
                public.display()
            );
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(signature: SignatureCheck, digest_checked: bool) -> Verified {
        Verified {
            files: 3,
            digest: "ab".repeat(32),
            signature,
            digest_checked,
            inputs: None,
        }
    }

    #[test]
    fn unauthenticated_verification_says_integrity_only() {
        let dir = "out/2023-11";
        let plain = summary(dir, &verified(SignatureCheck::Absent, false));
        assert!(
            plain.starts_with("ok: out/2023-11: 3 files match SHA256SUMS\n"),
            "{plain}"
        );
        assert!(plain.contains("\nintegrity only: "), "{plain}");
        let unchecked = summary(dir, &verified(SignatureCheck::NotChecked, false));
        assert!(unchecked.contains("NOT checked"), "{unchecked}");
        assert!(unchecked.contains("integrity only: "), "{unchecked}");
        let signed = summary(dir, &verified(SignatureCheck::Good, false));
        assert!(signed.contains("signature: good"), "{signed}");
        assert!(!signed.contains("integrity only"), "{signed}");
        let pinned = summary(dir, &verified(SignatureCheck::Absent, true));
        assert!(pinned.contains("digest: matches"), "{pinned}");
        assert!(!pinned.contains("integrity only"), "{pinned}");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(&[]), 0);
        assert_eq!(exit_code(&[VerifyError::BadSignature]), 1);
        let unreadable = VerifyError::Key {
            path: "k".into(),
            why: "x".into(),
        };
        assert_eq!(exit_code(&[VerifyError::NoSignature, unreadable]), 2);
    }
}

/// Where a packet went, and its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenPacket {
    /// Its directory.
    pub dir: PathBuf,
    /// The month, `YYYY-MM`.
    pub month: String,
    /// Whether the month had ended.
    pub closed: bool,
    /// The sha256 of its SHA256SUMS.
    pub digest: String,
    /// Whether the directory already held this very packet.
    pub unchanged: bool,
}

/// Why a packet could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum MakeError {
    /// The month or time zone of a report is not one.
    #[error(transparent)]
    Month(#[from] MonthError),
    /// The renderings could not be put in a packet.
    #[error(transparent)]
    Packet(#[from] PacketError),
    /// The directory could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The signing key could not be read.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Reads a signing key when one is named.
pub fn signing_key(path: Option<&Path>) -> Result<Option<SigningKey>, MakeError> {
    Ok(path.map(keys::read_signing_key).transpose()?)
}

/// Seals a month's report built from `snap` and writes it to `dir`.
pub fn write_packet(
    dir: &Path,
    report: &MonthReport,
    snap: &Snapshot<'_>,
    key: Option<&SigningKey>,
) -> Result<WrittenPacket, MakeError> {
    let month = Month::parse(&report.month, &report.time_zone)?;
    let sealed = assemble::packet(report, snap, &month, key)?;
    write_sealed(dir, report, &sealed)
}

/// Writes a sealed packet of `report` to `dir`.
fn write_sealed(
    dir: &Path,
    report: &MonthReport,
    sealed: &Sealed,
) -> Result<WrittenPacket, MakeError> {
    let unchanged = write_dir(dir, sealed)? == Written::Unchanged;
    Ok(WrittenPacket {
        dir: dir.to_path_buf(),
        month: report.month.clone(),
        closed: report.closed,
        digest: sealed.digest(),
        unchanged,
    })
}

/// Writes each month a simulation closed (and the one it ended in) under `out/YYYY-MM/`.
pub fn write_simulated(
    out: &Path,
    months: &[Closed],
    key: Option<&SigningKey>,
) -> Result<Vec<WrittenPacket>, MakeError> {
    months
        .iter()
        .map(|m| {
            let dir = out.join(&m.report.month);
            write_packet(&dir, &m.report, &m.world.snapshot(), key)
        })
        .collect()
}

/// One line per packet written, for people.
pub fn written_line(w: &WrittenPacket) -> String {
    format!(
        "{}: {} {} (digest {}){}",
        w.dir.display(),
        w.month,
        if w.closed {
            "closed"
        } else {
            "not closed: as it stood then"
        },
        w.digest,
        if w.unchanged { ", unchanged" } else { "" }
    )
}

/// How many months before the packet's own its trend shows.
pub const TREND_MONTHS: usize = 5;

/// What `ringmaster report --namespace NS …` makes.
#[derive(Clone, Debug)]
pub struct FromCluster {
    /// The tenant.
    pub namespace: String,
    /// The month, `YYYY-MM` (default: the last month that has ended).
    pub month: Option<String>,
    /// The tenant's time zone (default: its Namespace's annotation, else UTC).
    pub time_zone: Option<String>,
    /// The packet's directory.
    pub out: PathBuf,
    /// A PKCS#8 PEM ed25519 key to sign it with.
    pub sign_key: Option<PathBuf>,
}

/// `ringmaster report --namespace NS [--month M] --out DIR`: reads the tenant from the
/// cluster, builds its month as of `now` (its end, for a month that has ended), writes the
/// packet. 0 when written, 2 when it could not be.
pub async fn from_cluster(a: &FromCluster, now: jiff::Timestamp) -> u8 {
    match make_from_cluster(a, now).await {
        Ok(w) => {
            println!("{}", written_line(&w));
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("no packet was written");
            2
        }
    }
}

async fn make_from_cluster(a: &FromCluster, now: jiff::Timestamp) -> Result<WrittenPacket, String> {
    let key = signing_key(a.sign_key.as_deref()).map_err(|e| e.to_string())?;
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("kubernetes client: {e}"))?;
    let zone = match &a.time_zone {
        Some(z) => z.clone(),
        None => super::cluster::time_zone(&client, &a.namespace)
            .await
            .unwrap_or_else(|e| {
                eprintln!(
                    "note: cannot read namespace {}'s time zone ({e}); months are in UTC",
                    a.namespace
                );
                None
            })
            .unwrap_or_else(|| "UTC".to_string()),
    };
    let month = match &a.month {
        Some(m) => Month::parse(m, &zone),
        None => Month::containing(now, &zone).map(|m| m.previous()),
    }
    .map_err(|e| e.to_string())?;
    let objects = super::cluster::read(&client, &a.namespace)
        .await
        .map_err(|e| format!("reading namespace {}: {e}", a.namespace))?;
    let (report, sealed) = super::record::seal(&objects.snapshot(), &month, now, key.as_ref())
        .map_err(|e| e.to_string())?;
    write_sealed(&a.out, &report, &sealed).map_err(|e| e.to_string())
}
