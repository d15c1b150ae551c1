//! Proving a callback comes from ZEGOCLOUD.
//!
//! `signature = hex(sha1(concat(sort([secret, timestamp, nonce]))))`, compared in constant time,
//! with the timestamp inside a window around our clock. The signature covers neither the body nor
//! the appid, so the secret is picked by the appid the callback names and an unknown appid is refused.

use std::collections::HashMap;
use std::fmt;

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::callback::Envelope;

/// Computes the signature ZEGOCLOUD sends for a secret, timestamp and nonce.
pub fn sign(secret: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [secret, timestamp, nonce];
    parts.sort_unstable();
    let mut hasher = Sha1::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Callback secrets: one for every appid, and/or one per appid.
#[derive(Clone, Default)]
pub struct Secrets {
    any_app: Option<String>,
    per_app: HashMap<i64, String>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a secret, not even in a debug log.
        let mut apps: Vec<_> = self.per_app.keys().collect();
        apps.sort_unstable();
        f.debug_struct("Secrets")
            .field("any_app", &self.any_app.as_ref().map(|_| "<redacted>"))
            .field("per_app", &apps)
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("ZEGOLOG_SECRETS must read `appid=secret,appid=secret`: {0}")]
pub struct SecretsSyntaxError(String);

impl Secrets {
    /// `any_app` verifies every appid not in `per_app`; `per_app` is `appid=secret,appid=secret`.
    pub fn new(any_app: Option<String>, per_app: Option<&str>) -> Result<Self, SecretsSyntaxError> {
        let mut map = HashMap::new();
        for (n, entry) in per_app.unwrap_or("").split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            // The entry itself is not quoted: it may be a secret typed without its appid.
            let (appid, secret) = entry
                .split_once('=')
                .ok_or_else(|| SecretsSyntaxError(format!("entry {} has no `=`", n + 1)))?;
            let appid: i64 = appid
                .trim()
                .parse()
                .map_err(|_| SecretsSyntaxError(format!("`{}` is not an appid", appid.trim())))?;
            if secret.is_empty() {
                return Err(SecretsSyntaxError(format!(
                    "appid {appid} has an empty secret"
                )));
            }
            if map.insert(appid, secret.to_owned()).is_some() {
                return Err(SecretsSyntaxError(format!("appid {appid} is given twice")));
            }
        }
        Ok(Self {
            any_app: any_app.filter(|s| !s.is_empty()),
            per_app: map,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.any_app.is_none() && self.per_app.is_empty()
    }

    fn for_app(&self, appid: i64) -> Option<&str> {
        self.per_app
            .get(&appid)
            .or(self.any_app.as_ref())
            .map(String::as_str)
    }
}

/// Why a callback was not accepted as ZEGOCLOUD's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no callback secret is configured for appid {0}")]
    UnknownAppid(i64),
    #[error("the signature does not match the timestamp, nonce and this appid's secret")]
    BadSignature,
    #[error("the timestamp is {skew_secs} s away from this server's clock, more than the {max_skew_secs} s allowed")]
    StaleTimestamp { skew_secs: i64, max_skew_secs: u64 },
}

/// Checks envelopes against the configured secrets and clock window.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// `None`: verification is off (`--insecure-skip-verify`).
    secrets: Option<Secrets>,
    /// `0` turns the timestamp check off.
    max_skew_secs: u64,
}

impl Verifier {
    pub fn new(secrets: Secrets, max_skew_secs: u64) -> Self {
        Self {
            secrets: Some(secrets),
            max_skew_secs,
        }
    }

    /// A verifier that lets every callback through. For local trials only.
    pub fn insecure() -> Self {
        Self {
            secrets: None,
            max_skew_secs: 0,
        }
    }

    pub fn is_insecure(&self) -> bool {
        self.secrets.is_none()
    }

    /// Accepts the envelope if its signature is right and its timestamp recent (`now` in unix seconds).
    pub fn verify(&self, envelope: &Envelope, now: i64) -> Result<(), AuthError> {
        let Some(secrets) = &self.secrets else {
            return Ok(());
        };
        let secret = secrets
            .for_app(envelope.appid)
            .ok_or(AuthError::UnknownAppid(envelope.appid))?;
        let expected = sign(secret, &envelope.timestamp, &envelope.nonce);
        let given = envelope.signature.to_ascii_lowercase();
        if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            return Err(AuthError::BadSignature);
        }
        let skew_secs = now.saturating_sub(envelope.timestamp_secs).saturating_abs();
        if self.max_skew_secs > 0 && skew_secs.unsigned_abs() > self.max_skew_secs {
            return Err(AuthError::StaleTimestamp {
                skew_secs,
                max_skew_secs: self.max_skew_secs,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(appid: i64, timestamp: i64, signature: String) -> Envelope {
        Envelope {
            event: "room_logout".into(),
            appid,
            timestamp: timestamp.to_string(),
            timestamp_secs: timestamp,
            nonce: "123412".into(),
            signature,
        }
    }

    #[test]
    fn spec_test_vector() {
        assert_eq!(
            sign("secret", "1470820198", "123412"),
            "5bd59fd62953a8059fb7eaba95720f66d19e4517"
        );
    }

    #[test]
    fn verifies_signature_appid_and_window() {
        let secrets = Secrets::new(None, Some("7=seven, 8=eight")).unwrap();
        let verifier = Verifier::new(secrets, 600);
        let now = 1_470_820_198;
        let good = envelope(7, now, sign("seven", "1470820198", "123412"));
        assert_eq!(verifier.verify(&good, now + 600), Ok(()));
        let upper = envelope(7, now, good.signature.to_uppercase());
        assert_eq!(verifier.verify(&upper, now), Ok(()));
        let wrong_app = envelope(8, now, good.signature.clone());
        assert_eq!(
            verifier.verify(&wrong_app, now),
            Err(AuthError::BadSignature)
        );
        let unknown = envelope(9, now, good.signature.clone());
        assert_eq!(
            verifier.verify(&unknown, now),
            Err(AuthError::UnknownAppid(9))
        );
        assert!(matches!(
            verifier.verify(&good, now + 601),
            Err(AuthError::StaleTimestamp { skew_secs: 601, .. })
        ));
        let no_window = Verifier::new(Secrets::new(Some("seven".into()), None).unwrap(), 0);
        assert_eq!(no_window.verify(&good, now + 1_000_000), Ok(()));
    }

    #[test]
    fn secrets_syntax_errors_do_not_echo_secrets() {
        let err = Secrets::new(None, Some("7=a,x=hunter2")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert!(Secrets::new(None, Some("7=a,7=b")).is_err());
        assert!(Secrets::new(None, Some("7")).is_err());
        let debug = format!(
            "{:?}",
            Secrets::new(Some("hunter2".into()), Some("7=x")).unwrap()
        );
        assert!(!debug.contains("hunter2"));
    }
}
