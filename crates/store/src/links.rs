//! Links: one PMS site (slug + API key) joined to one marketplace practice (id + key).

use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use slotbridge_domain::practice::SiteSlug;
use uuid::Uuid;

use crate::backend::{Pool, Store, on_backend};
use crate::error::{StoreError, is_unique_violation};
use crate::secrets::Sealed;
use crate::types::{HorizonDays, LinkId, instant, micros};

/// A link as stored, secrets opened (they stay redacted in `Debug`).
#[derive(Debug, Clone)]
pub struct Link {
    /// The link's id.
    pub id: LinkId,
    /// The PMS site.
    pub site_slug: SiteSlug,
    /// The PMS API key for the site.
    pub pms_api_key: SecretString,
    /// The marketplace practice the site publishes to.
    pub market_practice_id: String,
    /// The marketplace practice key.
    pub market_practice_key: SecretString,
    /// Whether the link publishes and takes bookings.
    pub enabled: bool,
    /// How many days ahead it publishes.
    pub horizon_days: HorizonDays,
    /// Bumped whenever `market_practice_id` changes: work done for an older generation belongs
    /// to the old practice and is refused ([`StoreError::StaleGeneration`]).
    pub generation: i64,
    /// Bumped by every change of the link; the node working it restarts its worker when the
    /// revision it started at is no longer the link's.
    pub revision: i64,
    /// The practice's name as the PMS reported it at the last setup read (none before).
    pub pms_practice_name: Option<String>,
    /// The marketplace practice's name, as the operator entered it (the marketplace's API does
    /// not give it).
    pub market_practice_name: Option<String>,
    /// When the link was created.
    pub created_at: Timestamp,
    /// When the link was last changed.
    pub updated_at: Timestamp,
    /// Which PMS the link reaches.
    pub pms: LinkPms,
}

/// Which PMS a link reaches, and what besides the key it needs there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkPms {
    /// An Exact-style site: its slug ([`Link::site_slug`]) and key.
    Exact,
    /// A Cliniko business: the key (its shard suffix picks the API's host) and this business.
    Cliniko {
        /// The Cliniko business (location) id.
        business_id: String,
    },
}

impl LinkPms {
    /// `exact` or `cliniko`, as stored and shown.
    pub fn kind(&self) -> &'static str {
        match self {
            LinkPms::Exact => "exact",
            LinkPms::Cliniko { .. } => "cliniko",
        }
    }
}

impl Link {
    /// The name to show: the PMS's, else the marketplace's, else none.
    pub fn display_name(&self) -> Option<&str> {
        self.pms_practice_name
            .as_deref()
            .or(self.market_practice_name.as_deref())
    }
}

/// What [`Store::create_link`] needs. One PMS site may have several links (one per location).
#[derive(Debug, Clone)]
pub struct NewLink {
    /// The PMS site.
    pub site_slug: SiteSlug,
    /// The PMS API key.
    pub pms_api_key: SecretString,
    /// The marketplace practice id (at most one enabled link per practice).
    pub market_practice_id: String,
    /// The marketplace practice key.
    pub market_practice_key: SecretString,
    /// Start enabled?
    pub enabled: bool,
    /// Publishing horizon.
    pub horizon_days: HorizonDays,
}

/// Changes for [`Store::update_link`]: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct LinkChanges {
    /// New PMS site.
    pub site_slug: Option<SiteSlug>,
    /// New PMS API key.
    pub pms_api_key: Option<SecretString>,
    /// New marketplace practice: bumps the generation and forgets what was published.
    pub market_practice_id: Option<String>,
    /// New marketplace practice key.
    pub market_practice_key: Option<SecretString>,
    /// Enable or disable. The worker of a disabled link finishes its bookings in flight, then
    /// releases the lease.
    pub enabled: Option<bool>,
    /// New publishing horizon.
    pub horizon_days: Option<HorizonDays>,
}

#[derive(sqlx::FromRow)]
struct LinkRow {
    id: Uuid,
    site_slug: String,
    pms_api_key_key_id: String,
    pms_api_key_nonce: Vec<u8>,
    pms_api_key_ciphertext: Vec<u8>,
    market_practice_id: String,
    market_practice_key_key_id: String,
    market_practice_key_nonce: Vec<u8>,
    market_practice_key_ciphertext: Vec<u8>,
    enabled: bool,
    horizon_days: i64,
    generation: i64,
    revision: i64,
    pms_practice_name: Option<String>,
    market_practice_name: Option<String>,
    created_at: i64,
    updated_at: i64,
    pms_kind: String,
    pms_business_id: Option<String>,
}

