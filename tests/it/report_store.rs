//! The packet store end to end: a directory store on disk, and an S3 store against a real
//! S3-compatible server (`moto_server`, from PyPI's `moto[server]`).
//!
//! The S3 test is ignored by default, since it needs the server; run it with
//! `RINGMASTER_S3_TEST=1 cargo test --test it report_store -- --ignored`. It starts
//! `moto_server` on a free loopback port itself, or uses the server at
//! `RINGMASTER_S3_ENDPOINT` (credentials from `AWS_ACCESS_KEY_ID` and
//! `AWS_SECRET_ACCESS_KEY`, the bucket `RINGMASTER_S3_BUCKET` if set, else one it creates
//! with an unsigned `PUT /bucket`, which moto accepts).

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{ObjectStoreExt, PutPayload};
use ringmaster::report::inputs::Inputs;
use ringmaster::report::keys;
use ringmaster::report::month::Month;
use ringmaster::report::packet::{
    Packet, SIG, SUMS, Sealed, SignatureCheck, VerifyError, read_dir_files, verify,
};
use ringmaster::report::store::{Put, Store, StoreError, read_location, read_location_with_env};

use crate::agent_sh::TempDir;

fn inputs(month: &str) -> Inputs {
    Inputs::for_month(
        "acme",
        &Month::parse(month, "America/New_York").expect("month"),
        vec![],
    )
}

/// A packet like the renderers' output, with a subdirectory; `title` makes packets of
/// the same month differ.
fn sealed(month: &str, title: &str, key: Option<&SigningKey>) -> Sealed {
    let files: BTreeMap<String, Vec<u8>> = [
        (
            "report.html".to_string(),
            format!("<!doctype html><title>{title}</title>\n"),
        ),
        ("report.md".to_string(), format!("# {title}\n")),
        (
            "report.json".to_string(),
            format!("{{\"month\":\"{month}\"}}\n"),
        ),
        (
            "csv/pairs.csv".to_string(),
            "device,patch,installed\nws-1,KB5032189,2023-11-16\n".to_string(),
        ),
        (
            "csv/exceptions.csv".to_string(),
            "exception,owner\n".to_string(),
        ),
    ]
    .into_iter()
    .map(|(p, b)| (p, b.into_bytes()))
    .collect();
    Packet::new(files)
        .expect("packet")
        .seal(&inputs(month), key)
}

/// A fresh key, as `ringmaster report keygen` makes one.
fn new_key() -> SigningKey {
    keys::generate().expect("a key")
}

fn dir_store(tmp: &TempDir) -> Store {
    let spec = tmp.0.to_str().expect("a UTF-8 temp dir").to_string();
    let store = Store::parse(&spec).expect("a directory store");
    assert!(matches!(store, Store::Dir(_)), "{store:?}");
    store
}

#[tokio::test]
async fn dir_store_creates_keeps_and_never_overwrites() {
    let tmp = TempDir::new("store-dir");
    let store = dir_store(&tmp);
    let key = new_key();
    let first = sealed("2023-11", "acme, November 2023", Some(&key));

    let put = store.put("acme", "2023-11", &first).await.expect("put");
    assert_eq!(put, Put::Created);
    let location = store.location("acme", "2023-11");
    assert_eq!(Path::new(&location), tmp.0.join("acme/2023-11"));
    assert_eq!(
        store.put("acme", "2023-11", &first).await.expect("again"),
        Put::Unchanged
    );

    let other = sealed("2023-11", "acme, November 2023, rebuilt", None);
    assert_ne!(other.digest(), first.digest());
    match store.put("acme", "2023-11", &other).await.expect("other") {
        Put::Existing(files) => assert_eq!(&files, first.files(), "the stored packet"),
        put => panic!("expected the existing packet, got {put:?}"),
    }
    assert_eq!(
        &read_dir_files(Path::new(&location)).expect("on disk"),
        first.files(),
        "nothing was overwritten"
    );

    for location in [location.clone(), format!("file://{location}")] {
        let files = read_location(&location).await.expect("read back");
        assert_eq!(&files, first.files(), "{location}");
        let v =
            verify(&files, Some(&key.verifying_key()), Some(&first.digest())).expect("verifies");
        assert_eq!(v.signature, SignatureCheck::Good);
    }
}

#[tokio::test]
async fn dir_store_refuses_a_half_written_directory() {
    let tmp = TempDir::new("store-half");
    let store = dir_store(&tmp);
    let dir = tmp.0.join("acme/2023-11");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("report.md"), "# half\n").expect("file");
    let packet = sealed("2023-11", "acme", None);
    match store.put("acme", "2023-11", &packet).await {
        Err(StoreError::NotAPacket { dir: named }) => assert_eq!(named, dir),
        other => panic!("expected NotAPacket, got {other:?}"),
    }
    let left = read_dir_files(&dir).expect("read");
    assert_eq!(left.keys().collect::<Vec<_>>(), ["report.md"], "untouched");
}

