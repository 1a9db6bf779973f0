//! The practice list for thousands of links: search, filters and paging done in SQL, sorted by
//! attention, from the links and their stored sync state (no PMS call).
//!
//! The attention order is: enabled links first; then the most errors (the setup's error
//! findings of the last PMS read, plus one for a last error and one for a withdrawn consent);
//! then the most setup warnings; then the oldest PMS change not yet published; then by name and
//! id, so the order is total and pages never overlap or skip.

use uuid::Uuid;

use crate::backend::{Store, on_backend};
use crate::error::StoreError;
use crate::types::LinkId;

/// Which practices a list shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ListFilter {
    /// Every practice.
    #[default]
    All,
    /// Enabled practices with an error or warning finding, a last error, a withdrawn consent,
    /// nothing published yet, or a change waiting to be published.
    NeedsAttention,
    /// Enabled practices whose last error is one of these lasting kinds (parked until fixed).
    Parked {
        /// The failure kinds that park a link (`pms_unauthorized`, …), chosen by the service.
        kinds: Vec<String>,
    },
    /// Disabled practices.
    Disabled,
    /// Practices whose last PMS read found this setup finding (`stacking-off`, …).
    Finding(String),
}

/// A page of the list: which page, how long, and the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Part of a practice's name (PMS or marketplace), its PMS site slug or its marketplace
    /// practice id; case-insensitive. Empty: every practice.
    pub search: String,
    /// The filter.
    pub filter: ListFilter,
    /// How many practices to skip.
    pub offset: u64,
    /// At most this many.
    pub limit: u64,
}

/// One page of link ids in attention order, and how many practices match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// The page's links, in order.
    pub links: Vec<LinkId>,
    /// How many practices match the search and filter.
    pub total: u64,
}

macro_rules! matching {
    ($rest:literal) => {
        concat!(
            "FROM links l JOIN sync_state s ON s.link_id = l.id WHERE \
             (lower(COALESCE(l.pms_practice_name, '')) LIKE $1 ESCAPE '\\' \
              OR lower(COALESCE(l.market_practice_name, '')) LIKE $1 ESCAPE '\\' \
              OR lower(l.site_slug) LIKE $1 ESCAPE '\\' \
              OR lower(l.market_practice_id) LIKE $1 ESCAPE '\\') \
             AND ($2 = 'all' \
              OR ($2 = 'needs' AND l.enabled = TRUE AND (s.setup_errors > 0 \
                  OR s.setup_warnings > 0 OR s.last_error_kind IS NOT NULL \
                  OR s.consent = 'withdrawn' OR s.last_publish_at IS NULL \
                  OR s.change_pending_since IS NOT NULL)) \
              OR ($2 = 'parked' AND l.enabled = TRUE AND s.last_error_kind IS NOT NULL \
                  AND $3 LIKE '%,' || s.last_error_kind || ',%') \
              OR ($2 = 'disabled' AND l.enabled = FALSE) \
              OR ($2 = 'finding' AND s.setup_codes LIKE '%,' || $3 || ',%')) ",
            $rest
        )
    };
}

/// `%text%` for LIKE, lower-cased, with `\`, `%` and `_` taken literally.
fn contains_pattern(search: &str) -> String {
    let mut p = String::from("%");
    for c in search.trim().to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl ListFilter {
    fn mode_and_arg(&self) -> Result<(&'static str, String), StoreError> {
        Ok(match self {
            ListFilter::All => ("all", String::new()),
            ListFilter::NeedsAttention => ("needs", String::new()),
            ListFilter::Parked { kinds } => ("parked", format!(",{},", kinds.join(","))),
            ListFilter::Disabled => ("disabled", String::new()),
            ListFilter::Finding(code) => {
                if code.is_empty()
                    || code.len() > 64
                    || !code
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                {
                    return Err(StoreError::InvalidInput {
                        field: "finding",
                        message: format!(
                            "expected a finding code like stacking-off, found {code:?}"
                        ),
                    });
                }
                ("finding", code.clone())
            }
        })
    }
}

impl Store {
    /// One page of practices matching `query`, in attention order, with the total.
    pub async fn list_practices(&self, query: &ListQuery) -> Result<ListPage, StoreError> {
        let pattern = contains_pattern(&query.search);
        let (mode, arg) = query.filter.mode_and_arg()?;
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        let (ids, total): (Vec<Uuid>, i64) = on_backend!(self, |pool| {
            let ids = sqlx::query_scalar(concat!(
                "SELECT l.id ",
                matching!(
                    "ORDER BY CASE WHEN l.enabled = TRUE THEN 0 ELSE 1 END, \
                 (s.setup_errors + CASE WHEN s.last_error_kind IS NULL THEN 0 ELSE 1 END \
                  + CASE WHEN s.consent = 'withdrawn' THEN 1 ELSE 0 END) DESC, \
                 s.setup_warnings DESC, \
                 CASE WHEN s.change_pending_since IS NULL THEN 1 ELSE 0 END, \
                 s.change_pending_since, \
                 lower(COALESCE(l.pms_practice_name, l.market_practice_name, \
                                l.market_practice_id)), \
                 l.id \
                 LIMIT $4 OFFSET $5"
                )
            ))
            .bind(pattern.clone())
            .bind(mode)
            .bind(arg.clone())
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            let total = sqlx::query_scalar(concat!("SELECT COUNT(*) ", matching!("")))
                .bind(pattern.clone())
                .bind(mode)
                .bind(arg.clone())
                .fetch_one(pool)
                .await?;
            (ids, total)
        });
        Ok(ListPage {
            links: ids.into_iter().map(LinkId).collect(),
            total: u64::try_from(total).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_is_taken_literally_and_without_case() {
        assert_eq!(contains_pattern(" Harbour "), "%harbour%");
        assert_eq!(contains_pattern("100%_a\\b"), "%100\\%\\_a\\\\b%");
        assert_eq!(contains_pattern(""), "%%");
    }

    #[test]
    fn a_finding_filter_takes_codes_only() {
        assert!(
            ListFilter::Finding("stacking-off".into())
                .mode_and_arg()
                .is_ok()
        );
        for bad in ["", "x%", "Stacking", "a,b"] {
            assert!(
                ListFilter::Finding(bad.into()).mode_and_arg().is_err(),
                "{bad:?}"
            );
        }
    }
}
