//! The osv importer on the fixtures in tests/fixtures/catalog/osv/ and, when ../shared/feeds is there, on the real feed files.

use std::io::Write;
use std::path::{Path, PathBuf};

use ringmaster::api::{Classification, CveRef, PackageFix, PackageKind, PatchSpec, Severity};
use ringmaster::catalog::osv;
use ringmaster::catalog::{FeedError, Parsed, Problem, Skipped};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/catalog/osv")
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).expect("fixture")
}

fn fixture(name: &str) -> Parsed<PatchSpec> {
    osv::parse(name, &fixture_bytes(name)).expect("fixture parses")
}

/// The one record of a fixture that has no skipped entries.
fn only(name: &str) -> PatchSpec {
    let parsed = fixture(name);
    assert_eq!(parsed.skipped, vec![], "{name}");
    assert_eq!(parsed.records.len(), 1, "{name}");
    parsed.records.into_iter().next().expect("one record")
}

fn real_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/feeds/osv");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("{} is absent: real OSV files not tested", dir.display());
        None
    }
}

/// Every .json file under `dir`, sorted.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Every real file, parsed and combined.
fn real_parsed(dir: &Path) -> Parsed<PatchSpec> {
    let mut all = Parsed::default();
    for path in json_files(dir) {
        let name = path.display().to_string();
        let bytes = std::fs::read(&path).expect("readable");
        match osv::parse(&name, &bytes) {
            Ok(parsed) => all.extend(parsed),
            Err(e) => panic!("{e}"),
        }
    }
    all
}

fn find<'a>(records: &'a [PatchSpec], id: &str) -> &'a PatchSpec {
    records
        .iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("{id} imported"))
}

fn pkg(ecosystem: &str, name: &str, kind: PackageKind, fixed: &str, bins: &[&str]) -> PackageFix {
    PackageFix {
        ecosystem: ecosystem.into(),
        name: name.into(),
        kind,
        fixed: fixed.into(),
        binaries: bins.iter().map(|b| b.to_string()).collect(),
    }
}

fn cve(id: &str, scored: Option<(f64, &str)>) -> CveRef {
    CveRef {
        id: id.into(),
        cvss_score: scored.map(|s| s.0),
        cvss_vector: scored.map(|s| s.1.to_string()),
        epss: None,
    }
}

fn cve_ids(patch: &PatchSpec) -> Vec<&str> {
    patch.cves.iter().map(|c| c.id.as_str()).collect()
}

fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for (name, bytes) in members {
        if name.ends_with('/') {
            writer.add_directory(*name, options).expect("directory");
        } else {
            writer.start_file(*name, options).expect("member");
            writer.write_all(bytes).expect("written");
        }
    }
    writer.finish().expect("zip").into_inner()
}

#[test]
fn a_debian_advisory_lists_its_source_package_per_release() {
    let patch = only("DSA-9901-1.json");
    assert_eq!(patch.id, "DSA-9901-1");
    assert_eq!(patch.title.as_deref(), Some("examplesrv - security update"));
    assert_eq!(patch.vendor, "Debian");
    assert_eq!(patch.product.as_deref(), Some("Debian 11, Debian 12"));
    assert_eq!(patch.classification, Classification::Security);
    assert_eq!(
        patch.cves,
        vec![cve("CVE-2099-10001", None), cve("CVE-2099-10002", None)]
    );
    assert_eq!(patch.cvss_score, None);
    assert_eq!(patch.vendor_severity, None);
    assert_eq!(patch.released_at.to_string(), "2099-03-04T00:00:00Z");
    assert!(!patch.reboot_required);
    assert!(
        patch.uninstallable,
        "the agent can downgrade an ordinary package"
    );
    assert!(!patch.known_exploited);
    assert!(patch.supersedes.is_empty());
    assert_eq!(patch.kev, None);
    assert_eq!(patch.epss, None);
    assert_eq!(
        patch.packages,
        vec![
            pkg(
                "Debian:11",
                "examplesrv",
                PackageKind::Source,
                "1:2.2.9-1+deb11u5",
                &[]
            ),
            pkg(
                "Debian:12",
                "examplesrv",
                PackageKind::Source,
                "2.4.1-3+deb12u2",
                &[]
            ),
        ]
    );
}

