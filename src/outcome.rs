//! What became of one callback, in one type: [`Outcome`], with its machine code, its sentence and
//! its HTTP status in one place. The store says what it wrote, the ingest path adds
//! [`Outcome::Spooled`], and HTTP, `import`, `quarantine release` and the metrics all read the
//! same value.
//!
//! A signed triple that comes again with another body is a signature reuse; what is done with it
//! is the deployment's [`ReusePolicy`], applied once, by the write statement, which reports the
//! [`Reuse`] it chose.

use axum::http::StatusCode;

/// What became of one callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New: its rows were written.
    Stored,
    /// Already stored by an earlier delivery (or an earlier callback of the same batch).
    Duplicate,
    /// Authentic but unusable: archived with the reason in `callback_events.refused_reason`,
    /// in no typed table.
    Quarantined,
    /// In the durable spool while PostgreSQL cannot take it; stored once it is back.
    Spooled,
    /// Its (timestamp, nonce, signature) came first with another body: see [`Reuse`].
    SignatureReuse(Reuse),
}

/// What the reuse policy did with a callback whose signed triple the ledger holds with another
/// body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Kept in `callback_events` with the reuse and the first digest in `refused_reason`, in no
    /// typed table and no rollup (policy `quarantine`, and `reject` once the sender was already
    /// answered: a callback drained from the spool).
    Quarantined,
    /// Beyond [`QUARANTINE_PER_SIGNATURE`] bodies of its triple: counted only, nothing written.
    OverBound,
    /// Nothing written; the sender is answered 401 (policy `reject`).
    Rejected,
    /// Stored as usual (policy `accept`); `stored` tells new from duplicate.
    Accepted { stored: bool },
}

/// Most bodies one signed triple can put in quarantine; later reuses of it are only counted
/// (answered 2xx all the same), so that one captured triple cannot fill the disk.
pub const QUARANTINE_PER_SIGNATURE: i32 = 10;

impl Outcome {
    /// The stable machine code clients, logs and metrics see.
    pub fn code(self) -> &'static str {
        match self {
            Self::Stored | Self::SignatureReuse(Reuse::Accepted { stored: true }) => "stored",
            Self::Duplicate | Self::SignatureReuse(Reuse::Accepted { stored: false }) => {
                "duplicate"
            }
            Self::Quarantined | Self::SignatureReuse(Reuse::Quarantined | Reuse::OverBound) => {
                "quarantined"
            }
            Self::Spooled => "spooled",
            Self::SignatureReuse(Reuse::Rejected) => "replayed_signature",
        }
    }

    /// The sentence the sender is answered with.
    pub fn message(self) -> &'static str {
        match self {
            Self::Stored | Self::SignatureReuse(Reuse::Accepted { stored: true }) => "stored",
            Self::Duplicate | Self::SignatureReuse(Reuse::Accepted { stored: false }) => {
                "already stored by an earlier delivery"
            }
            Self::Quarantined => "authentic but not usable; kept for investigation, do not retry",
            Self::Spooled => {
                "the database is unavailable; kept in the durable spool, stored once it is back"
            }
            Self::SignatureReuse(Reuse::Quarantined) => {
                "this signature came first with another body; kept for investigation, do not retry"
            }
            Self::SignatureReuse(Reuse::OverBound) => {
                "this signature came first with another body; counted, not kept, do not retry"
            }
            Self::SignatureReuse(Reuse::Rejected) => {
                "this (timestamp, nonce, signature) was already used by a callback with another body; nothing was stored"
            }
        }
    }

    /// The HTTP status it is answered with: 401 for a rejected signature reuse (the sender
    /// must not retry it as it is), 200 for everything that is safe.
    pub fn status(self) -> StatusCode {
        match self {
            Self::SignatureReuse(Reuse::Rejected) => StatusCode::UNAUTHORIZED,
            _ => StatusCode::OK,
        }
    }

    /// Whether it wrote a new typed row or archive row (what the logout counters count).
    pub fn is_new(self) -> bool {
        matches!(
            self,
            Self::Stored | Self::SignatureReuse(Reuse::Accepted { stored: true })
        )
    }
}

impl Reuse {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quarantined => "quarantined",
            Self::OverBound => "over_bound",
            Self::Rejected => "rejected",
            Self::Accepted { .. } => "accepted",
        }
    }
}

/// What to do with another body under a signed triple already in the ledger (`zegolog serve
/// --on-signature-reuse`). The same triple with the same body is a retry under every policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReusePolicy {
    /// Keep it out of the typed tables, in `callback_events` with the reason; answer 2xx.
    #[default]
    Quarantine,
    /// Write nothing; answer 401 `replayed_signature`.
    Reject,
    /// Store it as usual; only count it.
    Accept,
}

impl ReusePolicy {
    pub const NAMES: [&'static str; 3] = ["quarantine", "reject", "accept"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quarantine => "quarantine",
            Self::Reject => "reject",
            Self::Accept => "accept",
        }
    }

    /// The policy for a callback whose sender was already answered 2xx (drained from the
    /// spool): it can no longer be refused, so `reject` quarantines.
    pub fn acknowledged(self) -> Self {
        match self {
            Self::Reject => Self::Quarantine,
            other => other,
        }
    }
}

impl std::str::FromStr for ReusePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "quarantine" => Ok(Self::Quarantine),
            "reject" => Ok(Self::Reject),
            "accept" => Ok(Self::Accept),
            other => Err(format!(
                "`{other}` is not one of quarantine, reject, accept"
            )),
        }
    }
}
