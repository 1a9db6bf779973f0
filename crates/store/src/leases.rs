//! Leases: which node works on which link, so several nodes share one PostgreSQL database and
//! each link is worked on by at most one node at a time.
//!
//! Lease bookkeeping (heartbeats, renewals, acquisitions, releases) runs on a small pool of its
//! own, so a node whose workers keep every connection of the main pool busy still renews on time.
//!
//! Fencing:
//! - the **database's clock** decides expiry (`expires_at` is set and compared with the
//!   database's own `now`), so nodes whose clocks disagree still agree on who holds a lease;
//! - every take-over gives the lease a new, larger **epoch**; a renewal keeps it. A lease that
//!   expired is never renewed: it is acquired again, with a new epoch;
//! - every write made on behalf of a link's worker carries its [`Lease`] and checks, in the same
//!   transaction, that the lease is still held at that epoch and unexpired
//!   ([`StoreError::Fenced`] otherwise). On PostgreSQL the check locks the lease row
//!   `FOR KEY SHARE`: a take-over locks the row `FOR UPDATE` (which conflicts), so it waits
//!   for the write to commit, while a renewal by the holder (an update of `expires_at` only,
//!   `FOR NO KEY UPDATE`) does not conflict: writers and the renewer never queue on each
//!   other. On SQLite the write transaction holds the database's single write lock.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use uuid::Uuid;

use crate::backend::{Pool, Store, on_backend, on_pool};
use crate::error::StoreError;
use crate::types::{LinkId, instant};

/// The database's clock in epoch microseconds, as SQL (SQLite).
macro_rules! sqlite_now {
    () => {
        "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)"
    };
}
/// The database's clock in epoch microseconds, as SQL (PostgreSQL).
macro_rules! pg_now {
    () => {
        "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)"
    };
}
pub(crate) use {pg_now, sqlite_now};

/// Inside a write transaction (`$tx`) of `$pool`'s backend: return [`StoreError::Fenced`] from
/// the enclosing function unless `$lease` is still held, at its epoch, unexpired by the
/// database's clock.
///
/// On PostgreSQL the lease row stays locked `FOR KEY SHARE` until the transaction ends. A
/// take-over (`FOR UPDATE SKIP LOCKED` in [`Store::acquire_leases`]) cannot take the row
/// meanwhile; a renewal can. With `FOR SHARE`, as before, the renewal's update of 10,000 rows
/// waited for every writer holding one of them, and every writer that came after waited for
/// the renewal: a convoy that let the fences lapse.
macro_rules! hold_lease {
    ($pool:ident, $tx:ident, $lease:expr) => {{
        let lease: &$crate::leases::Lease = $lease;
        let held: Option<i64> = sqlx::query_scalar($pool.pick(
            concat!(
                "SELECT epoch FROM link_leases WHERE link_id = $1 AND node_id = $2 \
                 AND epoch = $3 AND expires_at > ",
                $crate::leases::sqlite_now!()
            ),
            concat!(
                "SELECT epoch FROM link_leases WHERE link_id = $1 AND node_id = $2 \
                 AND epoch = $3 AND expires_at > ",
                $crate::leases::pg_now!(),
                " FOR KEY SHARE"
            ),
        ))
        .bind(lease.link_id.0)
        .bind(lease.node_id.clone())
        .bind(lease.epoch)
        .fetch_optional(&mut *$tx)
        .await?;
        if held.is_none() {
            return Err($crate::error::StoreError::Fenced {
                link_id: lease.link_id,
                node_id: lease.node_id.clone(),
                epoch: lease.epoch,
            });
        }
    }};
}
pub(crate) use hold_lease;

/// A node's lease on a link at one epoch: what a worker's writes are fenced by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Lease {
    /// The link.
    pub link_id: LinkId,
    /// The node holding it.
    pub node_id: String,
    /// Grows on each take-over; a write under an older epoch is refused.
    pub epoch: i64,
}

/// A lease a node holds now, with what its worker needs to notice a change of the link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldLease {
    /// The lease.
    pub lease: Lease,
    /// The link's revision (bumped by every change of the link: practice, keys, site, enabled,
    /// horizon). A worker started at another revision must restart.
    pub revision: i64,
    /// Whether the link is enabled. A disabled link's worker finishes its bookings in flight,
    /// then releases the lease.
    pub enabled: bool,
}

