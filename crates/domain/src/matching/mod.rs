//! Patient matching: find the booking patient's existing PMS file, or decide the patient is new.
//!
//! Pure: a [`BookingPatient`] (as the marketplace sends it) and the PMS candidates go in, a
//! [`Decision`] with its evidence comes out. The flow in the integration is:
//!
//! 1. [`search_queries`] says which PMS searches to run (date of birth, phone, email, name); the
//!    PMS patient list is never downloaded whole.
//! 2. [`union_candidates`] joins the search results, deduplicated by patient id.
//! 3. [`match_patient`] normalises both sides ([`normalise`]), scores every candidate field by
//!    field ([`CandidateEvidence`]) and decides: [`Outcome::Match`], [`Outcome::New`] or
//!    [`Outcome::Ambiguous`].
//!
//! A booking on the wrong patient's file is a privacy incident; a duplicate file is a nuisance. So
//! a match needs a single candidate that clears the threshold with a positive first-name
//! agreement and no conflicting hard evidence (a different date of birth, a different first name,
//! another person on the same Medicare card); anything doubtful is [`Outcome::Ambiguous`], which by
//! default creates a new file and flags it for the practice ([`AmbiguityPolicy`]). The weights,
//! their justification and the measured precision and recall are in `docs/matching.md`.
//!
//! ```
//! use slotbridge_domain::matching::{match_patient, BookingPatient, MatchConfig, Outcome, PmsPatient};
//!
//! let booking = BookingPatient {
//!     firstname: Some("Bob".into()),
//!     lastname: Some("Smith".into()),
//!     dob: Some("07-03-1981".into()),
//!     phone: Some("0412 345 678".into()),
//!     ..Default::default()
//! };
//! let robert = PmsPatient {
//!     id: "p-17".into(),
//!     firstname: Some("Robert".into()),
//!     lastname: Some("SMITH".into()),
//!     dob: Some(jiff::civil::date(1981, 3, 7)),
//!     mobile: Some("+61412345678".into()),
//!     ..Default::default()
//! };
//! let decision = match_patient(&booking, &[robert], &MatchConfig::default());
//! assert_eq!(decision.outcome, Outcome::Match { patient_id: "p-17".into() });
//! assert_eq!(decision.patient_id(), Some("p-17"));
//! ```

pub mod nicknames;
pub mod normalise;
mod score;

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

pub use score::{CandidateEvidence, CandidateStatus, Comparison, Conflict, Field, FieldEvidence};

use normalise::{
    FieldError, Medicare, normalise_address, normalise_email, normalise_name, normalise_phone,
    parse_dob,
};

/// The patient of a marketplace booking, exactly as the marketplace API sends it (the `Patient`
/// schema of the Healthengine PMS API v1.9.0). Every field may be missing or null; `dob` is
/// `DD-MM-YYYY`, though other formats are tolerated (see [`normalise::parse_dob`]).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingPatient {
    /// Given name as typed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firstname: Option<String>,
    /// Family name as typed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lastname: Option<String>,
    /// Date of birth, `DD-MM-YYYY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dob: Option<String>,
    /// The one phone number the marketplace collects (usually a mobile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Street address line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Suburb.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suburb: Option<String>,
    /// State (NSW, VIC, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Postcode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postcode: Option<String>,
    /// `Male`, `Female` or `Other`; not used for matching (the PMS record may not carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Medicare card number (10 digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medicare_number: Option<String>,
    /// Medicare individual reference number (1-9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medicare_irn: Option<String>,
    /// Medicare card expiry, `m/Y`; not used for matching (it changes with every card).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medicare_expiry: Option<String>,
}

/// Redacted: personal data or secrets never reach a log through `Debug`.
impl std::fmt::Debug for BookingPatient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BookingPatient").finish_non_exhaustive()
    }
}

/// A patient file in the PMS, as the PMS search API returns it. Any field but `id` may be missing.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PmsPatient {
    /// The PMS patient id (goes into `confirmInsert` as `pmsPatientId`).
    pub id: String,
    /// Given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firstname: Option<String>,
    /// Family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lastname: Option<String>,
    /// Date of birth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dob: Option<Date>,
    /// Mobile phone, any written form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// Home or other phone, any written form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The address on one line (street, suburb, state, postcode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Medicare card number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medicare: Option<String>,
    /// Medicare individual reference number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irn: Option<String>,
}