#[test]
fn an_almalinux_advisory_keeps_one_entry_per_module_stream() {
    let patch = only("ALSA-2099-9001.json");
    assert_eq!(patch.id, "ALSA-2099:9001");
    assert_eq!(
        patch.title.as_deref(),
        Some("Important: libexample:2 security update")
    );
    assert_eq!(patch.vendor, "AlmaLinux");
    assert_eq!(patch.product.as_deref(), Some("AlmaLinux 9"));
    assert_eq!(patch.classification, Classification::Security);
    assert_eq!(patch.vendor_severity, Some(Severity::High));
    assert_eq!(patch.cvss_score, None);
    assert_eq!(cve_ids(&patch), ["CVE-2099-20001", "CVE-2099-20002"]);
    assert_eq!(patch.released_at.to_string(), "2099-05-06T00:00:00Z");
    assert!(!patch.reboot_required);
    let a = "1:2.3.4-5.module_el9.4.0+101+aaaa1111";
    let b = "1:2.3.4-5.module_el9.4.0+102+bbbb2222";
    assert_eq!(
        patch.packages,
        vec![
            pkg("AlmaLinux:9", "libexample", PackageKind::Binary, a, &[]),
            pkg("AlmaLinux:9", "libexample", PackageKind::Binary, b, &[]),
            pkg(
                "AlmaLinux:9",
                "libexample-devel",
                PackageKind::Binary,
                a,
                &[]
            ),
        ]
    );
}

#[test]
fn a_rocky_kernel_advisory_needs_a_reboot() {
    let patch = only("RLSA-2099-9002.json");
    assert_eq!(patch.id, "RLSA-2099:9002");
    assert_eq!(patch.vendor, "Rocky Linux");
    assert_eq!(patch.product.as_deref(), Some("Rocky Linux 9"));
    assert_eq!(patch.classification, Classification::Security);
    assert_eq!(patch.vendor_severity, Some(Severity::Medium));
    assert_eq!(patch.cves, vec![cve("CVE-2099-30001", None)]);
    assert!(patch.reboot_required);
    assert!(
        !patch.uninstallable,
        "a kernel or glibc fix is not rolled back"
    );
    let fixed = "5.14.0-503.99.1.el9_5";
    assert_eq!(
        patch.packages,
        vec![
            pkg("Rocky Linux:9", "kernel", PackageKind::Binary, fixed, &[]),
            pkg(
                "Rocky Linux:9",
                "kernel-core",
                PackageKind::Binary,
                fixed,
                &[]
            ),
        ]
    );
}

