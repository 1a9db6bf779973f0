//! A worker's fence: its lease, and until when this node is certainly still its holder. Every
//! store write of a worker carries the lease (the store re-checks it in the same transaction);
//! every PMS and marketplace call asks the fence first ([`FencedPms`], and the marketplace
//! client's guard).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use jiff::civil::Date;
use secrecy::SecretString;
use slotbridge_domain::practice::{Diary, PracticeSetup};
use slotbridge_pms::{
    Capabilities, Changes, Inserted, NewAppointment, NewPatient, Patient, PatientQuery,
    PmsConnector, PmsError,
};
use slotbridge_store::Lease;

/// A worker's right to work its link: its lease, and the instant (this node's monotonic clock)
/// until which the lease is certainly still this node's. Every store write carries the lease
/// (the store re-checks it); every PMS and marketplace call asks [`Fence::holds`] first.
#[derive(Debug)]
pub struct Fence {
    lease: Lease,
    valid_until: Mutex<Instant>,
    revoked: AtomicBool,
}

impl Fence {
    /// A fence for `lease`, valid until `valid_until`.
    pub fn new(lease: Lease, valid_until: Instant) -> Self {
        Fence {
            lease,
            valid_until: Mutex::new(valid_until),
            revoked: AtomicBool::new(false),
        }
    }

    /// The lease the worker's writes are fenced by.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Whether the worker may still act: the lease was renewed recently enough that no other
    /// node can hold it yet, and the supervisor has not revoked it.
    pub fn holds(&self) -> bool {
        !self.revoked.load(Ordering::SeqCst) && Instant::now() < *self.until()
    }

    fn until(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.valid_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Move the end of the fence to `to` (never earlier).
    pub fn extend(&self, to: Instant) {
        let mut until = self.until();
        if to > *until {
            *until = to;
        }
    }

    /// No more calls or writes under this fence.
    pub fn revoke(&self) {
        self.revoked.store(true, Ordering::SeqCst);
    }
}

/// A PMS connector that asks the worker's [`Fence`] before every call: once the lease is no
/// longer certainly this node's, calls fail with [`PmsError::Fenced`] and nothing is sent.
pub struct FencedPms<P> {
    inner: P,
    fence: Arc<Fence>,
}

impl<P> FencedPms<P> {
    /// `inner`, fenced by `fence`.
    pub fn new(inner: P, fence: Arc<Fence>) -> Self {
        FencedPms { inner, fence }
    }

    fn check(&self) -> Result<(), PmsError> {
        if self.fence.holds() {
            Ok(())
        } else {
            Err(PmsError::Fenced)
        }
    }
}

impl<P: PmsConnector> PmsConnector for FencedPms<P> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn read_setup(&self) -> Result<PracticeSetup, PmsError> {
        self.check()?;
        self.inner.read_setup().await
    }

    async fn read_diary(&self, from: Date, to: Date) -> Result<Diary, PmsError> {
        self.check()?;
        self.inner.read_diary(from, to).await
    }

    async fn read_appointment(
        &self,
        id: &str,
    ) -> Result<Option<slotbridge_domain::practice::DiaryAppointment>, PmsError> {
        self.check()?;
        self.inner.read_appointment(id).await
    }

    async fn insert_appointment(&self, new: &NewAppointment) -> Result<Inserted, PmsError> {
        self.check()?;
        self.inner.insert_appointment(new).await
    }

    async fn create_patient(&self, new: &NewPatient) -> Result<Patient, PmsError> {
        self.check()?;
        self.inner.create_patient(new).await
    }

    async fn search_patients(&self, query: &PatientQuery) -> Result<Vec<Patient>, PmsError> {
        self.check()?;
        self.inner.search_patients(query).await
    }

    async fn read_changes(&self, since: Option<&str>) -> Result<Changes, PmsError> {
        self.check()?;
        self.inner.read_changes(since).await
    }

    async fn register_webhook(&self, url: &str, secret: &SecretString) -> Result<String, PmsError> {
        self.check()?;
        self.inner.register_webhook(url, secret).await
    }
}
