//! Proving a callback comes from ZEGOCLOUD.
//!
//! `signature = hex(sha1(concat(sort([secret, timestamp, nonce]))))`, compared in constant time,
//! with the timestamp inside a window around our clock. The signature covers neither the body nor
//! the appid, so the secret is picked by the appid the callback names and an unknown appid is refused.
//!
//! [`Verifier::verify`] checks a [`Claim`] (what a callback says about its signature) and returns
//! the proof, [`Signed`], that it holds: nothing else can make one, so a callback carries a
//! signed triple into the ledger only once its signature was checked. This module knows nothing
//! of bodies: `callback` reads the claim out of a body and uses this module, not the reverse.

use std::collections::HashMap;
use std::fmt;

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

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

/// What a callback says about its signature: the appid whose secret made it, the timestamp and
/// nonce it covers, and the signature itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim<'a> {
    pub appid: i64,
    /// The timestamp as sent: the signature is computed over this text.
    pub timestamp: &'a str,
    /// The same timestamp in unix seconds, for the clock window.
    pub timestamp_secs: i64,
    pub nonce: &'a str,
    pub signature: &'a str,
}

/// The proof that a callback's signature was checked against its app's secret and clock window:
/// made by [`Verifier::verify`] only. It carries the signed (timestamp, nonce, signature) the
/// signature ledger remembers, the signature in lower case (as it was compared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    timestamp_secs: i64,
    nonce: String,
    signature: String,
}

impl Signed {
    /// The signed timestamp, unix seconds.
    pub fn timestamp_secs(&self) -> i64 {
        self.timestamp_secs
    }

    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// Lower-case hex.
    pub fn signature(&self) -> &str {
        &self.signature
    }
}

/// Checks claims against the configured secrets and clock window.
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

    /// Checks a claim (`now` in unix seconds): its signature must be the one its appid's secret
    /// makes, and its timestamp inside the window. Returns the proof, or `None` when
    /// verification is off (`--insecure-skip-verify`): then nothing is proven.
    pub fn verify(&self, claim: Claim<'_>, now: i64) -> Result<Option<Signed>, AuthError> {
        let Some(secrets) = &self.secrets else {
            return Ok(None);
        };
        let secret = secrets
            .for_app(claim.appid)
            .ok_or(AuthError::UnknownAppid(claim.appid))?;
        let expected = sign(secret, claim.timestamp, claim.nonce);
        let given = claim.signature.to_ascii_lowercase();
        if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            return Err(AuthError::BadSignature);
        }
        let skew_secs = now.saturating_sub(claim.timestamp_secs).saturating_abs();
        if self.max_skew_secs > 0 && skew_secs.unsigned_abs() > self.max_skew_secs {
            return Err(AuthError::StaleTimestamp {
                skew_secs,
                max_skew_secs: self.max_skew_secs,
            });
        }
        Ok(Some(Signed {
            timestamp_secs: claim.timestamp_secs,
            nonce: claim.nonce.to_owned(),
            signature: given,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim<'a>(appid: i64, timestamp: &'a str, signature: &'a str) -> Claim<'a> {
        Claim {
            appid,
            timestamp,
            timestamp_secs: timestamp.parse().unwrap(),
            nonce: "123412",
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
        let ts = "1470820198";
        let signature = sign("seven", ts, "123412");
        let good = claim(7, ts, &signature);
        let proof = verifier.verify(good, now + 600).unwrap().unwrap();
        assert_eq!(
            (proof.timestamp_secs(), proof.nonce(), proof.signature()),
            (now, "123412", signature.as_str())
        );
        let upper = signature.to_uppercase();
        assert_eq!(verifier.verify(claim(7, ts, &upper), now), Ok(Some(proof)));
        assert_eq!(
            verifier.verify(claim(8, ts, &signature), now),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verifier.verify(claim(9, ts, &signature), now),
            Err(AuthError::UnknownAppid(9))
        );
        assert!(matches!(
            verifier.verify(good, now + 601),
            Err(AuthError::StaleTimestamp { skew_secs: 601, .. })
        ));
        let no_window = Verifier::new(Secrets::new(Some("seven".into()), None).unwrap(), 0);
        assert!(no_window.verify(good, now + 1_000_000).unwrap().is_some());
        assert_eq!(Verifier::insecure().verify(good, now), Ok(None));
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
