//! Where the operator keeps closed months' packets: a directory (the Helm chart's volume,
//! the default) or an S3-compatible bucket.
//!
//! A store holds one packet per tenant and month, at `<root>/<namespace>/<YYYY-MM>/`, and
//! never overwrites one: a closed month never changes. [`Store::put`] writes a packet
//! where there is none, says so when the very same packet is there, and hands back the
//! files of another complete packet without writing anything (the caller verifies and
//! adopts it). [`read_location`] reads a stored packet back as files for
//! [`packet::verify`](super::packet::verify), from the location [`Store::location`] gives.
//!
//! In a bucket, a packet is complete once its `SHA256SUMS` is there: every other file is
//! uploaded first, then `SHA256SUMS.sig`, then `SHA256SUMS`. A month's objects without a
//! `SHA256SUMS` are an upload that was cut short, which the next [`Store::put`] finishes.
//! A directory is written whole by [`write_dir`] (staged, then renamed into place).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};

use super::packet::{
    SIG, SUMS, Sealed, VerifyError, WriteError, Written, read_dir_files, write_dir,
};

/// How many objects are uploaded or fetched at once.
const CONCURRENCY: usize = 8;

/// Where packets are kept.
#[derive(Clone, Debug)]
pub enum Store {
    /// A directory on a local file system (a volume), by absolute path.
    Dir(PathBuf),
    /// A bucket (and key prefix) of an S3-compatible object store.
    S3(S3Store),
}

/// A bucket of an S3-compatible store, an optional key prefix inside it, and the client
/// that reaches it.
#[derive(Clone, Debug)]
pub struct S3Store {
    bucket: String,
    prefix: String,
    endpoint: Option<String>,
    region: String,
    client: Arc<AmazonS3>,
}

/// What [`Store::put`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Put {
    /// The packet was written where there was none (or, in a bucket, where an upload had
    /// been cut short before its `SHA256SUMS`).
    Created,
    /// Exactly this packet was already there; nothing was written.
    Unchanged,
    /// Another complete packet (one with a `SHA256SUMS`) is there: nothing was written,
    /// and these are its files (relative path → bytes), for the caller to verify.
    Existing(BTreeMap<String, Vec<u8>>),
}

/// Why a store cannot be used, or a packet not stored or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store's spec is not one.
    #[error(
        "{spec:?} is not a packet store ({why}); give /abs/path, file:///abs/path, s3://bucket or s3://bucket/prefix"
    )]
    BadSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        why: String,
    },
    /// A location to read is not one.
    #[error("{location:?} is not a packet location: {why}")]
    BadLocation {
        /// The location as given.
        location: String,
        /// What is wrong with it.
        why: String,
    },
    /// The namespace is not a DNS label, so it cannot name a packet's place.
    #[error("{namespace:?} is not a namespace: {why}")]
    BadNamespace {
        /// The namespace as given.
        namespace: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The month is not `YYYY-MM`.
    #[error("{month:?} is not a month: {why}")]
    BadMonth {
        /// The month as given.
        month: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A directory holds files but no `SHA256SUMS`: not a complete packet, and a directory
    /// store overwrites nothing.
    #[error(
        "{dir} holds files but no SHA256SUMS: it is not a complete packet, and nothing is written over it; move it away to let the packet be written"
    )]
    NotAPacket {
        /// The packet's directory.
        dir: PathBuf,
    },
    /// The packet's path exists and is not a directory.
    #[error("{dir} exists and is not a directory; nothing was written")]
    NotADirectory {
        /// The packet's directory.
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
    /// A request to the object store failed.
    #[error("S3 {operation} s3://{bucket}/{key} failed: {source}")]
    S3 {
        /// What was asked: `list`, `get`, `put` or `delete`.
        operation: &'static str,
        /// The bucket.
        bucket: String,
        /// The key (or, for `list`, the prefix).
        key: String,
        /// What the client said.
        source: Box<object_store::Error>,
    },
    /// A location holds no object at all.
    #[error("nothing is stored at {location}")]
    NotFound {
        /// The location.
        location: String,
    },
}

