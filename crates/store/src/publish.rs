//! Publish state: what was last sent to the marketplace, so only changes are re-sent.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use jiff::civil::Date;
use serde::Serialize;
use sqlx::AssertSqlSafe;

use crate::backend::{Pool, Store, on_backend};
use crate::error::StoreError;
use crate::leases::{Lease, hold_lease};
use crate::types::{ContentHash, LinkId, day, day_text, instant, micros};

/// One resource's availability for one day, by its content hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct PublishItem {
    /// The marketplace resource (practitioner) id.
    pub resource_id: String,
    /// The practice-local day.
    pub day: Date,
    /// Hash of what is (or would be) published for that resource and day.
    pub hash: ContentHash,
}

/// Which whole-practice configuration a hash describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigHashKind {
    /// The resources (practitioners) snapshot.
    Resources,
    /// The appointment types snapshot.
    AppointmentTypes,
    /// The liveness (practice online / integration alive) report.
    Liveness,
}

impl ConfigHashKind {
    fn as_str(self) -> &'static str {
        match self {
            ConfigHashKind::Resources => "resources",
            ConfigHashKind::AppointmentTypes => "appointment_types",
            ConfigHashKind::Liveness => "liveness",
        }
    }
}

/// The configuration hashes last recorded for a link (`None`: never sent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConfigHashes {
    /// Resources snapshot.
    pub resources: Option<ContentHash>,
    /// Appointment types snapshot.
    pub appointment_types: Option<ContentHash>,
    /// Liveness report.
    pub liveness: Option<ContentHash>,
}

/// Rows per multi-row INSERT: 3 parameters a row stays far below both backends' limits.
const CHUNK: usize = 500;

