//! The practice side: the [`PmsConnector`] trait, the Exact-style API client
//! ([`ExactConnector`]) and the Cliniko client ([`ClinikoConnector`]).
//!
//! A connector reads a practice's setup and diary into the domain model
//! ([`slotbridge_domain::practice`]); the engine's snapshot is one projection of it
//! ([`read_snapshot`]). It writes patients and appointments, searches patients, reads the change
//! feed, and registers webhooks ([`webhook::verify_webhook`] checks their signatures).
//!
//! ```no_run
//! # async fn demo() -> Result<(), slotbridge_pms::PmsError> {
//! use slotbridge_pms::{ExactConfig, ExactConnector, PmsConnector};
//! use slotbridge_domain::practice::SiteSlug;
//! let cfg = ExactConfig::new(
//!     "http://127.0.0.1:7300".parse().expect("url"),
//!     SiteSlug::parse("sharbourdental").expect("slug"),
//!     "demo-harbour-dental-key".to_owned().into(),
//! );
//! let pms = ExactConnector::new(cfg);
//! let setup = pms.read_setup().await?;
//! assert!(!pms.capabilities().can_cancel_online);
//! # Ok(()) }
//! ```

use std::future::Future;

use jiff::civil::Date;
use secrecy::SecretString;
use slotbridge_domain::practice::{Diary, DiaryAppointment, PracticeSetup, to_snapshot};
use slotbridge_domain::snapshot::Snapshot;

mod any;
pub mod cliniko;
mod error;
mod exact;
pub mod parse;
mod safe;
pub mod types;
pub mod webhook;

pub use any::AnyPms;
pub use cliniko::{ClinikoConfig, ClinikoConnector, ClinikoKey};
pub use error::PmsError;
pub use exact::{CallObserver, ExactConfig, ExactConnector, http_client};
pub use types::{
    Capabilities, ChangeEntry, ChangePage, ChangeScope, Changes, Inserted, NewAppointment,
    NewPatient, Patient, PatientQuery, PracticeInfo,
};

/// A practice management system, reached over its API. Futures are `Send`, so a connector can
/// be used from `tokio::spawn`.
pub trait PmsConnector: Send + Sync {
    /// What this PMS can do.
    fn capabilities(&self) -> Capabilities;

    /// Read the online-booking setup.
    fn read_setup(&self) -> impl Future<Output = Result<PracticeSetup, PmsError>> + Send;

    /// Read the diary for practice-local dates `from..to` (weekly hours, blocks, closed dates
    /// and appointments).
    fn read_diary(
        &self,
        from: Date,
        to: Date,
    ) -> impl Future<Output = Result<Diary, PmsError>> + Send;

    /// Read one appointment by its PMS id: `None` when the PMS has no such appointment (it was
    /// removed at the desk, which is how a practice cancels). Its
    /// [`attendance`](slotbridge_domain::practice::DiaryAppointment::attendance) tells whether
    /// the patient was marked as not attending. An unknown site is an error, never `None`.
    fn read_appointment(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<DiaryAppointment>, PmsError>> + Send;

    /// Insert an online booking; idempotent on its external reference.
    fn insert_appointment(
        &self,
        new: &NewAppointment,
    ) -> impl Future<Output = Result<Inserted, PmsError>> + Send;

    /// Create a patient file.
    fn create_patient(
        &self,
        new: &NewPatient,
    ) -> impl Future<Output = Result<Patient, PmsError>> + Send;

    /// Search patient files (normalised comparison by the PMS).
    fn search_patients(
        &self,
        query: &PatientQuery,
    ) -> impl Future<Output = Result<Vec<Patient>, PmsError>> + Send;

    /// Read the diary change feed after `since` (`None`: from the start of what is kept).
    fn read_changes(
        &self,
        since: Option<&str>,
    ) -> impl Future<Output = Result<Changes, PmsError>> + Send;

    /// Register a webhook URL and its signing secret, replacing any webhook of the site with the
    /// same URL; returns the subscription id.
    fn register_webhook(
        &self,
        url: &str,
        secret: &SecretString,
    ) -> impl Future<Output = Result<String, PmsError>> + Send;
}

/// Read the setup and the diary for `horizon_days` from the practice-local date of `now`, and
/// project them onto the engine's snapshot.
pub async fn read_snapshot<C: PmsConnector>(
    pms: &C,
    now: jiff::Timestamp,
    horizon_days: u32,
) -> Result<Snapshot, PmsError> {
    let setup = pms.read_setup().await?;
    let today = now
        .to_zoned_datetime(setup.timezone.time_zone().clone())
        .date();
    let end = today
        .checked_add(jiff::Span::new().days(i64::from(horizon_days.max(1))))
        .map_err(|e| PmsError::protocol(format!("horizon: {e}")))?;
    let diary = pms.read_diary(today, end).await?;
    Ok(to_snapshot(&setup, &diary, now, horizon_days))
}
