//! What can go wrong in a link's work, and how each kind is handled: the error type the
//! worker, the publisher and the booking pipeline return, and its kind (stored on the link,
//! shown by the console, counted in the metrics, and classed for the link's breaker).

use slotbridge_domain::backoff::{FailureClass, Lasting};
use slotbridge_market::MarketError;
use slotbridge_pms::PmsError;
use slotbridge_store::StoreError;

use crate::publisher::PublishError;

/// What kind of failure stopped a sync step: stored on the link (its `last_error.kind`), shown
/// by the console and counted in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The PMS refused the API key (401).
    PmsUnauthorized,
    /// The practice revoked the API key.
    PmsKeyRevoked,
    /// The PMS failed otherwise (down, timeout, unexpected answer).
    Pms,
    /// The practice has not granted this integration consent on the marketplace.
    ConsentMissing,
    /// The marketplace refused the integration's credentials (401).
    MarketUnauthorized,
    /// The marketplace failed otherwise.
    Market,
    /// The PMS setup could not be published (invalid snapshot).
    Publish,
    /// The store failed.
    Store,
    /// This node no longer holds the link.
    Fenced,
    /// The link's worker stopped and is being restarted.
    WorkerFailed,
}

impl FailureKind {
    /// Every kind.
    pub const ALL: [FailureKind; 10] = [
        FailureKind::PmsUnauthorized,
        FailureKind::PmsKeyRevoked,
        FailureKind::Pms,
        FailureKind::ConsentMissing,
        FailureKind::MarketUnauthorized,
        FailureKind::Market,
        FailureKind::Publish,
        FailureKind::Store,
        FailureKind::Fenced,
        FailureKind::WorkerFailed,
    ];

    /// The stored name (`pms_key_revoked`, `consent_missing`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::PmsUnauthorized => "pms_unauthorized",
            FailureKind::PmsKeyRevoked => "pms_key_revoked",
            FailureKind::Pms => "pms",
            FailureKind::ConsentMissing => "consent_missing",
            FailureKind::MarketUnauthorized => "market_unauthorized",
            FailureKind::Market => "market",
            FailureKind::Publish => "publish",
            FailureKind::Store => "store",
            FailureKind::Fenced => "fenced",
            FailureKind::WorkerFailed => "worker_failed",
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(s: &str) -> Option<FailureKind> {
        FailureKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// How the link's breaker treats it: a lasting failure parks the link until its
    /// credentials change or an operator resyncs; the others back off.
    pub fn class(self) -> FailureClass {
        match self {
            FailureKind::PmsUnauthorized => FailureClass::Lasting(Lasting::PmsKeyRejected),
            FailureKind::PmsKeyRevoked => FailureClass::Lasting(Lasting::PmsKeyRevoked),
            FailureKind::ConsentMissing => FailureClass::Lasting(Lasting::ConsentMissing),
            FailureKind::MarketUnauthorized => FailureClass::Lasting(Lasting::MarketKeyRejected),
            _ => FailureClass::Transient,
        }
    }
}

/// Why a sync step failed, in the terms the diagnostics use.
#[derive(Debug, thiserror::Error)]
pub enum SyncFailure {
    /// The PMS failed.
    #[error("PMS: {0}")]
    Pms(#[from] PmsError),
    /// Publishing failed.
    #[error("{0}")]
    Publish(#[from] PublishError),
    /// The marketplace failed.
    #[error("marketplace: {0}")]
    Market(#[from] MarketError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl SyncFailure {
    /// Its kind.
    pub fn kind(&self) -> FailureKind {
        match self {
            SyncFailure::Pms(PmsError::Fenced)
            | SyncFailure::Market(MarketError::Fenced)
            | SyncFailure::Publish(PublishError::Market(MarketError::Fenced))
            | SyncFailure::Store(StoreError::Fenced { .. })
            | SyncFailure::Publish(PublishError::Store(StoreError::Fenced { .. })) => {
                FailureKind::Fenced
            }
            SyncFailure::Pms(PmsError::Unauthorized { .. }) => FailureKind::PmsUnauthorized,
            SyncFailure::Pms(PmsError::KeyRevoked { .. }) => FailureKind::PmsKeyRevoked,
            SyncFailure::Pms(_) => FailureKind::Pms,
            SyncFailure::Publish(PublishError::Market(MarketError::ConsentMissing { .. }))
            | SyncFailure::Market(MarketError::ConsentMissing { .. }) => {
                FailureKind::ConsentMissing
            }
            SyncFailure::Publish(PublishError::Market(MarketError::Unauthorized))
            | SyncFailure::Market(MarketError::Unauthorized) => FailureKind::MarketUnauthorized,
            SyncFailure::Publish(PublishError::Market(_)) | SyncFailure::Market(_) => {
                FailureKind::Market
            }
            SyncFailure::Publish(PublishError::Store(_)) | SyncFailure::Store(_) => {
                FailureKind::Store
            }
            SyncFailure::Publish(_) => FailureKind::Publish,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_practice_credentials_park_the_link_with_consent_and_key_guidance() {
        for (e, kind) in [
            (MarketError::Unauthorized, FailureKind::MarketUnauthorized),
            (
                MarketError::ConsentMissing {
                    practice_id: "1".into(),
                    detail: None,
                },
                FailureKind::ConsentMissing,
            ),
        ] {
            let f = SyncFailure::Market(e);
            assert_eq!(f.kind(), kind);
            let FailureClass::Lasting(why) = kind.class() else {
                panic!("{kind:?} is not lasting");
            };
            let guidance = why.what_to_do();
            assert!(guidance.contains("consent"), "{guidance}");
            assert!(guidance.contains("practice"), "{guidance}");
            assert_eq!(FailureKind::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn a_fenced_call_or_write_is_its_own_kind_whatever_it_came_through() {
        let fenced = [
            SyncFailure::Pms(PmsError::Fenced),
            SyncFailure::Market(MarketError::Fenced),
            SyncFailure::Publish(PublishError::Market(MarketError::Fenced)),
            SyncFailure::Store(StoreError::Fenced {
                link_id: slotbridge_store::LinkId::new(),
                node_id: "n".into(),
                epoch: 1,
            }),
        ];
        for f in fenced {
            assert_eq!(f.kind(), FailureKind::Fenced, "{f}");
            assert_eq!(f.kind().class(), FailureClass::Transient);
        }
    }
}