/// Redacted: personal data or secrets never reach a log through `Debug`.
impl std::fmt::Debug for PmsPatient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PmsPatient")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// One search to run against the PMS patient search API to collect candidates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "camelCase")]
pub enum CandidateQuery {
    /// Patients born on this date.
    Dob {
        /// The date of birth.
        dob: Date,
    },
    /// Patients with this phone number (mobile or home), E.164.
    Phone {
        /// E.164 number, e.g. `+61412345678`.
        phone: String,
    },
    /// Patients with this email address (lower case).
    Email {
        /// The normalised address.
        email: String,
    },
    /// Patients with this name, as typed (trimmed); the PMS search is case-insensitive.
    Name {
        /// Given name.
        first: String,
        /// Family name.
        last: String,
    },
}

/// The searches to run for a booking patient: one per usable identifying field, so that a
/// patient who changed their last name is still found by date of birth, phone or email, and one
/// who changed their phone by the others. Fields that do not normalise are left out.
///
/// ```
/// use slotbridge_domain::matching::{search_queries, BookingPatient, CandidateQuery};
/// let p = BookingPatient {
///     firstname: Some(" Ann ".into()),
///     lastname: Some("Lee".into()),
///     dob: Some("01-02-1990".into()),
///     phone: Some("0412 345 678".into()),
///     email: Some("not an email".into()),
///     ..Default::default()
/// };
/// assert_eq!(search_queries(&p), vec![
///     CandidateQuery::Dob { dob: jiff::civil::date(1990, 2, 1) },
///     CandidateQuery::Phone { phone: "+61412345678".into() },
///     CandidateQuery::Name { first: "Ann".into(), last: "Lee".into() },
/// ]);
/// ```
pub fn search_queries(patient: &BookingPatient) -> Vec<CandidateQuery> {
    let mut queries = Vec::new();
    if let Some(dob) = patient.dob.as_deref().and_then(|d| parse_dob(d).ok()) {
        queries.push(CandidateQuery::Dob { dob });
    }
    if let Some(phone) = patient
        .phone
        .as_deref()
        .and_then(|p| normalise_phone(p).ok())
    {
        queries.push(CandidateQuery::Phone { phone });
    }
    if let Some(email) = patient
        .email
        .as_deref()
        .and_then(|e| normalise_email(e).ok())
    {
        queries.push(CandidateQuery::Email { email });
    }
    let first = patient.firstname.as_deref().map(str::trim).unwrap_or("");
    let last = patient.lastname.as_deref().map(str::trim).unwrap_or("");
    if !first.is_empty() && !last.is_empty() {
        queries.push(CandidateQuery::Name {
            first: first.to_string(),
            last: last.to_string(),
        });
    }
    queries
}

/// Join the results of several searches into one candidate list, deduplicated by id (the first
/// copy of each id is kept) and sorted by id.
///
/// ```
/// use slotbridge_domain::matching::{union_candidates, PmsPatient};
/// let p = |id: &str| PmsPatient { id: id.into(), ..Default::default() };
/// let all = union_candidates([vec![p("b"), p("a")], vec![p("a"), p("c")]]);
/// let ids: Vec<_> = all.iter().map(|c| c.id.as_str()).collect();
/// assert_eq!(ids, ["a", "b", "c"]);
/// ```
pub fn union_candidates(results: impl IntoIterator<Item = Vec<PmsPatient>>) -> Vec<PmsPatient> {
    let mut by_id = BTreeMap::new();
    for patient in results.into_iter().flatten() {
        by_id.entry(patient.id.clone()).or_insert(patient);
    }
    by_id.into_values().collect()
}

/// What to do with a booking whose patient is ambiguous.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AmbiguityPolicy {
    /// Create a new patient file and flag it for the practice (console and appointment notes),
    /// naming the possible existing files. The default: the booking goes ahead, nobody's file is
    /// touched, and the practice merges later if they are the same person.
    #[default]
    CreateNewAndFlag,
    /// Reject the booking; the patient is told to call the practice.
    RejectBooking,
}