/// A node's last heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeHeartbeat {
    /// The node.
    pub node_id: String,
    /// Its first heartbeat since it (re)started (the database's clock).
    pub started_at: Timestamp,
    /// Its latest heartbeat (the database's clock).
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

fn ttl_micros(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX / 4)
}

type HeldRow = (Uuid, i64, i64, bool);

/// SQL: the unexpired leases of node `$1` as [`HeldRow`]s, given the database's now.
macro_rules! held_by_node {
    ($now:expr) => {
        concat!(
            "SELECT ls.link_id, ls.epoch, l.revision, l.enabled FROM link_leases ls \
             JOIN links l ON l.id = ls.link_id \
             WHERE ls.node_id = $1 AND ls.expires_at > ",
            $now
        )
    };
}

fn held(node_id: &str, rows: Vec<HeldRow>) -> Vec<HeldLease> {
    let mut out: Vec<HeldLease> = rows
        .into_iter()
        .map(|(id, epoch, revision, enabled)| HeldLease {
            lease: Lease {
                link_id: LinkId(id),
                node_id: node_id.to_owned(),
                epoch,
            },
            revision,
            enabled,
        })
        .collect();
    out.sort_by_key(|h| h.lease.link_id);
    out
}

impl Store {
    /// Take leases on links that are enabled, or disabled with bookings still in flight (their
    /// worker finishes them), and are free or whose lease expired (by the database's
    /// clock), until `node_id` holds `max` unexpired leases; each lasts `ttl` from the
    /// database's now and gets a new epoch. Returns the leases newly acquired (leases already
    /// held are renewed by [`Store::renew_leases`], not here).
    ///
    /// On PostgreSQL candidate rows are locked with `FOR UPDATE SKIP LOCKED`, so nodes
    /// acquiring at once split the free links instead of queueing on them; the update re-checks
    /// that each lease is still free, so a link is never held by two nodes.
    pub async fn acquire_leases(
        &self,
        node_id: &str,
        max: u32,
        ttl: Duration,
    ) -> Result<Vec<HeldLease>, StoreError> {
        check_node(node_id)?;
        let ttl = ttl_micros(ttl);
        let rows: Vec<HeldRow> = on_pool!(&self.leases, |pool| {
            let mut tx = pool.begin_write().await?;
            let count: i64 = sqlx::query_scalar(pool.pick(
                concat!(
                    "SELECT COUNT(*) FROM link_leases WHERE node_id = $1 AND expires_at > ",
                    sqlite_now!()
                ),
                concat!(
                    "SELECT COUNT(*) FROM link_leases WHERE node_id = $1 AND expires_at > ",
                    pg_now!()
                ),
            ))
            .bind(node_id.to_owned())
            .fetch_one(&mut *tx)
            .await?;
            let wanted = i64::from(max) - count;
            let ids: Vec<(Uuid, i64)> = if wanted <= 0 {
                Vec::new()
            } else {
                sqlx::query_as(pool.pick(
                    concat!(
                        "UPDATE link_leases SET node_id = $1, epoch = epoch + 1, \
                         expires_at = ", sqlite_now!(), " + $2, acquired_at = ", sqlite_now!(), " \
                         WHERE link_id IN (SELECT ls.link_id FROM link_leases ls \
                           JOIN links l ON l.id = ls.link_id \
                           WHERE (l.enabled = TRUE OR EXISTS (SELECT 1 FROM bookings b WHERE b.link_id = l.id \
                             AND b.state IN ('received', 'patient_resolved', 'inserted'))) \
                           AND (ls.node_id IS NULL OR ls.expires_at IS NULL \
                             OR ls.expires_at <= ", sqlite_now!(), ") \
                           ORDER BY ls.link_id LIMIT $3) \
                         RETURNING link_id, epoch"
                    ),
                    concat!(
                        "UPDATE link_leases SET node_id = $1, epoch = epoch + 1, \
                         expires_at = ", pg_now!(), " + $2, acquired_at = ", pg_now!(), " \
                         WHERE link_id IN (SELECT ls.link_id FROM link_leases ls \
                           JOIN links l ON l.id = ls.link_id \
                           WHERE (l.enabled = TRUE OR EXISTS (SELECT 1 FROM bookings b WHERE b.link_id = l.id \
                             AND b.state IN ('received', 'patient_resolved', 'inserted'))) \
                           AND (ls.node_id IS NULL OR ls.expires_at IS NULL \
                             OR ls.expires_at <= ", pg_now!(), ") \
                           ORDER BY ls.link_id LIMIT $3 FOR UPDATE OF ls SKIP LOCKED) \
                         AND (node_id IS NULL OR expires_at IS NULL OR expires_at <= ", pg_now!(), ") \
                         RETURNING link_id, epoch"
                    ),
                ))
                .bind(node_id.to_owned())
                .bind(ttl)
                .bind(wanted)
                .fetch_all(&mut *tx)
                .await?
            };
            let mut rows = Vec::with_capacity(ids.len());
            for (id, epoch) in ids {
                let (revision, enabled): (i64, bool) =
                    sqlx::query_as("SELECT revision, enabled FROM links WHERE id = $1")
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?;
                rows.push((id, epoch, revision, enabled));
            }
            tx.commit().await?;
            rows
        });
        Ok(held(node_id, rows))
    }