#[test]
fn an_ubuntu_advisory_scores_its_cves_from_their_vectors() {
    let patch = only("USN-9903-1.json");
    assert_eq!(patch.id, "USN-9903-1");
    assert_eq!(patch.title.as_deref(), Some("examplesrv vulnerabilities"));
    assert_eq!(patch.vendor, "Ubuntu");
    assert_eq!(
        patch.product.as_deref(),
        Some("Ubuntu 24.04 LTS, Ubuntu Pro 18.04 LTS")
    );
    assert_eq!(patch.classification, Classification::Security);
    assert_eq!(
        patch.cves,
        vec![
            cve(
                "CVE-2099-40001",
                Some((7.5, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"))
            ),
            cve(
                "CVE-2099-40002",
                Some((9.8, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"))
            ),
        ]
    );
    assert_eq!(patch.cvss_score, Some(9.8));
    assert_eq!(patch.vendor_severity, Some(Severity::High));
    assert_eq!(patch.released_at.to_string(), "2099-09-10T11:12:13.141516Z");
    assert_eq!(
        patch.packages,
        vec![
            pkg(
                "Ubuntu:24.04:LTS",
                "examplesrv",
                PackageKind::Source,
                "2.6.0-1ubuntu0.2",
                &["examplesrv", "examplesrv-common"]
            ),
            pkg(
                "Ubuntu:Pro:18.04:LTS",
                "examplesrv",
                PackageKind::Source,
                "2.0.1-2ubuntu0.1~esm1",
                &["examplesrv"]
            ),
        ]
    );
}

#[test]
fn bad_records_are_reported_where_they_are_and_the_rest_imported() {
    let parsed = fixture("bad-records.json");
    let ids: Vec<&str> = parsed.records.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["ALSA-2099:9101", "DSA-9911-1"]);

    // A broken vector is left out; the record keeps its good vector (CVSS v4).
    let v4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N";
    let alsa = &parsed.records[0];
    assert_eq!(alsa.cves, vec![cve("CVE-2099-50001", Some((9.3, v4)))]);
    assert_eq!(alsa.cvss_score, Some(9.3));
    assert_eq!(alsa.vendor_severity, Some(Severity::Low));

    // npm and GIT ranges are ignored; a CVSS v2 vector scores; no `published`: `modified`.
    let dsa = &parsed.records[1];
    let v2 = "AV:N/AC:L/Au:N/C:P/I:P/A:P";
    assert_eq!(dsa.cves, vec![cve("CVE-2099-50011", Some((7.5, v2)))]);
    assert_eq!(dsa.cvss_score, Some(7.5));
    assert_eq!(
        dsa.packages,
        vec![pkg(
            "Debian:12",
            "mixedtool",
            PackageKind::Source,
            "2.0-1",
            &[]
        )]
    );
    assert_eq!(dsa.product.as_deref(), Some("Debian 12"));
    assert_eq!(dsa.released_at.to_string(), "2099-02-02T02:02:02Z");

    let at = |s: &Skipped| (s.at.clone(), s.id.clone());
    let where_: Vec<(String, Option<String>)> = parsed.skipped.iter().map(at).collect();
    let some = |id: &str| Some(id.to_string());
    assert_eq!(
        where_,
        vec![
            ("record 1".into(), some("ALSA-2099:9101")),
            ("record 2".into(), some("DSA-9902-1")),
            ("record 3".into(), None),
            ("record 4".into(), some("PYSEC-2099-1")),
            ("record 5".into(), some("DLA-9905-1")),
            ("record 6".into(), some("UBUNTU-CVE-2099-50006")),
            ("record 7".into(), some("USN-9907-1")),
            ("record 8".into(), None),
            ("record 9".into(), some("DSA-9909-1")),
            ("record 10".into(), some("DSA-9910-1")),
        ]
    );
    assert!(parsed.skipped.iter().all(|s| s.file == "bad-records.json"));
    let problems: Vec<&Problem> = parsed.skipped.iter().map(|s| &s.problem).collect();
    assert!(
        matches!(problems[0], Problem::BadVector { vector, .. } if vector == "CVSS:3.1/AV:X/AC:L"),
        "{}",
        problems[0]
    );
    assert!(
        matches!(problems[1], Problem::Invalid { field, got, .. } if field == "aliases" && got == "5"),
        "{}",
        problems[1]
    );
    assert_eq!(problems[2], &Problem::Missing { field: "id".into() });
    assert_eq!(problems[3], &Problem::UnknownEcosystem("PyPI".into()));
    assert_eq!(problems[4], &Problem::Empty("no affected packages".into()));
    assert!(
        matches!(problems[5], Problem::NotAnAdvisory(why) if why.contains("per-CVE")),
        "{}",
        problems[5]
    );
    assert!(
        matches!(problems[6], Problem::NotAnAdvisory(why) if why.contains("withdrawn")),
        "{}",
        problems[6]
    );
    assert!(
        matches!(problems[7], Problem::Invalid { field, got, .. } if field == "record" && got == "a number"),
        "{}",
        problems[7]
    );
    assert_eq!(
        problems[8],
        &Problem::Empty("no fixed version in Debian:12".into())
    );
    assert!(
        matches!(problems[9], Problem::Invalid { field, got, .. } if field == "published" && got == "not a time"),
        "{}",
        problems[9]
    );
}

#[test]
fn a_zip_export_reads_one_record_per_member() {
    let dsa = fixture_bytes("DSA-9901-1.json");
    let usn = fixture_bytes("USN-9903-1.json");
    let alsa = fixture_bytes("ALSA-2099-9001.json");
    let rlsa = fixture_bytes("RLSA-2099-9002.json");
    let bad_types = String::from_utf8(dsa.clone())
        .expect("utf-8")
        .replace(r#""aliases": []"#, r#""aliases": 5"#);
    let bytes = zip_of(&[
        ("USN-9903-1.json", &usn),
        ("notes/", b""),
        ("RLSA-2099:9002.json", &rlsa),
        ("broken.json", b"{\"id\": \"DSA-1\", "),
        ("DSA-9901-1.json", &dsa),
        ("DSA-9901-9.json", bad_types.as_bytes()),
        ("ALSA-2099:9001.json", &alsa),
    ]);
    let parsed = osv::parse_zip("Mixed/all.zip", &bytes).expect("a zip");
    let ids: Vec<&str> = parsed.records.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "ALSA-2099:9001",
            "DSA-9901-1",
            "RLSA-2099:9002",
            "USN-9903-1"
        ]
    );
    assert_eq!(parsed.records[1], only("DSA-9901-1.json"));
    assert_eq!(parsed.records[3], only("USN-9903-1.json"));
    let skipped: Vec<(&str, &str, Option<&str>)> = parsed
        .skipped
        .iter()
        .map(|s| (s.file.as_str(), s.at.as_str(), s.id.as_deref()))
        .collect();
    assert_eq!(
        skipped,
        [
            ("Mixed/all.zip", "broken.json", None),
            ("Mixed/all.zip", "DSA-9901-9.json", Some("DSA-9901-1")),
        ]
    );
    assert!(
        matches!(&parsed.skipped[0].problem, Problem::Invalid { field, why, .. } if field == "record" && why.starts_with("not JSON")),
        "{}",
        parsed.skipped[0]
    );
}

#[test]
fn a_zip_member_holding_an_array_reports_its_records_by_position() {
    let bytes = zip_of(&[("many.json", &fixture_bytes("bad-records.json"))]);
    let parsed = osv::parse_zip("all.zip", &bytes).expect("a zip");
    assert_eq!(parsed.records.len(), 2);
    assert_eq!(parsed.skipped[1].at, "many.json record 2");
}

#[test]
fn files_that_cannot_be_read_at_all_are_errors() {
    for bytes in [&b""[..], b"not json", b"42", b"\"a string\"", b"null"] {
        let err = osv::parse("x.json", bytes).expect_err("not a document");
        assert!(matches!(err, FeedError::Format { .. }), "{err}");
    }
    let err = osv::parse_zip("x.zip", b"PK\x03\x04 not really").expect_err("not a zip");
    assert!(matches!(err, FeedError::Format { .. }), "{err}");
}

#[test]
fn truncated_zips_never_panic() {
    let bytes = zip_of(&[
        ("DSA-9901-1.json", &fixture_bytes("DSA-9901-1.json")),
        ("USN-9903-1.json", &fixture_bytes("USN-9903-1.json")),
    ]);
    for end in 0..bytes.len() {
        let _ = osv::parse_zip("t.zip", &bytes[..end]);
    }
    let mut flipped = bytes.clone();
    for i in (0..flipped.len()).step_by(7) {
        flipped[i] ^= 0x55;
        let _ = osv::parse_zip("t.zip", &flipped);
        flipped[i] ^= 0x55;
    }
}

#[test]
fn records_from_several_files_combine_and_merge_by_id() {
    let mut all = fixture("DSA-9901-1.json");
    all.extend(fixture("USN-9903-1.json"));
    all.extend(fixture("DSA-9901-1.json"));
    // A later rewrite of the DSA with a new release: same id, more packages.
    let rewritten = String::from_utf8(fixture_bytes("DSA-9901-1.json"))
        .expect("utf-8")
        .replace("Debian:11", "Debian:13")
        .replace("\"2099-03-04T00:00:00Z\"", "\"2099-03-06T00:00:00Z\"");
    all.extend(osv::parse("later.json", rewritten.as_bytes()).expect("parses"));
    assert_eq!(all.records.len(), 4);
    let merged = osv::merge(all.records);
    let ids: Vec<&str> = merged.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["DSA-9901-1", "USN-9903-1"]);
    let dsa = &merged[0];
    let releases: Vec<&str> = dsa.packages.iter().map(|p| p.ecosystem.as_str()).collect();
    assert_eq!(releases, ["Debian:11", "Debian:12", "Debian:13"]);
    assert_eq!(
        dsa.product.as_deref(),
        Some("Debian 11, Debian 12, Debian 13")
    );
    assert_eq!(dsa.released_at.to_string(), "2099-03-04T00:00:00Z");
    assert_eq!(merged[1], only("USN-9903-1.json"));
}

#[test]
fn every_real_file_parses() {
    let Some(dir) = real_dir() else { return };
    let files = json_files(&dir);
    assert!(files.len() >= 30, "{} files", files.len());
    for path in &files {
        let bytes = std::fs::read(path).expect("readable");
        let parsed = osv::parse("f", &bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            parsed.records.len() + parsed.skipped.len(),
            1,
            "{}",
            path.display()
        );
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        // Only the per-CVE records and the trimmed DLA (nothing to install) are skipped.
        if name.starts_with("UBUNTU-CVE-") || name.starts_with("DLA-3623-1") {
            assert!(
                matches!(
                    parsed.skipped[0].problem,
                    Problem::Empty(_) | Problem::NotAnAdvisory(_)
                ),
                "{}",
                parsed.skipped[0]
            );
        } else {
            assert_eq!(parsed.skipped, vec![], "{}", path.display());
            let patch = &parsed.records[0];
            assert!(!patch.packages.is_empty(), "{}", patch.id);
            assert!(!patch.vendor.is_empty(), "{}", patch.id);
            assert_eq!(name.trim_end_matches(".json"), patch.id);
        }
    }
}

#[test]
fn real_almalinux_glibc_looney_tunables() {
    let Some(dir) = real_dir() else { return };
    let path = dir.join("almalinux/almalinux9/ALSA-2023:5453.json");
    let parsed = osv::parse("f", &std::fs::read(path).expect("readable")).expect("parses");
    let patch = &parsed.records[0];
    assert_eq!(patch.id, "ALSA-2023:5453");
    assert_eq!(
        patch.title.as_deref(),
        Some("Important: glibc security update")
    );
    assert_eq!(patch.vendor, "AlmaLinux");
    assert_eq!(patch.product.as_deref(), Some("AlmaLinux 9"));
    assert_eq!(patch.classification, Classification::Security);
    assert_eq!(patch.vendor_severity, Some(Severity::High));
    assert_eq!(patch.cvss_score, None);
    assert_eq!(
        cve_ids(patch),
        [
            "CVE-2023-4527",
            "CVE-2023-4806",
            "CVE-2023-4813",
            "CVE-2023-4911"
        ]
    );
    assert_eq!(patch.released_at.to_string(), "2023-10-05T00:00:00Z");
    assert!(patch.reboot_required);
    assert_eq!(patch.packages.len(), 215);
    let glibc = patch
        .packages
        .iter()
        .find(|p| p.name == "glibc")
        .expect("glibc");
    assert_eq!(
        glibc,
        &pkg(
            "AlmaLinux:9",
            "glibc",
            PackageKind::Binary,
            "2.34-60.el9_2.7",
            &[]
        )
    );
    assert!(patch.packages.iter().all(|p| p.fixed == "2.34-60.el9_2.7"));
}

#[test]
fn real_ubuntu_squid() {
    let Some(dir) = real_dir() else { return };
    let path = dir.join("ubuntu/USN-6500-1.json");
    let parsed = osv::parse("f", &std::fs::read(path).expect("readable")).expect("parses");
    assert_eq!(parsed.skipped, vec![]);
    let patch = &parsed.records[0];
    assert_eq!(patch.id, "USN-6500-1");
    assert_eq!(patch.title.as_deref(), Some("squid vulnerabilities"));
    assert_eq!(patch.vendor, "Ubuntu");
    assert_eq!(
        patch.product.as_deref(),
        Some("Ubuntu 20.04 LTS, Ubuntu 22.04 LTS")
    );
    assert_eq!(patch.vendor_severity, Some(Severity::Medium));
    assert!(!patch.reboot_required);
    assert_eq!(patch.released_at.to_string(), "2023-11-21T15:42:49Z");
    let dos = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H";
    assert_eq!(
        patch.cves,
        vec![
            cve(
                "CVE-2023-46724",
                Some((8.6, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:N/I:N/A:H"))
            ),
            cve("CVE-2023-46728", Some((7.5, dos))),
            cve(
                "CVE-2023-46846",
                Some((9.3, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:L/A:N"))
            ),
            cve(
                "CVE-2023-46847",
                Some((8.6, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:H"))
            ),
            cve(
                "CVE-2023-46848",
                Some((8.6, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:N/I:N/A:H"))
            ),
        ]
    );
    assert_eq!(patch.cvss_score, Some(9.3));
    let focal = &patch.packages[0];
    assert_eq!(
        focal,
        &pkg(
            "Ubuntu:20.04:LTS",
            "squid",
            PackageKind::Source,
            "4.10-1ubuntu1.8",
            &[
                "squid",
                "squid-cgi",
                "squid-common",
                "squid-purge",
                "squidclient"
            ]
        )
    );
    assert_eq!(patch.packages.len(), 2);
    assert_eq!(patch.packages[1].fixed, "5.7-0ubuntu0.22.04.2");
    assert!(
        patch.packages[1]
            .binaries
            .contains(&"squid-openssl".to_string())
    );
}

#[test]
fn real_debian_nginx_old_format() {
    let Some(dir) = real_dir() else { return };
    let path = dir.join("debian/DSA-3029-1.json");
    let parsed = osv::parse("f", &std::fs::read(path).expect("readable")).expect("parses");
    let patch = &parsed.records[0];
    assert_eq!(patch.id, "DSA-3029-1");
    assert_eq!(patch.title.as_deref(), Some("nginx - security update"));
    assert_eq!(patch.vendor, "Debian");
    assert_eq!(patch.product.as_deref(), Some("Debian 7"));
    assert_eq!(patch.classification, Classification::Security);
    assert_eq!(patch.cves, vec![cve("CVE-2014-3616", None)]);
    assert_eq!(patch.vendor_severity, None);
    assert_eq!(patch.released_at.to_string(), "2014-09-20T00:00:00Z");
    assert_eq!(
        patch.packages,
        vec![pkg(
            "Debian:7",
            "nginx",
            PackageKind::Source,
            "1.2.1-2.2+wheezy3",
            &[]
        )]
    );
}

#[test]
fn real_debian_advisory_with_nothing_to_install_is_skipped() {
    let Some(dir) = real_dir() else { return };
    let path = dir.join("debian/DLA-3623-1.json");
    let parsed =
        osv::parse("DLA-3623-1.json", &std::fs::read(path).expect("readable")).expect("parses");
    assert_eq!(parsed.records, vec![]);
    assert_eq!(
        parsed.skipped,
        vec![Skipped {
            file: "DLA-3623-1.json".into(),
            at: "record 1".into(),
            id: Some("DLA-3623-1".into()),
            problem: Problem::Empty("no affected packages".into()),
        }]
    );
}

#[test]
fn real_module_streams_keep_each_fixed_version() {
    let Some(dir) = real_dir() else { return };
    let path = dir.join("almalinux/almalinux8/ALBA-2019:0973.json");
    let parsed = osv::parse("f", &std::fs::read(path).expect("readable")).expect("parses");
    let patch = &parsed.records[0];
    assert_eq!(patch.classification, Classification::Other);
    assert_eq!(patch.cves, vec![]);
    assert_eq!(patch.vendor_severity, None);
    let umount: Vec<&str> = patch
        .packages
        .iter()
        .filter(|p| p.name == "oci-umount")
        .map(|p| p.fixed.as_str())
        .collect();
    assert_eq!(
        umount,
        [
            "2:2.3.4-2.git87f9237.module_el8.3.0+2044+12421f43",
            "2:2.3.4-2.git87f9237.module_el8.4.0+2496+12421f43",
            "2:2.3.4-2.git87f9237.module_el8.5.0+119+9a9ec082",
        ]
    );
    assert_eq!(patch.packages.len(), 6);
}

#[test]
fn real_epochs_and_duplicate_cves() {
    let Some(dir) = real_dir() else { return };
    let all = real_parsed(&dir);
    let cups = find(&all.records, "ALSA-2025:15701");
    assert_eq!(cups.product.as_deref(), Some("AlmaLinux 10"));
    assert!(
        cups.packages
            .iter()
            .any(|p| p.name == "cups-filesystem" && p.fixed == "1:2.4.10-11.el10_0.1"),
        "{:?}",
        cups.packages
    );
    let openssh = find(&all.records, "USN-6859-1");
    let fixed: Vec<&str> = openssh.packages.iter().map(|p| p.fixed.as_str()).collect();
    assert_eq!(fixed, ["1:8.9p1-3ubuntu0.10", "1:9.6p1-3ubuntu13.3"]);
    let curl = find(&all.records, "ALSA-2021:4511");
    assert_eq!(
        cve_ids(curl),
        ["CVE-2021-22876", "CVE-2021-22898", "CVE-2021-22925"]
    );
    assert_eq!(curl.vendor_severity, Some(Severity::Medium));
    let libxml = find(&all.records, "ALSA-2025:13429");
    assert_eq!(cve_ids(libxml), ["CVE-2025-32414", "CVE-2025-32415"]);
    let enscript = find(&all.records, "ALEA-2019:3420");
    assert_eq!(enscript.classification, Classification::Feature);
    let qatzip = find(&all.records, "ALBA-2022:8256");
    assert_eq!(qatzip.classification, Classification::Other);
    assert_eq!(qatzip.vendor_severity, Some(Severity::High));
    let java = find(&all.records, "ALSA-2025:10873");
    assert_eq!(
        java.product.as_deref(),
        Some("AlmaLinux 8, AlmaLinux 9, AlmaLinux 10")
    );
    for kernel in [
        "ALSA-2022:0825",
        "ALSA-2024:1607",
        "ALSA-2024:4583",
        "ALSA-2026:A009",
    ] {
        assert!(find(&all.records, kernel).reboot_required, "{kernel}");
    }
    for id in ["USN-6500-1", "ALSA-2024:4312", "ALSA-2023:5712"] {
        assert!(!find(&all.records, id).reboot_required, "{id}");
    }
}

#[test]
fn real_advisory_in_two_release_folders_merges_into_one() {
    let Some(dir) = real_dir() else { return };
    let all = real_parsed(&dir);
    let copies = all
        .records
        .iter()
        .filter(|p| p.id == "ALSA-2024:8127")
        .count();
    assert_eq!(copies, 2);
    let merged = osv::merge(all.records.clone());
    let once: Vec<&PatchSpec> = merged.iter().filter(|p| p.id == "ALSA-2024:8127").collect();
    assert_eq!(once.len(), 1);
    assert_eq!(once[0], find(&all.records, "ALSA-2024:8127"));
    assert_eq!(once[0].product.as_deref(), Some("AlmaLinux 8, AlmaLinux 9"));
    let mut ids: Vec<&str> = merged.iter().map(|p| p.id.as_str()).collect();
    let sorted = ids.clone();
    ids.dedup();
    assert_eq!(ids, sorted);
}

#[test]
fn real_files_in_a_zip_give_what_the_files_give() {
    let Some(dir) = real_dir() else { return };
    let files = json_files(&dir);
    let contents: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|p| {
            let name = p
                .strip_prefix(&dir)
                .expect("under dir")
                .display()
                .to_string();
            (name, std::fs::read(p).expect("readable"))
        })
        .collect();
    let members: Vec<(&str, &[u8])> = contents
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let parsed = osv::parse_zip("all.zip", &zip_of(&members)).expect("a zip");
    let mut expected = real_parsed(&dir).records;
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(parsed.records, expected);
    assert_eq!(parsed.skipped.len(), 3);
}

/// How long parsing about 30,000 real records takes (run with `--ignored --nocapture`
/// in release); not asserted.
#[test]
#[ignore]
fn timing_of_thirty_thousand_records() {
    let Some(dir) = real_dir() else { return };
    let files: Vec<Vec<u8>> = json_files(&dir)
        .iter()
        .map(|p| std::fs::read(p).expect("readable"))
        .collect();
    let bytes: usize = files.iter().map(Vec::len).sum();
    let rounds = 30_000usize.div_ceil(files.len());
    let start = std::time::Instant::now();
    let mut records = 0;
    for _ in 0..rounds {
        for file in &files {
            records += osv::parse("f", file).expect("parses").records.len();
        }
    }
    let elapsed = start.elapsed();
    eprintln!(
        "parse: {} documents ({} records, {} MB) in {elapsed:?}",
        rounds * files.len(),
        records,
        rounds * bytes / 1_000_000
    );
    let names: Vec<String> = (0..rounds * files.len())
        .map(|i| format!("R-{i}.json"))
        .collect();
    let members: Vec<(&str, &[u8])> = names
        .iter()
        .zip(files.iter().cycle())
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let zipped = zip_of(&members);
    let start = std::time::Instant::now();
    let parsed = osv::parse_zip("all.zip", &zipped).expect("a zip");
    eprintln!(
        "parse_zip: {} members ({} records, {} MB zipped) in {:?}",
        members.len(),
        parsed.records.len(),
        zipped.len() / 1_000_000,
        start.elapsed()
    );
}
