//! Either connector behind one type: the trait's methods return `impl Future`, so it is not
//! object-safe, and code that works a link of either kind holds an [`AnyPms`].

use jiff::civil::Date;
use secrecy::SecretString;
use slotbridge_domain::practice::{Diary, DiaryAppointment, PracticeSetup};

use crate::types::{
    Capabilities, Changes, Inserted, NewAppointment, NewPatient, Patient, PatientQuery,
};
use crate::{ClinikoConnector, ExactConnector, PmsConnector, PmsError};

/// The connector of a link, whatever its PMS.
#[derive(Debug, Clone)]
pub enum AnyPms {
    /// An Exact-style PMS (site slug and key).
    Exact(ExactConnector),
    /// A Cliniko business (key and business id).
    Cliniko(ClinikoConnector),
}

impl From<ExactConnector> for AnyPms {
    fn from(c: ExactConnector) -> Self {
        AnyPms::Exact(c)
    }
}

impl From<ClinikoConnector> for AnyPms {
    fn from(c: ClinikoConnector) -> Self {
        AnyPms::Cliniko(c)
    }
}

macro_rules! each {
    ($self:ident, $c:ident => $body:expr) => {
        match $self {
            AnyPms::Exact($c) => $body,
            AnyPms::Cliniko($c) => $body,
        }
    };
}

impl PmsConnector for AnyPms {
    fn capabilities(&self) -> Capabilities {
        each!(self, c => c.capabilities())
    }

    async fn read_setup(&self) -> Result<PracticeSetup, PmsError> {
        each!(self, c => c.read_setup().await)
    }

    async fn read_diary(&self, from: Date, to: Date) -> Result<Diary, PmsError> {
        each!(self, c => c.read_diary(from, to).await)
    }

    async fn read_appointment(&self, id: &str) -> Result<Option<DiaryAppointment>, PmsError> {
        each!(self, c => c.read_appointment(id).await)
    }

    async fn insert_appointment(&self, new: &NewAppointment) -> Result<Inserted, PmsError> {
        each!(self, c => c.insert_appointment(new).await)
    }

    async fn create_patient(&self, new: &NewPatient) -> Result<Patient, PmsError> {
        each!(self, c => c.create_patient(new).await)
    }

    async fn search_patients(&self, query: &PatientQuery) -> Result<Vec<Patient>, PmsError> {
        each!(self, c => c.search_patients(query).await)
    }

    async fn read_changes(&self, since: Option<&str>) -> Result<Changes, PmsError> {
        each!(self, c => c.read_changes(since).await)
    }

    async fn register_webhook(&self, url: &str, secret: &SecretString) -> Result<String, PmsError> {
        each!(self, c => c.register_webhook(url, secret).await)
    }
}
