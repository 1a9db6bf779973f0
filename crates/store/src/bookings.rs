//! The booking outbox: each marketplace booking is a row driven through a state machine,
//! claimed by one worker at a time, every transition compare-and-set and logged.
//!
//! ```text
//! Received ──▶ PatientResolved ──▶ Inserted ──▶ Confirmed
//!     │               │                ├──────▶ Gone (confirmInsert: 404/410)
//!     └───────────────┴────────────────┴──────▶ Rejected
//! ```
//!
//! The marketplace's request (the patient's name, date of birth, phone, email, Medicare number)
//! is sealed like the links' keys: AES-256-GCM under the newest master key, bound to its booking
//! id, stored as `sealed:v1:{key id}:{nonce}:{ciphertext}` (base64). Rows written before sealing
//! are read as they are. [`Store::purge_booking_requests`] replaces the request of every booking
//! final before a cut-off with `null` (docs/operations.md, "Retention"); a key rotation
//! ([`Store::rotate_secrets`]) reseals every request left with the newest key.
//!
//! Look-up ([`Store::find_bookings`]): within one link, by booking id, PMS appointment id or
//! the patient's surname. The surname is not stored in clear and a search opens no request but
//! the ones it finds: each booking keeps a blind index of its patient's normalised surname
//! (`surname_hash`, [`surname_key`]), HMAC-SHA256 under a key derived from the master key.

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::ExposeSecret as _;

use crate::backend::{Pool, Store, on_backend};
use crate::error::StoreError;
use crate::leases::{Lease, hold_lease};
use crate::secrets::Sealed;
use crate::types::{LinkId, after, instant, micros, opt_instant};

/// Where a booking is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingState {
    /// Taken from the marketplace, nothing done yet.
    Received,
    /// The patient was matched to (or created in) the PMS.
    PatientResolved,
    /// The appointment is in the PMS diary.
    Inserted,
    /// The marketplace was told it succeeded. Terminal.
    Confirmed,
    /// Refused (slot gone, patient unmatched, …). Terminal.
    Rejected,
    /// Inserted, but the marketplace no longer waited for it when it was confirmed (404/410):
    /// the appointment is in the diary for the practice to check. Terminal.
    Gone,
}

impl BookingState {
    /// The stored text (`received`, `patient_resolved`, `inserted`, `confirmed`, `rejected`).
    pub fn as_str(self) -> &'static str {
        match self {
            BookingState::Received => "received",
            BookingState::PatientResolved => "patient_resolved",
            BookingState::Inserted => "inserted",
            BookingState::Confirmed => "confirmed",
            BookingState::Rejected => "rejected",
            BookingState::Gone => "gone",
        }
    }

    /// Parse the stored text.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "received" => BookingState::Received,
            "patient_resolved" => BookingState::PatientResolved,
            "inserted" => BookingState::Inserted,
            "confirmed" => BookingState::Confirmed,
            "rejected" => BookingState::Rejected,
            "gone" => BookingState::Gone,
            _ => return None,
        })
    }

    /// Confirmed or rejected: no more work.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            BookingState::Confirmed | BookingState::Rejected | BookingState::Gone
        )
    }

    /// Whether the state machine has an edge `self → to`.
    pub fn can_become(self, to: BookingState) -> bool {
        use BookingState::*;
        matches!(
            (self, to),
            (Received, PatientResolved)
                | (PatientResolved, Inserted)
                | (Inserted, Confirmed)
                | (Inserted, Gone)
                | (Received | PatientResolved | Inserted, Rejected)
        )
    }
}

impl fmt::Display for BookingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn parse_state(column: &'static str, s: &str) -> Result<BookingState, StoreError> {
    BookingState::parse(s).ok_or_else(|| StoreError::corrupt(column, format!("unknown {s:?}")))
}

/// A move to the next state, with what it learned.
#[derive(Debug, Clone, PartialEq)]
pub enum BookingTransition {
    /// The patient is known in the PMS.
    PatientResolved {
        /// The PMS patient id.
        pms_patient_id: String,
        /// How the match was decided (the matcher's explanation).
        match_decision: serde_json::Value,
    },
    /// The appointment was written into the diary.
    Inserted {
        /// The PMS appointment id.
        pms_appointment_id: String,
    },
    /// The marketplace was told.
    Confirmed,
    /// The marketplace no longer waited for the booking when it was confirmed (404/410).
    Gone,
    /// The booking is refused.
    Rejected {
        /// Why, for the marketplace and the console.
        reason: String,
    },
}

impl BookingTransition {
    /// The state this transition leads to.
    pub fn target(&self) -> BookingState {
        match self {
            BookingTransition::PatientResolved { .. } => BookingState::PatientResolved,
            BookingTransition::Inserted { .. } => BookingState::Inserted,
            BookingTransition::Confirmed => BookingState::Confirmed,
            BookingTransition::Gone => BookingState::Gone,
            BookingTransition::Rejected { .. } => BookingState::Rejected,
        }
    }
}

/// A booking as received from the marketplace.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBooking {
    /// The marketplace's booking id (unique).
    pub booking_id: String,
    /// The link it is for.
    pub link_id: LinkId,
    /// The marketplace practice it came from (the link may later move to another).
    pub market_practice_id: String,
    /// The marketplace's request, as received.
    pub request: serde_json::Value,
    /// When it arrived (also its first attempt time).
    pub received_at: Timestamp,
}

