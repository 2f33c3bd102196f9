//! The evidence packet's integrity layer end to end: seal, write, verify, every kind of
//! tampering, interop with `sha256sum -c` and `openssl pkeyutl -verify`, and the
//! `ringmaster report` command's exit codes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ed25519_dalek::SigningKey;
use ringmaster::report::inputs::{InputObject, Inputs};
use ringmaster::report::keys;
use ringmaster::report::packet::{
    Packet, SIG, SUMS, Sealed, SignatureCheck, VerifyError, WriteError, Written, manifest,
    packet_digest, verify_dir, write_dir,
};

use crate::agent_sh::TempDir;

fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn inputs() -> Inputs {
    let policy = serde_json::json!({
        "apiVersion": "patching.ringmaster.dev/v1alpha1", "kind": "PatchPolicy",
        "metadata": {"name": "workstations", "namespace": "acme", "uid": "4f1c", "resourceVersion": "812", "generation": 4},
        "spec": {"deviceSelector": {}}
    });
    let object = InputObject {
        kind: "PatchPolicy".into(),
        name: "workstations".into(),
        uid: Some("4f1c".into()),
        resource_version: Some("812".into()),
        generation: Some(4),
        sha256: ringmaster::report::inputs::object_digest(&policy),
    };
    Inputs::for_month(
        "acme",
        &ringmaster::report::month::Month::parse("2023-11", "America/New_York").expect("month"),
        vec![object],
    )
}

/// A packet like the renderers' output, with a subdirectory.
fn sealed(key: Option<&SigningKey>) -> Sealed {
    let files: BTreeMap<String, Vec<u8>> = [
        (
            "report.html",
            "<!doctype html><title>acme 2023-11</title>\n",
        ),
        ("report.md", "# acme, November 2023\n"),
        ("report.json", "{\"month\":\"2023-11\"}\n"),
        (
            "csv/pairs.csv",
            "device,patch,installed\nws-1,KB5032189,2023-11-16\n",
        ),
        ("csv/exceptions.csv", "exception,owner\n"),
    ]
    .into_iter()
    .map(|(p, b)| (p.to_string(), b.as_bytes().to_vec()))
    .collect();
    Packet::new(files).expect("packet").seal(&inputs(), key)
}

/// A sealed, signed packet written to `<tmp>/2023-11`, and its sealed form.
fn written(test: &str) -> (TempDir, PathBuf, Sealed) {
    let tmp = TempDir::new(&format!("packet-{test}"));
    let dir = tmp.0.join("2023-11");
    let s = sealed(Some(&signing_key(1)));
    assert_eq!(write_dir(&dir, &s).expect("written"), Written::Created);
    (tmp, dir, s)
}

fn problems(dir: &Path, key: Option<&SigningKey>, digest: Option<&str>) -> Vec<String> {
    let vk = key.map(SigningKey::verifying_key);
    match verify_dir(dir, vk.as_ref(), digest) {
        Ok(v) => panic!("{} verified: {v:?}", dir.display()),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_written_packet_verifies_with_key_and_digest() {
    let (_tmp, dir, s) = written("ok");
    let vk = signing_key(1).verifying_key();
    let v = verify_dir(&dir, Some(&vk), Some(&s.digest())).expect("verifies");
    assert_eq!(v.files, 6, "five renderer files and inputs.json");
    assert_eq!(v.signature, SignatureCheck::Good);
    assert!(v.digest_checked);
    assert_eq!(
        v.digest,
        packet_digest(&std::fs::read(dir.join(SUMS)).expect("sums"))
    );
    assert_eq!(
        v.inputs.as_ref().map(|i| i.namespace.as_str()),
        Some("acme")
    );
    for (path, bytes) in s.files() {
        assert_eq!(
            &std::fs::read(dir.join(path)).expect("file"),
            bytes,
            "{path}"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.parent().expect("parent"))
        .expect("tmp")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        leftovers,
        ["2023-11"],
        "no staging directory is left behind"
    );
}

#[test]
fn sealing_twice_gives_identical_bytes() {
    let key = signing_key(3);
    assert_eq!(sealed(Some(&key)), sealed(Some(&key)));
    assert_eq!(sealed(None), sealed(None));
    let (a, b) = (sealed(Some(&key)), sealed(Some(&signing_key(4))));
    assert_eq!(
        a.sums(),
        b.sums(),
        "the manifest does not depend on the key"
    );
    assert_ne!(a.signature(), b.signature());
}

#[test]
fn a_closed_month_is_never_overwritten() {
    let (_tmp, dir, s) = written("closed");
    assert_eq!(
        write_dir(&dir, &s).expect("same packet"),
        Written::Unchanged
    );
    let other = sealed(None);
    let err = write_dir(&dir, &other).expect_err("another packet");
    assert!(matches!(err, WriteError::NotThisPacket { .. }), "{err}");
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "{err}"
    );
    assert!(verify_dir(&dir, Some(&signing_key(1).verifying_key()), None).is_ok());

    let tmp = TempDir::new("packet-foreign");
    std::fs::write(tmp.0.join("notes.txt"), "mine").expect("write");
    assert!(matches!(
        write_dir(&tmp.0, &s),
        Err(WriteError::NotThisPacket { .. })
    ));
    assert_eq!(
        std::fs::read_to_string(tmp.0.join("notes.txt")).expect("kept"),
        "mine"
    );
    let empty = TempDir::new("packet-empty");
    assert_eq!(
        write_dir(&empty.0, &s).expect("empty dir"),
        Written::Created
    );
    assert!(verify_dir(&empty.0, None, Some(&s.digest())).is_ok());
}

#[test]
fn a_changed_byte_is_found() {
    let (_tmp, dir, _) = written("changed");
    let path = dir.join("csv/pairs.csv");
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[7] ^= 1;
    std::fs::write(&path, bytes).expect("write");
    let p = problems(&dir, None, None);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("changed: csv/pairs.csv"), "{p:?}");
}