/// How a request is retried: a few times within half a minute, so that a store that is
/// down fails a close in seconds (the operator retries it with backoff and says so on
/// the report) rather than after object_store's default three minutes.
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(30),
        ..object_store::RetryConfig::default()
    }
}

/// A variable of the process environment (the store treats an empty value as unset).
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Store {
    /// `"/abs/path"` or `"file:///abs/path"` → [`Store::Dir`]; `"s3://bucket"` or
    /// `"s3://bucket/some/prefix"` → [`Store::S3`]. For S3 the endpoint comes from
    /// `AWS_ENDPOINT_URL` (else AWS's own), the region from `AWS_REGION`, else
    /// `AWS_DEFAULT_REGION`, else `us-east-1`, and credentials from `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, or whatever else object_store's
    /// builder reads from the environment (a web identity token file and role, as IRSA
    /// sets them; container credentials; the instance's). With an endpoint, requests are
    /// path-style (`<endpoint>/<bucket>/<key>`); plain http is allowed only when the
    /// endpoint is an `http://` URL.
    pub fn parse(spec: &str) -> Result<Store, StoreError> {
        Store::parse_with_env(spec, process_env)
    }

    /// [`Store::parse`], with the `AWS_*` variables above looked up by `env` instead of in
    /// the process environment (object_store's builder still reads the process's for the
    /// rest).
    pub fn parse_with_env(
        spec: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Store, StoreError> {
        let bad = |why: String| StoreError::BadSpec {
            spec: spec.to_string(),
            why,
        };
        if let Some(rest) = spec.strip_prefix("s3://") {
            let (bucket, prefix) = parse_s3(rest).map_err(bad)?;
            return Ok(Store::S3(S3Store::new(bucket, prefix, &env).map_err(bad)?));
        }
        let path = local_path(spec).map_err(bad)?;
        if !path.starts_with('/') {
            return Err(bad("a directory store's path must be absolute".into()));
        }
        if path.chars().any(char::is_control) {
            return Err(bad("control character in the path".into()));
        }
        let trimmed = path.trim_end_matches('/');
        Ok(Store::Dir(PathBuf::from(if trimmed.is_empty() {
            "/"
        } else {
            trimmed
        })))
    }

    /// Where a tenant's month is kept: `<dir>/<namespace>/<YYYY-MM>`, or
    /// `s3://bucket[/prefix]/<namespace>/<YYYY-MM>`: a string a person can give to
    /// [`read_location`] (and `ringmaster report verify`). It only formats: [`Store::put`]
    /// and [`check_place`] are what validate the namespace and month.
    pub fn location(&self, namespace: &str, month: &str) -> String {
        match self {
            Store::Dir(dir) => dir.join(namespace).join(month).display().to_string(),
            Store::S3(s3) => format!("s3://{}/{}", s3.bucket, s3.month_key(namespace, month)),
        }
    }

    /// Stores `sealed` at [`Store::location`]`(namespace, month)`, never over another
    /// packet: where there is nothing, writes it ([`Put::Created`]); where exactly this
    /// packet is, writes nothing ([`Put::Unchanged`]); where another complete packet (one
    /// with a `SHA256SUMS`) is, writes nothing and returns its files ([`Put::Existing`]).
    /// Files without a `SHA256SUMS` are not a packet: in a bucket they are an upload cut
    /// short, which is finished (objects the packet does not have are deleted, then the
    /// packet is uploaded, `SHA256SUMS` last); in a directory they are
    /// [`StoreError::NotAPacket`], and nothing is written.
    pub async fn put(
        &self,
        namespace: &str,
        month: &str,
        sealed: &Sealed,
    ) -> Result<Put, StoreError> {
        check_place(namespace, month)?;
        match self {
            Store::Dir(root) => {
                let dir = root.join(namespace).join(month);
                let sealed = sealed.clone();
                let what = dir.clone();
                tokio::task::spawn_blocking(move || put_dir(&dir, &sealed))
                    .await
                    .map_err(|e| StoreError::Io {
                        path: what,
                        source: std::io::Error::other(e.to_string()),
                    })?
            }
            Store::S3(s3) => s3.put(namespace, month, sealed).await,
        }
    }
}

impl fmt::Display for Store {
    /// The store as a spec [`Store::parse`] reads: the directory, or `s3://bucket[/prefix]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Store::Dir(dir) => write!(f, "{}", dir.display()),
            Store::S3(s3) => write!(f, "{}", s3.url()),
        }
    }
}