/// A booking in the outbox. Its `Debug` leaves out the request (the patient's details).
#[derive(Clone, PartialEq, Serialize)]
pub struct Booking {
    /// The marketplace's booking id.
    pub booking_id: String,
    /// The link it is for.
    pub link_id: LinkId,
    /// Where it is.
    pub state: BookingState,
    /// The marketplace's request.
    pub request: serde_json::Value,
    /// How many times a worker claimed it.
    pub attempts: i64,
    /// Not to be claimed before this.
    pub next_attempt_at: Timestamp,
    /// The marketplace practice it came from (`None` for bookings stored before it was kept).
    pub market_practice_id: Option<String>,
    /// The node holding it, while claimed.
    pub claimed_by: Option<String>,
    /// The lease epoch the claim was made under: a claim under an older epoch than the link's
    /// lease is dead (its node lost the link) and is taken over.
    pub claim_epoch: Option<i64>,
    /// The claim lapses at this instant (a dead worker's claim is taken over).
    pub claim_until: Option<Timestamp>,
    /// The PMS patient, once resolved.
    pub pms_patient_id: Option<String>,
    /// The PMS appointment, once inserted.
    pub pms_appointment_id: Option<String>,
    /// The matcher's decision, once resolved.
    pub match_decision: Option<serde_json::Value>,
    /// Why it was rejected.
    pub reject_reason: Option<String>,
    /// The last retryable error.
    pub last_error: Option<String>,
    /// When it was received.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When a desk cancellation of its appointment was reported to the marketplace (confirmed
    /// bookings only; reported once).
    pub cancelled_at: Option<Timestamp>,
    /// What the marketplace was last told about the appointment: `cancelled`, `did_not_attend`
    /// or `no_change` (see [`AppointmentChange`]).
    pub appointment_change: Option<String>,
    /// When it was told.
    pub appointment_change_at: Option<Timestamp>,
    /// The outcome of a late answer the marketplace refused, for the practice to act on (e.g.
    /// auto-confirmed by the marketplace but not in the diary: call the patient). Set once; the
    /// answer is never sent again.
    pub late_outcome: Option<String>,
}

impl fmt::Debug for Booking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Booking")
            .field("booking_id", &self.booking_id)
            .field("link_id", &self.link_id)
            .field("state", &self.state)
            .field("attempts", &self.attempts)
            .field("next_attempt_at", &self.next_attempt_at)
            .finish_non_exhaustive()
    }
}

/// What the marketplace is told about a booking's appointment (a pmsAppointmentChanges
/// answer, or a change pushed as soon as the diary shows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppointmentChange {
    /// Removed at the desk: `cancel`.
    Cancelled,
    /// The patient did not attend: `didNotAttend`.
    DidNotAttend,
    /// As booked: `noPmsAppointmentChange`.
    NoChange,
}

impl AppointmentChange {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cancelled => "cancelled",
            Self::DidNotAttend => "did_not_attend",
            Self::NoChange => "no_change",
        }
    }
}

/// One recorded change of a booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BookingEvent {
    /// Order of events (increasing).
    pub seq: i64,
    /// The booking.
    pub booking_id: String,
    /// The state before (`None` for the first event).
    pub from: Option<BookingState>,
    /// The state after (same as `from` for a retry).
    pub to: BookingState,
    /// Why.
    pub reason: String,
    /// When.
    pub at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct BookingRow {
    booking_id: String,
    link_id: Uuid,
    state: String,
    request: String,
    attempts: i64,
    next_attempt_at: i64,
    market_practice_id: Option<String>,
    claimed_by: Option<String>,
    claim_epoch: Option<i64>,
    claim_until: Option<i64>,
    pms_patient_id: Option<String>,
    pms_appointment_id: Option<String>,
    match_decision: Option<String>,
    reject_reason: Option<String>,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
    cancelled_at: Option<i64>,
    appointment_change: Option<String>,
    appointment_change_at: Option<i64>,
    late_outcome: Option<String>,
}

/// SQL: the booking is not held by a live claim, given the lease epoch and now parameters. A
/// claim is live while made under the current epoch and not lapsed.
macro_rules! claim_free {
    ($epoch:literal, $now:literal) => {
        concat!(
            "(claimed_by IS NULL OR claim_epoch IS NULL OR claim_epoch < ",
            $epoch,
            " OR claim_until IS NULL OR claim_until <= ",
            $now,
            ")"
        )
    };
}

macro_rules! booking_columns {
    () => {
        "booking_id, link_id, state, request, attempts, next_attempt_at, market_practice_id, \
         claimed_by, claim_epoch, claim_until, pms_patient_id, pms_appointment_id, match_decision, reject_reason, \
         last_error, created_at, updated_at, cancelled_at, appointment_change, \
         appointment_change_at, late_outcome"
    };
}

impl TryFrom<BookingRow> for Booking {
    type Error = StoreError;
    fn try_from(r: BookingRow) -> Result<Self, StoreError> {
        Ok(Booking {
            booking_id: r.booking_id,
            link_id: LinkId(r.link_id),
            state: parse_state("bookings.state", &r.state)?,
            request: serde_json::from_str(&r.request)
                .map_err(|e| StoreError::corrupt("bookings.request", e))?,
            attempts: r.attempts,
            next_attempt_at: instant("bookings.next_attempt_at", r.next_attempt_at)?,
            market_practice_id: r.market_practice_id,
            claimed_by: r.claimed_by,
            claim_epoch: r.claim_epoch,
            claim_until: opt_instant("bookings.claim_until", r.claim_until)?,
            pms_patient_id: r.pms_patient_id,
            pms_appointment_id: r.pms_appointment_id,
            match_decision: r
                .match_decision
                .map(|m| serde_json::from_str(&m))
                .transpose()
                .map_err(|e| StoreError::corrupt("bookings.match_decision", e))?,
            reject_reason: r.reject_reason,
            last_error: r.last_error,
            created_at: instant("bookings.created_at", r.created_at)?,
            updated_at: instant("bookings.updated_at", r.updated_at)?,
            cancelled_at: opt_instant("bookings.cancelled_at", r.cancelled_at)?,
            appointment_change: r.appointment_change,
            appointment_change_at: opt_instant(
                "bookings.appointment_change_at",
                r.appointment_change_at,
            )?,
            late_outcome: r.late_outcome,
        })
    }
}