/// The points each kind of agreement earns, and the thresholds.
///
/// Starting point: the marketplace's own identity matching (first name 30, last name 20, date of
/// birth 50, email, mobile or home phone 70 each, Medicare 90). `docs/matching.md` justifies the
/// final values against the labelled test set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Weights {
    /// First name equal, a nickname of it (Bob/Robert), or one name among several (Mary Jane/Mary).
    pub first_name: u32,
    /// First name within a typo of it, when at least one side is not a known real name.
    pub first_name_fuzzy: u32,
    /// First name given as an initial that agrees.
    pub first_initial: u32,
    /// Last name equal, or one part of a double-barrelled name.
    pub last_name: u32,
    /// Last name within a typo of it.
    pub last_name_fuzzy: u32,
    /// Date of birth equal.
    pub dob: u32,
    /// Email equal.
    pub email: u32,
    /// The booking's phone equals the candidate's mobile or home phone.
    pub phone: u32,
    /// Medicare card and IRN equal: the person.
    pub medicare: u32,
    /// Medicare card equal, IRN unknown on one side: the household.
    pub medicare_card: u32,
    /// Street address (and postcode) equal.
    pub address: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            first_name: 30,
            first_name_fuzzy: 20,
            first_initial: 10,
            last_name: 20,
            last_name_fuzzy: 15,
            dob: 50,
            email: 70,
            phone: 70,
            medicare: 90,
            medicare_card: 40,
            address: 10,
        }
    }
}

/// The matcher's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchConfig {
    /// Points per agreement.
    pub weights: Weights,
    /// The score a candidate must reach, with its date of birth agreeing, to be matched.
    pub threshold: u32,
    /// The score a candidate must reach when the date of birth cannot be compared (missing on
    /// one side); a Medicare card and IRN agreement is required as well.
    pub threshold_without_dob: u32,
    /// What an ambiguous decision does.
    pub on_ambiguous: AmbiguityPolicy,
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            weights: Weights::default(),
            threshold: 100,
            threshold_without_dob: 150,
            on_ambiguous: AmbiguityPolicy::default(),
        }
    }
}

/// Why a decision is ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AmbiguityReason {
    /// More than one candidate clears the threshold.
    SeveralCandidates,
    /// A candidate looks like the patient but one piece of hard evidence disagrees (date of
    /// birth, first name, Medicare IRN) or the date of birth cannot be compared.
    ConflictingEvidence,
}

/// The decision for one booking patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "camelCase")]
pub enum Outcome {
    /// The patient's existing file.
    #[serde(rename_all = "camelCase")]
    Match {
        /// The PMS patient id to book against (`pmsPatientId`).
        patient_id: String,
    },
    /// No existing file: create one.
    New,
    /// Possibly an existing file, but not safely: never picked silently.
    #[serde(rename_all = "camelCase")]
    Ambiguous {
        /// Why.
        reason: AmbiguityReason,
        /// The possible existing files, best first.
        patient_ids: Vec<String>,
        /// What the integration must do ([`MatchConfig::on_ambiguous`]).
        action: AmbiguityPolicy,
    },
}

/// A booking or PMS field that could not be normalised and was ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldNote {
    /// `booking`, or the PMS patient id.
    pub subject: String,
    /// The field name as the source spells it.
    pub field: String,
    /// What was wrong.
    pub problem: String,
}

/// The matcher's decision and the evidence behind it, serialisable for the booking's audit
/// record and the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Match, new or ambiguous.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Every candidate considered, best score first (ties by id).
    pub candidates: Vec<CandidateEvidence>,
    /// Fields that could not be normalised and were ignored.
    pub notes: Vec<FieldNote>,
}