impl Store {
    /// Of `candidates`, the ones whose hash differs from the one last recorded as published for
    /// the same (resource, day), or that were never published. Order is kept.
    pub async fn changed_publish_items(
        &self,
        link_id: LinkId,
        candidates: &[PublishItem],
    ) -> Result<Vec<PublishItem>, StoreError> {
        let (Some(first), Some(last)) = (
            candidates.iter().map(|c| c.day).min(),
            candidates.iter().map(|c| c.day).max(),
        ) else {
            return Ok(Vec::new());
        };
        let rows: Vec<(String, String, i64)> = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT resource_id, day, content_hash FROM publish_state \
                 WHERE link_id = $1 AND day >= $2 AND day <= $3",
            )
            .bind(link_id.0)
            .bind(day_text(first))
            .bind(day_text(last))
            .fetch_all(pool)
            .await?
        });
        let mut stored: HashMap<(String, Date), ContentHash> = HashMap::with_capacity(rows.len());
        for (resource, d, hash) in rows {
            stored.insert(
                (resource, day("publish_state.day", &d)?),
                ContentHash::from_db(hash),
            );
        }
        Ok(candidates
            .iter()
            .filter(|c| stored.get(&(c.resource_id.clone(), c.day)) != Some(&c.hash))
            .cloned()
            .collect())
    }

    /// Record that `items` were published at `at` for the link's `generation`, all in one
    /// transaction (batched multi-row upserts). If the link's practice changed since
    /// (`generation` is stale) nothing is recorded: [`StoreError::StaleGeneration`].
    pub async fn record_published(
        &self,
        lease: &Lease,
        generation: i64,
        items: &[PublishItem],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let link_id = lease.link_id;
        // Last one wins for a repeated (resource, day); one row per key per statement.
        let unique: BTreeMap<(&str, Date), ContentHash> = items
            .iter()
            .map(|i| ((i.resource_id.as_str(), i.day), i.hash))
            .collect();
        let unique: Vec<_> = unique.into_iter().collect();
        on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            hold_lease!(pool, tx, lease);
            let current: Option<i64> = sqlx::query_scalar(pool.pick(
                "SELECT generation FROM links WHERE id = $1",
                "SELECT generation FROM links WHERE id = $1 FOR SHARE",
            ))
            .bind(link_id.0)
            .fetch_optional(&mut *tx)
            .await?;
            match current {
                None => return Err(StoreError::LinkNotFound(link_id)),
                Some(g) if g != generation => {
                    return Err(StoreError::StaleGeneration {
                        link_id,
                        expected: generation,
                        current: g,
                    });
                }
                Some(_) => {}
            }
            for chunk in unique.chunks(CHUNK) {
                let mut sql = String::from(
                    "INSERT INTO publish_state \
                     (link_id, published_at, resource_id, day, content_hash) VALUES ",
                );
                for i in 0..chunk.len() {
                    let p = 3 + i * 3;
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("($1, $2, ${}, ${}, ${})", p, p + 1, p + 2));
                }
                sql.push_str(
                    " ON CONFLICT (link_id, resource_id, day) DO UPDATE SET \
                     content_hash = excluded.content_hash, published_at = excluded.published_at",
                );
                let mut q = sqlx::query(AssertSqlSafe(sql))
                    .bind(link_id.0)
                    .bind(micros(at));
                for ((resource, d), hash) in chunk {
                    q = q
                        .bind((*resource).to_owned())
                        .bind(day_text(*d))
                        .bind(hash.to_db());
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Everything recorded as published for a link, with when, by resource then day.
    pub async fn published_items(
        &self,
        link_id: LinkId,
    ) -> Result<Vec<(PublishItem, Timestamp)>, StoreError> {
        let rows: Vec<(String, String, i64, i64)> = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT resource_id, day, content_hash, published_at FROM publish_state \
                 WHERE link_id = $1 ORDER BY resource_id, day",
            )
            .bind(link_id.0)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(resource_id, d, hash, at)| {
                Ok((
                    PublishItem {
                        resource_id,
                        day: day("publish_state.day", &d)?,
                        hash: ContentHash::from_db(hash),
                    },
                    instant("publish_state.published_at", at)?,
                ))
            })
            .collect()
    }

    /// What is recorded as published for a link on `from` or later (the days beyond a horizon
    /// that shrank), by resource then day.
    pub async fn published_from(
        &self,
        link_id: LinkId,
        from: Date,
    ) -> Result<Vec<PublishItem>, StoreError> {
        let rows: Vec<(String, String, i64)> = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT resource_id, day, content_hash FROM publish_state \
                 WHERE link_id = $1 AND day >= $2 ORDER BY resource_id, day",
            )
            .bind(link_id.0)
            .bind(day_text(from))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(resource_id, d, hash)| {
                Ok(PublishItem {
                    resource_id,
                    day: day("publish_state.day", &d)?,
                    hash: ContentHash::from_db(hash),
                })
            })
            .collect()
    }

    /// Forget that `items` were published for the lease's link (they were withdrawn from the
    /// marketplace). Fenced by `lease`.
    pub async fn forget_published(
        &self,
        lease: &Lease,
        items: &[PublishItem],
    ) -> Result<u64, StoreError> {
        Ok(on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            hold_lease!(pool, tx, lease);
            let mut n = 0;
            for i in items {
                n += sqlx::query(
                    "DELETE FROM publish_state WHERE link_id = $1 AND resource_id = $2 AND day = $3",
                )
                .bind(lease.link_id.0)
                .bind(i.resource_id.clone())
                .bind(day_text(i.day))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            n
        }))
    }

    /// Forget publish state for days before `before` (they can no longer be booked).
    /// Returns how many (resource, day) rows were removed.
    pub async fn forget_published_before(
        &self,
        link_id: LinkId,
        before: Date,
    ) -> Result<u64, StoreError> {
        Ok(on_backend!(self, |pool| {
            sqlx::query("DELETE FROM publish_state WHERE link_id = $1 AND day < $2")
                .bind(link_id.0)
                .bind(day_text(before))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    /// The configuration hashes last recorded for a link.
    pub async fn config_hashes(&self, link_id: LinkId) -> Result<ConfigHashes, StoreError> {
        let rows: Vec<(String, i64)> = on_backend!(self, |pool| {
            sqlx::query_as("SELECT kind, content_hash FROM link_config_hashes WHERE link_id = $1")
                .bind(link_id.0)
                .fetch_all(pool)
                .await?
        });
        let mut hashes = ConfigHashes::default();
        for (kind, hash) in rows {
            let hash = Some(ContentHash::from_db(hash));
            match kind.as_str() {
                "resources" => hashes.resources = hash,
                "appointment_types" => hashes.appointment_types = hash,
                "liveness" => hashes.liveness = hash,
                other => {
                    return Err(StoreError::corrupt(
                        "link_config_hashes.kind",
                        format!("unknown kind {other:?}"),
                    ));
                }
            }
        }
        Ok(hashes)
    }

    /// Record the configuration hash last sent for `kind`, for the link's `generation`
    /// ([`StoreError::StaleGeneration`] if the practice changed since).
    pub async fn record_config_hash(
        &self,
        lease: &Lease,
        generation: i64,
        kind: ConfigHashKind,
        hash: ContentHash,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let link_id = lease.link_id;
        on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            hold_lease!(pool, tx, lease);
            let current: Option<i64> = sqlx::query_scalar(pool.pick(
                "SELECT generation FROM links WHERE id = $1",
                "SELECT generation FROM links WHERE id = $1 FOR SHARE",
            ))
            .bind(link_id.0)
            .fetch_optional(&mut *tx)
            .await?;
            match current {
                None => return Err(StoreError::LinkNotFound(link_id)),
                Some(g) if g != generation => {
                    return Err(StoreError::StaleGeneration {
                        link_id,
                        expected: generation,
                        current: g,
                    });
                }
                Some(_) => {}
            }
            sqlx::query(
                "INSERT INTO link_config_hashes (link_id, kind, content_hash, recorded_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (link_id, kind) DO UPDATE SET \
                 content_hash = excluded.content_hash, recorded_at = excluded.recorded_at",
            )
            .bind(link_id.0)
            .bind(kind.as_str())
            .bind(hash.to_db())
            .bind(micros(at))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
