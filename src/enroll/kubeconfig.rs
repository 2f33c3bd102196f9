//! The agent's kubeconfig: written by enrollment, read by the agent, and rewritten with
//! a fresh token when the agent renews it. Every write is atomic (a temporary file in
//! the same directory, then a rename) and private (mode 0600).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use serde_json::json;

use super::token::TokenClaims;
use super::{Enrollment, Error, KubeconfigProblem};

/// The name of the kubeconfig's context extension naming the enrolled device.
pub const DEVICE_EXTENSION: &str = "ringmaster.dev/device";
/// The name of the kubeconfig's cluster entry.
const CLUSTER: &str = "ringmaster";

/// Where and how the agent reaches the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterAccess {
    /// The API server's URL, e.g. `https://api.example.com:6443`.
    pub server: String,
    /// The certificate authorities to trust, PEM, base64-encoded as kubeconfigs hold
    /// them (`certificate-authority-data`); None: the system's.
    pub certificate_authority_data: Option<String>,
    /// The name to check the server's certificate against, when not the URL's host.
    pub tls_server_name: Option<String>,
    /// Skip checking the server's certificate (copied from an enroller who does).
    pub insecure_skip_tls_verify: bool,
}

/// PEM of DER certificates.
fn pem(certs: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for der in certs {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = STANDARD.encode(der);
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

impl ClusterAccess {
    /// The server and certificate authorities of the enrolling client's configuration.
    pub fn from_config(config: &kube::Config) -> Result<Self, Error> {
        let server = config.cluster_url.to_string();
        let server = server.strip_suffix('/').unwrap_or(&server).to_string();
        let ca_pem = match (&config.root_cert, &config.root_cert_file) {
            (_, Some(file)) => Some(read_pem(file)?),
            (Some(certs), None) => Some(pem(certs)),
            (None, None) => None,
        };
        Ok(Self {
            server,
            certificate_authority_data: ca_pem.map(|p| STANDARD.encode(p)),
            tls_server_name: config.tls_server_name.clone(),
            insecure_skip_tls_verify: config.accept_invalid_certs,
        })
    }

    /// The same access through another URL (`--server`).
    pub fn with_server(mut self, server: &str) -> Result<Self, Error> {
        // A token goes only over TLS, to a named host.
        let host = server
            .strip_prefix("https://")
            .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""));
        let valid = host.is_some_and(|h| {
            !h.is_empty() && !h.contains('@') && !h.chars().any(char::is_whitespace)
        });
        if !valid {
            return Err(Error::ServerUrl {
                value: server.to_string(),
            });
        }
        self.server = server.trim_end_matches('/').to_string();
        Ok(self)
    }

    /// The same access trusting the certificate authorities of a PEM file
    /// (`--certificate-authority`), and checking certificates again.
    pub fn with_certificate_authority(mut self, file: &Path) -> Result<Self, Error> {
        self.certificate_authority_data = Some(STANDARD.encode(read_pem(file)?));
        self.insecure_skip_tls_verify = false;
        Ok(self)
    }
}

/// A PEM file of certificates.
fn read_pem(file: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(file).map_err(|source| Error::Io {
        path: file.to_path_buf(),
        source,
    })?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::NotPem {
            path: file.to_path_buf(),
        });
    }
    Ok(text)
}

/// The agent's kubeconfig, YAML: one cluster, one user with the token, one context in
/// the device's namespace, carrying the extension [`DEVICE_EXTENSION`]
/// (`{namespace, name}` of the device) that [`enrolled_device`] reads.
pub fn agent_kubeconfig(
    access: &ClusterAccess,
    e: &Enrollment,
    token: &str,
) -> Result<String, Error> {
    let user = e.service_account();
    let mut cluster = json!({"server": access.server});
    if let Some(ca) = &access.certificate_authority_data {
        cluster["certificate-authority-data"] = ca.clone().into();
    }
    if let Some(name) = &access.tls_server_name {
        cluster["tls-server-name"] = name.clone().into();
    }
    if access.insecure_skip_tls_verify {
        cluster["insecure-skip-tls-verify"] = true.into();
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {
            "cluster": CLUSTER,
            "user": user,
            "namespace": e.namespace,
            "extensions": [{"name": DEVICE_EXTENSION,
                "extension": {"namespace": e.namespace, "name": e.name}}],
        }}],
        "current-context": user,
    });
    serde_yaml::to_string(&doc).map_err(|e| Error::Serialize(e.to_string()))
}

/// Writes `contents` to `path` atomically with mode 0600: a temporary file beside it,
/// flushed to disk, then renamed over it. A reader sees the old file or the new one,
/// never half of one, and never a copy anyone else may read.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().ok_or_else(|| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
    })?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = write_file(&tmp, contents).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    // The rename is durable once the directory is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

fn write_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // A file left behind by an earlier run keeps its mode: set it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(contents)?;
    f.sync_all()
}

/// A kubeconfig file as YAML.
pub(super) fn read(path: &Path) -> Result<serde_yaml::Value, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_yaml::from_str(&text).map_err(|e| Error::Kubeconfig {
        path: path.to_path_buf(),
        problem: KubeconfigProblem::Yaml(e.to_string()),
    })
}

/// The entry named `name` in the list `list` (`contexts`, `users`) of a kubeconfig.
fn named<'a>(doc: &'a serde_yaml::Value, list: &str, name: &str) -> Option<&'a serde_yaml::Value> {
    doc.get(list)?
        .as_sequence()?
        .iter()
        .find(|entry| entry.get("name").and_then(|n| n.as_str()) == Some(name))
}

