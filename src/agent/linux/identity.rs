//! The agent's own credentials. `ringmaster enroll` writes a kubeconfig holding a bound
//! ServiceAccount token that expires; the agent renews it before it does, itself (its
//! Role lets it request tokens for its own ServiceAccount only). Its clients — the
//! device's, the catalog's watch — read the token from a file in the state directory,
//! which kube's client reads again every minute, so a renewed token reaches every open
//! watch without a restart.

use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tracing::info;

use crate::enroll;

/// The token file's name in the state directory.
pub const TOKEN_FILE: &str = "token";
/// The lifetime asked for when the old token does not tell its own.
pub const DEFAULT_TTL: SignedDuration = SignedDuration::from_hours(24);

/// What can go wrong with the agent's credentials.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The kubeconfig cannot be read or used.
    #[error("{path}: {detail}")]
    Kubeconfig {
        /// The kubeconfig.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The token file cannot be written.
    #[error("{path}: {source}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Renewing the token failed.
    #[error("renewing the agent's token: {0}")]
    Renew(#[from] enroll::Error),
}

/// An agent's renewable identity: the kubeconfig enrollment wrote, and the token file
/// its clients read.
#[derive(Clone, Debug)]
pub struct Identity {
    kubeconfig: PathBuf,
    token_file: PathBuf,
}

/// A client for the agent. With a kubeconfig whose user holds an inline token, the token
/// moves to `state_dir/token` (mode 0600) and the client reads it from there, and the
/// [`Identity`] that renews it comes back too; any other kubeconfig (a client
/// certificate, an exec plugin, a token file of its own) is used as it is.
pub async fn client(
    kubeconfig: &Path,
    state_dir: &Path,
) -> Result<(kube::Client, Option<Identity>), IdentityError> {
    let bad = |detail: String| IdentityError::Kubeconfig {
        path: kubeconfig.to_path_buf(),
        detail,
    };
    let mut doc = Kubeconfig::read_from(kubeconfig).map_err(|e| bad(e.to_string()))?;
    let token_file = state_dir.join(TOKEN_FILE);
    let user = current_user(&doc).map_err(bad)?;
    let inline = doc
        .auth_infos
        .iter_mut()
        .find(|a| a.name == user)
        .and_then(|a| a.auth_info.as_mut())
        .filter(|info| info.token.is_some());
    let identity = match inline {
        Some(info) => {
            let token = info.token.take().map(|t| secret(&t)).unwrap_or_default();
            write_token(&token_file, &token)?;
            info.token_file = Some(token_file.display().to_string());
            Some(Identity {
                kubeconfig: kubeconfig.to_path_buf(),
                token_file,
            })
        }
        None => None,
    };
    let config = kube::Config::from_custom_kubeconfig(doc, &KubeConfigOptions::default())
        .await
        .map_err(|e| bad(e.to_string()))?;
    let client = kube::Client::try_from(config).map_err(|e| bad(e.to_string()))?;
    Ok((client, identity))
}

impl Identity {
    /// Renews the token when it is past 80% of its lifetime: a new one for the same
    /// ServiceAccount and lifetime, written to the kubeconfig (replaced whole) and to the
    /// token file. True when it renewed.
    pub async fn renew_if_due(
        &self,
        client: &kube::Client,
        now: Timestamp,
    ) -> Result<bool, IdentityError> {
        if !enroll::renewal_due(&self.kubeconfig, now)? {
            return Ok(false);
        }
        let claims = enroll::token_claims(&self.kubeconfig)?;
        let lifetime = claims
            .as_ref()
            .and_then(|c| Some(c.expires_at?.duration_since(c.issued_at?)))
            .filter(|d| d.is_positive())
            .unwrap_or(DEFAULT_TTL);
        let ttl = crate::api::Duration::from_secs(lifetime.as_secs());
        let expires = enroll::renew_token(client, &self.kubeconfig, ttl).await?;
        let doc =
            Kubeconfig::read_from(&self.kubeconfig).map_err(|e| IdentityError::Kubeconfig {
                path: self.kubeconfig.clone(),
                detail: e.to_string(),
            })?;
        let token = current_user(&doc)
            .ok()
            .and_then(|user| doc.auth_infos.iter().find(|a| a.name == user))
            .and_then(|a| a.auth_info.as_ref())
            .and_then(|info| info.token.as_ref())
            .map(secret)
            .unwrap_or_default();
        write_token(&self.token_file, &token)?;
        info!(%expires, "renewed the agent's token");
        Ok(true)
    }
}

/// Points the kubeconfig's current user at the token file in `state_dir` instead of its
/// inline token, if it has one (the file [`client`] writes and renewal rewrites).
pub fn use_token_file(doc: &mut Kubeconfig, state_dir: &Path) {
    let Ok(user) = current_user(doc) else {
        return;
    };
    if let Some(info) = doc
        .auth_infos
        .iter_mut()
        .find(|a| a.name == user)
        .and_then(|a| a.auth_info.as_mut())
        .filter(|info| info.token.is_some())
    {
        info.token = None;
        info.token_file = Some(state_dir.join(TOKEN_FILE).display().to_string());
    }
}

fn secret(token: &secrecy::SecretString) -> String {
    use secrecy::ExposeSecret;
    token.expose_secret().to_string()
}

fn current_user(doc: &Kubeconfig) -> Result<String, String> {
    let name = doc.current_context.as_deref().ok_or("no current-context")?;
    doc.contexts
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.user.clone().unwrap_or_default())
        .ok_or_else(|| format!("context {name} is not in the file"))
}

fn write_token(path: &Path, token: &str) -> Result<(), IdentityError> {
    enroll::write_private(path, token.as_bytes()).map_err(|e| IdentityError::TokenFile {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}