impl Decision {
    /// The matched patient id, if the outcome is a match.
    pub fn patient_id(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Match { patient_id } => Some(patient_id),
            _ => None,
        }
    }

    /// The short word for the outcome: `match`, `new` or `ambiguous`.
    pub fn kind(&self) -> &'static str {
        match self.outcome {
            Outcome::Match { .. } => "match",
            Outcome::New => "new",
            Outcome::Ambiguous { .. } => "ambiguous",
        }
    }

    /// The message for the practice (console and appointment notes) when the decision is
    /// ambiguous: which files may be this patient and why none was picked.
    ///
    /// ```
    /// use slotbridge_domain::matching::{match_patient, BookingPatient, MatchConfig, PmsPatient};
    /// let booking = BookingPatient {
    ///     firstname: Some("Ann".into()), lastname: Some("Lee".into()),
    ///     dob: Some("01-02-1990".into()), email: Some("ann@example.com".into()),
    ///     ..Default::default()
    /// };
    /// let other_dob = PmsPatient {
    ///     id: "7".into(), firstname: Some("Ann".into()), lastname: Some("Lee".into()),
    ///     dob: Some(jiff::civil::date(1990, 1, 2)), email: Some("ann@example.com".into()),
    ///     ..Default::default()
    /// };
    /// let d = match_patient(&booking, &[other_dob], &MatchConfig::default());
    /// assert_eq!(d.kind(), "ambiguous");
    /// assert!(d.practice_flag().unwrap().contains("7"));
    /// ```
    pub fn practice_flag(&self) -> Option<String> {
        let Outcome::Ambiguous {
            reason,
            patient_ids,
            action,
        } = &self.outcome
        else {
            return None;
        };
        let why = match reason {
            AmbiguityReason::SeveralCandidates => "several patient files match",
            AmbiguityReason::ConflictingEvidence => {
                "a patient file looks similar but some details conflict"
            }
        };
        let details: Vec<String> = patient_ids
            .iter()
            .filter_map(|id| self.candidates.iter().find(|c| &c.patient_id == id))
            .map(|c| {
                let conflicts: Vec<&str> = c.conflicts.iter().map(|x| x.summary()).collect();
                if conflicts.is_empty() {
                    format!("{} (score {})", c.patient_id, c.score)
                } else {
                    format!(
                        "{} (score {}; {})",
                        c.patient_id,
                        c.score,
                        conflicts.join("; ")
                    )
                }
            })
            .collect();
        let what = match action {
            AmbiguityPolicy::CreateNewAndFlag => {
                "A new patient file was created; please check and merge it if it is the same person."
            }
            AmbiguityPolicy::RejectBooking => {
                "The booking was rejected; the patient was asked to call the practice."
            }
        };
        Some(format!(
            "Patient match: {why}: {}. {what}",
            details.join(", ")
        ))
    }
}

/// Match a booking patient against PMS candidates.
///
/// The decision is independent of the candidates' order, and duplicate ids are considered once.
pub fn match_patient(
    booking: &BookingPatient,
    candidates: &[PmsPatient],
    config: &MatchConfig,
) -> Decision {
    let mut notes = Vec::new();
    let probe = Profile::of_booking(booking, &mut notes);
    let candidates = union_candidates([candidates.to_vec()]);
    let mut evidence: Vec<CandidateEvidence> = candidates
        .iter()
        .map(|c| score::score(&probe, &Profile::of_pms(c, &mut notes), &c.id, config))
        .collect();
    evidence.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then_with(|| a.patient_id.cmp(&b.patient_id))
    });
    let outcome = decide(&evidence, config);
    Decision {
        outcome,
        candidates: evidence,
        notes,
    }
}

/// The decision rule over scored candidates (sorted best first).
fn decide(evidence: &[CandidateEvidence], config: &MatchConfig) -> Outcome {
    let clears: Vec<&CandidateEvidence> = evidence
        .iter()
        .filter(|c| c.status == CandidateStatus::Clears)
        .collect();
    let possible: Vec<&CandidateEvidence> = evidence
        .iter()
        .filter(|c| c.status == CandidateStatus::Possible)
        .collect();
    let ambiguous = |reason, ids: Vec<&CandidateEvidence>| Outcome::Ambiguous {
        reason,
        patient_ids: ids.iter().map(|c| c.patient_id.clone()).collect(),
        action: config.on_ambiguous,
    };
    match clears.as_slice() {
        [] if possible.is_empty() => Outcome::New,
        [] => ambiguous(AmbiguityReason::ConflictingEvidence, possible),
        [only] => {
            // A doubtful candidate with more evidence than the one that clears: do not guess.
            let stronger: Vec<&CandidateEvidence> = possible
                .iter()
                .copied()
                .filter(|p| p.score > only.score)
                .collect();
            if stronger.is_empty() {
                Outcome::Match {
                    patient_id: only.patient_id.clone(),
                }
            } else {
                let mut ids = stronger;
                ids.push(only);
                ids.sort_by(|a, b| {
                    b.score
                        .cmp(&a.score)
                        .then_with(|| a.patient_id.cmp(&b.patient_id))
                });
                ambiguous(AmbiguityReason::ConflictingEvidence, ids)
            }
        }
        _ => ambiguous(AmbiguityReason::SeveralCandidates, clears),
    }
}