    /// Extend every unexpired lease `node_id` holds to `ttl` from the database's now and return
    /// them, with their link's revision. A lease missing from the answer was lost (taken over,
    /// expired, released or deleted): its worker must stop. An expired lease is not renewed even
    /// if nobody took it: it is acquired again with a new epoch.
    ///
    /// The leases are read first, then renewed in chunks of consecutive links
    /// ([`crate::RENEW_CHUNK_POSTGRES`] or [`crate::RENEW_CHUNK_SQLITE`] of them), each chunk
    /// one statement of its own: no transaction
    /// holds more than a chunk's rows. (Fenced writes and a renewal do not wait for each other
    /// on PostgreSQL: see [`hold_lease!`].) Measured: one `UPDATE` of a node's 10,000 rows,
    /// waiting on whatever held any of them while later writers waited on it, outlasted the
    /// TTL under load.
    pub async fn renew_leases(
        &self,
        node_id: &str,
        ttl: Duration,
    ) -> Result<Vec<HeldLease>, StoreError> {
        let ttl = ttl_micros(ttl);
        let mut held = self.held_leases(node_id).await?;
        let mut renewed: HashMap<Uuid, i64> = HashMap::with_capacity(held.len());
        for chunk in held.chunks(self.leases.renew_chunk()) {
            let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
                continue;
            };
            let rows: Vec<(Uuid, i64)> = on_pool!(&self.leases, |pool| {
                sqlx::query_as(pool.pick(
                    concat!(
                        "UPDATE link_leases SET expires_at = ",
                        sqlite_now!(),
                        " + $2 WHERE node_id = $1 AND link_id >= $3 AND link_id <= $4 \
                         AND expires_at > ",
                        sqlite_now!(),
                        " RETURNING link_id, epoch"
                    ),
                    concat!(
                        "UPDATE link_leases SET expires_at = ",
                        pg_now!(),
                        " + $2 WHERE node_id = $1 AND link_id >= $3 AND link_id <= $4 \
                         AND expires_at > ",
                        pg_now!(),
                        " RETURNING link_id, epoch"
                    ),
                ))
                .bind(node_id.to_owned())
                .bind(ttl)
                .bind(first.lease.link_id.0)
                .bind(last.lease.link_id.0)
                .fetch_all(pool)
                .await?
            });
            renewed.extend(rows);
        }
        // Only what this call renewed, at the epoch it renewed (a lease acquired since the
        // read is valid from its own acquisition, which the caller knows of).
        held.retain_mut(|h| match renewed.get(&h.lease.link_id.0) {
            Some(epoch) => {
                h.lease.epoch = *epoch;
                true
            }
            None => false,
        });
        Ok(held)
    }

    /// The leases `node_id` holds unexpired now (the database's clock), with their links'
    /// revisions.
    pub async fn held_leases(&self, node_id: &str) -> Result<Vec<HeldLease>, StoreError> {
        let rows: Vec<HeldRow> = on_pool!(&self.leases, |pool| {
            sqlx::query_as(pool.pick(held_by_node!(sqlite_now!()), held_by_node!(pg_now!())))
                .bind(node_id.to_owned())
                .fetch_all(pool)
                .await?
        });
        Ok(held(node_id, rows))
    }

    /// The node holding an unexpired lease on `link_id` now, with its epoch, if any.
    pub async fn lease_holder(&self, link_id: LinkId) -> Result<Option<Lease>, StoreError> {
        let row: Option<(Option<String>, i64)> = on_backend!(self, |pool| {
            sqlx::query_as(pool.pick(
                concat!(
                    "SELECT node_id, epoch FROM link_leases WHERE link_id = $1 AND expires_at > ",
                    sqlite_now!()
                ),
                concat!(
                    "SELECT node_id, epoch FROM link_leases WHERE link_id = $1 AND expires_at > ",
                    pg_now!()
                ),
            ))
            .bind(link_id.0)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.and_then(|(node, epoch)| {
            node.map(|node_id| Lease {
                link_id,
                node_id,
                epoch,
            })
        }))
    }

    /// Give up every lease `node_id` holds (clean shutdown, after its workers stopped), so other
    /// nodes take them at once. Returns how many were released.
    pub async fn release_leases(&self, node_id: &str) -> Result<u64, StoreError> {
        Ok(on_pool!(&self.leases, |pool| {
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

    /// Give up one lease if it is still held at its epoch (a stale holder releases nothing).
    /// Returns whether it did. The epoch is kept, so the next holder's is larger.
    pub async fn release_lease(&self, lease: &Lease) -> Result<bool, StoreError> {
        let n = on_pool!(&self.leases, |pool| {
            sqlx::query(
                "UPDATE link_leases SET node_id = NULL, expires_at = NULL, acquired_at = NULL \
                 WHERE node_id = $1 AND link_id = $2 AND epoch = $3",
            )
            .bind(lease.node_id.clone())
            .bind(lease.link_id.0)
            .bind(lease.epoch)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Whether `lease` is still held at its epoch, unexpired by the database's clock.
    pub async fn check_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        on_backend!(self, |pool| {
            let mut tx = pool.begin().await?;
            hold_lease!(pool, tx, lease);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Record that `node_id` is alive now (the database's clock).
    pub async fn heartbeat(&self, node_id: &str) -> Result<(), StoreError> {
        check_node(node_id)?;
        on_pool!(&self.leases, |pool| {
            sqlx::query(pool.pick(
                concat!(
                    "INSERT INTO node_heartbeats (node_id, started_at, last_seen_at) \
                     VALUES ($1, ",
                    sqlite_now!(),
                    ", ",
                    sqlite_now!(),
                    ") \
                     ON CONFLICT (node_id) DO UPDATE SET last_seen_at = excluded.last_seen_at"
                ),
                concat!(
                    "INSERT INTO node_heartbeats (node_id, started_at, last_seen_at) \
                     VALUES ($1, ",
                    pg_now!(),
                    ", ",
                    pg_now!(),
                    ") \
                     ON CONFLICT (node_id) DO UPDATE SET last_seen_at = excluded.last_seen_at"
                ),
            ))
            .bind(node_id.to_owned())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// How many nodes sent a heartbeat within `within` of the database's now.
    pub async fn live_nodes(&self, within: Duration) -> Result<u64, StoreError> {
        let n: i64 = on_pool!(&self.leases, |pool| {
            sqlx::query_scalar(pool.pick(
                concat!(
                    "SELECT COUNT(*) FROM node_heartbeats WHERE last_seen_at >= ",
                    sqlite_now!(),
                    " - $1"
                ),
                concat!(
                    "SELECT COUNT(*) FROM node_heartbeats WHERE last_seen_at >= ",
                    pg_now!(),
                    " - $1"
                ),
            ))
            .bind(ttl_micros(within))
            .fetch_one(pool)
            .await?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The enabled links no node holds a live lease on (by the database's clock), among those
    /// linked before `linked_before` (a new link waits for the next lease round): the practices
    /// no node serves. Oldest link first.
    pub async fn unserved_links(
        &self,
        linked_before: Timestamp,
    ) -> Result<Vec<LinkId>, StoreError> {
        let ids: Vec<Uuid> = on_backend!(self, |pool| {
            sqlx::query_scalar(pool.pick(
                concat!(
                    "SELECT l.id FROM links l WHERE l.enabled = TRUE AND l.created_at < $1 \
                     AND NOT EXISTS (SELECT 1 FROM link_leases ls WHERE ls.link_id = l.id \
                     AND ls.expires_at > ",
                    sqlite_now!(),
                    ") ORDER BY l.created_at, l.id"
                ),
                concat!(
                    "SELECT l.id FROM links l WHERE l.enabled = TRUE AND l.created_at < $1 \
                     AND NOT EXISTS (SELECT 1 FROM link_leases ls WHERE ls.link_id = l.id \
                     AND ls.expires_at > ",
                    pg_now!(),
                    ") ORDER BY l.created_at, l.id"
                ),
            ))
            .bind(crate::types::micros(linked_before))
            .fetch_all(pool)
            .await?
        });
        Ok(ids.into_iter().map(LinkId).collect())
    }

    /// Every node's last heartbeat and its lease count now, most recently seen first.
    pub async fn nodes(&self) -> Result<Vec<NodeHeartbeat>, StoreError> {
        let rows: Vec<(String, i64, i64, i64)> = on_backend!(self, |pool| {
            sqlx::query_as(pool.pick(
                concat!(
                    "SELECT n.node_id, n.started_at, n.last_seen_at, \
                     (SELECT COUNT(*) FROM link_leases ls \
                      WHERE ls.node_id = n.node_id AND ls.expires_at > ",
                    sqlite_now!(),
                    ") \
                     FROM node_heartbeats n ORDER BY n.last_seen_at DESC, n.node_id"
                ),
                concat!(
                    "SELECT n.node_id, n.started_at, n.last_seen_at, \
                     (SELECT COUNT(*) FROM link_leases ls \
                      WHERE ls.node_id = n.node_id AND ls.expires_at > ",
                    pg_now!(),
                    ") \
                     FROM node_heartbeats n ORDER BY n.last_seen_at DESC, n.node_id"
                ),
            ))
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
                .bind(crate::types::micros(before))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::{ExposeSecret, SecretString};
    use slotbridge_domain::practice::SiteSlug;

    use crate::backend::Backend;
    use crate::{HorizonDays, Keyring, NewLink, Store};

    /// A node whose workers hold every connection of the main pool still renews its leases and
    /// sends its heartbeat: the lease bookkeeping has its own pool.
    #[tokio::test]
    async fn leases_renew_while_every_connection_of_the_main_pool_is_busy() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
        let keys = Keyring::parse(Keyring::generate_key().expose_secret()).expect("keys");
        let store = Store::open(&url, keys).await.expect("store");
        store
            .create_link(NewLink {
                site_slug: SiteSlug::parse("sbusy").expect("slug"),
                pms_api_key: SecretString::from("pms-key"),
                market_practice_id: "p-busy".into(),
                market_practice_key: SecretString::from("practice-key"),
                enabled: true,
                horizon_days: HorizonDays::default(),
            })
            .await
            .expect("link");
        let ttl = Duration::from_secs(10);
        let held = store
            .acquire_leases("node-a", 10, ttl)
            .await
            .expect("acquire");
        assert_eq!(held.len(), 1);

        let Backend::Sqlite(main) = &store.backend else {
            unreachable!("a SQLite URL opens a SQLite store")
        };
        let mut busy = Vec::new();
        for _ in 0..main.options().get_max_connections() {
            busy.push(main.acquire().await.expect("a main-pool connection"));
        }
        let quick = Duration::from_secs(2);
        tokio::time::timeout(quick, store.heartbeat("node-a"))
            .await
            .expect("the heartbeat does not wait for the main pool")
            .expect("heartbeat");
        let renewed = tokio::time::timeout(quick, store.renew_leases("node-a", ttl))
            .await
            .expect("the renewal does not wait for the main pool")
            .expect("renew");
        assert_eq!(renewed.len(), 1, "the lease is still held");
        assert_eq!(
            renewed[0].lease, held[0].lease,
            "same epoch: renewed, not re-taken"
        );
        drop(busy);
    }
}
