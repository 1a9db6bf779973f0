//! Leases: which node works on which link, so several nodes share one PostgreSQL database and
//! each link is worked on by at most one node at a time. A node renews its leases well within
//! the time-to-live; a dead node's leases expire and are taken over.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use uuid::Uuid;

use crate::backend::{Pool, Store, on_backend};
use crate::error::StoreError;
use crate::types::{LinkId, after, instant, micros};

/// A node's last heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeHeartbeat {
    /// The node.
    pub node_id: String,
    /// Its first heartbeat since it (re)started.
    pub started_at: Timestamp,
    /// Its latest heartbeat.
    pub last_seen_at: Timestamp,
    /// How many leases it holds now (unexpired).
    pub leases: i64,
}

fn check_node(node_id: &str) -> Result<(), StoreError> {
    if node_id.is_empty() || node_id.len() > 128 {
        return Err(StoreError::InvalidInput {
            field: "node_id",
            message: format!("expected 1 to 128 characters, found {}", node_id.len()),
        });
    }
    Ok(())
}

impl Store {
    /// Take leases on enabled links that are free or whose lease expired, until `node_id`
    /// holds `max` unexpired leases; each lasts until `now + ttl`. Returns the links newly
    /// acquired (leases already held are not renewed here: see [`Store::renew_leases`]).
    ///
    /// On PostgreSQL candidate rows are locked with `FOR UPDATE SKIP LOCKED`, so nodes
    /// acquiring at once split the free links instead of queueing on them; the update re-checks
    /// that each lease is still free, so a link is never held by two nodes.
    pub async fn acquire_leases(
        &self,
        node_id: &str,
        max: u32,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Vec<LinkId>, StoreError> {
        check_node(node_id)?;
        let until = after(now, ttl);
        let now = micros(now);
        let ids: Vec<Uuid> = on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let held: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM link_leases WHERE node_id = $1 AND expires_at > $2",
            )
            .bind(node_id.to_owned())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let wanted = i64::from(max) - held;
            let ids: Vec<Uuid> = if wanted <= 0 {
                Vec::new()
            } else {
                sqlx::query_scalar(pool.pick(
                    "UPDATE link_leases SET node_id = $1, expires_at = $2, acquired_at = $3 \
                 WHERE link_id IN (SELECT ls.link_id FROM link_leases ls \
                   JOIN links l ON l.id = ls.link_id \
                   WHERE l.enabled = TRUE AND (ls.node_id IS NULL OR ls.expires_at <= $3) \
                   ORDER BY ls.link_id LIMIT $4) \
                 RETURNING link_id",
                    "UPDATE link_leases SET node_id = $1, expires_at = $2, acquired_at = $3 \
                 WHERE link_id IN (SELECT ls.link_id FROM link_leases ls \
                   JOIN links l ON l.id = ls.link_id \
                   WHERE l.enabled = TRUE AND (ls.node_id IS NULL OR ls.expires_at <= $3) \
                   ORDER BY ls.link_id LIMIT $4 FOR UPDATE OF ls SKIP LOCKED) \
                 AND (node_id IS NULL OR expires_at <= $3) \
                 RETURNING link_id",
                ))
                .bind(node_id.to_owned())
                .bind(until)
                .bind(now)
                .bind(wanted)
                .fetch_all(&mut *tx)
                .await?
            };
            tx.commit().await?;
            ids
        });
        let mut ids: Vec<LinkId> = ids.into_iter().map(LinkId).collect();
        ids.sort();
        Ok(ids)
    }

    /// Extend every lease `node_id` still holds to `now + ttl` and return those links. A link
    /// missing from the answer was lost (taken over after expiry, disabled, or deleted): stop
    /// working on it.
    pub async fn renew_leases(
        &self,
        node_id: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Vec<LinkId>, StoreError> {
        let until = after(now, ttl);
        let ids: Vec<Uuid> = on_backend!(self, |pool| {
            sqlx::query_scalar(
                "UPDATE link_leases SET expires_at = $2 WHERE node_id = $1 RETURNING link_id",
            )
            .bind(node_id.to_owned())
            .bind(until)
            .fetch_all(pool)
            .await?
        });
        let mut ids: Vec<LinkId> = ids.into_iter().map(LinkId).collect();
        ids.sort();
        Ok(ids)
    }

    /// The links `node_id` holds unexpired leases on at `now`.
    pub async fn held_leases(
        &self,
        node_id: &str,
        now: Timestamp,
    ) -> Result<Vec<LinkId>, StoreError> {
        let ids: Vec<Uuid> = on_backend!(self, |pool| {
            sqlx::query_scalar(
                "SELECT link_id FROM link_leases WHERE node_id = $1 AND expires_at > $2 \
                 ORDER BY link_id",
            )
            .bind(node_id.to_owned())
            .bind(micros(now))
            .fetch_all(pool)
            .await?
        });
        Ok(ids.into_iter().map(LinkId).collect())
    }

    /// The node holding an unexpired lease on `link_id` at `now`, if any.
    pub async fn lease_holder(
        &self,
        link_id: LinkId,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        Ok(on_backend!(self, |pool| {
            sqlx::query_scalar(
                "SELECT node_id FROM link_leases WHERE link_id = $1 AND expires_at > $2",
            )
            .bind(link_id.0)
            .bind(micros(now))
            .fetch_optional(pool)
            .await?
            .flatten()
        }))
    }

    /// Give up every lease `node_id` holds (clean shutdown), so other nodes take them at once.
    /// Returns how many were released.
    pub async fn release_leases(&self, node_id: &str) -> Result<u64, StoreError> {
        Ok(on_backend!(self, |pool| {
            sqlx::query(
                "UPDATE link_leases SET node_id = NULL, expires_at = NULL, acquired_at = NULL \
                 WHERE node_id = $1",
            )
            .bind(node_id.to_owned())
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// Give up one lease, if `node_id` holds it. Returns whether it did.
    pub async fn release_lease(&self, node_id: &str, link_id: LinkId) -> Result<bool, StoreError> {
        let n = on_backend!(self, |pool| {
            sqlx::query(
                "UPDATE link_leases SET node_id = NULL, expires_at = NULL, acquired_at = NULL \
                 WHERE node_id = $1 AND link_id = $2",
            )
            .bind(node_id.to_owned())
            .bind(link_id.0)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Record that `node_id` is alive at `now`.
    pub async fn heartbeat(&self, node_id: &str, now: Timestamp) -> Result<(), StoreError> {
        check_node(node_id)?;
        on_backend!(self, |pool| {
            sqlx::query(
                "INSERT INTO node_heartbeats (node_id, started_at, last_seen_at) \
                 VALUES ($1, $2, $2) ON CONFLICT (node_id) DO UPDATE SET \
                 last_seen_at = excluded.last_seen_at",
            )
            .bind(node_id.to_owned())
            .bind(micros(now))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Every node's last heartbeat and its lease count at `now`, most recently seen first.
    pub async fn nodes(&self, now: Timestamp) -> Result<Vec<NodeHeartbeat>, StoreError> {
        let rows: Vec<(String, i64, i64, i64)> = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT n.node_id, n.started_at, n.last_seen_at, \
                 (SELECT COUNT(*) FROM link_leases ls \
                  WHERE ls.node_id = n.node_id AND ls.expires_at > $1) \
                 FROM node_heartbeats n ORDER BY n.last_seen_at DESC, n.node_id",
            )
            .bind(micros(now))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(node_id, started, seen, leases)| {
                Ok(NodeHeartbeat {
                    node_id,
                    started_at: instant("node_heartbeats.started_at", started)?,
                    last_seen_at: instant("node_heartbeats.last_seen_at", seen)?,
                    leases,
                })
            })
            .collect()
    }

    /// Forget nodes not seen since `before`. Returns how many.
    pub async fn forget_nodes_before(&self, before: Timestamp) -> Result<u64, StoreError> {
        Ok(on_backend!(self, |pool| {
            sqlx::query("DELETE FROM node_heartbeats WHERE last_seen_at < $1")
                .bind(micros(before))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}