const SEALED_REQUEST: &str = "sealed:v1:";

/// How many bookings [`Store::index_booking_surnames`] opens and indexes per transaction.
const INDEX_BATCH: i64 = 500;

/// How many booking requests [`Store::reseal_booking_requests`] reseals per transaction.
const RESEAL_BATCH: i64 = 500;

/// The purpose the surname's blind index is computed under.
const SURNAME_INDEX: &str = "bookings.surname";

/// The surname as indexed: the matcher's normalised name (accents, case, punctuation and
/// `Mac`/`Mc` folded, so "O'Brien" finds "OBRIEN"), or `None` when nothing is left.
///
/// ```
/// use slotbridge_store::surname_key;
/// assert_eq!(surname_key(" O'Brien "), surname_key("OBRIEN"));
/// assert_eq!(surname_key("Zoë"), Some("zoe".to_owned()));
/// assert_eq!(surname_key(" - "), None);
/// ```
pub fn surname_key(surname: &str) -> Option<String> {
    Some(slotbridge_domain::matching::normalise::normalise_name(
        surname,
    ))
    .filter(|s| !s.is_empty())
}

/// The patient's surname in a marketplace booking request (`patient.lastname`, the PMS API
/// v1.9.0 booking's field).
fn request_surname(request: &serde_json::Value) -> Option<&str> {
    request.pointer("/patient/lastname")?.as_str()
}

/// What to look for with [`Store::find_bookings`]; every criterion given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookingSearch {
    /// The marketplace's booking id, exactly.
    pub booking_id: Option<String>,
    /// The PMS appointment id, exactly.
    pub pms_appointment_id: Option<String>,
    /// The patient's surname, compared normalised ([`surname_key`]).
    pub surname: Option<String>,
}

impl BookingSearch {
    /// Whether no criterion is given.
    pub fn is_empty(&self) -> bool {
        self.booking_id.is_none() && self.pms_appointment_id.is_none() && self.surname.is_none()
    }
}

/// What binds a sealed request to its booking: a request moved to another row does not open.
fn request_aad(booking_id: &str) -> Vec<u8> {
    format!("bookings.request:{booking_id}").into_bytes()
}

impl Store {
    fn seal_request(&self, booking_id: &str, request: &serde_json::Value) -> String {
        let sealed = self
            .keys
            .seal(&request.to_string(), &request_aad(booking_id));
        format!(
            "{SEALED_REQUEST}{}:{}:{}",
            sealed.key_id,
            B64.encode(&sealed.nonce),
            B64.encode(&sealed.ciphertext)
        )
    }

    /// The blind index a booking stores for its request's surname (`''` when it names none).
    fn surname_hash(&self, request: &serde_json::Value) -> String {
        request_surname(request)
            .and_then(surname_key)
            .and_then(|k| {
                self.keys
                    .blind_indexes(SURNAME_INDEX, &k)
                    .into_iter()
                    .next()
            })
            .unwrap_or_default()
    }

    /// The request as stored: sealed, or (written before sealing, or purged) plain JSON.
    fn open_request(
        &self,
        booking_id: &str,
        stored: &str,
    ) -> Result<serde_json::Value, StoreError> {
        let corrupt = |e: String| StoreError::corrupt("bookings.request", e);
        let text = match stored.strip_prefix(SEALED_REQUEST) {
            None => return serde_json::from_str(stored).map_err(|e| corrupt(e.to_string())),
            Some(rest) => {
                let mut parts = rest.splitn(3, ':');
                let (Some(key_id), Some(nonce), Some(ciphertext)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(corrupt("a sealed request without its three parts".into()));
                };
                let decode = |b: &str| B64.decode(b).map_err(|e| corrupt(e.to_string()));
                let sealed = Sealed {
                    key_id: key_id.to_owned(),
                    nonce: decode(nonce)?,
                    ciphertext: decode(ciphertext)?,
                };
                self.keys.open(&sealed, &request_aad(booking_id))?
            }
        };
        serde_json::from_str(text.expose_secret()).map_err(|e| corrupt(e.to_string()))
    }

    fn booking_from_row(&self, mut r: BookingRow) -> Result<Booking, StoreError> {
        let request = self.open_request(&r.booking_id, &r.request)?;
        r.request = "null".to_owned();
        let mut b = Booking::try_from(r)?;
        b.request = request;
        Ok(b)
    }