/// Checks that `namespace` is a DNS label (what Kubernetes allows a namespace to be) and
/// `month` is `YYYY-MM`, so that neither can lead a path or key out of its store.
pub fn check_place(namespace: &str, month: &str) -> Result<(), StoreError> {
    if let Some(why) = namespace_problem(namespace) {
        return Err(StoreError::BadNamespace {
            namespace: namespace.to_string(),
            why,
        });
    }
    if let Some(why) = month_problem(month) {
        return Err(StoreError::BadMonth {
            month: month.to_string(),
            why,
        });
    }
    Ok(())
}

/// What keeps `ns` from being an RFC 1123 DNS label, if anything.
fn namespace_problem(ns: &str) -> Option<&'static str> {
    if ns.is_empty() {
        return Some("empty");
    }
    if ns.len() > 63 {
        return Some("longer than 63 characters");
    }
    if !ns
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Some("only lowercase letters, digits and '-' are allowed");
    }
    if ns.starts_with('-') || ns.ends_with('-') {
        return Some("it must start and end with a letter or digit");
    }
    None
}

/// What keeps `month` from being `YYYY-MM` (months 01 to 12), if anything.
fn month_problem(month: &str) -> Option<&'static str> {
    let b = month.as_bytes();
    let shape =
        b.len() == 7 && b[4] == b'-' && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit);
    if !shape {
        return Some("expected YYYY-MM");
    }
    if !matches!(
        &month[5..],
        "01" | "02" | "03" | "04" | "05" | "06" | "07" | "08" | "09" | "10" | "11" | "12"
    ) {
        return Some("the month must be 01 to 12");
    }
    None
}

/// The path of a `file://` URL (what follows `file://`): `/abs/path`, with no host and
/// nothing to decode.
fn file_url_path(rest: &str) -> Result<&str, String> {
    if !rest.starts_with('/') {
        return Err("a file URL is file:///absolute/path (no host)".into());
    }
    if rest.contains(['%', '?', '#']) {
        return Err("a file URL here has no percent-encoding, query or fragment".into());
    }
    Ok(rest)
}