#[test]
fn a_removed_file_is_found() {
    let (_tmp, dir, _) = written("removed");
    std::fs::remove_file(dir.join("inputs.json")).expect("rm");
    assert_eq!(
        problems(&dir, None, None),
        ["missing: inputs.json (not in the directory)"]
    );
}

#[test]
fn added_files_are_found_at_any_depth() {
    let (_tmp, dir, _) = written("added");
    std::fs::write(dir.join("extra.md"), "x").expect("write");
    std::fs::write(dir.join("csv/extra.csv"), "x").expect("write");
    std::fs::create_dir_all(dir.join("deep/er")).expect("mkdir");
    std::fs::write(dir.join("deep/er/x"), "").expect("write");
    let p = problems(&dir, None, None);
    assert_eq!(
        p,
        [
            "added: csv/extra.csv (in the directory, not listed in SHA256SUMS)",
            "added: deep/er/x (in the directory, not listed in SHA256SUMS)",
            "added: extra.md (in the directory, not listed in SHA256SUMS)",
        ]
    );
}

#[test]
fn a_rewritten_manifest_is_caught_only_by_key_or_digest() {
    let (_tmp, dir, s) = written("rewritten");
    std::fs::write(dir.join("report.md"), "# acme, all fine\n").expect("forge");
    let mut files = s.files().clone();
    files.insert("report.md".into(), b"# acme, all fine\n".to_vec());
    std::fs::write(dir.join(SUMS), manifest(&files)).expect("rewrite");

    let v = verify_dir(&dir, None, None).expect("integrity alone cannot tell");
    assert_eq!(v.signature, SignatureCheck::NotChecked);
    let key = signing_key(1);
    assert_eq!(
        problems(&dir, Some(&key), None),
        ["bad signature: SHA256SUMS.sig is not the given key's signature of SHA256SUMS"]
    );
    let p = problems(&dir, None, Some(&s.digest()));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("digest mismatch: "), "{p:?}");
    assert!(p[0].contains(&s.digest()), "{p:?}");
}

#[test]
fn a_signature_by_another_key_fails() {
    let (_tmp, dir, _) = written("otherkey");
    let p = problems(&dir, Some(&signing_key(2)), None);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("bad signature"), "{p:?}");
}

#[test]
fn a_truncated_or_missing_signature_fails_with_a_key() {
    let (_tmp, dir, s) = written("truncated");
    let sig = s.signature().expect("signed");
    std::fs::write(dir.join(SIG), &sig[..63]).expect("truncate");
    let key = signing_key(1);
    assert!(problems(&dir, Some(&key), None)[0].starts_with("bad signature"));
    std::fs::remove_file(dir.join(SIG)).expect("rm");
    assert_eq!(
        problems(&dir, Some(&key), None),
        ["no signature: a key was given but the packet has no SHA256SUMS.sig"]
    );
}

