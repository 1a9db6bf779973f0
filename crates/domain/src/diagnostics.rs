//! Diagnostics: why a practice's availability does not show, or its bookings fail, and how to fix
//! it in the PMS's own terms.
//!
//! [`diagnose`] is a pure function of what the integration knows about a practice: its PMS
//! [`PracticeSetup`] and [`Diary`], what the marketplace has linked ([`MarketView`]), and the
//! integration's own health ([`HealthView`]). It returns [`Finding`]s, each with a stable
//! [`Code`], a [`Severity`], the practitioner or reason it concerns, an explanation and a fix.
//!
//! Every cause in the reference article's Troubleshooting section has a code here:
//!
//! | cause | code |
//! |---|---|
//! | stacking is off: about two slots a day | [`Code::StackingOff`] |
//! | no "Healthengine" reason / misspelt | [`Code::HealthengineReasonMissing`], [`Code::HealthengineReasonMisspelt`] |
//! | default reason under 30 minutes | [`Code::DefaultReasonTooShort`] |
//! | default reason not for every practitioner type | [`Code::DefaultReasonNotAllTypes`] |
//! | practitioner missing from the booking reason | [`Code::PractitionerMissingFromReason`] |
//! | online duration differs from the reason's rule | [`Code::DurationMismatch`] |
//! | no booking reasons at all | [`Code::NoBookingReasons`] |
//! | a booking reason not linked on the marketplace | [`Code::ReasonUnlinked`] |
//! | an appointment type not linked for a practitioner | [`Code::AppointmentTypeUnlinked`] |
//! | a linked reason deleted in the PMS | [`Code::LinkedReasonDeleted`] |
//! | no sessions or windows within the horizon | [`Code::NoSessionsInHorizon`], [`Code::NoWindowsInHorizon`] |
//!
//! ```
//! use slotbridge_domain::diagnostics::{diagnose, Code, Input};
//! use slotbridge_domain::practice::*;
//! let setup = PracticeSetup {
//!     site: SiteSlug::parse("sdemo").unwrap(),
//!     name: "Demo".into(),
//!     timezone: IanaZone::parse("Australia/Sydney").unwrap(),
//!     phone: String::new(),
//!     interval_minutes: 15,
//!     stacking: false,
//!     practitioners: vec![],
//!     online_booking: vec![],
//!     reasons: vec![],
//!     online_rules: Default::default(),
//! };
//! let diary = Diary::default();
//! let today = jiff::civil::date(2026, 4, 2);
//! let findings = diagnose(&Input::new(&setup, &diary, today, 30));
//! assert!(findings.iter().any(|f| f.code == Code::StackingOff));
//! assert!(findings.iter().any(|f| f.code == Code::NoBookingReasons));
//! ```

use jiff::SignedDuration;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::practice::{Diary, PmsReason, PracticeSetup, Specialty, Weekday, WeeklyWindow};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Availability or bookings are broken for some practitioner or the whole practice.
    Error,
    /// Availability is reduced or something will break soon.
    Warning,
    /// Worth knowing; nothing is broken.
    Info,
}

impl Severity {
    /// `error`, `warning` or `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// A stable code for each kind of finding; serialised in kebab-case (`stacking-off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    /// Web Setup's Appointment Stacking is off.
    StackingOff,
    /// Web Setup has no booking reasons.
    NoBookingReasons,
    /// No reason is named exactly "Healthengine".
    HealthengineReasonMissing,
    /// A reason is named like "Healthengine" but not exactly ("Health Engine").
    HealthengineReasonMisspelt,
    /// The default reason's duration is under 30 minutes for some practitioner.
    DefaultReasonTooShort,
    /// The default reason has no rule for any practitioner of some specialty.
    DefaultReasonNotAllTypes,
    /// An online practitioner has no rule in the default reason.
    PractitionerMissingFromReason,
    /// A practitioner publishes online but is in no booking reason at all.
    PractitionerInNoReason,
    /// The Online Booking Configuration duration differs from the default reason's rule.
    DurationMismatch,
    /// A practitioner publishes online but has no sessions on any open date of the horizon.
    NoSessionsInHorizon,
    /// A practitioner has sessions, but no reason window meets them within the horizon.
    NoWindowsInHorizon,
    /// A PMS booking reason is linked to no marketplace appointment type.
    ReasonUnlinked,
    /// A marketplace practitioner has an appointment type with no linked PMS appointment.
    AppointmentTypeUnlinked,
    /// A PMS practitioner publishing online is connected to no marketplace practitioner.
    PractitionerUnlinked,
    /// A marketplace appointment type is linked to a PMS reason that no longer exists.
    LinkedReasonDeleted,
    /// The PMS rejected the API key.
    PmsKeyRejected,
    /// The PMS API key was revoked.
    PmsKeyRevoked,
    /// The practice has not granted (or has revoked) consent on the marketplace.
    ConsentMissing,
    /// The marketplace could not be reached.
    MarketUnreachable,
    /// The PMS could not be reached.
    PmsUnreachable,
    /// A critical request is approaching the marketplace's 10-minute limit.
    RequestsNearLimit,
    /// Published availability is older than it should be.
    AvailabilityStale,
    /// Bookings were rejected recently.
    BookingsRejected,
    /// The marketplace refused a late answer: a patient may believe something that is not so
    /// (booked while nothing is in the diary, or the reverse).
    LateAnswerRefused,
    /// No node works the practice: nothing is published and no booking is answered.
    NotServed,
    /// The database's disk is full: nothing can be written, so no booking is answered.
    DiskFull,
    /// Cliniko: a practitioner who offers shown types is not shown in online bookings.
    ClinikoPractitionerHidden,
    /// Cliniko: a practitioner working at the business offers no type shown online.
    ClinikoPractitionerNoShownType,
    /// Cliniko: an appointment type is not shown in online bookings.
    ClinikoTypeHidden,
    /// Cliniko: a practitioner shown online has no daily availability at the business.
    ClinikoNoDailyAvailability,
    /// Cliniko: a type lasts longer than every availability window of a practitioner offering it.
    ClinikoTypeLongerThanAvailability,
}