/// A patient's fields in normalised form: what the scorer compares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Profile {
    pub first: Option<String>,
    pub last: Option<String>,
    pub dob: Option<Date>,
    pub phones: Vec<String>,
    pub email: Option<String>,
    /// Street line, normalised (booking side) or the whole address (PMS side).
    pub street: Option<String>,
    pub full_address: Option<String>,
    pub postcode: Option<String>,
    pub medicare: Option<Medicare>,
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn keep<T>(
    result: Result<T, FieldError>,
    subject: &str,
    field: &str,
    notes: &mut Vec<FieldNote>,
) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            notes.push(FieldNote {
                subject: subject.to_string(),
                field: field.to_string(),
                problem: e.to_string(),
            });
            None
        }
    }
}

fn name(value: &Option<String>) -> Option<String> {
    non_empty(value)
        .map(normalise_name)
        .filter(|n| !n.is_empty())
}

fn postcode_of(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .rfind(|t| t.len() == 4)
        .map(str::to_string)
}

impl Profile {
    pub(crate) fn of_booking(p: &BookingPatient, notes: &mut Vec<FieldNote>) -> Profile {
        let s = "booking";
        let medicare = non_empty(&p.medicare_number).and_then(|n| {
            keep(
                Medicare::parse(n, non_empty(&p.medicare_irn)),
                s,
                "medicareNumber",
                notes,
            )
        });
        let street = non_empty(&p.address)
            .map(normalise_address)
            .filter(|a| !a.is_empty());
        let full: Vec<&str> = [&p.address, &p.suburb, &p.state, &p.postcode]
            .into_iter()
            .filter_map(non_empty)
            .collect();
        let postcode = non_empty(&p.postcode)
            .and_then(postcode_of)
            .or_else(|| non_empty(&p.address).and_then(postcode_of));
        Profile {
            first: name(&p.firstname),
            last: name(&p.lastname),
            dob: non_empty(&p.dob).and_then(|d| keep(parse_dob(d), s, "dob", notes)),
            phones: non_empty(&p.phone)
                .and_then(|x| keep(normalise_phone(x), s, "phone", notes))
                .into_iter()
                .collect(),
            email: non_empty(&p.email).and_then(|e| keep(normalise_email(e), s, "email", notes)),
            street,
            full_address: Some(normalise_address(&full.join(" "))).filter(|a| !a.is_empty()),
            postcode,
            medicare,
        }
    }

    pub(crate) fn of_pms(p: &PmsPatient, notes: &mut Vec<FieldNote>) -> Profile {
        let s = p.id.as_str();
        let mut phones: Vec<String> = [("mobile", &p.mobile), ("phone", &p.phone)]
            .into_iter()
            .filter_map(|(field, v)| {
                non_empty(v).and_then(|x| keep(normalise_phone(x), s, field, notes))
            })
            .collect();
        phones.dedup();
        let medicare = non_empty(&p.medicare)
            .and_then(|n| keep(Medicare::parse(n, non_empty(&p.irn)), s, "medicare", notes));
        Profile {
            first: name(&p.firstname),
            last: name(&p.lastname),
            dob: p.dob,
            phones,
            email: non_empty(&p.email).and_then(|e| keep(normalise_email(e), s, "email", notes)),
            street: None,
            full_address: non_empty(&p.address)
                .map(normalise_address)
                .filter(|a| !a.is_empty()),
            postcode: non_empty(&p.address).and_then(postcode_of),
            medicare,
        }
    }
}