#[test]
fn escaping_and_malformed_manifest_lines_fail() {
    let (_tmp, dir, s) = written("escape");
    let mut sums = s.sums().to_vec();
    let zero = "0".repeat(64);
    sums.extend_from_slice(
        format!("{zero}  ../2023-10/report.md\n{zero}  /etc/hostname\n{zero} report.md\n")
            .as_bytes(),
    );
    std::fs::write(dir.join(SUMS), sums).expect("write");
    let errors = verify_dir(&dir, None, None).expect_err("fails");
    assert!(
        matches!(
            &errors[..],
            [
                VerifyError::Escapes { .. },
                VerifyError::Escapes { .. },
                VerifyError::Malformed { line: 9, .. }
            ]
        ),
        "{errors:?}"
    );
}

#[test]
fn sha256sum_accepts_the_manifest() {
    let (_tmp, dir, _) = written("sha256sum");
    let Some(out) = tool(&dir, "sha256sum", &["-c", "--strict", SUMS]) else {
        return;
    };
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout).matches(": OK").count(),
        6,
        "{}",
        text(&out.stdout)
    );
    std::fs::write(dir.join("report.md"), "changed").expect("write");
    let out = tool(&dir, "sha256sum", &["-c", "--quiet", SUMS]).expect("ran before");
    assert!(!out.status.success(), "sha256sum sees the change too");
}

#[test]
fn openssl_verifies_the_signature() {
    let (tmp, dir, _) = written("openssl");
    let public = tmp.0.join("pub.pem");
    let pem = keys::verifying_key_pem(&signing_key(1).verifying_key());
    std::fs::write(&public, pem).expect("write");
    let args = |key: &Path| {
        let key = key.to_str().expect("utf-8").to_string();
        [
            "pkeyutl", "-verify", "-pubin", "-inkey", &key, "-rawin", "-in", SUMS, "-sigfile", SIG,
        ]
        .map(String::from)
    };
    let Some(out) = tool(
        &dir,
        "openssl",
        &args(&public).each_ref().map(String::as_str),
    ) else {
        return;
    };
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let other = tmp.0.join("other.pem");
    std::fs::write(
        &other,
        keys::verifying_key_pem(&signing_key(2).verifying_key()),
    )
    .expect("w");
    let out = tool(
        &dir,
        "openssl",
        &args(&other).each_ref().map(String::as_str),
    )
    .expect("ran");
    assert!(!out.status.success(), "another key does not verify");
}