    /// Forget the marketplace's request (the patient's details) of every booking that became
    /// final (confirmed, rejected or gone) before `before`: it is replaced by `null`; the
    /// booking, its state, its transitions and its match decision stay; so does its PMS
    /// appointment id, but its surname's index goes with the request. Returns how many were
    /// purged. Not fenced: it touches only bookings no worker acts on any more.
    pub async fn purge_booking_requests(&self, before: Timestamp) -> Result<u64, StoreError> {
        let n = on_backend!(self, |pool| {
            sqlx::query(
                "UPDATE bookings SET request = 'null', surname_hash = '' \
                 WHERE state IN ('confirmed', 'rejected', 'gone') AND updated_at < $1 \
                 AND request <> 'null'",
            )
            .bind(micros(before))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n)
    }
}

impl Store {
    /// Put a booking in the outbox, unless its id is already there. Returns `true` if this
    /// call added it; a duplicate changes nothing. Fenced by `lease` (see [`Lease`]).
    pub async fn enqueue_booking(
        &self,
        lease: &Lease,
        new: &NewBooking,
    ) -> Result<bool, StoreError> {
        if new.booking_id.is_empty() || new.booking_id.len() > 256 {
            return Err(StoreError::InvalidInput {
                field: "booking_id",
                message: format!(
                    "expected 1 to 256 characters, found {} characters",
                    new.booking_id.len()
                ),
            });
        }
        if new.link_id != lease.link_id {
            return Err(StoreError::InvalidInput {
                field: "link_id",
                message: format!(
                    "the booking is for link {}, the lease for link {}",
                    new.link_id, lease.link_id
                ),
            });
        }
        let at = micros(new.received_at);
        let request = self.seal_request(&new.booking_id, &new.request);
        let surname = self.surname_hash(&new.request);
        on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            hold_lease!(pool, tx, lease);
            let n = sqlx::query(
                "INSERT INTO bookings (booking_id, link_id, state, request, attempts, \
                 next_attempt_at, created_at, updated_at, market_practice_id, surname_hash) \
                 VALUES ($1, $2, 'received', $3, 0, $4, $4, $4, $5, $6) \
                 ON CONFLICT (booking_id) DO NOTHING",
            )
            .bind(new.booking_id.clone())
            .bind(new.link_id.0)
            .bind(request)
            .bind(at)
            .bind(new.market_practice_id.clone())
            .bind(surname)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                sqlx::query(
                    "INSERT INTO booking_events (booking_id, from_state, to_state, reason, at) \
                     VALUES ($1, NULL, 'received', 'received from the marketplace', $2)",
                )
                .bind(new.booking_id.clone())
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(n == 1)
        })
    }

    /// One booking.
    pub async fn booking(&self, booking_id: &str) -> Result<Option<Booking>, StoreError> {
        let row: Option<BookingRow> = on_backend!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                booking_columns!(),
                " FROM bookings WHERE booking_id = $1"
            ))
            .bind(booking_id.to_owned())
            .fetch_optional(pool)
            .await?
        });
        row.map(|r| self.booking_from_row(r)).transpose()
    }

    /// A link's bookings that match every criterion of `search`, newest first, at most
    /// `limit`. Only the bookings found are opened: the surname is compared by its blind index
    /// under each master key (so bookings indexed before a key rotation are found too).
    /// An empty search, or a surname with nothing left once normalised, is
    /// [`StoreError::InvalidInput`].
    pub async fn find_bookings(
        &self,
        link_id: LinkId,
        search: &BookingSearch,
        limit: u32,
    ) -> Result<Vec<Booking>, StoreError> {
        if search.is_empty() {
            return Err(StoreError::InvalidInput {
                field: "search",
                message: "expected a booking id, a PMS appointment id or a surname, found none"
                    .into(),
            });
        }
        let surname_hashes: Vec<Option<String>> = match &search.surname {
            None => vec![None],
            Some(s) => {
                let key = surname_key(s).ok_or_else(|| StoreError::InvalidInput {
                    field: "surname",
                    message: "expected a surname with at least one letter or digit".into(),
                })?;
                self.keys
                    .blind_indexes(SURNAME_INDEX, &key)
                    .into_iter()
                    .map(Some)
                    .collect()
            }
        };
        // The most selective criterion leads, so each backend's index on it is used (the
        // booking id is the key; the appointment and the surname have an index per link); the
        // others are checked with it.
        let booking = search.booking_id.clone();
        let appointment = search.pms_appointment_id.clone();
        let limit_i = i64::from(limit);
        let mut rows: Vec<BookingRow> = Vec::new();
        for hash in surname_hashes {
            let found: Vec<BookingRow> = on_backend!(self, |pool| {
                match (&booking, &appointment, &hash) {
                    (Some(id), _, _) => {
                        sqlx::query_as(concat!(
                            "SELECT ",
                            booking_columns!(),
                            " FROM bookings WHERE booking_id = $2 AND link_id = $1 \
                             AND ($3 IS NULL OR pms_appointment_id = $3) \
                             AND ($4 IS NULL OR surname_hash = $4)"
                        ))
                        .bind(link_id.0)
                        .bind(id.clone())
                        .bind(appointment.clone())
                        .bind(hash.clone())
                        .fetch_all(pool)
                        .await?
                    }
                    (None, Some(a), _) => {
                        sqlx::query_as(concat!(
                            "SELECT ",
                            booking_columns!(),
                            " FROM bookings WHERE link_id = $1 AND pms_appointment_id = $2 \
                             AND ($3 IS NULL OR surname_hash = $3) \
                             ORDER BY created_at DESC, booking_id LIMIT $4"
                        ))
                        .bind(link_id.0)
                        .bind(a.clone())
                        .bind(hash.clone())
                        .bind(limit_i)
                        .fetch_all(pool)
                        .await?
                    }
                    (None, None, Some(h)) => {
                        sqlx::query_as(concat!(
                            "SELECT ",
                            booking_columns!(),
                            " FROM bookings WHERE link_id = $1 AND surname_hash = $2 \
                             ORDER BY created_at DESC, booking_id LIMIT $3"
                        ))
                        .bind(link_id.0)
                        .bind(h.clone())
                        .bind(limit_i)
                        .fetch_all(pool)
                        .await?
                    }
                    // Refused above: the search is not empty.
                    (None, None, None) => Vec::new(),
                }
            });
            rows.extend(found);
        }
        rows.sort_by(|a, b| (b.created_at, &a.booking_id).cmp(&(a.created_at, &b.booking_id)));
        rows.dedup_by(|a, b| a.booking_id == b.booking_id);
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        rows.into_iter().map(|r| self.booking_from_row(r)).collect()
    }

    /// Index the surname of every booking stored before bookings kept one (migration 0012):
    /// each such request is opened once, here, [`INDEX_BATCH`] at a time (one transaction per
    /// batch). Run when the store opens; afterwards it finds nothing to do. A request this
    /// keyring cannot open is left unindexed (for a keyring that can). Returns how many
    /// bookings were indexed.
    pub(crate) async fn index_booking_surnames(&self) -> Result<u64, StoreError> {
        let mut after = String::new();
        let mut indexed = 0;
        loop {
            let rows: Vec<(String, String)> = on_backend!(self, |pool| {
                sqlx::query_as(
                    "SELECT booking_id, request FROM bookings \
                     WHERE surname_hash IS NULL AND booking_id > $1 \
                     ORDER BY booking_id LIMIT $2",
                )
                .bind(after.clone())
                .bind(INDEX_BATCH)
                .fetch_all(pool)
                .await?
            });
            let Some((last, _)) = rows.last() else {
                break;
            };
            after = last.clone();
            let mut hashes = Vec::with_capacity(rows.len());
            for (booking_id, stored) in rows {
                match self.open_request(&booking_id, &stored) {
                    Ok(request) => hashes.push((booking_id, self.surname_hash(&request))),
                    Err(StoreError::Key(_)) => continue,
                    Err(e) => return Err(e),
                }
            }
            indexed += on_backend!(self, |pool| {
                let mut tx = pool.begin_write().await?;
                let mut n = 0;
                for (booking_id, hash) in hashes {
                    n += sqlx::query(
                        "UPDATE bookings SET surname_hash = $2 \
                         WHERE booking_id = $1 AND surname_hash IS NULL",
                    )
                    .bind(booking_id)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                tx.commit().await?;
                n
            });
        }
        if indexed > 0 {
            tracing::info!(
                indexed,
                "bookings stored before 0012 indexed for the look-up"
            );
        }
        Ok(indexed)
    }

    /// Reseal with the keyring's newest master key every stored booking request that is not
    /// sealed with it (sealed with an older key, or stored in clear before requests were
    /// sealed), and index its surname under the newest key too, so neither the request nor
    /// the look-up needs an older key any more. [`RESEAL_BATCH`] requests at a time in booking
    /// id order, one transaction per batch; each row is compare-and-set on the request read,
    /// so a concurrent change (a purge) wins. What is done is not selected again: idempotent,
    /// and an interrupted run is resumed by running it again. Purged requests (`null`) stay as
    /// they are. Returns how many were resealed.
    ///
    /// # Errors
    /// A request this keyring cannot open ([`StoreError::Key`]: its key was removed), or the
    /// database failed; the batches before it stay resealed.
    pub(crate) async fn reseal_booking_requests(&self) -> Result<u64, StoreError> {
        let newest = format!("{SEALED_REQUEST}{}:", self.keys.newest_key_id());
        let prefix_len = i32::try_from(newest.len()).unwrap_or(i32::MAX);
        let mut after = String::new();
        let mut resealed = 0;
        loop {
            let rows: Vec<(String, String)> = on_backend!(self, |pool| {
                sqlx::query_as(
                    "SELECT booking_id, request FROM bookings \
                     WHERE booking_id > $1 AND request <> 'null' \
                     AND substr(request, 1, $2) <> $3 \
                     ORDER BY booking_id LIMIT $4",
                )
                .bind(after.clone())
                .bind(prefix_len)
                .bind(newest.clone())
                .bind(RESEAL_BATCH)
                .fetch_all(pool)
                .await?
            });
            let Some((last, _)) = rows.last() else {
                break;
            };
            after = last.clone();
            let mut sealed = Vec::with_capacity(rows.len());
            for (booking_id, stored) in rows {
                let request = self.open_request(&booking_id, &stored)?;
                let hash = self.surname_hash(&request);
                let new = self.seal_request(&booking_id, &request);
                sealed.push((booking_id, stored, new, hash));
            }
            resealed += on_backend!(self, |pool| {
                let mut tx = pool.begin_write().await?;
                let mut n = 0;
                for (booking_id, old, new, hash) in sealed {
                    n += sqlx::query(
                        "UPDATE bookings SET request = $3, surname_hash = $4 \
                         WHERE booking_id = $1 AND request = $2",
                    )
                    .bind(booking_id)
                    .bind(old)
                    .bind(new)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                tx.commit().await?;
                n
            });
        }
        Ok(resealed)
    }

    /// The master key ids the stored booking requests are sealed with.
    pub(crate) async fn booking_request_key_ids(&self) -> Result<Vec<String>, StoreError> {
        let ids: Vec<(String,)> = on_backend!(self, |pool| {
            sqlx::query_as(pool.pick(
                "SELECT DISTINCT substr(request, 11, instr(substr(request, 11), ':') - 1) \
                 FROM bookings WHERE substr(request, 1, 10) = 'sealed:v1:'",
                "SELECT DISTINCT split_part(request, ':', 3) \
                 FROM bookings WHERE left(request, 10) = 'sealed:v1:'",
            ))
            .fetch_all(pool)
            .await?
        });
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// A link's bookings, newest first.
    pub async fn bookings_for_link(
        &self,
        link_id: LinkId,
        limit: u32,
    ) -> Result<Vec<Booking>, StoreError> {
        let rows: Vec<BookingRow> = on_backend!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                booking_columns!(),
                " FROM bookings WHERE link_id = $1 ORDER BY created_at DESC, booking_id LIMIT $2"
            ))
            .bind(link_id.0)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(|r| self.booking_from_row(r)).collect()
    }

    /// Move a booking from `from` along `transition`, compare-and-set: if it is no longer in
    /// `from` (another worker moved it) nothing changes and
    /// [`StoreError::BookingStateConflict`] says where it is. The change is logged with
    /// `reason`. Reaching a terminal state releases the claim.
    ///
    /// Fenced: the lease must still be held ([`StoreError::Fenced`]) and the booking claimed
    /// under it, by its node at its epoch ([`StoreError::ClaimLost`] otherwise).
    pub async fn transition_booking(
        &self,
        lease: &Lease,
        booking_id: &str,
        from: BookingState,
        transition: BookingTransition,
        reason: &str,
        at: Timestamp,
    ) -> Result<Booking, StoreError> {
        let to = transition.target();
        if !from.can_become(to) {
            return Err(StoreError::InvalidTransition { from, to });
        }
        let (patient, decision, appointment, reject) = match &transition {
            BookingTransition::PatientResolved {
                pms_patient_id,
                match_decision,
            } => (
                Some(pms_patient_id.clone()),
                Some(match_decision.to_string()),
                None,
                None,
            ),
            BookingTransition::Inserted { pms_appointment_id } => {
                (None, None, Some(pms_appointment_id.clone()), None)
            }
            BookingTransition::Confirmed | BookingTransition::Gone => (None, None, None, None),
            BookingTransition::Rejected { reason } => (None, None, None, Some(reason.clone())),
        };
        let at = micros(at);
        on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            hold_lease!(pool, tx, lease);
            let n = sqlx::query(
                "UPDATE bookings SET state = $3, \
                 pms_patient_id = COALESCE($4, pms_patient_id), \
                 match_decision = COALESCE($5, match_decision), \
                 pms_appointment_id = COALESCE($6, pms_appointment_id), \
                 reject_reason = COALESCE($7, reject_reason), \
                 claimed_by = CASE WHEN $8 THEN NULL ELSE claimed_by END, \
                 claim_until = CASE WHEN $8 THEN NULL ELSE claim_until END, \
                 claim_epoch = CASE WHEN $8 THEN NULL ELSE claim_epoch END, \
                 last_error = NULL, updated_at = $9 \
                 WHERE booking_id = $1 AND state = $2 AND claimed_by = $10 AND claim_epoch = $11",
            )
            .bind(booking_id.to_owned())
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(patient)
            .bind(decision)
            .bind(appointment)
            .bind(reject)
            .bind(to.is_terminal())
            .bind(at)
            .bind(lease.node_id.clone())
            .bind(lease.epoch)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                let found: Option<String> =
                    sqlx::query_scalar("SELECT state FROM bookings WHERE booking_id = $1")
                        .bind(booking_id.to_owned())
                        .fetch_optional(&mut *tx)
                        .await?;
                return Err(match found {
                    None => StoreError::BookingNotFound(booking_id.to_owned()),
                    Some(s) if s == from.as_str() => StoreError::ClaimLost {
                        booking_id: booking_id.to_owned(),
                    },
                    Some(s) => StoreError::BookingStateConflict {
                        booking_id: booking_id.to_owned(),
                        expected: from,
                        found: parse_state("bookings.state", &s)?,
                    },
                });
            }
            sqlx::query(
                "INSERT INTO booking_events (booking_id, from_state, to_state, reason, at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(booking_id.to_owned())
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(reason.to_owned())
            .bind(at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        self.booking(booking_id)
            .await?
            .ok_or_else(|| StoreError::BookingNotFound(booking_id.to_owned()))
    }

    /// A retryable failure: keep the booking in `state` (compare-and-set), release its claim,
    /// record `error`, and make it due again at `next_attempt_at`. Logged as an event.
    pub async fn retry_booking(
        &self,
        lease: &Lease,
        booking_id: &str,
        state: BookingState,
        next_attempt_at: Timestamp,
        error: &str,
        at: Timestamp,
    ) -> Result<Booking, StoreError> {
        let at = micros(at);
        on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            hold_lease!(pool, tx, lease);
            let n = sqlx::query(
                "UPDATE bookings SET next_attempt_at = $3, last_error = $4, claimed_by = NULL, \
                 claim_epoch = NULL, claim_until = NULL, updated_at = $5 \
                 WHERE booking_id = $1 AND state = $2 \
                 AND state IN ('received', 'patient_resolved', 'inserted') \
                 AND claimed_by = $6 AND claim_epoch = $7",
            )
            .bind(booking_id.to_owned())
            .bind(state.as_str())
            .bind(micros(next_attempt_at))
            .bind(error.to_owned())
            .bind(at)
            .bind(lease.node_id.clone())
            .bind(lease.epoch)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                let found: Option<String> =
                    sqlx::query_scalar("SELECT state FROM bookings WHERE booking_id = $1")
                        .bind(booking_id.to_owned())
                        .fetch_optional(&mut *tx)
                        .await?;
                return Err(match found {
                    None => StoreError::BookingNotFound(booking_id.to_owned()),
                    Some(s) if s == state.as_str() => StoreError::ClaimLost {
                        booking_id: booking_id.to_owned(),
                    },
                    Some(s) => StoreError::BookingStateConflict {
                        booking_id: booking_id.to_owned(),
                        expected: state,
                        found: parse_state("bookings.state", &s)?,
                    },
                });
            }
            sqlx::query(
                "INSERT INTO booking_events (booking_id, from_state, to_state, reason, at) \
                 VALUES ($1, $2, $2, $3, $4)",
            )
            .bind(booking_id.to_owned())
            .bind(state.as_str())
            .bind(format!("retry at {next_attempt_at}: {error}"))
            .bind(at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        self.booking(booking_id)
            .await?
            .ok_or_else(|| StoreError::BookingNotFound(booking_id.to_owned()))
    }

    /// Whether the lease's link has a booking [`Store::claim_link_bookings`] would claim at
    /// `now`: a read, so an idle link's tick writes nothing.
    pub async fn has_due_bookings(
        &self,
        lease: &Lease,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let found: Option<String> = on_backend!(self, |pool| {
            sqlx::query_scalar(concat!(
                "SELECT booking_id FROM bookings \
                 WHERE state IN ('received', 'patient_resolved', 'inserted') \
                 AND next_attempt_at <= $3 AND ",
                claim_free!("$2", "$3"),
                " AND link_id = $1 LIMIT 1"
            ))
            .bind(lease.link_id.0)
            .bind(lease.epoch)
            .bind(micros(now))
            .fetch_optional(pool)
            .await?
        });
        Ok(found.is_some())
    }

    /// Claim up to `max` of the lease's link's bookings that are due (`next_attempt_at <= now`),
    /// not finished, and not held by a live claim, for the lease's node and epoch, until
    /// `now + claim_for`. Each claim counts an attempt.
    ///
    /// A claim is live while it was made under the link's current epoch and has not lapsed; a
    /// claim made under an older epoch belonged to a node that lost the link and is taken over
    /// at once. Fenced by `lease`, so only the link's current holder claims; on PostgreSQL rows
    /// are also locked `FOR UPDATE SKIP LOCKED`.
    pub async fn claim_link_bookings(
        &self,
        lease: &Lease,
        max: u32,
        claim_for: Duration,
        now: Timestamp,
    ) -> Result<Vec<Booking>, StoreError> {
        let until = after(now, claim_for);
        let rows: Vec<BookingRow> = on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            hold_lease!(pool, tx, lease);
            let rows = sqlx::query_as(pool.pick(
                concat!(
                    "UPDATE bookings SET claimed_by = $1, claim_epoch = $6, claim_until = $2, \
                     attempts = attempts + 1, updated_at = $3 \
                     WHERE booking_id IN (SELECT booking_id FROM bookings \
                       WHERE link_id = $5 \
                       AND state IN ('received', 'patient_resolved', 'inserted') \
                       AND next_attempt_at <= $3 AND ",
                    claim_free!("$6", "$3"),
                    " ORDER BY next_attempt_at, booking_id LIMIT $4) \
                     RETURNING ",
                    booking_columns!()
                ),
                concat!(
                    "UPDATE bookings SET claimed_by = $1, claim_epoch = $6, claim_until = $2, \
                     attempts = attempts + 1, updated_at = $3 \
                     WHERE booking_id IN (SELECT booking_id FROM bookings \
                       WHERE link_id = $5 \
                       AND state IN ('received', 'patient_resolved', 'inserted') \
                       AND next_attempt_at <= $3 AND ",
                    claim_free!("$6", "$3"),
                    " ORDER BY next_attempt_at, booking_id LIMIT $4 \
                       FOR UPDATE SKIP LOCKED) \
                     AND state IN ('received', 'patient_resolved', 'inserted') AND ",
                    claim_free!("$6", "$3"),
                    " RETURNING ",
                    booking_columns!()
                ),
            ))
            .bind(lease.node_id.clone())
            .bind(until)
            .bind(micros(now))
            .bind(i64::from(max))
            .bind(lease.link_id.0)
            .bind(lease.epoch)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            rows
        });
        let mut claimed = rows
            .into_iter()
            .map(|r| self.booking_from_row(r))
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by(|a, b| {
            (a.next_attempt_at, &a.booking_id).cmp(&(b.next_attempt_at, &b.booking_id))
        });
        Ok(claimed)
    }

    /// Give up the claims the lease's node holds on its link's bookings at its epoch (a worker
    /// that restarts under the same lease resumes them at once instead of waiting for them to
    /// lapse). Returns how many.
    pub async fn release_claims(&self, lease: &Lease) -> Result<u64, StoreError> {
        Ok(on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            hold_lease!(pool, tx, lease);
            let n = sqlx::query(
                "UPDATE bookings SET claimed_by = NULL, claim_epoch = NULL, claim_until = NULL \
                 WHERE link_id = $1 AND claimed_by = $2 AND claim_epoch = $3",
            )
            .bind(lease.link_id.0)
            .bind(lease.node_id.clone())
            .bind(lease.epoch)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            n
        }))
    }

    /// How many of a link's bookings are not finished (received, patient resolved or inserted).
    pub async fn bookings_in_flight(&self, link_id: LinkId) -> Result<u64, StoreError> {
        let n: i64 = on_backend!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM bookings WHERE link_id = $1 \
                 AND state IN ('received', 'patient_resolved', 'inserted')",
            )
            .bind(link_id.0)
            .fetch_one(pool)
            .await?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// A link's confirmed bookings received at or after `since` whose cancellation has not
    /// been reported: the ones whose appointment may still be removed at the desk.
    pub async fn standing_bookings(
        &self,
        link_id: LinkId,
        since: Timestamp,
    ) -> Result<Vec<Booking>, StoreError> {
        let rows: Vec<BookingRow> = on_backend!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                booking_columns!(),
                " FROM bookings WHERE link_id = $1 AND state = 'confirmed' \
                 AND cancelled_at IS NULL AND created_at >= $2 \
                 ORDER BY created_at, booking_id"
            ))
            .bind(link_id.0)
            .bind(micros(since))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(|r| self.booking_from_row(r)).collect()
    }

    /// Record that a confirmed booking's appointment was removed at the desk and the
    /// marketplace was told, with `reason` in the booking's events. Only the first call for a
    /// booking records anything: returns `false` when it was already recorded, or when the
    /// booking is not confirmed.
    pub async fn mark_booking_cancelled(
        &self,
        lease: &Lease,
        booking_id: &str,
        reason: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let at = micros(at);
        on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            hold_lease!(pool, tx, lease);
            let n = sqlx::query(
                "UPDATE bookings SET cancelled_at = $2, updated_at = $2, \
                 appointment_change = 'cancelled', appointment_change_at = $2 \
                 WHERE booking_id = $1 AND state = 'confirmed' AND cancelled_at IS NULL",
            )
            .bind(booking_id.to_owned())
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                sqlx::query(
                    "INSERT INTO booking_events (booking_id, from_state, to_state, reason, at) \
                     VALUES ($1, 'confirmed', 'confirmed', $2, $3)",
                )
                .bind(booking_id.to_owned())
                .bind(reason.to_owned())
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(n == 1)
        })
    }

    /// Record what the marketplace was told about a confirmed booking's appointment, with
    /// `reason` in the booking's events when it differs from what was told before. Returns
    /// whether anything changed (`false` for the same answer again, or a booking that is not
    /// confirmed).
    pub async fn record_appointment_change(
        &self,
        lease: &Lease,
        booking_id: &str,
        change: AppointmentChange,
        reason: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let at = micros(at);
        on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            hold_lease!(pool, tx, lease);
            let n = sqlx::query(
                "UPDATE bookings SET appointment_change = $2, appointment_change_at = $3, \
                 updated_at = $3 WHERE booking_id = $1 AND state = 'confirmed' \
                 AND (appointment_change IS NULL OR appointment_change <> $2)",
            )
            .bind(booking_id.to_owned())
            .bind(change.as_str())
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                sqlx::query(
                    "INSERT INTO booking_events (booking_id, from_state, to_state, reason, at) \
                     VALUES ($1, 'confirmed', 'confirmed', $2, $3)",
                )
                .bind(booking_id.to_owned())
                .bind(reason.to_owned())
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(n == 1)
        })
    }

    /// Record the outcome of a late answer the marketplace refused (`outcome` is shown to the
    /// practice as it is, and added to the booking's events). Only the first outcome is kept:
    /// returns `false` when one was already recorded.
    pub async fn record_late_outcome(
        &self,
        lease: &Lease,
        booking_id: &str,
        outcome: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let at = micros(at);
        on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            hold_lease!(pool, tx, lease);
            let state: Option<(String,)> = sqlx::query_as(
                "SELECT state FROM bookings WHERE booking_id = $1 AND late_outcome IS NULL",
            )
            .bind(booking_id.to_owned())
            .fetch_optional(&mut *tx)
            .await?;
            let Some((state,)) = state else {
                return Ok(false);
            };
            sqlx::query(
                "UPDATE bookings SET late_outcome = $2, updated_at = $3 WHERE booking_id = $1",
            )
            .bind(booking_id.to_owned())
            .bind(outcome.to_owned())
            .bind(at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO booking_events (booking_id, from_state, to_state, reason, at) \
                 VALUES ($1, $2, $2, $3, $4)",
            )
            .bind(booking_id.to_owned())
            .bind(state)
            .bind(outcome.to_owned())
            .bind(at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Every recorded change of a booking, oldest first.
    pub async fn booking_events(&self, booking_id: &str) -> Result<Vec<BookingEvent>, StoreError> {
        let rows: Vec<(i64, String, Option<String>, String, String, i64)> =
            on_backend!(self, |pool| {
                sqlx::query_as(
                    "SELECT seq, booking_id, from_state, to_state, reason, at \
                     FROM booking_events WHERE booking_id = $1 ORDER BY seq",
                )
                .bind(booking_id.to_owned())
                .fetch_all(pool)
                .await?
            });
        rows.into_iter()
            .map(|(seq, booking_id, from, to, reason, at)| {
                Ok(BookingEvent {
                    seq,
                    booking_id,
                    from: from
                        .map(|f| parse_state("booking_events.from_state", &f))
                        .transpose()?,
                    to: parse_state("booking_events.to_state", &to)?,
                    reason,
                    at: instant("booking_events.at", at)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::BookingState::{self, *};

    const ALL: [BookingState; 5] = [Received, PatientResolved, Inserted, Confirmed, Rejected];

    #[test]
    fn state_machine_edges_are_exactly_the_documented_ones() {
        let mut edges = Vec::new();
        for from in ALL {
            for to in ALL {
                if from.can_become(to) {
                    edges.push((from, to));
                }
            }
        }
        assert_eq!(
            edges,
            vec![
                (Received, PatientResolved),
                (Received, Rejected),
                (PatientResolved, Inserted),
                (PatientResolved, Rejected),
                (Inserted, Confirmed),
                (Inserted, Rejected),
            ]
        );
        for s in ALL {
            assert_eq!(BookingState::parse(s.as_str()), Some(s));
            assert_eq!(s.is_terminal(), ALL.iter().all(|t| !s.can_become(*t)));
        }
    }
}