/// The current context's body.
fn current_context(doc: &serde_yaml::Value) -> Result<&serde_yaml::Value, KubeconfigProblem> {
    let name = doc
        .get("current-context")
        .and_then(|c| c.as_str())
        .filter(|c| !c.is_empty())
        .ok_or(KubeconfigProblem::NoCurrentContext)?;
    named(doc, "contexts", name)
        .and_then(|c| c.get("context"))
        .ok_or_else(|| KubeconfigProblem::NoContext(name.to_string()))
}

/// The name of the current context's user.
fn current_user_name(doc: &serde_yaml::Value) -> Result<String, KubeconfigProblem> {
    let context = current_context(doc)?;
    context
        .get("user")
        .and_then(|u| u.as_str())
        .map(str::to_string)
        .ok_or(KubeconfigProblem::NoUserInContext)
}

/// The current user's token, if it authenticates with one.
pub(super) fn current_token(doc: &serde_yaml::Value) -> Result<Option<String>, KubeconfigProblem> {
    let user = current_user_name(doc)?;
    let entry = named(doc, "users", &user).ok_or(KubeconfigProblem::NoUser(user))?;
    Ok(entry
        .get("user")
        .and_then(|u| u.get("token"))
        .and_then(|t| t.as_str())
        .map(str::to_string))
}

/// Replaces the current user's token.
pub(super) fn set_current_token(
    doc: &mut serde_yaml::Value,
    token: &str,
) -> Result<(), KubeconfigProblem> {
    let user = current_user_name(doc)?;
    let users = doc
        .get_mut("users")
        .and_then(|u| u.as_sequence_mut())
        .ok_or_else(|| KubeconfigProblem::NoUser(user.clone()))?;
    let entry = users
        .iter_mut()
        .find(|e| e.get("name").and_then(|n| n.as_str()) == Some(user.as_str()))
        .and_then(|e| e.get_mut("user"))
        .and_then(|u| u.as_mapping_mut())
        .ok_or_else(|| KubeconfigProblem::NoUser(user.clone()))?;
    entry.insert("token".into(), token.into());
    Ok(())
}

fn problem(path: &Path) -> impl FnOnce(KubeconfigProblem) -> Error + '_ {
    move |problem| Error::Kubeconfig {
        path: path.to_path_buf(),
        problem,
    }
}

/// The claims of the token in the kubeconfig at `path`; None when its current user has
/// no token or an opaque one.
pub fn token_claims(path: &Path) -> Result<Option<TokenClaims>, Error> {
    let doc = read(path)?;
    let Some(token) = current_token(&doc).map_err(problem(path))? else {
        return Ok(None);
    };
    TokenClaims::from_token(&token).map_err(|e| Error::Kubeconfig {
        path: path.to_path_buf(),
        problem: KubeconfigProblem::Claims(e),
    })
}

/// When the token in the kubeconfig at `path` expires (its JWT's `exp`, read without
/// checking the signature: the API server does that). None when the kubeconfig's user
/// has no token, an opaque one, or one without `exp`.
pub fn token_expiry(path: &Path) -> Result<Option<Timestamp>, Error> {
    Ok(token_claims(path)?.and_then(|c| c.expires_at))
}

/// Whether the token in the kubeconfig at `path` is due for renewal at `now`: past
/// 80% of its lifetime (see [`TokenClaims::renew_at`]). False for tokens that never
/// expire or that the file does not hold.
pub fn renewal_due(path: &Path, now: Timestamp) -> Result<bool, Error> {
    Ok(token_claims(path)?
        .and_then(|c| c.renew_at())
        .is_some_and(|at| now >= at))
}

/// The device a kubeconfig written by enrollment is for, `(namespace, name)`, from its
/// current context's [`DEVICE_EXTENSION`]; None for a kubeconfig without it.
pub fn enrolled_device(path: &Path) -> Result<Option<(String, String)>, Error> {
    let doc = read(path)?;
    let context = current_context(&doc).map_err(problem(path))?;
    let found = context
        .get("extensions")
        .and_then(|x| x.as_sequence())
        .into_iter()
        .flatten()
        .find(|x| x.get("name").and_then(|n| n.as_str()) == Some(DEVICE_EXTENSION))
        .and_then(|x| x.get("extension"));
    let Some(ext) = found else {
        return Ok(None);
    };
    let field = |k: &str| ext.get(k).and_then(|v| v.as_str()).map(str::to_string);
    match (field("namespace"), field("name")) {
        (Some(ns), Some(name)) => Ok(Some((ns, name))),
        _ => Err(Error::Kubeconfig {
            path: path.to_path_buf(),
            problem: KubeconfigProblem::BadDeviceExtension,
        }),
    }
}

/// Where `--out` goes: `-` is standard output, anything else a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    /// Print the kubeconfig.
    Stdout,
    /// Write it to this file (0600, atomically).
    File(PathBuf),
}

impl Out {
    /// `--out`'s value, or `<device>.kubeconfig` when it is absent.
    pub fn parse(out: Option<&str>, device: &str) -> Self {
        match out {
            Some("-") => Out::Stdout,
            Some(path) => Out::File(PathBuf::from(path)),
            None => Out::File(PathBuf::from(format!("{device}.kubeconfig"))),
        }
    }
}