impl Code {
    /// The kebab-case code, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::StackingOff => "stacking-off",
            Code::NoBookingReasons => "no-booking-reasons",
            Code::HealthengineReasonMissing => "healthengine-reason-missing",
            Code::HealthengineReasonMisspelt => "healthengine-reason-misspelt",
            Code::DefaultReasonTooShort => "default-reason-too-short",
            Code::DefaultReasonNotAllTypes => "default-reason-not-all-types",
            Code::PractitionerMissingFromReason => "practitioner-missing-from-reason",
            Code::PractitionerInNoReason => "practitioner-in-no-reason",
            Code::DurationMismatch => "duration-mismatch",
            Code::NoSessionsInHorizon => "no-sessions-in-horizon",
            Code::NoWindowsInHorizon => "no-windows-in-horizon",
            Code::ReasonUnlinked => "reason-unlinked",
            Code::AppointmentTypeUnlinked => "appointment-type-unlinked",
            Code::PractitionerUnlinked => "practitioner-unlinked",
            Code::LinkedReasonDeleted => "linked-reason-deleted",
            Code::PmsKeyRejected => "pms-key-rejected",
            Code::PmsKeyRevoked => "pms-key-revoked",
            Code::ConsentMissing => "consent-missing",
            Code::MarketUnreachable => "market-unreachable",
            Code::PmsUnreachable => "pms-unreachable",
            Code::RequestsNearLimit => "requests-near-limit",
            Code::AvailabilityStale => "availability-stale",
            Code::BookingsRejected => "bookings-rejected",
            Code::LateAnswerRefused => "late-answer-refused",
            Code::NotServed => "not-served",
            Code::DiskFull => "disk-full",
            Code::ClinikoPractitionerHidden => "cliniko-practitioner-hidden",
            Code::ClinikoPractitionerNoShownType => "cliniko-practitioner-no-shown-type",
            Code::ClinikoTypeHidden => "cliniko-type-hidden",
            Code::ClinikoNoDailyAvailability => "cliniko-no-daily-availability",
            Code::ClinikoTypeLongerThanAvailability => "cliniko-type-longer-than-availability",
        }
    }
}

/// One thing found wrong, with how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What kind of finding.
    pub code: Code,
    /// How bad.
    pub severity: Severity,
    /// The PMS practitioner id it concerns, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practitioner: Option<String>,
    /// The PMS booking reason it concerns (its name), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What is wrong and what it does to availability or bookings.
    pub explanation: String,
    /// How to fix it, in the PMS's or the marketplace portal's own terms.
    pub fix: String,
}

/// What the marketplace has linked, as far as the integration can see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketView {
    /// The marketplace's practitioners and their appointment books.
    pub practitioners: Vec<MarketPractitioner>,
}

/// A marketplace practitioner, the appointment book (PMS resource) it is connected to, and its
/// appointment types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketPractitioner {
    /// The marketplace's name for the practitioner.
    pub name: String,
    /// The PMS resource id of its appointment book, if connected.
    #[serde(default)]
    pub pms_resource_id: Option<String>,
    /// Its appointment types.
    #[serde(default)]
    pub appointment_types: Vec<MarketAppointmentType>,
}

/// A marketplace appointment type and its "Linked PMS Appointment".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketAppointmentType {
    /// The type's name on the marketplace.
    pub name: String,
    /// The linked PMS appointment type id, if linked.
    #[serde(default)]
    pub linked_pms_type: Option<String>,
}

/// Whether the PMS accepted the API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PmsAuth {
    /// Accepted, or not yet tried.
    #[default]
    Ok,
    /// Rejected as wrong.
    Rejected,
    /// Revoked at the practice.
    Revoked,
}

/// The practice's consent on the marketplace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consent {
    /// Not known yet.
    #[default]
    Unknown,
    /// Granted: the marketplace accepts the practice id and key.
    Granted,
    /// Missing or revoked: the marketplace answered 403.
    Missing,
}

/// A booking the integration rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedBooking {
    /// The marketplace booking id.
    pub booking_id: String,
    /// The reason given to the marketplace.
    pub reason: String,
}

/// The integration's own view of its health for one practice. Ages are measured by the caller
/// against its clock, so that this module stays pure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthView {
    /// Whether the PMS accepted the key.
    pub pms_auth: PmsAuth,
    /// Whether the PMS answered at the last attempt.
    pub pms_reachable: bool,
    /// The last PMS error, for the explanation.
    #[serde(default)]
    pub pms_error: Option<String>,
    /// Consent on the marketplace.
    pub consent: Consent,
    /// Whether the marketplace answered at the last attempt.
    pub market_reachable: bool,
    /// The last marketplace error, for the explanation.
    #[serde(default)]
    pub market_error: Option<String>,
    /// The age of the oldest unanswered critical request (booking, booking update, availability).
    #[serde(default)]
    pub oldest_open_critical_request: Option<SignedDuration>,
    /// How long since availability was last published successfully.
    #[serde(default)]
    pub availability_age: Option<SignedDuration>,
    /// How old availability may get before it is stale.
    pub availability_stale_after: SignedDuration,
    /// Bookings rejected recently, newest first.
    #[serde(default)]
    pub rejected_bookings: Vec<RejectedBooking>,
    /// Recent bookings whose late answer the marketplace refused, with the recorded outcome
    /// (in [`RejectedBooking::reason`]), newest first.
    #[serde(default)]
    pub late_answers: Vec<RejectedBooking>,
    /// No node works the practice now: every node is at its capacity (`max_links`), or none
    /// is running.
    #[serde(default)]
    pub unserved: bool,
    /// The database refuses the node's writes because its disk is full.
    #[serde(default)]
    pub disk_full: bool,
}

/// The marketplace flags the integration unhealthy when a critical request is older than this.
pub const REQUEST_LIMIT: SignedDuration = SignedDuration::from_mins(10);
/// A critical request older than this raises [`Code::RequestsNearLimit`].
pub const REQUEST_WARNING: SignedDuration = SignedDuration::from_mins(5);
/// The seed: a default reason shorter than this may not fit the gaps and fail to display.
pub const MIN_DEFAULT_DURATION: u32 = 30;
/// The exact name the marketplace's default reason must have.
pub const HEALTHENGINE: &str = "Healthengine";

