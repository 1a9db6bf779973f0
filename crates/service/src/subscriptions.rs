//! The link's marketplace subscription, and whether its webhooks can be trusted.
//!
//! `POST /subscription` without an id creates a new subscription every time (the API's "create
//! or update" updates only the subscription whose `id` is given). So at each (re)subscribe the
//! practice's subscriptions are listed: the one of ours (same callback URL or our `clientId`) is
//! updated in place with a new expiry, and any other of ours is deleted, so a practice never holds
//! more than one subscription of this integration, whatever the restarts.
//!
//! Webhooks are trusted only after a delivery has actually arrived, and while the
//! `subscriptionErrorLog` shows no failed attempt; until then, and whenever deliveries fail, the
//! worker polls the marketplace at every tick (5 s), as the quick-start guide asks of an
//! integration without webhooks. A trusted subscription still has its requests polled at the
//! backstop interval.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use slotbridge_market::types::{Subscription, SubscriptionTopic};
use slotbridge_market::{ErrorLogQuery, MarketError, PracticeClient};
use tracing::{debug, info};

/// How long a subscription lives before it must be renewed (renewed at every full resync, by
/// default every 15 minutes). The guide recommends an expiry so that forgotten subscriptions end.
pub const SUBSCRIPTION_LIFETIME: SignedDuration = SignedDuration::from_hours(48);

/// What the subscription round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// The subscription in place.
    pub id: String,
    /// Whether it was created (no subscription of ours was listed).
    pub created: bool,
    /// How many stale subscriptions of ours were deleted.
    pub deleted: usize,
}

/// Whether `s` is one of ours: our callback URL, or our client id.
fn ours(s: &Subscription, callback_url: &str, client_id: &str) -> bool {
    s.callback_url == callback_url || s.client_id.as_deref() == Some(client_id)
}

