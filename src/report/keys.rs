//! Ed25519 keys for signing packets, in the files OpenSSL writes: a PKCS#8 PEM private
//! key (`openssl genpkey -algorithm ed25519`) and an SPKI PEM public key
//! (`openssl pkey -pubout`). Either tool's keys work with the other.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};

/// Why a key cannot be read, made or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not a key of the expected kind.
    #[error("{path}: {why}")]
    Parse {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// `keygen` does not overwrite a key.
    #[error("{path} already exists; keygen never overwrites a key")]
    Exists {
        /// The file that is already there.
        path: PathBuf,
    },
    /// The system's random number generator failed.
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

impl KeyError {
    /// The file the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            KeyError::Io { path, .. }
            | KeyError::Parse { path, .. }
            | KeyError::Exists { path } => Some(path),
            KeyError::Random(_) => None,
        }
    }
}

/// A private key as OpenSSL writes it: PKCS#8 v1 (the seed only, no public key), PEM.
pub fn signing_key_pem(key: &SigningKey) -> String {
    let bytes = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    // Encoding 32 bytes into a fixed ASN.1 structure cannot fail.
    bytes
        .to_pkcs8_pem(LineEnding::LF)
        .expect("an ed25519 seed always encodes")
        .to_string()
}

/// A public key as OpenSSL writes it: SubjectPublicKeyInfo, PEM.
pub fn verifying_key_pem(key: &VerifyingKey) -> String {
    // Encoding 32 bytes into a fixed ASN.1 structure cannot fail.
    key.to_public_key_pem(LineEnding::LF)
        .expect("an ed25519 public key always encodes")
}

/// Parses a PKCS#8 PEM ed25519 private key (v1 or v2).
pub fn parse_signing_key(pem: &str) -> Result<SigningKey, String> {
    if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(
            "an encrypted private key; decrypt it first (openssl pkey -in KEY -out PLAIN)".into(),
        );
    }
    SigningKey::from_pkcs8_pem(pem)
        .map_err(|e| format!("not a PKCS#8 PEM ed25519 private key ({e})"))
}

/// Parses an SPKI PEM ed25519 public key.
pub fn parse_verifying_key(pem: &str) -> Result<VerifyingKey, String> {
    if pem.contains("PRIVATE KEY-----") {
        return Err("a private key; give the public key (openssl pkey -in KEY -pubout)".into());
    }
    VerifyingKey::from_public_key_pem(pem)
        .map_err(|e| format!("not an SPKI PEM ed25519 public key ({e})"))
}

/// Reads a private key file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    parse_signing_key(&read_text(path)?).map_err(|why| KeyError::Parse {
        path: path.to_path_buf(),
        why,
    })
}

/// Reads a public key file.
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    parse_verifying_key(&read_text(path)?).map_err(|why| KeyError::Parse {
        path: path.to_path_buf(),
        why,
    })
}

fn read_text(path: &Path) -> Result<String, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|_| KeyError::Parse {
        path: path.to_path_buf(),
        why: "not a PEM file (not text)".into(),
    })
}

/// A new private key from the system's random number generator.
pub fn generate() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok(key)
}

/// Writes a new key pair: `PREFIX.key` (private, mode 0600) and `PREFIX.pub`; refuses to
/// overwrite either. Returns the two paths.
pub fn write_new_pair(prefix: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
    let private = with_suffix(prefix, ".key");
    let public = with_suffix(prefix, ".pub");
    for path in [&private, &public] {
        if path.exists() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    let key = generate()?;
    write_new(&private, signing_key_pem(&key).as_bytes(), 0o600)?;
    write_new(
        &public,
        verifying_key_pem(&key.verifying_key()).as_bytes(),
        0o644,
    )?;
    Ok((private, public))
}

/// `prefix` with `suffix` appended to its last component (`acme` → `acme.key`).
fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Creates `path` with `mode` (it must not exist) and writes `contents` to it.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => KeyError::Exists {
                path: path.to_path_buf(),
            },
            _ => io(e),
        })?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8410's example private key (section 10.3) and its public key (10.1).
    const RFC8410_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
    const RFC8410_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";

    #[test]
    fn keys_round_trip_in_openssl_form() {
        let key = parse_signing_key(RFC8410_PRIVATE).expect("private key");
        assert_eq!(signing_key_pem(&key), RFC8410_PRIVATE);
        assert_eq!(verifying_key_pem(&key.verifying_key()), RFC8410_PUBLIC);
        let public = parse_verifying_key(RFC8410_PUBLIC).expect("public key");
        assert_eq!(public, key.verifying_key());
    }

    #[test]
    fn wrong_kinds_of_key_are_named() {
        assert!(
            parse_verifying_key(RFC8410_PRIVATE)
                .unwrap_err()
                .contains("a private key")
        );
        assert!(
            parse_signing_key(RFC8410_PUBLIC)
                .unwrap_err()
                .contains("PKCS#8")
        );
        assert!(
            parse_signing_key(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----\n"
            )
            .unwrap_err()
            .contains("encrypted")
        );
        assert!(parse_verifying_key("hello").is_err());
    }

    #[test]
    fn generated_keys_differ() {
        let a = generate().expect("key");
        let b = generate().expect("key");
        assert_ne!(a.to_bytes(), b.to_bytes());
    }
}