/// What [`diagnose`] looks at.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// The PMS's online-booking setup.
    pub setup: &'a PracticeSetup,
    /// The PMS diary (weekly hours, blocks, closed dates).
    pub diary: &'a Diary,
    /// The practice-local date the horizon starts on.
    pub today: Date,
    /// The publishing horizon in days.
    pub horizon_days: u32,
    /// What the marketplace has linked, when known.
    pub market: Option<&'a MarketView>,
    /// The integration's health, when known.
    pub health: Option<&'a HealthView>,
    /// Which PMS the setup came from: its causes and fixes are in that PMS's words.
    pub pms: PmsFlavour,
}

/// Which PMS a practice's setup was read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PmsFlavour {
    /// An Exact-style PMS (Web Setup, booking reasons, the Online Booking Configuration).
    #[default]
    Exact,
    /// Cliniko (appointment types and practitioners shown in online bookings, daily
    /// availabilities): [`cliniko`]'s findings replace the Exact-style setup and horizon ones.
    Cliniko,
}

#[path = "diagnostics_cliniko.rs"]
pub mod cliniko;

impl<'a> Input<'a> {
    /// Diagnose the setup and diary only.
    pub fn new(setup: &'a PracticeSetup, diary: &'a Diary, today: Date, horizon_days: u32) -> Self {
        Input {
            setup,
            diary,
            today,
            horizon_days,
            market: None,
            health: None,
            pms: PmsFlavour::Exact,
        }
    }

    /// Diagnose a Cliniko practice ([`cliniko`]).
    pub fn for_cliniko(mut self) -> Self {
        self.pms = PmsFlavour::Cliniko;
        self
    }

    /// Also diagnose the marketplace's links.
    pub fn with_market(mut self, market: &'a MarketView) -> Self {
        self.market = Some(market);
        self
    }

    /// Also diagnose the integration's health.
    pub fn with_health(mut self, health: &'a HealthView) -> Self {
        self.health = Some(health);
        self
    }
}

/// Every finding for one practice, errors first, then by code, practitioner and reason.
pub fn diagnose(input: &Input<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    match input.pms {
        PmsFlavour::Exact => {
            setup_findings(input.setup, &mut out);
            horizon_findings(input, &mut out);
        }
        PmsFlavour::Cliniko => cliniko::findings(input, &mut out),
    }
    if let Some(market) = input.market {
        market_findings(input.setup, market, &mut out);
    }
    if let Some(health) = input.health {
        health_findings(health, &mut out);
    }
    out.sort_by(|a, b| {
        (a.severity, a.code, &a.practitioner, &a.reason).cmp(&(
            b.severity,
            b.code,
            &b.practitioner,
            &b.reason,
        ))
    });
    out
}

/// The integration-health findings alone, for when the PMS setup cannot be read at all.
pub fn diagnose_health(health: &HealthView) -> Vec<Finding> {
    let mut out = Vec::new();
    health_findings(health, &mut out);
    out.sort_by_key(|f| (f.severity, f.code));
    out
}

/// Whether any finding is an error (`slotbridge doctor` exits 1 then).
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

fn finding(
    code: Code,
    severity: Severity,
    practitioner: Option<&str>,
    reason: Option<&str>,
    explanation: String,
    fix: String,
) -> Finding {
    Finding {
        code,
        severity,
        practitioner: practitioner.map(str::to_owned),
        reason: reason.map(str::to_owned),
        explanation,
        fix,
    }
}

/// Letters and digits only, lower-cased: "Health Engine" and "health-engine" both give
/// "healthengine".
fn squash(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

fn specialty_name(s: Specialty) -> &'static str {
    match s {
        Specialty::Dentist => "dentists",
        Specialty::Hygienist => "hygienists",
        Specialty::OralHealthTherapist => "oral health therapists",
    }
}