macro_rules! select_links {
    ($rest:literal) => {
        concat!(
            "SELECT id, site_slug, pms_api_key_key_id, pms_api_key_nonce, pms_api_key_ciphertext, \
             market_practice_id, market_practice_key_key_id, market_practice_key_nonce, \
             market_practice_key_ciphertext, enabled, horizon_days, generation, revision, \
             pms_practice_name, market_practice_name, created_at, updated_at, pms_kind, pms_business_id FROM links ",
            $rest
        )
    };
}

const PMS_API_KEY: &str = "pms_api_key";
const PRACTICE_KEY: &str = "market_practice_key";

/// Associated data binding a sealed secret to its row and column.
fn aad(id: Uuid, column: &str) -> Vec<u8> {
    format!("slotbridge/links/{id}/{column}").into_bytes()
}

fn check_practice_id(id: &str) -> Result<String, StoreError> {
    let trimmed = id.trim();
    if trimmed.is_empty() || trimmed.len() > 200 || trimmed.chars().any(char::is_control) {
        return Err(StoreError::InvalidInput {
            field: "market_practice_id",
            message: format!("expected 1 to 200 printable characters, found {id:?}"),
        });
    }
    Ok(trimmed.to_owned())
}

fn check_secret(field: &'static str, s: &SecretString) -> Result<(), StoreError> {
    if s.expose_secret().trim().is_empty() {
        return Err(StoreError::InvalidInput {
            field,
            message: "expected a non-empty value".into(),
        });
    }
    Ok(())
}

impl Store {
    fn link_from_row(&self, r: LinkRow) -> Result<Link, StoreError> {
        let pms = Sealed {
            key_id: r.pms_api_key_key_id,
            nonce: r.pms_api_key_nonce,
            ciphertext: r.pms_api_key_ciphertext,
        };
        let practice = Sealed {
            key_id: r.market_practice_key_key_id,
            nonce: r.market_practice_key_nonce,
            ciphertext: r.market_practice_key_ciphertext,
        };
        Ok(Link {
            id: LinkId(r.id),
            site_slug: SiteSlug::parse(&r.site_slug)
                .map_err(|e| StoreError::corrupt("links.site_slug", e))?,
            pms_api_key: self.keys.open(&pms, &aad(r.id, PMS_API_KEY))?,
            market_practice_id: r.market_practice_id,
            market_practice_key: self.keys.open(&practice, &aad(r.id, PRACTICE_KEY))?,
            enabled: r.enabled,
            horizon_days: HorizonDays::new(r.horizon_days)
                .map_err(|e| StoreError::corrupt("links.horizon_days", e))?,
            generation: r.generation,
            revision: r.revision,
            pms_practice_name: r.pms_practice_name,
            market_practice_name: r.market_practice_name,
            created_at: instant("links.created_at", r.created_at)?,
            updated_at: instant("links.updated_at", r.updated_at)?,
            pms: match (r.pms_kind.as_str(), r.pms_business_id) {
                ("exact", _) => LinkPms::Exact,
                ("cliniko", Some(business_id)) => LinkPms::Cliniko { business_id },
                _ => {
                    return Err(StoreError::corrupt(
                        "links.pms_kind",
                        "expected exact, or cliniko with a business id",
                    ));
                }
            },
        })
    }

    /// Create a link (enabled or not), with its lease row and sync state.
    ///
    /// Fails with [`StoreError::PracticeAlreadyLinked`] if `enabled` and another enabled link
    /// publishes to the same marketplace practice.
    pub async fn create_link(&self, new: NewLink) -> Result<Link, StoreError> {
        self.create_link_of(new, LinkPms::Exact).await
    }

