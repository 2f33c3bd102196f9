//! `ringmaster report verify` and `ringmaster report keygen`: each prints what it did and
//! returns the process's exit code.

use std::path::Path;

use super::keys;
use super::packet::{SignatureCheck, Verified, VerifyError, verify_dir};

/// `ringmaster report verify DIR [--key PUB.pem] [--digest HEX]`: prints a summary and
/// returns 0 when the packet verifies; prints every problem (stdout) and returns 1 when
/// it does not; says why on stderr and returns 2 when the directory or the key cannot be
/// read.
pub fn verify(dir: &Path, key: Option<&Path>, digest: Option<&str>) -> u8 {
    let key = match key.map(keys::read_verifying_key).transpose() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {}", VerifyError::from(e));
            return 2;
        }
    };
    match verify_dir(dir, key.as_ref(), digest) {
        Ok(v) => {
            print!("{}", summary(dir, &v));
            0
        }
        Err(errors) => report_problems(dir, &errors),
    }
}

/// Prints why `dir` did not verify: problems on stdout (exit 1), or what could not be
/// read on stderr (exit 2). Returns the exit code.
fn report_problems(dir: &Path, errors: &[VerifyError]) -> u8 {
    let code = exit_code(errors);
    if code == 2 {
        for e in errors {
            eprintln!("error: {e}");
        }
        eprintln!("error: {} cannot be read as a packet", dir.display());
    } else {
        for e in errors {
            println!("{e}");
        }
        let n = errors.len();
        eprintln!("{}: does not verify: {n} problem(s)", dir.display());
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
pub fn summary(dir: &Path, v: &Verified) -> String {
    let mut lines = vec![
        format!("ok: {}: {} files match SHA256SUMS", dir.display(), v.files),
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
             give --key (the signer's public key) or --digest (the digest the cluster's \
             PatchReport records) to check that this is the packet that was produced"
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
        let dir = Path::new("out/2023-11");
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