/// Put exactly one subscription of ours in place for the practice: list, keep the first of ours
/// (preferring one on the current callback URL with the topic `all`), update it in place, delete
/// the others of ours. Subscriptions that are not ours are left alone.
pub async fn ensure(
    market: &PracticeClient,
    client_id: &str,
    callback_url: &str,
    now: Timestamp,
) -> Result<Subscribed, MarketError> {
    let listed = market.subscriptions().await?;
    let mut mine: Vec<Subscription> = listed
        .into_iter()
        .filter(|s| ours(s, callback_url, client_id))
        .collect();
    // The best one to keep first: current URL and topic, then current URL.
    mine.sort_by_key(|s| {
        (
            s.callback_url != callback_url,
            s.topic != SubscriptionTopic::All,
        )
    });
    let wanted = Subscription {
        id: None,
        client_id: Some(client_id.to_owned()),
        topic: SubscriptionTopic::All,
        callback_url: callback_url.to_owned(),
        start_at: None,
        expire_at: now.checked_add(SUBSCRIPTION_LIFETIME).ok(),
    };
    let mut stale = mine.into_iter();
    let kept = stale.by_ref().find(|s| s.id.is_some());
    let (placed, created) = match kept {
        Some(existing) => {
            let updated = Subscription {
                id: existing.id.clone(),
                ..wanted
            };
            let answer = market.create_subscription(&updated).await?;
            (answer.id.or(existing.id), false)
        }
        None => (market.create_subscription(&wanted).await?.id, true),
    };
    let Some(id) = placed else {
        return Err(MarketError::Protocol {
            detail: "POST /subscription: the answer has no id".to_owned(),
        });
    };
    let mut deleted = 0;
    for s in stale {
        let Some(other) = s.id.as_deref().filter(|other| *other != id) else {
            continue;
        };
        match market.delete_subscription(other).await {
            Ok(()) => deleted += 1,
            // Already gone: nothing left to delete.
            Err(MarketError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if created || deleted > 0 {
        info!(subscription = %id, created, deleted, "marketplace subscription put in place");
    }
    Ok(Subscribed {
        id,
        created,
        deleted,
    })
}

/// Whether any delivery to `subscription` failed since `from` (the `subscriptionErrorLog`).
pub async fn deliveries_failed(
    market: &PracticeClient,
    subscription: &str,
    from: Timestamp,
) -> Result<bool, MarketError> {
    let page = market
        .subscription_error_log(&ErrorLogQuery {
            subscription_id: Some(subscription.to_owned()),
            from: Some(from),
            to: None,
            page: None,
        })
        .await?;
    Ok(!page.items.is_empty() || !page.unreadable.is_empty())
}

/// Whether the marketplace's webhooks are trusted for one link: the worker's own record of its
/// subscription, of the deliveries that arrived, and of the error log's last word.
#[derive(Debug, Clone, Default)]
pub struct Deliveries {
    /// The subscription in place, if any.
    subscription: Option<String>,
    /// When the last delivery arrived (since the subscription was put in place or last failed).
    arrived: Option<Instant>,
    /// The error log showed failed deliveries at its last check.
    failing: bool,
    /// When the error log was last checked, and up to which instant.
    checked: Option<(Instant, Timestamp)>,
}

impl Deliveries {
    /// A subscription is in place (or none: `None`, webhooks unusable). Returns whether it is
    /// another one than before: trust starts afresh then.
    pub fn subscribed(&mut self, id: Option<String>) -> bool {
        let other = self.subscription != id;
        if other {
            self.arrived = None;
            self.failing = false;
            self.checked = None;
        }
        self.subscription = id;
        other
    }

    /// A delivery arrived.
    pub fn arrived(&mut self, at: Instant) {
        if self.subscription.is_some() {
            self.arrived = Some(at);
        }
    }

    /// Webhooks can be relied on: subscribed, a delivery arrived, none failing.
    pub fn trusted(&self) -> bool {
        self.subscription.is_some() && self.arrived.is_some() && !self.failing
    }

    /// The subscription whose error log is due for a check at `now` (every `every`), with the
    /// instant to read it from.
    pub fn check_due(
        &self,
        now: Instant,
        every: Duration,
        since: Timestamp,
    ) -> Option<(String, Timestamp)> {
        let id = self.subscription.clone()?;
        match self.checked {
            Some((at, _)) if now.duration_since(at) < every => None,
            Some((_, from)) => Some((id, from)),
            None => Some((id, since)),
        }
    }

    /// The error log was read at `now` up to `upto`: `failed` says whether it had entries.
    pub fn checked(&mut self, now: Instant, upto: Timestamp, failed: bool) {
        self.checked = Some((now, upto));
        if failed {
            if !self.failing {
                info!(subscription = ?self.subscription, "webhook deliveries are failing: polling every tick until one arrives again");
            }
            self.failing = true;
            // A delivery must arrive again before webhooks are trusted.
            self.arrived = None;
        } else if self.failing {
            debug!(subscription = ?self.subscription, "no failed delivery since the last check");
            self.failing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_are_trusted_only_after_a_delivery_and_while_none_fail() {
        let t0 = Instant::now();
        let ts = Timestamp::UNIX_EPOCH;
        let mut d = Deliveries::default();
        d.arrived(t0);
        assert!(!d.trusted(), "no subscription yet");
        d.subscribed(Some("s1".into()));
        assert!(!d.trusted(), "subscribed, but nothing arrived");
        d.arrived(t0);
        assert!(d.trusted());
        d.checked(t0, ts, true);
        assert!(!d.trusted(), "the error log shows failures");
        d.checked(t0, ts, false);
        assert!(!d.trusted(), "a new delivery is needed after failures");
        d.arrived(t0);
        assert!(d.trusted());
        d.subscribed(Some("s2".into()));
        assert!(!d.trusted(), "a new subscription starts untrusted");
        d.arrived(t0);
        d.subscribed(None);
        assert!(!d.trusted());
    }

    #[test]
    fn the_error_log_is_checked_at_most_once_per_interval_from_where_it_was_left() {
        let t0 = Instant::now();
        let every = Duration::from_secs(60);
        let since = Timestamp::UNIX_EPOCH;
        let mut d = Deliveries::default();
        assert_eq!(d.check_due(t0, every, since), None, "nothing subscribed");
        d.subscribed(Some("s1".into()));
        assert_eq!(d.check_due(t0, every, since), Some(("s1".into(), since)));
        let upto = since + SignedDuration::from_secs(100);
        d.checked(t0, upto, false);
        assert_eq!(
            d.check_due(t0 + Duration::from_secs(59), every, since),
            None
        );
        assert_eq!(
            d.check_due(t0 + every, every, since),
            Some(("s1".into(), upto))
        );
    }
}