#[test]
fn openssl_keys_read_and_sign_as_ringmaster_does() {
    let tmp = TempDir::new("packet-openssl-keys");
    let key = tmp.0.join("k.pem");
    let genpkey = ["genpkey", "-algorithm", "ed25519", "-out", arg(&key)];
    let Some(out) = tool(&tmp.0, "openssl", &genpkey) else {
        return;
    };
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pubout = tool(&tmp.0, "openssl", &["pkey", "-in", arg(&key), "-pubout"]).expect("ran");
    let sk = keys::read_signing_key(&key).expect("openssl's private key reads");
    let written_by_openssl = std::fs::read_to_string(&key).expect("read");
    assert_eq!(keys::signing_key_pem(&sk), written_by_openssl);
    let public = text(&pubout.stdout);
    assert_eq!(keys::verifying_key_pem(&sk.verifying_key()), public);
    let k_pub = tmp.0.join("k.pub");
    std::fs::write(&k_pub, public).expect("write");

    // openssl's signature of a ringmaster manifest is the one ringmaster writes, and
    // `ringmaster report verify --key` accepts it.
    let dir = tmp.0.join("2023-11");
    let s = sealed(Some(&sk));
    write_dir(&dir, &s).expect("written");
    let sig = tmp.0.join("openssl.sig");
    let sign = [
        "pkeyutl",
        "-sign",
        "-inkey",
        arg(&key),
        "-rawin",
        "-in",
        SUMS,
        "-out",
        arg(&sig),
    ];
    let signed = tool(&dir, "openssl", &sign).expect("ran");
    assert!(signed.status.success(), "{}", text(&signed.stderr));
    assert_eq!(
        std::fs::read(&sig).expect("sig"),
        s.signature().expect("signed")
    );
    let (code, stdout, stderr) = verify_cli(&[arg(&dir), "--key", arg(&k_pub)]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
}

#[test]
fn ringmaster_keygen_keys_read_in_openssl() {
    let tmp = TempDir::new("packet-keygen-openssl");
    let out = ringmaster(&["report", "keygen", "--out", arg(&tmp.0.join("rm"))]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let Some(reexport) = tool(&tmp.0, "openssl", &["pkey", "-in", "rm.key", "-pubout"]) else {
        return;
    };
    assert!(reexport.status.success(), "{}", text(&reexport.stderr));
    let public = std::fs::read_to_string(tmp.0.join("rm.pub")).expect("pub");
    assert_eq!(text(&reexport.stdout), public);
    let same = tool(&tmp.0, "openssl", &["pkey", "-in", "rm.key"]).expect("ran");
    let private = std::fs::read_to_string(tmp.0.join("rm.key")).expect("key");
    assert_eq!(
        text(&same.stdout),
        private,
        "openssl writes the key back unchanged"
    );
}

#[test]
fn cli_exit_0_says_what_was_checked() {
    let (tmp, dir, s) = written("cli-ok");
    let d = arg(&dir);
    let (code, stdout, stderr) = verify_cli(&[d]);
    assert_eq!(code, Some(0), "{stderr}");
    let first = format!(
        "ok: {d}: 6 files match SHA256SUMS\npacket digest: {}\n",
        s.digest()
    );
    assert!(stdout.starts_with(&first), "{stdout}");
    assert!(
        stdout.contains("inputs: namespace acme, month 2023-11"),
        "{stdout}"
    );
    assert!(stdout.contains("NOT checked"), "{stdout}");
    assert!(stdout.contains("\nintegrity only: "), "{stdout}");

    let public = tmp.0.join("pub.pem");
    let pem = keys::verifying_key_pem(&signing_key(1).verifying_key());
    std::fs::write(&public, pem).expect("write");
    let (code, stdout, _) = verify_cli(&[d, "--key", arg(&public), "--digest", &s.digest()]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("signature: good"), "{stdout}");
    assert!(stdout.contains("digest: matches"), "{stdout}");
    assert!(!stdout.contains("integrity only"), "{stdout}");
}

#[test]
fn cli_exit_1_lists_every_problem() {
    let (_tmp, dir, _) = written("cli-bad");
    let d = arg(&dir);
    let (code, stdout, _) = verify_cli(&[d, "--digest", &"0".repeat(64)]);
    assert_eq!(code, Some(1));
    assert!(stdout.starts_with("digest mismatch: "), "{stdout}");

    std::fs::write(dir.join("report.md"), "x").expect("tamper");
    std::fs::remove_file(dir.join("report.json")).expect("rm");
    let (code, stdout, stderr) = verify_cli(&[d]);
    assert_eq!(code, Some(1));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "both problems: {lines:?}");
    assert!(stderr.contains("does not verify: 2 problem(s)"), "{stderr}");
}

#[test]
fn cli_exit_2_for_unreadable_input() {
    let (tmp, dir, _) = written("cli-unreadable");
    let d = arg(&dir);
    let (code, _, stderr) = verify_cli(&[arg(&tmp.0.join("no-such-dir"))]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) = verify_cli(&[d, "--key", "/nonexistent/pub.pem"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/pub.pem"), "{stderr}");
    let (code, _, stderr) = verify_cli(&[d, "--key", arg(&dir.join("report.html"))]);
    assert_eq!(code, Some(2), "not a key: {stderr}");
}

#[test]
fn cli_keygen_writes_a_private_key_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("packet-keygen");
    let prefix = tmp.0.join("acme-signing");
    let pre = prefix.to_str().expect("utf-8");
    let out = ringmaster(&["report", "keygen", "--out", pre]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let private = tmp.0.join("acme-signing.key");
    let mode = std::fs::metadata(&private)
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let sk = keys::read_signing_key(&private).expect("reads");
    let vk = keys::read_verifying_key(&tmp.0.join("acme-signing.pub")).expect("reads");
    assert_eq!(sk.verifying_key(), vk);
    let before = std::fs::read(&private).expect("read");
    let out = ringmaster(&["report", "keygen", "--out", pre]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read(&private).expect("read"), before);
}

#[test]
fn cli_help_has_an_example() {
    let out = ringmaster(&["report", "verify", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(
        help.contains("ringmaster report verify packets/acme/2023-11 --key"),
        "{help}"
    );
    assert!(help.contains("--digest"), "{help}");
}

/// `ringmaster report verify ARGS…`: its exit code, stdout and stderr.
fn verify_cli(args: &[&str]) -> (Option<i32>, String, String) {
    let out = ringmaster(&[&["report", "verify"], args].concat());
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn ringmaster(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(args)
        .output()
        .expect("run ringmaster")
}

/// Runs `program` in `dir`; None (having printed `skipped:`) when it is not installed.
fn tool(dir: &Path, program: &str, args: &[&str]) -> Option<Output> {
    match Command::new(program).args(args).current_dir(dir).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("skipped: {program} is not installed");
            None
        }
        Err(e) => panic!("running {program}: {e}"),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