fn setup_findings(setup: &PracticeSetup, out: &mut Vec<Finding>) {
    let name_of = |id: &str| {
        setup
            .practitioner(id)
            .map(|p| p.display_name())
            .unwrap_or_else(|| format!("practitioner {id}"))
    };

    if !setup.stacking {
        out.push(finding(
            Code::StackingOff,
            Severity::Warning,
            None,
            None,
            "Appointment Stacking is off, so only the first free slot after each break is \
             published: typically one in the morning and one after lunch each day."
                .into(),
            "In Exact, open Online Booking Configuration, then Web Setup, and tick Appointment \
             Stacking."
                .into(),
        ));
    }

    if setup.reasons.is_empty() {
        out.push(finding(
            Code::NoBookingReasons,
            Severity::Error,
            None,
            None,
            "Web Setup has no booking reasons, so there is no appointment type to publish and \
             nothing can be booked online."
                .into(),
            "In Exact, open Online Booking Configuration, then Web Setup, and create a booking \
             reason named \"Healthengine\" with the +1 button; then use Configure Providers to \
             add every practitioner."
                .into(),
        ));
        return;
    }

    let exact = setup.reasons.iter().any(|r| r.name == HEALTHENGINE);
    let misspelt: Vec<&PmsReason> = setup
        .reasons
        .iter()
        .filter(|r| r.name != HEALTHENGINE && squash(&r.name) == "healthengine")
        .collect();
    let default = setup.default_reason();
    let default_name = default.map(|r| r.name.as_str()).unwrap_or_default();
    if !exact {
        if misspelt.is_empty() {
            out.push(finding(
                Code::HealthengineReasonMissing,
                Severity::Warning,
                None,
                None,
                format!(
                    "No booking reason is named \"Healthengine\", so the integration uses \
                     \"{default_name}\" as the default reason."
                ),
                "In Exact, open Web Setup and create a booking reason named exactly \
                 \"Healthengine\" with the +1 button; use Configure Providers to add all your \
                 dentists and hygienists to it."
                    .into(),
            ));
        }
        for r in &misspelt {
            out.push(finding(
                Code::HealthengineReasonMisspelt,
                Severity::Warning,
                None,
                Some(&r.name),
                format!(
                    "The booking reason \"{}\" looks meant as the Healthengine reason but is not \
                     written \"Healthengine\", so it is not used as the default (the default is \
                     \"{default_name}\").",
                    r.name
                ),
                format!(
                    "In Exact, open Web Setup and rename the booking reason \"{}\" to exactly \
                     \"Healthengine\" (one word, capital H only).",
                    r.name
                ),
            ));
        }
    }

    let online: Vec<&str> = setup
        .online_booking
        .iter()
        .map(|e| e.practitioner.as_str())
        .collect();

    for id in &online {
        if !setup.reasons.iter().any(|r| r.rule_for(id).is_some()) {
            out.push(finding(
                Code::PractitionerInNoReason,
                Severity::Error,
                Some(id),
                None,
                format!(
                    "{} publishes online but is in no booking reason, so no appointment type \
                     can be booked with them and they are missing from the appointment book list.",
                    name_of(id)
                ),
                "In Exact, open Web Setup, select the Healthengine booking reason, click \
                 Configure Providers and use +1 to add the practitioner with their publishing \
                 rules."
                    .into(),
            ));
        }
    }

    let Some(default) = default else { return };

    let short: Vec<(&str, u32)> = default
        .providers
        .iter()
        .filter(|p| online.contains(&p.practitioner.as_str()))
        .filter(|p| p.duration_minutes < MIN_DEFAULT_DURATION)
        .map(|p| (p.practitioner.as_str(), p.duration_minutes))
        .collect();
    if !short.is_empty() {
        let who = short
            .iter()
            .map(|(id, d)| format!("{} ({d} min)", name_of(id)))
            .collect::<Vec<_>>()
            .join(", ");
        out.push(finding(
            Code::DefaultReasonTooShort,
            Severity::Warning,
            None,
            Some(&default.name),
            format!(
                "The default booking reason \"{}\" is shorter than {MIN_DEFAULT_DURATION} minutes \
                 for {who}; shorter reasons may not fit the available slots and fail to display.",
                default.name
            ),
            format!(
                "In Exact, open Web Setup, select \"{}\", click Configure Providers and set each \
                 practitioner's duration to at least {MIN_DEFAULT_DURATION} minutes (use ed to \
                 edit the rule); keep the Online Booking Configuration duration the same.",
                default.name
            ),
        ));
    }

    // Specialties among online practitioners, and those the default reason covers.
    let specialties_of = |id: &str| {
        setup
            .practitioner(id)
            .map(|p| p.specialties.clone())
            .unwrap_or_default()
    };
    let mut all_types: Vec<Specialty> = online.iter().flat_map(|id| specialties_of(id)).collect();
    all_types.sort_by_key(|s| *s as u8);
    all_types.dedup();
    let covered: Vec<Specialty> = online
        .iter()
        .filter(|id| default.rule_for(id).is_some())
        .flat_map(|id| specialties_of(id))
        .collect();
    let uncovered: Vec<Specialty> = all_types
        .iter()
        .copied()
        .filter(|s| !covered.contains(s))
        .collect();
    if !uncovered.is_empty() {
        let types = uncovered
            .iter()
            .map(|s| specialty_name(*s))
            .collect::<Vec<_>>()
            .join(" and ");
        out.push(finding(
            Code::DefaultReasonNotAllTypes,
            Severity::Warning,
            None,
            Some(&default.name),
            format!(
                "The default booking reason \"{}\" applies to none of your {types}, so they have \
                 no default appointment type online.",
                default.name
            ),
            format!(
                "In Exact, open Web Setup, select \"{}\", click Configure Providers and add your \
                 {types} with +1; or use a reason that applies to every practitioner type, such \
                 as a \"Healthengine\" reason with all practitioners.",
                default.name
            ),
        ));
    }

    for id in &online {
        let Some(entry) = setup.online_booking.iter().find(|e| e.practitioner == *id) else {
            continue;
        };
        match default.rule_for(id) {
            None => {
                // A practitioner whose every specialty is uncovered is reported above, as a type.
                let types = specialties_of(id);
                let whole_type_missing =
                    !types.is_empty() && types.iter().all(|s| uncovered.contains(s));
                if !whole_type_missing {
                    out.push(finding(
                        Code::PractitionerMissingFromReason,
                        Severity::Warning,
                        Some(id),
                        Some(&default.name),
                        format!(
                            "{} is missing from the default booking reason \"{}\", so they are \
                             missing from the appointment book list for it.",
                            name_of(id),
                            default.name
                        ),
                        format!(
                            "In Exact, open Web Setup, select \"{}\", click Configure Providers \
                             and use +1 to add {} with their publishing rules.",
                            default.name,
                            name_of(id)
                        ),
                    ));
                }
            }
            Some(rule) if rule.duration_minutes != entry.duration_minutes => {
                out.push(finding(
                    Code::DurationMismatch,
                    Severity::Warning,
                    Some(id),
                    Some(&default.name),
                    format!(
                        "{}'s online appointment duration is {} minutes in the Online Booking \
                         Configuration but {} minutes in \"{}\"'s publishing rule; bookings use \
                         the rule's {} minutes.",
                        name_of(id),
                        entry.duration_minutes,
                        rule.duration_minutes,
                        default.name,
                        rule.duration_minutes
                    ),
                    format!(
                        "In Exact, make the durations match: open Online Booking Configuration \
                         and set {}'s duration, or open Web Setup, select \"{}\", Configure \
                         Providers, and edit (ed) the rule's duration.",
                        name_of(id),
                        default.name
                    ),
                ));
            }
            Some(_) => {}
        }
    }
}

/// Half-open minute intervals `[start, end)` within a day, sorted and disjoint.
type Spans = Vec<(u32, u32)>;

fn weekly_spans(windows: &[WeeklyWindow], day: Weekday) -> Spans {
    let mut v: Spans = windows
        .iter()
        .filter(|w| w.on(day) && w.start < w.end)
        .map(|w| (w.start.minutes(), w.end.minutes()))
        .collect();
    normalise(&mut v);
    v
}

