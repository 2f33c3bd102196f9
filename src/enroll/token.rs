//! The claims of a ServiceAccount token (a JWT), read without checking its signature:
//! the API server checks that; the agent only needs to know when to renew it and for
//! which ServiceAccount.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::names::parse_service_account_user;

/// Renew once this share of a token's lifetime (from `iat` to `exp`) has passed.
pub const RENEW_AT_PERCENT: i64 = 80;
/// For a token without `iat`: renew this long before it expires.
pub const RENEW_BEFORE_WITHOUT_IAT: SignedDuration = SignedDuration::from_mins(10);

/// Why a token's claims could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ClaimsError {
    /// The payload (the JWT's second part) is not base64url.
    #[error("the token's payload is not base64url: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The payload is not a JSON object.
    #[error("the token's payload is not a JSON object: {0}")]
    Json(#[from] serde_json::Error),
    /// A time claim is not a number of seconds the clock can hold.
    #[error("the token's `{claim}` claim is not a time in seconds: {value}")]
    Time {
        /// `exp`, `iat` or `nbf`.
        claim: &'static str,
        /// What it holds.
        value: String,
    },
}

/// What a token says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenClaims {
    /// `sub`: for a ServiceAccount, `system:serviceaccount:<namespace>:<name>`.
    pub subject: Option<String>,
    /// `iat`: when it was issued.
    pub issued_at: Option<Timestamp>,
    /// `exp`: when it expires.
    pub expires_at: Option<Timestamp>,
}

impl TokenClaims {
    /// The claims of `token`; None when it is not a JWT (three base64url parts joined by
    /// dots), e.g. a static token, which has nothing to read.
    pub fn from_token(token: &str) -> Result<Option<Self>, ClaimsError> {
        let parts: Vec<&str> = token.trim().split('.').collect();
        let [_, payload, _] = parts.as_slice() else {
            return Ok(None);
        };
        let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))?;
        let claims: serde_json::Map<String, Value> = serde_json::from_slice(&bytes)?;
        Ok(Some(Self {
            subject: claims
                .get("sub")
                .and_then(Value::as_str)
                .map(str::to_string),
            issued_at: time_claim(&claims, "iat")?,
            expires_at: time_claim(&claims, "exp")?,
        }))
    }

    /// The ServiceAccount the token is for, `(namespace, name)`, read from `sub`.
    pub fn service_account(&self) -> Option<(&str, &str)> {
        parse_service_account_user(self.subject.as_deref()?)
    }

    /// When the token should be renewed: once [`RENEW_AT_PERCENT`] of its lifetime has
    /// passed, or [`RENEW_BEFORE_WITHOUT_IAT`] before it expires when it does not say
    /// when it was issued. None when it never expires.
    pub fn renew_at(&self) -> Option<Timestamp> {
        let exp = self.expires_at?;
        let at = match self.issued_at.filter(|iat| *iat < exp) {
            Some(iat) => {
                let life = exp.duration_since(iat).as_secs();
                iat.checked_add(SignedDuration::from_secs(life * RENEW_AT_PERCENT / 100))
            }
            None => exp.checked_sub(RENEW_BEFORE_WITHOUT_IAT),
        };
        Some(at.unwrap_or(exp))
    }
}

/// A NumericDate claim (seconds since the epoch, possibly fractional).
fn time_claim(
    claims: &serde_json::Map<String, Value>,
    claim: &'static str,
) -> Result<Option<Timestamp>, ClaimsError> {
    let Some(v) = claims.get(claim) else {
        return Ok(None);
    };
    let bad = || ClaimsError::Time {
        claim,
        value: v.to_string(),
    };
    let secs = match v.as_i64() {
        Some(s) => s,
        // Truncation is the point: a fractional NumericDate counts from its second.
        None => v
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(bad)?
            .floor() as i64,
    };
    Timestamp::from_second(secs).map(Some).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn jwt(payload: &Value) -> String {
        let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.c2lnbmF0dXJl",
            enc(&serde_json::json!({"alg": "RS256", "kid": "k"})),
            enc(payload)
        )
    }

    #[test]
    fn a_service_account_token_says_who_and_until_when() {
        let t = jwt(&serde_json::json!({
            "sub": "system:serviceaccount:ringmaster-agents:fleet.web-1",
            "iat": 1_800_000_000, "exp": 1_800_086_400,
            "kubernetes.io": {"namespace": "ringmaster-agents"}
        }));
        let c = TokenClaims::from_token(&t).expect("claims").expect("a JWT");
        assert_eq!(
            c.service_account(),
            Some(("ringmaster-agents", "fleet.web-1"))
        );
        assert_eq!(
            c.expires_at,
            Some(Timestamp::from_second(1_800_086_400).expect("t"))
        );
        // 80% of a day: 19h12m after issue.
        assert_eq!(
            c.renew_at(),
            Some(Timestamp::from_second(1_800_000_000 + 69_120).expect("t"))
        );
    }

    #[test]
    fn opaque_tokens_have_no_claims_and_broken_ones_are_errors() {
        assert_eq!(
            TokenClaims::from_token("abcdef0123456789").expect("ok"),
            None
        );
        assert!(matches!(
            TokenClaims::from_token("a.%%%.c"),
            Err(ClaimsError::Base64(_))
        ));
        let not_json = format!("a.{}.c", URL_SAFE_NO_PAD.encode("[1,2]"));
        assert!(matches!(
            TokenClaims::from_token(&not_json),
            Err(ClaimsError::Json(_))
        ));
        let bad_exp = jwt(&serde_json::json!({"exp": "tomorrow"}));
        assert!(matches!(
            TokenClaims::from_token(&bad_exp),
            Err(ClaimsError::Time { claim: "exp", .. })
        ));
    }

    #[test]
    fn without_iat_renewal_is_ten_minutes_before_expiry_and_without_exp_never() {
        let c = TokenClaims::from_token(&jwt(&serde_json::json!({"exp": 1_800_000_000.7})))
            .expect("claims")
            .expect("a JWT");
        assert_eq!(
            c.renew_at(),
            Some(Timestamp::from_second(1_800_000_000 - 600).expect("t"))
        );
        let c = TokenClaims::from_token(&jwt(&serde_json::json!({"sub": "x"})))
            .expect("claims")
            .expect("a JWT");
        assert_eq!(c.renew_at(), None);
        assert_eq!(c.service_account(), None);
    }
}