#[tokio::test]
async fn dir_store_validates_namespace_and_month_before_touching_disk() {
    let tmp = TempDir::new("store-bad");
    let store = dir_store(&tmp);
    let packet = sealed("2023-11", "acme", None);
    for (ns, month) in [("..", "2023-11"), ("acme", "../../x"), ("a/b", "2023-11")] {
        let err = store.put(ns, month, &packet).await.expect_err("refused");
        assert!(
            matches!(
                err,
                StoreError::BadNamespace { .. } | StoreError::BadMonth { .. }
            ),
            "{ns} {month}: {err:?}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&tmp.0).expect("tmp").count(),
        0,
        "nothing written"
    );
}

#[tokio::test]
async fn reading_a_directory_with_a_non_utf8_name_is_an_error_naming_it() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = TempDir::new("store-odd");
    let odd = tmp.0.join(std::ffi::OsStr::from_bytes(b"r\xffport.md"));
    std::fs::write(&odd, "x").expect("odd file");
    match read_location(tmp.0.to_str().expect("utf-8")).await {
        Err(StoreError::Io { path, .. }) => assert_eq!(path, odd),
        other => panic!("expected an Io error, got {other:?}"),
    }
    match read_location(tmp.0.join("nothing").to_str().expect("utf-8")).await {
        Err(StoreError::Io { path, source }) => {
            assert_eq!(path, tmp.0.join("nothing"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected an Io error, got {other:?}"),
    }
}

/// A `moto_server` this test started, stopped when dropped.
pub(crate) struct MotoServer {
    child: Child,
}

impl MotoServer {
    /// Starts `moto_server` on a free loopback port and waits until it answers; returns
    /// it and its endpoint.
    pub(crate) fn start() -> (MotoServer, String) {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting moto_server (pip install 'moto[server]'), or set RINGMASTER_S3_ENDPOINT: {e}")
            });
        let mut server = MotoServer { child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("moto_server exited before it answered: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        (server, format!("http://127.0.0.1:{port}"))
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Looks `name` up in the test's S3 settings.
fn lookup(vars: &[(&'static str, String)], name: &str) -> Option<String> {
    vars.iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.clone())
}

/// A client of the bucket besides the store's, to tamper with it.
fn raw_client(endpoint: &str, bucket: &str, vars: &[(&'static str, String)]) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id(lookup(vars, "AWS_ACCESS_KEY_ID").expect("key id"))
        .with_secret_access_key(lookup(vars, "AWS_SECRET_ACCESS_KEY").expect("secret"))
        .build()
        .expect("an S3 client")
}

/// Against a real S3-compatible server: Created, Unchanged, Existing (nothing
/// overwritten), read back and verified with and without a signature, an added object
/// caught by verify, and an upload cut short before its SHA256SUMS finished by put.
/// Run: `RINGMASTER_S3_TEST=1 cargo test --test it report_store -- --ignored`.
#[tokio::test]
#[ignore = "needs an S3 server: RINGMASTER_S3_TEST=1 cargo test --test it report_store -- --ignored"]
async fn s3_store_against_a_real_server() {
    if std::env::var("RINGMASTER_S3_TEST").as_deref() != Ok("1") {
        eprintln!("skipped: set RINGMASTER_S3_TEST=1 to run the S3 store test");
        return;
    }
    let (_server, endpoint) = match std::env::var("RINGMASTER_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => (None, endpoint),
        _ => {
            let (server, endpoint) = MotoServer::start();
            (Some(server), endpoint)
        }
    };
    let from_env = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string())
    };
    let vars = vec![
        ("AWS_ENDPOINT_URL", endpoint.clone()),
        (
            "AWS_ACCESS_KEY_ID",
            from_env("AWS_ACCESS_KEY_ID", "testing"),
        ),
        (
            "AWS_SECRET_ACCESS_KEY",
            from_env("AWS_SECRET_ACCESS_KEY", "testing"),
        ),
        ("AWS_REGION", from_env("AWS_REGION", "us-east-1")),
    ];
    let env = |name: &str| lookup(&vars, name);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let bucket = match std::env::var("RINGMASTER_S3_BUCKET") {
        Ok(bucket) if !bucket.is_empty() => bucket,
        _ => {
            let bucket = format!("ringmaster-test-{nanos:x}");
            let created = reqwest::Client::new()
                .put(format!("{endpoint}/{bucket}"))
                .send()
                .await
                .expect("PUT /bucket");
            assert!(
                created.status().is_success(),
                "creating bucket {bucket}: {}",
                created.status()
            );
            bucket
        }
    };
    let prefix = format!("runs/{nanos:x}");
    let store = Store::parse_with_env(&format!("s3://{bucket}/{prefix}/"), env).expect("S3 store");
    let raw = raw_client(&endpoint, &bucket, &vars);

    // Created, Unchanged, then Existing for another packet, with nothing overwritten.
    let key = new_key();
    let first = sealed("2023-11", "acme, November 2023", Some(&key));
    let location = store.location("acme", "2023-11");
    assert_eq!(location, format!("s3://{bucket}/{prefix}/acme/2023-11"));
    assert_eq!(
        store.put("acme", "2023-11", &first).await.expect("put"),
        Put::Created
    );
    assert_eq!(
        store.put("acme", "2023-11", &first).await.expect("again"),
        Put::Unchanged
    );
    let other = sealed("2023-11", "acme, November 2023, rebuilt", None);
    match store.put("acme", "2023-11", &other).await.expect("other") {
        Put::Existing(files) => assert_eq!(&files, first.files(), "the stored packet"),
        put => panic!("expected the existing packet, got {put:?}"),
    }

    // Read back, it is the first packet, and verifies with its key and digest.
    let files = read_location_with_env(&location, env)
        .await
        .expect("read back");
    assert_eq!(
        &files,
        first.files(),
        "the first packet's bytes are still there"
    );
    let v = verify(&files, Some(&key.verifying_key()), Some(&first.digest())).expect("verifies");
    assert_eq!(v.signature, SignatureCheck::Good);
    assert_eq!(v.files, 6);

    // Content types, as stored.
    for (rel, want) in [
        ("report.html", "text/html; charset=utf-8"),
        ("report.json", "application/json"),
        ("csv/pairs.csv", "text/csv; charset=utf-8"),
        ("report.md", "text/markdown; charset=utf-8"),
        (SUMS, "text/plain; charset=utf-8"),
        (SIG, "application/octet-stream"),
    ] {
        let k = Key::parse(format!("{prefix}/acme/2023-11/{rel}")).expect("key");
        let got = raw.get(&k).await.expect("get");
        let content_type = got
            .attributes
            .get(&object_store::Attribute::ContentType)
            .map(|v| v.to_string());
        assert_eq!(content_type.as_deref(), Some(want), "{rel}");
    }

    // An unsigned packet: verifies without a key, and a key finds no signature.
    let unsigned = sealed("2023-12", "acme, December 2023", None);
    assert_eq!(
        store.put("acme", "2023-12", &unsigned).await.expect("put"),
        Put::Created
    );
    let files = read_location_with_env(&store.location("acme", "2023-12"), env)
        .await
        .expect("read back");
    assert_eq!(&files, unsigned.files());
    let v = verify(&files, None, Some(&unsigned.digest())).expect("verifies");
    assert_eq!(v.signature, SignatureCheck::Absent);
    assert!(matches!(
        &verify(&files, Some(&key.verifying_key()), None).expect_err("no signature")[..],
        [VerifyError::NoSignature]
    ));

    // An object added under the month's prefix is read, and verify names it.
    let added = Key::parse(format!("{prefix}/acme/2023-11/notes/extra.txt")).expect("key");
    raw.put(&added, PutPayload::from_static(b"slipped in\n"))
        .await
        .expect("put an extra object");
    let files = read_location_with_env(&location, env)
        .await
        .expect("read back");
    let errors = verify(&files, Some(&key.verifying_key()), Some(&first.digest()))
        .expect_err("an added file");
    assert!(
        matches!(&errors[..], [VerifyError::Added { path }] if path == "notes/extra.txt"),
        "{errors:?}"
    );

    // An upload cut short (files, some stale, no SHA256SUMS) is finished by put.
    let cut = sealed("2024-01", "acme, January 2024", Some(&key));
    for (rel, bytes) in [
        (
            "report.html",
            b"<!doctype html><title>older render</title>\n".to_vec(),
        ),
        ("csv/stale.csv", b"a,b\n".to_vec()),
        ("report.md", cut.files()["report.md"].clone()),
    ] {
        let k = Key::parse(format!("{prefix}/acme/2024-01/{rel}")).expect("key");
        raw.put(&k, PutPayload::from(bytes))
            .await
            .expect("partial upload");
    }
    let location = store.location("acme", "2024-01");
    let half = read_location_with_env(&location, env).await.expect("half");
    assert!(verify(&half, None, None).is_err(), "no SHA256SUMS yet");
    assert_eq!(
        store.put("acme", "2024-01", &cut).await.expect("finish"),
        Put::Created
    );
    let files = read_location_with_env(&location, env)
        .await
        .expect("read back");
    assert_eq!(&files, cut.files(), "the stale object is gone");
    verify(&files, Some(&key.verifying_key()), Some(&cut.digest())).expect("verifies");
    assert_eq!(
        store.put("acme", "2024-01", &cut).await.expect("again"),
        Put::Unchanged
    );

    // Nothing stored at a month is said so; a request that fails names bucket and key.
    match read_location_with_env(&store.location("acme", "2022-01"), env).await {
        Err(StoreError::NotFound { location }) => {
            assert_eq!(location, format!("s3://{bucket}/{prefix}/acme/2022-01"))
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    let missing = Store::parse_with_env("s3://no-such-bucket-ringmaster", env).expect("store");
    match missing.put("acme", "2023-11", &first).await {
        Err(e @ StoreError::S3 { .. }) => {
            let message = e.to_string();
            assert!(
                message.starts_with("S3 list s3://no-such-bucket-ringmaster/acme/2023-11/ failed"),
                "{message}"
            );
        }
        other => panic!("expected an S3 error, got {other:?}"),
    }
}