fn normalise(v: &mut Spans) {
    v.sort_unstable();
    let mut out: Spans = Vec::with_capacity(v.len());
    for &(s, e) in v.iter() {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    *v = out;
}

fn subtract(a: &Spans, b: &Spans) -> Spans {
    let mut out = Vec::new();
    for &(s, e) in a {
        let mut cur = s;
        for &(bs, be) in b {
            if be <= cur || bs >= e {
                continue;
            }
            if bs > cur {
                out.push((cur, bs));
            }
            cur = cur.max(be);
        }
        if cur < e {
            out.push((cur, e));
        }
    }
    out
}

fn intersects(a: &Spans, b: &Spans) -> bool {
    a.iter()
        .any(|&(s, e)| b.iter().any(|&(bs, be)| bs < e && s < be))
}

fn horizon_findings(input: &Input<'_>, out: &mut Vec<Finding>) {
    let setup = input.setup;
    let dates: Vec<Date> = (0..i64::from(input.horizon_days))
        .filter_map(|n| input.today.checked_add(jiff::Span::new().days(n)).ok())
        .filter(|d| !input.diary.closed_dates.contains(d))
        .collect();
    for entry in &setup.online_booking {
        let id = entry.practitioner.as_str();
        let name = setup
            .practitioner(id)
            .map(|p| p.display_name())
            .unwrap_or_else(|| format!("practitioner {id}"));
        let hours = input.diary.hours_of(id);
        let windows: Vec<&WeeklyWindow> = setup
            .reasons
            .iter()
            .filter_map(|r| r.rule_for(id))
            .flat_map(|rule| rule.windows.iter())
            .collect();
        let windows: Vec<WeeklyWindow> = windows.into_iter().cloned().collect();
        let mut any_working = false;
        let mut any_bookable = false;
        for &date in &dates {
            let day = Weekday::of(date);
            let sessions = hours
                .map(|h| weekly_spans(&h.sessions, day))
                .unwrap_or_default();
            let breaks = hours
                .map(|h| weekly_spans(&h.breaks, day))
                .unwrap_or_default();
            let mut blocks: Spans = input
                .diary
                .blocks
                .iter()
                .filter(|b| b.date == date && b.practitioner.as_deref().is_none_or(|p| p == id))
                .map(|b| (b.start.minutes(), b.end.minutes()))
                .collect();
            normalise(&mut blocks);
            let working = subtract(&subtract(&sessions, &breaks), &blocks);
            if working.is_empty() {
                continue;
            }
            any_working = true;
            if intersects(&working, &weekly_spans(&windows, day)) {
                any_bookable = true;
                break;
            }
        }
        let horizon = input.horizon_days;
        if !any_working {
            out.push(finding(
                Code::NoSessionsInHorizon,
                Severity::Error,
                Some(id),
                None,
                format!(
                    "{name} publishes online but has no working sessions on any open day of the \
                     next {horizon} days (no hours, or every day is closed, on leave or blocked), \
                     so nothing is published for them."
                ),
                format!(
                    "In Exact, give {name} sessions in the diary for the coming weeks, or remove \
                     the holiday blocks; if they should not publish, remove them from Online \
                     Booking Configuration."
                ),
            ));
        } else if !any_bookable {
            out.push(finding(
                Code::NoWindowsInHorizon,
                Severity::Error,
                Some(id),
                None,
                format!(
                    "{name} works in the next {horizon} days, but no booking reason's publishing \
                     window for them falls in those hours, so nothing is published for them."
                ),
                "In Exact, open Web Setup, select each booking reason, click Configure Providers \
                 and edit (ed) the practitioner's publishing rules so their days and times meet \
                 the diary sessions."
                    .into(),
            ));
        }
    }
}

fn market_findings(setup: &PracticeSetup, market: &MarketView, out: &mut Vec<Finding>) {
    let reason_ids: Vec<&str> = setup.reasons.iter().map(|r| r.id.as_str()).collect();
    // A marketplace type id is a reason id, or `<reason>:<resource>` when durations differ.
    let reason_part = |linked: &str| linked.split(':').next().unwrap_or(linked).to_owned();
    let linked_reasons: Vec<String> = market
        .practitioners
        .iter()
        .flat_map(|p| p.appointment_types.iter())
        .filter_map(|t| t.linked_pms_type.as_deref())
        .map(reason_part)
        .collect();

    for p in &market.practitioners {
        for t in &p.appointment_types {
            match t.linked_pms_type.as_deref() {
                None => out.push(finding(
                    Code::AppointmentTypeUnlinked,
                    Severity::Error,
                    p.pms_resource_id.as_deref(),
                    None,
                    format!(
                        "The marketplace appointment type \"{}\" of {} is not linked to a PMS \
                         booking reason, so it cannot be booked.",
                        t.name, p.name
                    ),
                    format!(
                        "In the Healthengine Practice Admin portal, open Manage Practitioners → \
                         Edit Appointment Types for {} and choose the Linked PMS Appointment for \
                         \"{}\". Do this for every practitioner.",
                        p.name, t.name
                    ),
                )),
                Some(linked) if !reason_ids.contains(&reason_part(linked).as_str()) => {
                    out.push(finding(
                        Code::LinkedReasonDeleted,
                        Severity::Error,
                        p.pms_resource_id.as_deref(),
                        None,
                        format!(
                            "The marketplace appointment type \"{}\" of {} is linked to PMS type \
                             {linked}, which no longer exists in the PMS.",
                            t.name, p.name
                        ),
                        format!(
                            "In the Healthengine Practice Admin portal, open Manage Practitioners \
                             → Edit Appointment Types for {}, click \"Refresh Linked PMS \
                             Appointment Types\" and link \"{}\" to an existing booking reason.",
                            p.name, t.name
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
    }

    for r in &setup.reasons {
        if !r.providers.is_empty() && !linked_reasons.contains(&r.id) {
            out.push(finding(
                Code::ReasonUnlinked,
                Severity::Info,
                None,
                Some(&r.name),
                format!(
                    "The booking reason \"{}\" is published as a PMS appointment type but no \
                     marketplace appointment type is linked to it.",
                    r.name
                ),
                format!(
                    "If it should be bookable online: in the Healthengine Practice Admin portal, \
                     open Manage Practitioners → Edit Appointment Types, click \"Refresh Linked \
                     PMS Appointment Types\", then create or edit a type with Linked PMS \
                     Appointment \"{}\".",
                    r.name
                ),
            ));
        }
    }

    for entry in &setup.online_booking {
        let id = entry.practitioner.as_str();
        let connected = market.practitioners.iter().any(|p| {
            p.pms_resource_id
                .as_deref()
                .is_some_and(|r| r.split(':').next() == Some(id))
        });
        if !connected {
            let name = setup
                .practitioner(id)
                .map(|p| p.display_name())
                .unwrap_or_else(|| format!("practitioner {id}"));
            out.push(finding(
                Code::PractitionerUnlinked,
                Severity::Warning,
                Some(id),
                None,
                format!(
                    "{name} publishes online but no marketplace practitioner is connected to \
                     their appointment book, so patients cannot book them."
                ),
                format!(
                    "In the Healthengine Practice Admin portal, open Manage Practitioner, edit \
                     the practitioner and select {name}'s availability book with \"edit \
                     appointment book\". If it is missing from the list, make sure {name} is in \
                     the booking reason in Exact (Web Setup → Configure Providers)."
                ),
            ));
        }
    }
}

fn minutes(d: SignedDuration) -> i64 {
    d.as_secs() / 60
}

fn health_findings(h: &HealthView, out: &mut Vec<Finding>) {
    match h.pms_auth {
        PmsAuth::Ok => {}
        PmsAuth::Rejected => out.push(finding(
            Code::PmsKeyRejected,
            Severity::Error,
            None,
            None,
            "The PMS rejected the site's API key, so the diary cannot be read or written: \
             availability is not updated and bookings are rejected."
                .into(),
            "Check the site slug and API key in the link settings; in Exact, copy the API key \
             again and paste it into the link (the key is write-only here)."
                .into(),
        )),
        PmsAuth::Revoked => out.push(finding(
            Code::PmsKeyRevoked,
            Severity::Error,
            None,
            None,
            "The PMS API key was revoked at the practice, so the diary cannot be read or \
             written."
                .into(),
            "In Exact, issue a new API key for the integration and enter it in the link settings."
                .into(),
        )),
    }
    if !h.pms_reachable && h.pms_auth == PmsAuth::Ok {
        out.push(finding(
            Code::PmsUnreachable,
            Severity::Error,
            None,
            None,
            format!(
                "The PMS could not be reached{}.",
                h.pms_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            "Nothing to change in the setup; the integration retries. If it lasts, check the \
             PMS's status with the vendor."
                .into(),
        ));
    }
    if h.consent == Consent::Missing {
        out.push(finding(
            Code::ConsentMissing,
            Severity::Error,
            None,
            None,
            "The marketplace refused the practice id and key (403): consent for this \
             integration is missing or was revoked, so nothing is published."
                .into(),
            "In the Healthengine Practice Admin portal, open API Consumer Consent, click \
             \"Grant new consent\", choose this integration, and enter the practice ID and \
             practice key it gives in the link settings."
                .into(),
        ));
    }
    if !h.market_reachable {
        out.push(finding(
            Code::MarketUnreachable,
            Severity::Error,
            None,
            None,
            format!(
                "The marketplace could not be reached{}.",
                h.market_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            "Nothing to change in the setup; the integration retries with backoff. If it \
             lasts, check the network path to the marketplace."
                .into(),
        ));
    }
    if let Some(age) = h.oldest_open_critical_request
        && age >= REQUEST_WARNING
    {
        let severity = if age >= REQUEST_LIMIT {
            Severity::Error
        } else {
            Severity::Warning
        };
        out.push(finding(
            Code::RequestsNearLimit,
            severity,
            None,
            None,
            format!(
                "A critical marketplace request has waited {} minutes; after {} minutes the \
                 marketplace flags the integration unhealthy and may hide the practice's \
                 appointments.",
                minutes(age),
                minutes(REQUEST_LIMIT)
            ),
            "Check that the link is enabled and the PMS is reachable; see the request log for \
             the waiting request."
                .into(),
        ));
    }
    if let Some(age) = h.availability_age
        && age > h.availability_stale_after
    {
        out.push(finding(
            Code::AvailabilityStale,
            Severity::Warning,
            None,
            None,
            format!(
                "Availability was last published {} minutes ago; patients may see slots that \
                 are gone.",
                minutes(age)
            ),
            "Use \"Resync availability\"; if it fails, the other findings say why.".into(),
        ));
    }
    if !h.rejected_bookings.is_empty() {
        let reasons = first_five(&h.rejected_bookings);
        out.push(finding(
            Code::BookingsRejected,
            Severity::Warning,
            None,
            None,
            format!(
                "{} booking(s) were rejected recently ({reasons}).",
                h.rejected_bookings.len()
            ),
            "See the booking log for each rejection; slot-taken rejections mean the diary \
             changed just before the booking, and the availability was refreshed."
                .into(),
        ));
    }
    if !h.late_answers.is_empty() {
        let each = first_five(&h.late_answers);
        out.push(finding(
            Code::LateAnswerRefused,
            Severity::Error,
            None,
            None,
            format!(
                "The marketplace refused {} late answer(s): what the patient was told and what \
                 the diary holds may differ ({each}).",
                h.late_answers.len()
            ),
            "Call each patient named in the booking log: confirm the appointment or offer \
             another time. slotbridge does not send these answers again."
                .into(),
        ));
    }
    if h.unserved {
        out.push(finding(
            Code::NotServed,
            Severity::Error,
            None,
            None,
            "No slotbridge node works this practice: its availability is not updated, and its \
             bookings are not written into the diary (the marketplace auto-confirms them after \
             20 s without a diary entry). Every running node is at its capacity (max_links), \
             or none is running."
                .into(),
            "Start another node on the same database, or raise max_links on a node that has \
             the memory for it (docs/operations.md, \"Capacity\")."
                .into(),
        ));
    }
    if h.disk_full {
        out.push(finding(
            Code::DiskFull,
            Severity::Error,
            None,
            None,
            "The disk under slotbridge's database is full: it refuses every write, so bookings \
             are not answered (the marketplace auto-confirms them after 20 s without a diary \
             entry) and availability is not published. Nothing already stored is damaged."
                .into(),
            "Free space on the volume that holds the database (the SQLite file and its -wal, \
             or PostgreSQL's data directory). slotbridge recovers by itself once it can write \
             again (docs/operations.md, \"Faults\")."
                .into(),
        ));
    }
}

/// The first five bookings of a list with their reasons, for a finding's explanation.
fn first_five(bookings: &[RejectedBooking]) -> String {
    bookings
        .iter()
        .take(5)
        .map(|b| format!("booking {}: {}", b.booking_id, b.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::practice::{
        BlockKind, DiaryBlock, IanaZone, OnlineBookingEntry, PmsPractitioner, PractitionerHours,
        ReasonProviderRule, SiteSlug,
    };
    use jiff::civil::date;

    fn t(s: &str) -> crate::practice::ClockTime {
        s.parse().expect("time")
    }

    fn weekdays(start: &str, end: &str) -> WeeklyWindow {
        use Weekday::*;
        WeeklyWindow::new(vec![Mon, Tue, Wed, Thu, Fri], t(start), t(end))
    }

    fn rule(p: &str, d: u32) -> ReasonProviderRule {
        ReasonProviderRule {
            practitioner: p.into(),
            duration_minutes: d,
            windows: vec![weekdays("08:00", "17:00")],
        }
    }

    /// A correctly set-up practice: two dentists and a hygienist, all in "Healthengine".
    fn good() -> (PracticeSetup, Diary) {
        let p = |id: &str, s: Specialty| PmsPractitioner {
            id: id.into(),
            title: "Dr".into(),
            first_name: format!("First{id}"),
            last_name: "Lee".into(),
            specialties: vec![s],
        };
        let setup = PracticeSetup {
            site: SiteSlug::parse("sharbour").expect("slug"),
            name: "Harbour".into(),
            timezone: IanaZone::parse("Australia/Sydney").expect("zone"),
            phone: String::new(),
            interval_minutes: 15,
            stacking: true,
            practitioners: vec![
                p("p1", Specialty::Dentist),
                p("p2", Specialty::Dentist),
                p("p3", Specialty::Hygienist),
            ],
            online_booking: ["p1", "p2", "p3"]
                .iter()
                .map(|id| OnlineBookingEntry {
                    practitioner: (*id).into(),
                    duration_minutes: 30,
                })
                .collect(),
            reasons: vec![
                PmsReason {
                    id: "R1".into(),
                    name: "Check-up".into(),
                    marketing: false,
                    providers: vec![rule("p1", 30)],
                },
                PmsReason {
                    id: "R5".into(),
                    name: "Healthengine".into(),
                    marketing: true,
                    providers: vec![rule("p1", 30), rule("p2", 30), rule("p3", 30)],
                },
            ],
            online_rules: Default::default(),
        };
        let diary = Diary {
            hours: ["p1", "p2", "p3"]
                .iter()
                .map(|id| PractitionerHours {
                    practitioner: (*id).into(),
                    sessions: vec![weekdays("08:00", "17:00")],
                    breaks: vec![weekdays("12:30", "13:30")],
                })
                .collect(),
            ..Diary::default()
        };
        (setup, diary)
    }

    fn codes(setup: &PracticeSetup, diary: &Diary) -> Vec<(Code, Option<String>)> {
        diagnose(&Input::new(setup, diary, date(2026, 4, 2), 30))
            .into_iter()
            .map(|f| (f.code, f.practitioner))
            .collect()
    }

    #[test]
    fn a_good_practice_has_no_findings() {
        let (setup, diary) = good();
        assert_eq!(codes(&setup, &diary), vec![]);
    }

    #[test]
    fn stacking_off_is_found_with_the_exact_fix() {
        let (mut setup, diary) = good();
        setup.stacking = false;
        let f = diagnose(&Input::new(&setup, &diary, date(2026, 4, 2), 30));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].code, Code::StackingOff);
        assert!(f[0].fix.contains("tick Appointment Stacking"));
        assert!(f[0].explanation.contains("one in the morning"));
    }

    #[test]
    fn missing_healthengine_reason_is_found_and_names_the_fallback() {
        let (mut setup, diary) = good();
        setup.reasons.retain(|r| r.name != "Healthengine");
        setup.reasons[0].providers = vec![rule("p1", 30), rule("p2", 30), rule("p3", 30)];
        let f = diagnose(&Input::new(&setup, &diary, date(2026, 4, 2), 30));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].code, Code::HealthengineReasonMissing);
        assert!(f[0].explanation.contains("\"Check-up\""));
    }

    #[test]
    fn misspelt_healthengine_reason_is_found_without_a_missing_finding_too() {
        let (mut setup, diary) = good();
        setup.reasons[1].name = "Health Engine".into();
        let c = codes(&setup, &diary);
        assert_eq!(c, vec![(Code::HealthengineReasonMisspelt, None)]);
    }

    #[test]
    fn default_reason_shorter_than_30_minutes_is_found() {
        let (mut setup, diary) = good();
        for p in &mut setup.reasons[1].providers {
            p.duration_minutes = 15;
        }
        for e in &mut setup.online_booking {
            e.duration_minutes = 15;
        }
        assert_eq!(
            codes(&setup, &diary),
            vec![(Code::DefaultReasonTooShort, None)]
        );
    }

    #[test]
    fn default_reason_without_hygienists_is_a_type_finding_not_per_practitioner() {
        let (mut setup, diary) = good();
        setup.reasons[1]
            .providers
            .retain(|p| p.practitioner != "p3");
        // p3 is in some reason, so it is not "in no reason".
        setup.reasons[0].providers.push(rule("p3", 30));
        let f = diagnose(&Input::new(&setup, &diary, date(2026, 4, 2), 30));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].code, Code::DefaultReasonNotAllTypes);
        assert!(f[0].explanation.contains("hygienists"));
    }

    #[test]
    fn practitioner_missing_from_default_reason_is_found_by_practitioner() {
        let (mut setup, diary) = good();
        setup.reasons[1]
            .providers
            .retain(|p| p.practitioner != "p2");
        setup.reasons[0].providers.push(rule("p2", 30));
        assert_eq!(
            codes(&setup, &diary),
            vec![(Code::PractitionerMissingFromReason, Some("p2".into()))]
        );
    }

    #[test]
    fn practitioner_in_no_reason_is_an_error() {
        let (mut setup, diary) = good();
        setup.reasons[1]
            .providers
            .retain(|p| p.practitioner != "p2");
        let f = diagnose(&Input::new(&setup, &diary, date(2026, 4, 2), 30));
        assert!(has_errors(&f));
        assert!(
            f.iter().any(|f| f.code == Code::PractitionerInNoReason
                && f.practitioner.as_deref() == Some("p2"))
        );
    }

    #[test]
    fn online_duration_differing_from_the_rule_is_found() {
        let (mut setup, diary) = good();
        setup.online_booking[2].duration_minutes = 45;
        let f = diagnose(&Input::new(&setup, &diary, date(2026, 4, 2), 30));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].code, Code::DurationMismatch);
        assert!(f[0].explanation.contains("45 minutes"));
        assert!(f[0].explanation.contains("30 minutes"));
    }

    #[test]
    fn no_sessions_in_horizon_and_no_windows_in_horizon_are_told_apart() {
        let (setup, mut diary) = good();
        diary.hours.retain(|h| h.practitioner != "p2");
        // p3 on leave for the whole horizon.
        for n in 0..30 {
            diary.blocks.push(DiaryBlock {
                id: format!("b{n}"),
                practitioner: Some("p3".into()),
                date: date(2026, 4, 2) + jiff::Span::new().days(n),
                start: t("00:00"),
                end: t("24:00"),
                kind: BlockKind::Holiday,
            });
        }
        let c = codes(&setup, &diary);
        assert!(c.contains(&(Code::NoSessionsInHorizon, Some("p2".into()))));
        assert!(c.contains(&(Code::NoSessionsInHorizon, Some("p3".into()))));

        let (mut setup, diary) = good();
        for r in &mut setup.reasons {
            for p in &mut r.providers {
                if p.practitioner == "p1" {
                    p.windows = vec![WeeklyWindow::new(
                        vec![Weekday::Sun],
                        t("08:00"),
                        t("12:00"),
                    )];
                }
            }
        }
        assert_eq!(
            codes(&setup, &diary),
            vec![(Code::NoWindowsInHorizon, Some("p1".into()))]
        );
    }

    #[test]
    fn closed_dates_do_not_count_as_working_days() {
        let (setup, mut diary) = good();
        diary.closed_dates = (0..10)
            .map(|n| date(2026, 4, 2) + jiff::Span::new().days(n))
            .collect();
        let f = diagnose(&Input::new(&setup, &diary, date(2026, 4, 2), 10));
        assert_eq!(
            f.iter()
                .filter(|f| f.code == Code::NoSessionsInHorizon)
                .count(),
            3
        );
    }

    #[test]
    fn marketplace_links_are_checked() {
        let (setup, diary) = good();
        let ty = |name: &str, linked: Option<&str>| MarketAppointmentType {
            name: name.into(),
            linked_pms_type: linked.map(str::to_owned),
        };
        let market = MarketView {
            practitioners: vec![
                MarketPractitioner {
                    name: "Dr One".into(),
                    pms_resource_id: Some("p1:dentist".into()),
                    appointment_types: vec![ty("Check-up", Some("R1")), ty("New patient", None)],
                },
                MarketPractitioner {
                    name: "Dr Two".into(),
                    pms_resource_id: Some("p2".into()),
                    appointment_types: vec![ty("Old type", Some("R9:p2"))],
                },
            ],
        };
        let f = diagnose(&Input::new(&setup, &diary, date(2026, 4, 2), 30).with_market(&market));
        let c: Vec<_> = f
            .iter()
            .map(|f| (f.code, f.practitioner.clone(), f.reason.clone()))
            .collect();
        assert!(c.contains(&(
            Code::AppointmentTypeUnlinked,
            Some("p1:dentist".into()),
            None
        )));
        assert!(c.contains(&(Code::LinkedReasonDeleted, Some("p2".into()), None)));
        assert!(c.contains(&(Code::ReasonUnlinked, None, Some("Healthengine".into()))));
        assert!(c.contains(&(Code::PractitionerUnlinked, Some("p3".into()), None)));
        assert!(
            !c.iter()
                .any(|(code, _, r)| *code == Code::ReasonUnlinked
                    && r.as_deref() == Some("Check-up"))
        );
        let deleted = f
            .iter()
            .find(|f| f.code == Code::LinkedReasonDeleted)
            .expect("deleted");
        assert!(deleted.fix.contains("Refresh Linked PMS Appointment Types"));
    }

    #[test]
    fn health_findings_cover_keys_consent_reachability_requests_staleness_and_rejections() {
        let (setup, diary) = good();
        let healthy = HealthView {
            pms_reachable: true,
            market_reachable: true,
            consent: Consent::Granted,
            availability_age: Some(SignedDuration::from_secs(30)),
            availability_stale_after: SignedDuration::from_mins(15),
            oldest_open_critical_request: Some(SignedDuration::from_secs(20)),
            ..HealthView::default()
        };
        let f = diagnose(&Input::new(&setup, &diary, date(2026, 4, 2), 30).with_health(&healthy));
        assert_eq!(f, vec![]);

        let sick = HealthView {
            pms_auth: PmsAuth::Revoked,
            consent: Consent::Missing,
            market_reachable: false,
            market_error: Some("connection refused".into()),
            oldest_open_critical_request: Some(SignedDuration::from_mins(7)),
            availability_age: Some(SignedDuration::from_mins(40)),
            rejected_bookings: vec![RejectedBooking {
                booking_id: "154".into(),
                reason: "slot taken".into(),
            }],
            late_answers: vec![RejectedBooking {
                booking_id: "155".into(),
                reason: "the marketplace refused our rejection".into(),
            }],
            unserved: true,
            disk_full: true,
            ..healthy.clone()
        };
        let f = diagnose(&Input::new(&setup, &diary, date(2026, 4, 2), 30).with_health(&sick));
        let c: Vec<Code> = f.iter().map(|f| f.code).collect();
        for code in [
            Code::PmsKeyRevoked,
            Code::ConsentMissing,
            Code::MarketUnreachable,
            Code::RequestsNearLimit,
            Code::AvailabilityStale,
            Code::BookingsRejected,
            Code::LateAnswerRefused,
            Code::NotServed,
            Code::DiskFull,
        ] {
            assert!(c.contains(&code), "{code:?} missing from {c:?}");
        }
        assert!(
            !c.contains(&Code::PmsUnreachable),
            "a revoked key is not an outage"
        );
        let consent = f
            .iter()
            .find(|f| f.code == Code::ConsentMissing)
            .expect("consent");
        assert!(consent.fix.contains("Grant new consent"));
        let near = f
            .iter()
            .find(|f| f.code == Code::RequestsNearLimit)
            .expect("near");
        assert_eq!(near.severity, Severity::Warning);
        assert!(
            f.iter()
                .find(|f| f.code == Code::BookingsRejected)
                .expect("rej")
                .explanation
                .contains("slot taken")
        );
        // Errors sort first.
        assert_eq!(f[0].severity, Severity::Error);
    }

    #[test]
    fn codes_serialise_in_kebab_case_matching_as_str() {
        for code in [
            Code::StackingOff,
            Code::HealthengineReasonMisspelt,
            Code::RequestsNearLimit,
        ] {
            let json = serde_json::to_string(&code).expect("json");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