/// The bucket and key prefix of what follows `s3://`: `bucket` or `bucket/some/prefix`
/// (a trailing `/` is dropped).
fn parse_s3(rest: &str) -> Result<(String, String), String> {
    if rest.contains(['?', '#']) {
        return Err("an s3:// URL here has no query or fragment".into());
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if let Some(why) = bucket_problem(bucket) {
        return Err(format!("bucket {bucket:?}: {why}"));
    }
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    if !prefix.is_empty() {
        for part in prefix.split('/') {
            let why = if part.is_empty() {
                Some("empty path segment")
            } else if part == "." || part == ".." {
                Some("`.` or `..` path segment")
            } else if part.chars().any(char::is_control) {
                Some("control character")
            } else if part.contains('\\') {
                Some("backslash")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(format!("key prefix {prefix:?}: {why}"));
            }
        }
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// What keeps `b` from being an S3 bucket name, if anything.
fn bucket_problem(b: &str) -> Option<&'static str> {
    if b.is_empty() {
        return Some("no bucket named");
    }
    if !(3..=63).contains(&b.len()) {
        return Some("a bucket name has 3 to 63 characters");
    }
    if !b
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
    {
        return Some("only lowercase letters, digits, '.' and '-' are allowed");
    }
    let alnum = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(b.bytes().next()) || !alnum(b.bytes().last()) {
        return Some("it must start and end with a letter or digit");
    }
    if b.contains("..") {
        return Some("two dots in a row");
    }
    None
}

/// Writes a packet directory; another packet there is read back, files without a
/// `SHA256SUMS` are an error.
fn put_dir(dir: &Path, sealed: &Sealed) -> Result<Put, StoreError> {
    match write_dir(dir, sealed) {
        Ok(Written::Created) => Ok(Put::Created),
        Ok(Written::Unchanged) => Ok(Put::Unchanged),
        Err(WriteError::NotThisPacket { dir }) => {
            let files = read_dir(&dir)?;
            if files.contains_key(SUMS) {
                Ok(Put::Existing(files))
            } else {
                Err(StoreError::NotAPacket { dir })
            }
        }
        Err(WriteError::NotADirectory { dir }) => Err(StoreError::NotADirectory { dir }),
        Err(WriteError::Io { path, source }) => Err(StoreError::Io { path, source }),
    }
}

/// A packet directory's files.
fn read_dir(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, StoreError> {
    read_dir_files(dir).map_err(|e| match e {
        VerifyError::Io { path, source } => StoreError::Io { path, source },
        other => StoreError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    })
}

/// Reads the packet at `location` (a directory path, a `file://` URL or an `s3://` URL,
/// as [`Store::location`] gives) as its files: relative path → bytes. In a bucket every
/// object under `<location>/` is read, so an object added there is seen by
/// [`packet::verify`](super::packet::verify). The S3 client is set up from the
/// environment as in [`Store::parse`].
pub async fn read_location(location: &str) -> Result<BTreeMap<String, Vec<u8>>, StoreError> {
    read_location_with_env(location, process_env).await
}

/// [`read_location`], with the `AWS_*` variables looked up by `env` (as in
/// [`Store::parse_with_env`]).
pub async fn read_location_with_env(
    location: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, Vec<u8>>, StoreError> {
    let bad = |why: String| StoreError::BadLocation {
        location: location.to_string(),
        why,
    };
    if let Some(rest) = location.strip_prefix("s3://") {
        let (bucket, key) = parse_s3(rest).map_err(bad)?;
        if key.is_empty() {
            return Err(bad("no key prefix: a packet is never a whole bucket".into()));
        }
        let s3 = S3Store::new(bucket, String::new(), &env).map_err(bad)?;
        return s3.read(&key).await;
    }
    let dir = PathBuf::from(local_path(location).map_err(bad)?);
    let what = dir.clone();
    tokio::task::spawn_blocking(move || read_dir(&dir))
        .await
        .map_err(|e| StoreError::Io {
            path: what,
            source: std::io::Error::other(e.to_string()),
        })?
}

/// The path of a spec or location that is not `s3://`: a plain path, or a `file://`
/// URL's.
fn local_path(spec: &str) -> Result<&str, String> {
    let path = if let Some(rest) = spec.strip_prefix("file://") {
        file_url_path(rest)?
    } else if spec.contains("://") {
        return Err("the only URL schemes are file:// and s3://".into());
    } else {
        spec
    };
    if path.is_empty() {
        return Err("empty path".into());
    }
    Ok(path)
}

/// The Content-Type a packet file is stored with.
fn content_type(rel: &str) -> &'static str {
    if rel == SUMS {
        return "text/plain; charset=utf-8";
    }
    if rel == SIG {
        return "application/octet-stream";
    }
    let ext = rel.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "html" => "text/html; charset=utf-8",
        "json" => "application/json",
        "csv" => "text/csv; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "css" => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    }
}

impl S3Store {
    /// The client for `bucket`, set up from `env` as [`Store::parse`] says.
    fn new(
        bucket: String,
        prefix: String,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<S3Store, String> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        let endpoint = var("AWS_ENDPOINT_URL").map(|e| e.trim_end_matches('/').to_string());
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_region(&region)
            .with_allow_http(false)
            .with_retry(retry());
        if let Some(endpoint) = &endpoint {
            let http = if endpoint.starts_with("http://") {
                true
            } else if endpoint.starts_with("https://") {
                false
            } else {
                return Err(format!(
                    "AWS_ENDPOINT_URL {endpoint:?} is not an http:// or https:// URL"
                ));
            };
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false)
                .with_allow_http(http);
        }
        if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
            if let Some(token) = var("AWS_SESSION_TOKEN") {
                builder = builder.with_token(token);
            }
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot set up the S3 client: {e}"))?;
        Ok(S3Store {
            bucket,
            prefix,
            endpoint,
            region,
            client: Arc::new(client),
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix every packet is under (no leading or trailing `/`; empty for none).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The endpoint given by `AWS_ENDPOINT_URL`, if any (else AWS's own).
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// `s3://bucket[/prefix]`.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// `[prefix/]namespace/month`: the key every file of the month's packet is under.
    fn month_key(&self, namespace: &str, month: &str) -> String {
        if self.prefix.is_empty() {
            format!("{namespace}/{month}")
        } else {
            format!("{}/{namespace}/{month}", self.prefix)
        }
    }

    /// The key `dir/rel` as object_store takes it.
    fn key(&self, dir: &str, rel: &str) -> Result<Key, StoreError> {
        let key = format!("{dir}/{rel}");
        Key::parse(&key).map_err(|e| self.failed("put", &key, e.into()))
    }

    /// A failed request's error.
    fn failed(&self, operation: &'static str, key: &str, e: object_store::Error) -> StoreError {
        StoreError::S3 {
            operation,
            bucket: self.bucket.clone(),
            key: key.to_string(),
            source: Box::new(e),
        }
    }

    /// Every object under `dir/`, as (path relative to `dir`, key). A key that is `dir`
    /// itself (a "directory" marker) is no file of the packet and is left out.
    async fn list(&self, dir: &str) -> Result<Vec<(String, Key)>, StoreError> {
        let prefix = Key::parse(dir).map_err(|e| self.failed("list", dir, e.into()))?;
        let listed: Vec<_> = self
            .client
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.failed("list", &format!("{dir}/"), e))?;
        let under = format!("{dir}/");
        Ok(listed
            .into_iter()
            .filter_map(|meta| {
                let rel = meta.location.as_ref().strip_prefix(&under)?.to_string();
                Some((rel, meta.location))
            })
            .collect())
    }

    /// The bytes of each listed object, by relative path.
    async fn fetch(
        &self,
        objects: Vec<(String, Key)>,
    ) -> Result<BTreeMap<String, Vec<u8>>, StoreError> {
        let mut files = BTreeMap::new();
        for chunk in objects.chunks(CONCURRENCY) {
            // Collected first: a stream of borrowing futures held across an await makes
            // the caller's future not Send (rust-lang/rust#102211).
            let gets: Vec<_> = chunk.iter().map(|(rel, key)| self.get(rel, key)).collect();
            files.extend(futures::future::try_join_all(gets).await?);
        }
        Ok(files)
    }

    /// One object's bytes, with its relative path.
    async fn get(&self, rel: &str, key: &Key) -> Result<(String, Vec<u8>), StoreError> {
        let got = match self.client.get(key).await {
            Ok(got) => got.bytes().await,
            Err(e) => Err(e),
        };
        got.map(|b| (rel.to_string(), b.to_vec()))
            .map_err(|e| self.failed("get", key.as_ref(), e))
    }

    /// Every object under `dir/`, read; nothing there is [`StoreError::NotFound`].
    async fn read(&self, dir: &str) -> Result<BTreeMap<String, Vec<u8>>, StoreError> {
        let objects = self.list(dir).await?;
        if objects.is_empty() {
            return Err(StoreError::NotFound {
                location: format!("s3://{}/{dir}", self.bucket),
            });
        }
        self.fetch(objects).await
    }

    /// Uploads one file of a packet.
    async fn upload(&self, dir: &str, rel: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let key = self.key(dir, rel)?;
        let opts = PutOptions {
            attributes: Attributes::from_iter([(Attribute::ContentType, content_type(rel))]),
            ..PutOptions::default()
        };
        self.client
            .put_opts(&key, PutPayload::from(bytes.to_vec()), opts)
            .await
            .map(|_| ())
            .map_err(|e| self.failed("put", key.as_ref(), e))
    }

    /// [`Store::put`] for a bucket.
    async fn put(&self, namespace: &str, month: &str, sealed: &Sealed) -> Result<Put, StoreError> {
        let dir = self.month_key(namespace, month);
        let there = self.list(&dir).await?;
        if there.iter().any(|(rel, _)| rel == SUMS) {
            let files = self.fetch(there).await?;
            return Ok(if &files == sealed.files() {
                Put::Unchanged
            } else {
                Put::Existing(files)
            });
        }
        for (rel, key) in there {
            if !sealed.files().contains_key(&rel) {
                self.client
                    .delete(&key)
                    .await
                    .map_err(|e| self.failed("delete", key.as_ref(), e))?;
            }
        }
        let body: Vec<(&String, &Vec<u8>)> = sealed
            .files()
            .iter()
            .filter(|(rel, _)| *rel != SUMS && *rel != SIG)
            .collect();
        for chunk in body.chunks(CONCURRENCY) {
            let puts: Vec<_> = chunk
                .iter()
                .map(|(rel, bytes)| self.upload(&dir, rel, bytes))
                .collect();
            futures::future::try_join_all(puts).await?;
        }
        if let Some(sig) = sealed.signature() {
            self.upload(&dir, SIG, sig).await?;
        }
        self.upload(&dir, SUMS, sealed.sums()).await?;
        Ok(Put::Created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment of the given variables only.
    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn parse(spec: &str) -> Result<Store, StoreError> {
        Store::parse_with_env(spec, env(&[]))
    }

    fn s3(spec: &str, vars: &[(&str, &str)]) -> S3Store {
        match Store::parse_with_env(spec, env(vars)) {
            Ok(Store::S3(s3)) => s3,
            other => panic!("{spec}: {other:?}"),
        }
    }

    fn dir(spec: &str) -> PathBuf {
        match parse(spec) {
            Ok(Store::Dir(d)) => d,
            other => panic!("{spec}: {other:?}"),
        }
    }

    #[test]
    fn directories_parse_from_paths_and_file_urls() {
        assert_eq!(dir("/var/lib/packets"), Path::new("/var/lib/packets"));
        assert_eq!(dir("/var/lib/packets/"), Path::new("/var/lib/packets"));
        assert_eq!(
            dir("file:///var/lib/packets"),
            Path::new("/var/lib/packets")
        );
        assert_eq!(dir("/"), Path::new("/"));
        assert_eq!(dir("file:///"), Path::new("/"));
    }

    #[test]
    fn buckets_parse_with_and_without_a_prefix() {
        let plain = s3("s3://evidence", &[]);
        assert_eq!((plain.bucket(), plain.prefix()), ("evidence", ""));
        assert_eq!(plain.region(), "us-east-1");
        assert_eq!(plain.endpoint(), None);
        let deep = s3("s3://evidence.acme-msp/ringmaster/packets/", &[]);
        assert_eq!(
            (deep.bucket(), deep.prefix()),
            ("evidence.acme-msp", "ringmaster/packets")
        );
        assert_eq!(deep.url(), "s3://evidence.acme-msp/ringmaster/packets");
    }

    #[test]
    fn region_and_endpoint_come_from_the_environment() {
        let eu = s3(
            "s3://evidence",
            &[
                ("AWS_REGION", "eu-west-1"),
                ("AWS_DEFAULT_REGION", "us-west-2"),
            ],
        );
        assert_eq!(eu.region(), "eu-west-1");
        let default = s3("s3://evidence", &[("AWS_DEFAULT_REGION", "us-west-2")]);
        assert_eq!(default.region(), "us-west-2");
        let minio = s3(
            "s3://evidence",
            &[("AWS_ENDPOINT_URL", "http://minio.storage:9000/")],
        );
        assert_eq!(minio.endpoint(), Some("http://minio.storage:9000"));
        let bad = Store::parse_with_env(
            "s3://evidence",
            env(&[("AWS_ENDPOINT_URL", "minio.storage:9000")]),
        );
        assert!(
            matches!(&bad, Err(StoreError::BadSpec { why, .. }) if why.contains("AWS_ENDPOINT_URL")),
            "{bad:?}"
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, says) in [
            ("", "empty path"),
            ("packets", "must be absolute"),
            ("./packets", "must be absolute"),
            ("file://host/packets", "no host"),
            ("file:///a%20b", "percent"),
            ("gs://bucket", "file:// and s3://"),
            ("s3://", "no bucket"),
            ("s3:///prefix", "no bucket"),
            ("s3://ab", "3 to 63"),
            ("s3://Evidence", "lowercase"),
            ("s3://my_bucket", "lowercase"),
            ("s3://-evidence", "start and end"),
            ("s3://evi..dence", "two dots"),
            ("s3://evidence/a//b", "empty path segment"),
            ("s3://evidence/a/../b", "`..`"),
            ("s3://evidence/a\\b", "backslash"),
            ("s3://evidence?x=1", "query"),
            ("/var/lib/pack\nets", "control"),
        ] {
            match parse(spec) {
                Err(StoreError::BadSpec { spec: s, why }) => {
                    assert_eq!(s, spec);
                    assert!(why.contains(says), "{spec:?}: {why}");
                }
                other => panic!("{spec:?}: {other:?}"),
            }
        }
        let message = parse("s3://ab").expect_err("bad").to_string();
        assert!(
            message.starts_with("\"s3://ab\" is not a packet store"),
            "{message}"
        );
    }

    #[test]
    fn locations_are_pasteable() {
        assert_eq!(
            dir_store("/var/lib/packets").location("acme", "2023-11"),
            "/var/lib/packets/acme/2023-11"
        );
        assert_eq!(dir_store("/").location("acme", "2023-11"), "/acme/2023-11");
        assert_eq!(
            Store::S3(s3("s3://evidence", &[])).location("acme", "2023-11"),
            "s3://evidence/acme/2023-11"
        );
        let prefixed = Store::S3(s3("s3://evidence/ringmaster/", &[]));
        assert_eq!(
            prefixed.location("acme", "2023-11"),
            "s3://evidence/ringmaster/acme/2023-11"
        );
        assert_eq!(prefixed.to_string(), "s3://evidence/ringmaster");
        assert_eq!(
            dir_store("/var/lib/packets/").to_string(),
            "/var/lib/packets"
        );
    }

    fn dir_store(spec: &str) -> Store {
        Store::Dir(dir(spec))
    }

    #[test]
    fn namespaces_are_dns_labels() {
        for good in ["acme", "a", "tenant-42", "0x", &"a".repeat(63)] {
            assert!(check_place(good, "2023-11").is_ok(), "{good}");
        }
        for bad in [
            "",
            "Acme",
            "-acme",
            "acme-",
            "ac.me",
            "..",
            "a/b",
            "ac me",
            "acmé",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(
                    check_place(bad, "2023-11"),
                    Err(StoreError::BadNamespace { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn months_are_yyyy_mm() {
        for good in ["2023-01", "2023-11", "2024-12", "0001-09"] {
            assert!(check_place("acme", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "2023-1",
            "2023-13",
            "2023-00",
            "2023/11",
            "23-11",
            "2023-11-01",
            "../11",
            "2023-1a",
            "２023-11",
        ] {
            assert!(
                matches!(check_place("acme", bad), Err(StoreError::BadMonth { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn content_types_by_file() {
        assert_eq!(content_type("report.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("report.json"), "application/json");
        assert_eq!(content_type("csv/pairs.csv"), "text/csv; charset=utf-8");
        assert_eq!(content_type("report.md"), "text/markdown; charset=utf-8");
        assert_eq!(content_type(SUMS), "text/plain; charset=utf-8");
        assert_eq!(content_type(SIG), "application/octet-stream");
        assert_eq!(content_type("blob"), "application/octet-stream");
    }

    #[tokio::test]
    async fn bad_locations_are_refused_before_any_request() {
        for (location, says) in [
            ("s3://evidence", "never a whole bucket"),
            ("s3://evidence/", "never a whole bucket"),
            ("s3://Evidence/acme/2023-11", "lowercase"),
            ("gs://evidence/acme/2023-11", "file:// and s3://"),
            ("file://host/x", "no host"),
            ("", "empty path"),
        ] {
            match read_location_with_env(location, env(&[])).await {
                Err(StoreError::BadLocation { why, .. }) => {
                    assert!(why.contains(says), "{location:?}: {why}")
                }
                other => panic!("{location:?}: {other:?}"),
            }
        }
    }
}