    /// Create a link to the PMS `pms` names, as [`Store::create_link`] does. A Cliniko business
    /// id is letters and digits (1 to 40).
    pub async fn create_link_of(&self, new: NewLink, pms: LinkPms) -> Result<Link, StoreError> {
        if let LinkPms::Cliniko { business_id } = &pms
            && (business_id.is_empty()
                || business_id.len() > 40
                || !business_id.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return Err(StoreError::InvalidInput {
                field: "business_id",
                message: format!("expected 1 to 40 letters or digits, found {business_id:?}"),
            });
        }
        let pms_kind = pms.kind();
        let business_id = match &pms {
            LinkPms::Exact => None,
            LinkPms::Cliniko { business_id } => Some(business_id.clone()),
        };
        let practice_id = check_practice_id(&new.market_practice_id)?;
        check_secret("pms_api_key", &new.pms_api_key)?;
        check_secret("market_practice_key", &new.market_practice_key)?;
        let id = LinkId::new();
        let now = micros(Timestamp::now());
        let pms = self
            .keys
            .seal(new.pms_api_key.expose_secret(), &aad(id.0, PMS_API_KEY));
        let practice = self.keys.seal(
            new.market_practice_key.expose_secret(),
            &aad(id.0, PRACTICE_KEY),
        );
        let inserted: Result<(), sqlx::Error> = on_backend!(self, |pool| async {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO links (id, site_slug, pms_api_key_key_id, pms_api_key_nonce, \
                 pms_api_key_ciphertext, market_practice_id, market_practice_key_key_id, \
                 market_practice_key_nonce, market_practice_key_ciphertext, enabled, \
                 horizon_days, generation, created_at, updated_at, pms_kind, pms_business_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12, $12, $13, $14)",
            )
            .bind(id.0)
            .bind(new.site_slug.as_str().to_owned())
            .bind(pms.key_id)
            .bind(pms.nonce)
            .bind(pms.ciphertext)
            .bind(practice_id.clone())
            .bind(practice.key_id)
            .bind(practice.nonce)
            .bind(practice.ciphertext)
            .bind(new.enabled)
            .bind(new.horizon_days.get())
            .bind(now)
            .bind(pms_kind)
            .bind(business_id.clone())
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO link_leases (link_id) VALUES ($1)")
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO sync_state (link_id, updated_at) VALUES ($1, $2)")
                .bind(id.0)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await);
        match inserted {
            Ok(()) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::PracticeAlreadyLinked {
                    market_practice_id: practice_id,
                });
            }
            Err(e) => return Err(e.into()),
        }
        self.link(id).await?.ok_or(StoreError::LinkNotFound(id))
    }

    /// The link with this id, if any.
    pub async fn link(&self, id: LinkId) -> Result<Option<Link>, StoreError> {
        let row: Option<LinkRow> = on_backend!(self, |pool| {
            sqlx::query_as(select_links!("WHERE id = $1"))
                .bind(id.0)
                .fetch_optional(pool)
                .await?
        });
        row.map(|r| self.link_from_row(r)).transpose()
    }

    /// Every link, oldest first.
    pub async fn list_links(&self) -> Result<Vec<Link>, StoreError> {
        let rows: Vec<LinkRow> = on_backend!(self, |pool| {
            sqlx::query_as(select_links!("ORDER BY created_at, id"))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(|r| self.link_from_row(r)).collect()
    }

    /// How many links are enabled (without reading, or decrypting, the links themselves).
    pub async fn count_enabled_links(&self) -> Result<u64, StoreError> {
        let n: i64 = on_backend!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM links WHERE enabled = TRUE")
                .fetch_one(pool)
                .await?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The links of one PMS site (several when the site has several locations), oldest first.
    pub async fn links_for_site(&self, site_slug: &SiteSlug) -> Result<Vec<Link>, StoreError> {
        let rows: Vec<LinkRow> = on_backend!(self, |pool| {
            sqlx::query_as(select_links!(
                "WHERE site_slug = $1 ORDER BY created_at, id"
            ))
            .bind(site_slug.as_str().to_owned())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(|r| self.link_from_row(r)).collect()
    }

    /// The enabled link publishing to this marketplace practice, if any.
    pub async fn link_for_practice(
        &self,
        market_practice_id: &str,
    ) -> Result<Option<Link>, StoreError> {
        let row: Option<LinkRow> = on_backend!(self, |pool| {
            sqlx::query_as(select_links!(
                "WHERE market_practice_id = $1 AND enabled = TRUE"
            ))
            .bind(market_practice_id.trim().to_owned())
            .fetch_optional(pool)
            .await?
        });
        row.map(|r| self.link_from_row(r)).transpose()
    }

    /// Apply `changes` to a link and return it as it now is.
    ///
    /// Changing the marketplace practice bumps the generation and deletes the link's publish
    /// state and configuration hashes, in the same transaction: nothing published for the old
    /// practice is taken as published for the new one. Every change bumps the
    /// link's revision, which the node working it sees at its next lease round: disabling lets
    /// that worker finish the bookings in flight before it releases the lease.
    pub async fn update_link(&self, id: LinkId, changes: LinkChanges) -> Result<Link, StoreError> {
        let practice_id = changes
            .market_practice_id
            .as_deref()
            .map(check_practice_id)
            .transpose()?;
        if let Some(k) = &changes.pms_api_key {
            check_secret("pms_api_key", k)?;
        }
        if let Some(k) = &changes.market_practice_key {
            check_secret("market_practice_key", k)?;
        }
        let now = micros(Timestamp::now());
        let pms = changes
            .pms_api_key
            .as_ref()
            .map(|k| self.keys.seal(k.expose_secret(), &aad(id.0, PMS_API_KEY)));
        let practice = changes
            .market_practice_key
            .as_ref()
            .map(|k| self.keys.seal(k.expose_secret(), &aad(id.0, PRACTICE_KEY)));
        let result: Result<bool, sqlx::Error> = on_backend!(self, |pool| async {
            let mut tx = pool.begin_write().await?;
            let current: Option<(String, i64)> = sqlx::query_as(pool.pick(
                "SELECT market_practice_id, generation FROM links WHERE id = $1",
                "SELECT market_practice_id, generation FROM links WHERE id = $1 FOR UPDATE",
            ))
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((old_practice, generation)) = current else {
                return Ok(false);
            };
            let practice_changed = practice_id.as_ref().is_some_and(|p| *p != old_practice);
            let generation = if practice_changed {
                generation + 1
            } else {
                generation
            };
            sqlx::query(
                "UPDATE links SET \
                 site_slug = COALESCE($2, site_slug), \
                 pms_api_key_key_id = COALESCE($3, pms_api_key_key_id), \
                 pms_api_key_nonce = COALESCE($4, pms_api_key_nonce), \
                 pms_api_key_ciphertext = COALESCE($5, pms_api_key_ciphertext), \
                 market_practice_id = COALESCE($6, market_practice_id), \
                 market_practice_key_key_id = COALESCE($7, market_practice_key_key_id), \
                 market_practice_key_nonce = COALESCE($8, market_practice_key_nonce), \
                 market_practice_key_ciphertext = COALESCE($9, market_practice_key_ciphertext), \
                 enabled = COALESCE($10, enabled), \
                 horizon_days = COALESCE($11, horizon_days), \
                 generation = $12, revision = revision + 1, updated_at = $13 \
                 WHERE id = $1",
            )
            .bind(id.0)
            .bind(changes.site_slug.as_ref().map(|s| s.as_str().to_owned()))
            .bind(pms.as_ref().map(|s| s.key_id.clone()))
            .bind(pms.as_ref().map(|s| s.nonce.clone()))
            .bind(pms.as_ref().map(|s| s.ciphertext.clone()))
            .bind(practice_id.clone())
            .bind(practice.as_ref().map(|s| s.key_id.clone()))
            .bind(practice.as_ref().map(|s| s.nonce.clone()))
            .bind(practice.as_ref().map(|s| s.ciphertext.clone()))
            .bind(changes.enabled)
            .bind(changes.horizon_days.map(HorizonDays::get))
            .bind(generation)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if practice_changed {
                sqlx::query("DELETE FROM publish_state WHERE link_id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM link_config_hashes WHERE link_id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await.map(|()| true)
        }
        .await);
        match result {
            Ok(true) => {}
            Ok(false) => return Err(StoreError::LinkNotFound(id)),
            Err(e) if is_unique_violation(&e) => {
                let market_practice_id = match practice_id {
                    Some(p) => p,
                    None => self
                        .link(id)
                        .await?
                        .map(|l| l.market_practice_id)
                        .unwrap_or_default(),
                };
                return Err(StoreError::PracticeAlreadyLinked { market_practice_id });
            }
            Err(e) => return Err(e.into()),
        }
        self.link(id).await?.ok_or(StoreError::LinkNotFound(id))
    }

    /// Name the link's marketplace practice (`None` or blank forgets the name). A name is only
    /// shown, so the link's revision stays and its worker does not restart.
    pub async fn set_market_practice_name(
        &self,
        id: LinkId,
        name: Option<&str>,
    ) -> Result<Link, StoreError> {
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        if let Some(n) = name
            && (n.chars().count() > 200 || n.chars().any(char::is_control))
        {
            return Err(StoreError::InvalidInput {
                field: "market_practice_name",
                message: format!(
                    "expected at most 200 printable characters, found {} characters",
                    n.chars().count()
                ),
            });
        }
        let n = on_backend!(self, |pool| {
            sqlx::query("UPDATE links SET market_practice_name = $2 WHERE id = $1")
                .bind(id.0)
                .bind(name.map(str::to_owned))
                .execute(pool)
                .await?
                .rows_affected()
        });
        if n == 0 {
            return Err(StoreError::LinkNotFound(id));
        }
        self.link(id).await?.ok_or(StoreError::LinkNotFound(id))
    }

    /// Delete a link and everything recorded for it (publish state, sync state, bookings and
    /// their events, lease). Returns whether it existed. Prefer disabling to keep the history.
    pub async fn delete_link(&self, id: LinkId) -> Result<bool, StoreError> {
        let n = on_backend!(self, |pool| {
            sqlx::query("DELETE FROM links WHERE id = $1")
                .bind(id.0)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Reseal every secret not sealed with the keyring's newest key: the links' keys, then the
    /// bookings' requests (the patients' details, in batches; their surnames indexed under the
    /// newest key too). Afterwards no stored value needs an older key. Safe to run while the
    /// service runs, and to run again: it resumes where an interrupted run stopped, and
    /// reseals nothing once done. Returns how many of each were resealed.
    pub async fn rotate_secrets(&self) -> Result<Resealed, StoreError> {
        let links = self.reseal_links().await?;
        let booking_requests = self.reseal_booking_requests().await?;
        let resealed = Resealed {
            links,
            booking_requests,
        };
        tracing::info!(
            links,
            booking_requests,
            key_id = %self.keys.newest_key_id(),
            "secrets resealed with the newest master key"
        );
        Ok(resealed)
    }

    /// Reseal the links' keys not sealed with the newest key; how many links were resealed.
    async fn reseal_links(&self) -> Result<u64, StoreError> {
        let newest = self.keys.newest_key_id().to_owned();
        let rows: Vec<LinkRow> = on_backend!(self, |pool| {
            sqlx::query_as(select_links!(
                "WHERE pms_api_key_key_id <> $1 OR market_practice_key_key_id <> $1"
            ))
            .bind(newest.clone())
            .fetch_all(pool)
            .await?
        });
        let mut resealed = 0;
        for row in rows {
            let (old_pms, old_practice) = (
                row.pms_api_key_key_id.clone(),
                row.market_practice_key_key_id.clone(),
            );
            let link = self.link_from_row(row)?;
            let pms = self.keys.seal(
                link.pms_api_key.expose_secret(),
                &aad(link.id.0, PMS_API_KEY),
            );
            let practice = self.keys.seal(
                link.market_practice_key.expose_secret(),
                &aad(link.id.0, PRACTICE_KEY),
            );
            // Compare-and-set on the key ids read: a concurrent update wins and is not undone.
            let n = on_backend!(self, |pool| {
                sqlx::query(
                    "UPDATE links SET pms_api_key_key_id = $2, pms_api_key_nonce = $3, \
                     pms_api_key_ciphertext = $4, market_practice_key_key_id = $5, \
                     market_practice_key_nonce = $6, market_practice_key_ciphertext = $7 \
                     WHERE id = $1 AND pms_api_key_key_id = $8 \
                     AND market_practice_key_key_id = $9",
                )
                .bind(link.id.0)
                .bind(pms.key_id)
                .bind(pms.nonce)
                .bind(pms.ciphertext)
                .bind(practice.key_id)
                .bind(practice.nonce)
                .bind(practice.ciphertext)
                .bind(old_pms)
                .bind(old_practice)
                .execute(pool)
                .await?
                .rows_affected()
            });
            resealed += n;
        }
        Ok(resealed)
    }

    /// Every master key id that sealed a stored secret (a link's keys, a booking's request)
    /// must be in the keyring.
    pub(crate) async fn check_keys(&self) -> Result<(), StoreError> {
        let ids: Vec<(String,)> = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT pms_api_key_key_id FROM links \
                 UNION SELECT market_practice_key_key_id FROM links",
            )
            .fetch_all(pool)
            .await?
        });
        for (id,) in ids {
            self.keys.require(&id)?;
        }
        for id in self.booking_request_key_ids().await? {
            self.keys.require(&id)?;
        }
        Ok(())
    }
}

/// What [`Store::rotate_secrets`] resealed with the newest master key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Links whose keys were resealed.
    pub links: u64,
    /// Bookings whose request (the patient's details) was resealed.
    pub booking_requests: u64,
}
