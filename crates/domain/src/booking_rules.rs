//! The booking pipeline's decisions, as pure functions of the booking's stage, its times, the
//! attempt count and what failed (see `docs/bookings.md`).
//!
//! The marketplace confirms by itself any booking neither confirmed nor rejected
//! [`AUTO_CONFIRM_AFTER`] (20 s) after the patient booked; a rejectInsert after that is a late
//! reject (the booking stays confirmed and the practice must cancel it by hand), a
//! confirmInsert is still accepted. Hence:
//!
//! - a refusal (slot taken, practitioner no longer online, PMS 409/422, patient ambiguous) is
//!   rejected at once ([`Decision::Reject`]);
//! - a transient failure before the auto-confirm is retried with backoff while another attempt
//!   still fits before the reject deadline, [`DECIDE_WITHIN`] (15 s) after the patient booked;
//!   a retry is never scheduled so late that its attempt would end past that deadline. Then it
//!   is rejected: at once from `Received`, after looking for the appointment by its external
//!   reference from `PatientResolved`, where an insert may have gone through
//!   ([`Decision::CheckThenReject`]);
//! - a transient failure after the auto-confirm is retried with backoff (it may still go in)
//!   until [`GIVE_UP_AFTER`] (10 min), then given up ([`Decision::GiveUp`], a late reject);
//! - an inserted booking is never rejected: its confirmation is retried with backoff for as long
//!   as it fails ([`Decision::KeepConfirming`]); a marketplace that refuses it leaves the
//!   appointment for the practice ([`Decision::ConfirmRefused`]);
//! - a store failure leaves the booking claimed; the claim lapses and the step is redone.
//!
//! Times are measured from when the patient booked (`bookedTime`), or from when the request
//! reached the integration if that is earlier (the marketplace's clock ahead of ours): the
//! earlier of the two, so clock skew never buys time we do not have.
//!
//! The round's grouping is here too: [`group`] puts the bookings of one (practitioner, day)
//! together, in the order the patients booked, and each booking that only waits for its
//! confirmation on its own.
//!
//! ```
//! use jiff::{SignedDuration, Timestamp};
//! use slotbridge_domain::backoff::Jitter;
//! use slotbridge_domain::booking_rules::{decide, Decision, Facts, Failure, RejectReason, Stage};
//!
//! let booked: Timestamp = "2026-03-02T09:00:00Z".parse().unwrap();
//! let at = |s: i64| booked + SignedDuration::from_secs(s);
//! let facts = |stage, now, attempts| Facts { stage, booked_at: booked, received_at: at(1), now, attempts };
//!
//! assert_eq!(decide(&facts(Stage::Received, at(3), 1), Some(&Failure::Transient), Jitter::NONE),
//!            Decision::RetryAt(at(4)));
//! assert_eq!(decide(&facts(Stage::PatientResolved, at(14), 3), Some(&Failure::Transient), Jitter::NONE),
//!            Decision::CheckThenReject(RejectReason::NotReachedInTime));
//! assert_eq!(decide(&facts(Stage::Inserted, at(25), 3), Some(&Failure::Transient), Jitter::NONE),
//!            Decision::KeepConfirming { at: at(29) });
//! ```

use std::collections::BTreeMap;
use std::fmt;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::backoff::{Backoff, Jitter, plus};
use crate::publish::ResolveError;

/// A booking that cannot go in is rejected before this much time has passed since the patient
/// booked; the rest, up to [`AUTO_CONFIRM_AFTER`], is for the look-up and rejectInsert.
pub const DECIDE_WITHIN: SignedDuration = SignedDuration::from_secs(15);
/// The marketplace confirms a booking by itself this long after the patient booked it.
pub const AUTO_CONFIRM_AFTER: SignedDuration = SignedDuration::from_secs(20);
/// A booking the marketplace already auto-confirmed is retried until this long after the
/// patient booked, then given up (a late reject).
pub const GIVE_UP_AFTER: SignedDuration = SignedDuration::from_secs(10 * 60);
/// The longest one attempt at a step may take (one bounded PMS call): a retry is only
/// scheduled where an attempt this long still ends by the reject deadline.
pub const ATTEMPT_TAKES: SignedDuration = SignedDuration::from_secs(4);
/// The longest the look-up by external reference before a rejection may take.
pub const CHECK_TAKES: SignedDuration = SignedDuration::from_secs(2);
/// How long a claimed booking is one worker's before another may take it over.
pub const CLAIM_FOR: SignedDuration = SignedDuration::from_secs(60);

/// Where a booking is in the outbox's state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Taken from the marketplace; nothing done in the PMS yet.
    Received,
    /// The PMS patient is known; the insert may have been tried (and may have gone through).
    PatientResolved,
    /// The appointment is in the diary; only the confirmation is left.
    Inserted,
    /// Terminal: confirmed.
    Confirmed,
    /// Terminal: rejected (never inserted afterwards).
    Rejected,
}

impl Stage {
    /// Confirmed or rejected: nothing left to do.
    pub fn is_terminal(self) -> bool {
        matches!(self, Stage::Confirmed | Stage::Rejected)
    }

    /// Whether an insert may have gone through although it was not recorded: the appointment
    /// must be looked for by its external reference before the booking is rejected.
    pub fn insert_may_have_happened(self) -> bool {
        self == Stage::PatientResolved
    }
}

/// Why the booking may not go in: fixed texts, sent to the marketplace as the reject reason
/// (never an adapter's error text, which may carry a URL or the patient's details).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The slot is no longer free (the desk, an earlier booking, or the PMS's 409).
    SlotTaken,
    /// The booked resource is not (or no longer) an online practitioner of the practice.
    PractitionerNotOnline,
    /// The appointment type has no publishing rule for the practitioner, or the practice has
    /// no booking reason.
    TypeNotBookable,
    /// The PMS refused the booking as invalid (400/422) or otherwise for good.
    PmsRefused,
    /// The patient's details match more than one file and the policy is to reject.
    PatientAmbiguous,
    /// A new patient's file cannot be created without a date of birth.
    DateOfBirthMissing,
    /// The PMS could not be reached in time.
    NotReachedInTime,
    /// The booking request cannot be read: as the marketplace listed it (a field the client
    /// cannot read, see `slotbridge_market::read`), or as stored.
    Unreadable,
}

impl RejectReason {
    /// Every reason.
    pub const ALL: [RejectReason; 8] = [
        RejectReason::SlotTaken,
        RejectReason::PractitionerNotOnline,
        RejectReason::TypeNotBookable,
        RejectReason::PmsRefused,
        RejectReason::PatientAmbiguous,
        RejectReason::DateOfBirthMissing,
        RejectReason::NotReachedInTime,
        RejectReason::Unreadable,
    ];

    /// The reason whose [`RejectReason::text`] is `text`, if any.
    ///
    /// ```
    /// use slotbridge_domain::booking_rules::RejectReason;
    /// let r = RejectReason::SlotTaken;
    /// assert_eq!(RejectReason::from_text(r.text()), Some(r));
    /// assert_eq!(RejectReason::from_text("anything else"), None);
    /// ```
    pub fn from_text(text: &str) -> Option<RejectReason> {
        RejectReason::ALL.into_iter().find(|r| r.text() == text)
    }

    /// The text sent to the marketplace and recorded.
    pub fn text(self) -> &'static str {
        match self {
            RejectReason::SlotTaken => "the time is no longer available",
            RejectReason::PractitionerNotOnline => {
                "the practitioner no longer takes online bookings at this practice"
            }
            RejectReason::TypeNotBookable => {
                "this appointment type cannot be booked online with this practitioner"
            }
            RejectReason::PmsRefused => "the practice's system refused the booking",
            RejectReason::PatientAmbiguous => {
                "the patient's details match more than one file; please call the practice"
            }
            RejectReason::DateOfBirthMissing => "the patient's date of birth is missing",
            RejectReason::NotReachedInTime => "the practice's system could not be reached in time",
            RejectReason::Unreadable => "the booking request could not be read",
        }
    }

    /// A short, stable name for metrics and events.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::SlotTaken => "slot_taken",
            RejectReason::PractitionerNotOnline => "practitioner_not_online",
            RejectReason::TypeNotBookable => "type_not_bookable",
            RejectReason::PmsRefused => "pms_refused",
            RejectReason::PatientAmbiguous => "patient_ambiguous",
            RejectReason::DateOfBirthMissing => "date_of_birth_missing",
            RejectReason::NotReachedInTime => "not_reached_in_time",
            RejectReason::Unreadable => "unreadable",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

impl From<&ResolveError> for RejectReason {
    fn from(e: &ResolveError) -> Self {
        match e {
            ResolveError::UnknownResource(_) => RejectReason::PractitionerNotOnline,
            ResolveError::NoRule { .. } | ResolveError::NoReasons => RejectReason::TypeNotBookable,
        }
    }
}

/// What went wrong in an attempt at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "reason", rename_all = "snake_case")]
pub enum Failure {
    /// The booking cannot go in, for this reason (for an inserted booking: the marketplace
    /// refused the confirmation).
    Refused(RejectReason),
    /// A retry may cure it, and nothing was written: the PMS or the marketplace is down, rate
    /// limited, or did not answer a read in time.
    Transient,
    /// A write's answer was lost (a timeout, an unreadable answer): it may have gone through.
    /// Retried like [`Failure::Transient`]; the group's diary may miss the insert.
    LostAnswer,
    /// The marketplace no longer waits for this booking (404/410).
    Gone,
    /// The store failed: the step was not recorded.
    Store,
}

impl Failure {
    /// Whether the diary read for the booking's group may now miss an appointment, and must be
    /// read again before the group's next booking is checked against it.
    pub fn invalidates_diary(&self) -> bool {
        matches!(self, Failure::LostAnswer)
    }
}

/// What to do with the booking now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Nothing failed: work the next step now.
    Proceed,
    /// Terminal: nothing to do.
    Done,
    /// Try again at this time (record it as the booking's next attempt).
    RetryAt(Timestamp),
    /// Record the rejection with this reason, then tell the marketplace.
    Reject(RejectReason),
    /// Look for the appointment by its external reference (bounded by [`CHECK_TAKES`]): found,
    /// the booking is inserted and goes on to confirm; otherwise reject with this reason.
    CheckThenReject(RejectReason),
    /// Inserted, the confirmation failed: confirm again at `at`. Never rejected.
    KeepConfirming {
        /// When to confirm again.
        at: Timestamp,
    },
    /// Auto-confirmed long ago and still failing: stop trying and reject late with this reason
    /// (the marketplace keeps the booking and flags the late reject for the practice); look for
    /// the appointment by its external reference first when `check_first`.
    GiveUp {
        /// The reason sent and recorded.
        reason: RejectReason,
        /// Whether an insert may have gone through: look before rejecting.
        check_first: bool,
    },
    /// Inserted, and the marketplace refused the confirmation (the booking was cancelled
    /// meanwhile): record it as refused, with the appointment left in the diary for the practice
    /// to check. No rejectInsert.
    ConfirmRefused,
    /// The marketplace no longer waits for the booking (404/410): record it as such. Nothing is
    /// sent; an inserted appointment stays for the practice.
    Gone,
    /// The store failed: leave the booking claimed; the claim lapses and the step is redone.
    LeaveClaimed,
}

impl Decision {
    /// Whether the decision rejects the booking (now, after a look-up, or late).
    pub fn rejects(&self) -> bool {
        matches!(
            self,
            Decision::Reject(_) | Decision::CheckThenReject(_) | Decision::GiveUp { .. }
        )
    }
}

/// What is known about a booking when deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Facts {
    /// Where it is in the outbox.
    pub stage: Stage,
    /// When the patient booked (the marketplace's `bookedTime`).
    pub booked_at: Timestamp,
    /// When the request reached the integration (the outbox row's creation).
    pub received_at: Timestamp,
    /// Now.
    pub now: Timestamp,
    /// Attempts so far, this one included (the store counts one per claim); 0 counts as 1.
    pub attempts: u32,
}

impl Facts {
    /// The instant the deadlines run from: the earlier of `booked_at` and `received_at`.
    pub fn started_at(&self) -> Timestamp {
        self.booked_at.min(self.received_at)
    }

    /// Attempts as the store's counter (`i64`) has them, clamped to `u32`.
    pub fn attempts_from(counter: i64) -> u32 {
        u32::try_from(counter.max(0)).unwrap_or(u32::MAX)
    }
}

/// The instants a booking's decisions turn on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Deadlines {
    /// A booking that cannot go in is rejected by then.
    pub reject_by: Timestamp,
    /// The latest a retry may be scheduled before the auto-confirm: `reject_by` less one
    /// attempt.
    pub last_retry: Timestamp,
    /// The marketplace confirms the booking by itself then.
    pub auto_confirm_at: Timestamp,
    /// A transient failure from then on gives the booking up.
    pub give_up_at: Timestamp,
}

/// The rules' durations: [`Rules::default`] is production's. A service that retries only at
/// its poll ticks sets `attempt_takes` to the poll interval plus one attempt, so a retry
/// picked up late still ends by the reject deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// [`DECIDE_WITHIN`].
    pub decide_within: SignedDuration,
    /// [`AUTO_CONFIRM_AFTER`].
    pub auto_confirm_after: SignedDuration,
    /// [`GIVE_UP_AFTER`].
    pub give_up_after: SignedDuration,
    /// [`ATTEMPT_TAKES`].
    pub attempt_takes: SignedDuration,
    /// The retry backoff: [`Backoff::LINK`], 1 s, 2 s, 4 s … 60 s.
    pub backoff: Backoff,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            decide_within: DECIDE_WITHIN,
            auto_confirm_after: AUTO_CONFIRM_AFTER,
            give_up_after: GIVE_UP_AFTER,
            attempt_takes: ATTEMPT_TAKES,
            backoff: Backoff::LINK,
        }
    }
}

impl Rules {
    /// The booking's deadlines.
    pub fn deadlines(&self, facts: &Facts) -> Deadlines {
        let start = facts.started_at();
        let reject_by = plus(start, self.decide_within);
        Deadlines {
            reject_by,
            last_retry: plus(reject_by, -self.attempt_takes),
            auto_confirm_at: plus(start, self.auto_confirm_after),
            give_up_at: plus(start, self.give_up_after),
        }
    }

    /// Whether the marketplace has confirmed the booking by itself: a rejection now is late.
    pub fn auto_confirmed(&self, facts: &Facts) -> bool {
        facts.now >= self.deadlines(facts).auto_confirm_at
    }

    /// The retry delay after `attempts` attempts: [`Rules::backoff`] with `jitter`.
    pub fn retry_delay(&self, attempts: u32, jitter: Jitter) -> SignedDuration {
        self.backoff.delay(attempts.max(1), jitter)
    }

    /// What to do with the booking, given what failed in this attempt (`None`: nothing).
    /// `jitter` is a random fraction the caller draws (see [`Jitter`]).
    pub fn decide(&self, facts: &Facts, failure: Option<&Failure>, jitter: Jitter) -> Decision {
        if facts.stage.is_terminal() {
            return Decision::Done;
        }
        let Some(failure) = failure else {
            // Even past the give-up point: an attempt that works still gets the booking in.
            return Decision::Proceed;
        };
        let inserted = facts.stage == Stage::Inserted;
        match failure {
            Failure::Store => Decision::LeaveClaimed,
            Failure::Gone => Decision::Gone,
            Failure::Refused(_) if inserted => Decision::ConfirmRefused,
            Failure::Refused(reason) => Decision::Reject(*reason),
            Failure::Transient | Failure::LostAnswer => {
                let wait = self.retry_delay(facts.attempts, jitter);
                let next = plus(facts.now, wait);
                if inserted {
                    return Decision::KeepConfirming { at: next };
                }
                let d = self.deadlines(facts);
                let check_first = facts.stage.insert_may_have_happened();
                let reason = RejectReason::NotReachedInTime;
                if facts.now < d.auto_confirm_at {
                    if facts.now < d.last_retry {
                        Decision::RetryAt(next.min(d.last_retry))
                    } else if check_first {
                        Decision::CheckThenReject(reason)
                    } else {
                        Decision::Reject(reason)
                    }
                } else if facts.now < d.give_up_at {
                    Decision::RetryAt(next.min(d.give_up_at))
                } else {
                    Decision::GiveUp {
                        reason,
                        check_first,
                    }
                }
            }
        }
    }
}

/// [`Rules::decide`] with production's [`Rules::default`].
pub fn decide(facts: &Facts, failure: Option<&Failure>, jitter: Jitter) -> Decision {
    Rules::default().decide(facts, failure, jitter)
}

/// Which bookings of a round are worked together, in one sequence sharing one day's diary.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "group", rename_all = "snake_case")]
pub enum GroupKey {
    /// An inserted (or finished) booking, on its own: it needs no diary. These come first.
    Alone {
        /// The marketplace's booking id.
        booking_id: i64,
    },
    /// The bookings of one practitioner on one day still to go in.
    Day {
        /// The PMS practitioner (`practitioner_of(resource id)`).
        practitioner: String,
        /// The appointment's practice-local date.
        day: Date,
    },
}

/// Where a booking goes in a round, and its place in its group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Placement {
    /// The booking's stage.
    pub stage: Stage,
    /// The PMS practitioner (`practitioner_of(resource id)`).
    pub practitioner: String,
    /// The appointment's practice-local date.
    pub day: Date,
    /// When the patient booked.
    pub booked_at: Timestamp,
    /// The marketplace's booking id.
    pub booking_id: i64,
}

impl Placement {
    /// The group the booking belongs to.
    pub fn key(&self) -> GroupKey {
        group_key(self.stage, &self.practitioner, self.day, self.booking_id)
    }
}

/// The group of a booking: its (practitioner, day) while it still has to go in; on its own
/// once inserted (or finished).
pub fn group_key(stage: Stage, practitioner: &str, day: Date, booking_id: i64) -> GroupKey {
    match stage {
        Stage::Received | Stage::PatientResolved => GroupKey::Day {
            practitioner: practitioner.to_owned(),
            day,
        },
        Stage::Inserted | Stage::Confirmed | Stage::Rejected => GroupKey::Alone { booking_id },
    }
}

/// A round's bookings in groups: in [`GroupKey`] order (confirmations first, then by
/// practitioner and day), each group in the order the patients booked (booked time, then
/// booking id).
pub fn group<T>(items: impl IntoIterator<Item = (Placement, T)>) -> Vec<(GroupKey, Vec<T>)> {
    /// A member's place in its group: booked time, then booking id.
    type Order = (Timestamp, i64);
    let mut groups: BTreeMap<GroupKey, Vec<(Order, T)>> = BTreeMap::new();
    for (p, item) in items {
        groups
            .entry(p.key())
            .or_default()
            .push(((p.booked_at, p.booking_id), item));
    }
    groups
        .into_iter()
        .map(|(key, mut members)| {
            members.sort_by_key(|(order, _)| *order);
            (key, members.into_iter().map(|(_, item)| item).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    fn booked() -> Timestamp {
        "2026-03-02T09:00:00Z".parse().unwrap()
    }

    /// `booked() + secs`.
    fn at(secs: i64) -> Timestamp {
        plus(booked(), SignedDuration::from_secs(secs))
    }

    fn at_ms(ms: i64) -> Timestamp {
        plus(booked(), SignedDuration::from_millis(ms))
    }

    fn facts(stage: Stage, now_secs: i64, attempts: u32) -> Facts {
        Facts {
            stage,
            booked_at: booked(),
            received_at: at(1),
            now: at(now_secs),
            attempts,
        }
    }

    struct Row {
        case: &'static str,
        facts: Facts,
        failure: Option<Failure>,
        jitter: f64,
        want: Decision,
    }

    fn row(
        case: &'static str,
        (stage, now, attempts): (Stage, i64, u32),
        failure: Option<Failure>,
        want: Decision,
    ) -> Row {
        Row {
            case,
            facts: facts(stage, now, attempts),
            failure,
            jitter: 0.0,
            want,
        }
    }

    #[test]
    fn decision_table() {
        use Decision::*;
        use Failure::*;
        use RejectReason::*;
        use Stage::{Confirmed, Inserted, PatientResolved, Received, Rejected as RejectedStage};
        const MIN: i64 = 60;
        let late = |check_first| GiveUp {
            reason: NotReachedInTime,
            check_first,
        };
        let mut rows = vec![
            // Nothing failed.
            row(
                "received, nothing failed: proceed",
                (Received, 2, 1),
                None,
                Proceed,
            ),
            row(
                "received at 11 min, nothing failed: proceed (it may still go in)",
                (Received, 11 * MIN, 1),
                None,
                Proceed,
            ),
            row(
                "inserted, nothing failed: proceed to confirm",
                (Inserted, 3, 1),
                None,
                Proceed,
            ),
            row("confirmed: done", (Confirmed, 5, 1), Some(Transient), Done),
            row(
                "rejected: done, whatever failed",
                (RejectedStage, 5, 1),
                Some(Store),
                Done,
            ),
            // Refusals.
            row(
                "slot taken at 2 s: reject at once",
                (Received, 2, 1),
                Some(Refused(SlotTaken)),
                Reject(SlotTaken),
            ),
            row(
                "PMS 409 on insert at 3 s: reject at once, no look-up (nothing went in)",
                (PatientResolved, 3, 1),
                Some(Refused(SlotTaken)),
                Reject(SlotTaken),
            ),
            row(
                "patient ambiguous at 14 s: reject at once",
                (Received, 14, 1),
                Some(Refused(PatientAmbiguous)),
                Reject(PatientAmbiguous),
            ),
            row(
                "practitioner no longer online at 30 s, after auto-confirm: reject (late)",
                (Received, 30, 2),
                Some(Refused(PractitionerNotOnline)),
                Reject(PractitionerNotOnline),
            ),
            // Transient failures before the auto-confirm.
            row(
                "transient at 3 s: retry at 4 s",
                (Received, 3, 1),
                Some(Transient),
                RetryAt(at(4)),
            ),
            row(
                "attempts 0 (never claimed) counts as the first: retry at 4 s",
                (Received, 3, 0),
                Some(Transient),
                RetryAt(at(4)),
            ),
            row(
                "second transient at 5 s: retry at 7 s",
                (Received, 5, 2),
                Some(Transient),
                RetryAt(at(7)),
            ),
            row(
                "third transient at 8 s: retry capped at 11 s (15 s less one 4 s attempt)",
                (PatientResolved, 8, 3),
                Some(Transient),
                RetryAt(at(11)),
            ),
            row(
                "lost answer on insert at 2 s: retry at 3 s (the retry looks for HE-id first)",
                (PatientResolved, 2, 1),
                Some(LostAnswer),
                RetryAt(at(3)),
            ),
            row(
                "transient at 10 s: one more attempt at 11 s",
                (Received, 10, 4),
                Some(Transient),
                RetryAt(at(11)),
            ),
            row(
                "transient at 11 s, received: no time for another attempt: reject",
                (Received, 11, 4),
                Some(Transient),
                Reject(NotReachedInTime),
            ),
            row(
                "transient at 14 s: check then reject",
                (PatientResolved, 14, 5),
                Some(Transient),
                CheckThenReject(NotReachedInTime),
            ),
            row(
                "lost answer on insert at 12 s: check then reject",
                (PatientResolved, 12, 4),
                Some(LostAnswer),
                CheckThenReject(NotReachedInTime),
            ),
            row(
                "transient at 17 s, still before auto-confirm: reject in time",
                (Received, 17, 1),
                Some(Transient),
                Reject(NotReachedInTime),
            ),
            row(
                "transient at 19 s in patient_resolved: check then reject in time",
                (PatientResolved, 19, 1),
                Some(Transient),
                CheckThenReject(NotReachedInTime),
            ),
            // After the auto-confirm: it may still go in.
            row(
                "transient at 20 s, auto-confirmed: retry at 21 s",
                (Received, 20, 1),
                Some(Transient),
                RetryAt(at(21)),
            ),
            row(
                "fifth transient at 25 s, auto-confirmed: retry after 16 s",
                (PatientResolved, 25, 5),
                Some(Transient),
                RetryAt(at(41)),
            ),
            row(
                "transient at 5 min, auto-confirmed: retry after at most 60 s",
                (Received, 5 * MIN, 40),
                Some(Transient),
                RetryAt(at(6 * MIN)),
            ),
            row(
                "transient at 9 min 30 s: last retry at 10 min",
                (Received, 9 * MIN + 30, 12),
                Some(Transient),
                RetryAt(at(10 * MIN)),
            ),
            row(
                "transient at 10 min: give up with the reason",
                (Received, 10 * MIN, 13),
                Some(Transient),
                late(false),
            ),
            row(
                "received at 11 min after auto-confirm: give up with the reason",
                (Received, 11 * MIN, 1),
                Some(Transient),
                late(false),
            ),
            row(
                "lost answer at 11 min in patient_resolved: look for it, then give up",
                (PatientResolved, 11 * MIN, 14),
                Some(LostAnswer),
                late(true),
            ),
            // Inserted: never rejected.
            row(
                "inserted, confirm failing at 3 s: keep confirming at 4 s",
                (Inserted, 3, 1),
                Some(Transient),
                KeepConfirming { at: at(4) },
            ),
            row(
                "inserted, confirm failing at 14 s: keep confirming, not rejected",
                (Inserted, 14, 2),
                Some(Transient),
                KeepConfirming { at: at(16) },
            ),
            row(
                "inserted, confirm failing at 25 s: keep confirming",
                (Inserted, 25, 3),
                Some(Transient),
                KeepConfirming { at: at(29) },
            ),
            row(
                "inserted, confirm answer lost at 2 h: keep confirming every 60 s",
                (Inserted, 120 * MIN, 50),
                Some(LostAnswer),
                KeepConfirming { at: at(121 * MIN) },
            ),
            row(
                "inserted, the marketplace refuses the confirmation: confirm refused, not rejected",
                (Inserted, 6, 1),
                Some(Refused(SlotTaken)),
                ConfirmRefused,
            ),
            row(
                "inserted, 404/410 on confirm: gone",
                (Inserted, 6, 1),
                Some(Failure::Gone),
                Decision::Gone,
            ),
            // Store failures.
            row(
                "store failure at 3 s: leave it claimed",
                (Received, 3, 1),
                Some(Store),
                LeaveClaimed,
            ),
            row(
                "store failure while confirming: leave it claimed",
                (Inserted, 30, 1),
                Some(Store),
                LeaveClaimed,
            ),
            row(
                "marketplace gone before the insert: gone",
                (Received, 4, 1),
                Some(Failure::Gone),
                Decision::Gone,
            ),
        ];
        rows.push(Row {
            case: "transient at 3 s with full jitter: retry at 3.5 s",
            jitter: 1.0,
            ..row("", (Received, 3, 1), Some(Transient), RetryAt(at_ms(3_500)))
        });
        rows.push(Row {
            case: "transient at 20 s with full jitter, auto-confirmed: retry at 20.5 s",
            jitter: 1.0,
            ..row(
                "",
                (Received, 20, 1),
                Some(Transient),
                RetryAt(at_ms(20_500)),
            )
        });
        rows.push(Row {
            case: "transient at 19.9 s: check then reject (ms precision)",
            facts: Facts {
                now: at_ms(19_900),
                ..facts(PatientResolved, 0, 1)
            },
            ..row(
                "",
                (PatientResolved, 0, 1),
                Some(Transient),
                CheckThenReject(NotReachedInTime),
            )
        });
        rows.push(Row {
            case: "booked time 30 s ahead of our clock: the 15 s run from receipt: reject 14 s after it",
            facts: Facts {
                booked_at: at(31),
                ..facts(Received, 15, 1)
            },
            ..row("", (Received, 0, 1), Some(Transient), Reject(NotReachedInTime))
        });
        rows.push(Row {
            case: "received 30 s after booking (node down), transient at once: auto-confirmed, retry",
            facts: Facts {
                received_at: at(30),
                ..facts(Received, 30, 1)
            },
            ..row("", (Received, 0, 1), Some(Transient), RetryAt(at(31)))
        });
        for r in rows {
            let got = decide(&r.facts, r.failure.as_ref(), Jitter::new(r.jitter));
            assert_eq!(got, r.want, "{}", r.case);
        }
    }

    #[test]
    fn deadlines_table() {
        // (case, booked, received, reject_by, last_retry, auto_confirm_at, give_up_at)
        let rows = [
            (
                "received 1 s after booking",
                at(0),
                at(1),
                at(15),
                at(11),
                at(20),
                at(600),
            ),
            (
                "received at once",
                at(0),
                at(0),
                at(15),
                at(11),
                at(20),
                at(600),
            ),
            (
                "booked time ahead (skew): from receipt",
                at(5),
                at(2),
                at(17),
                at(13),
                at(22),
                at(602),
            ),
        ];
        for (case, booked_at, received_at, reject_by, last_retry, auto, give_up) in rows {
            let f = Facts {
                stage: Stage::Received,
                booked_at,
                received_at,
                now: received_at,
                attempts: 1,
            };
            assert_eq!(
                Rules::default().deadlines(&f),
                Deadlines {
                    reject_by,
                    last_retry,
                    auto_confirm_at: auto,
                    give_up_at: give_up,
                },
                "{case}"
            );
        }
        assert!(!Rules::default().auto_confirmed(&facts(Stage::Received, 19, 1)));
        assert!(Rules::default().auto_confirmed(&facts(Stage::Received, 20, 1)));
    }

    #[test]
    fn a_service_that_retries_at_its_ticks_widens_the_attempt() {
        // Poll every 5 s plus a 3 s attempt (today's `poll_interval + 3 s`).
        let rules = Rules {
            attempt_takes: SignedDuration::from_secs(8),
            ..Rules::default()
        };
        let transient = Some(&Failure::Transient);
        let d = |now, attempts| {
            rules.decide(
                &facts(Stage::Received, now, attempts),
                transient,
                Jitter::NONE,
            )
        };
        assert_eq!(d(3, 1), Decision::RetryAt(at(4)));
        assert_eq!(d(5, 3), Decision::RetryAt(at(7)), "capped at 15 - 8 s");
        assert_eq!(d(7, 4), Decision::Reject(RejectReason::NotReachedInTime));
    }

    #[test]
    fn reject_reasons_are_fixed_texts() {
        let all = [
            RejectReason::SlotTaken,
            RejectReason::PractitionerNotOnline,
            RejectReason::TypeNotBookable,
            RejectReason::PmsRefused,
            RejectReason::PatientAmbiguous,
            RejectReason::DateOfBirthMissing,
            RejectReason::NotReachedInTime,
            RejectReason::Unreadable,
        ];
        for r in all {
            assert!(!r.text().is_empty() && !r.text().contains("http"), "{r:?}");
            assert_eq!(
                serde_json::to_value(r).unwrap(),
                serde_json::Value::String(r.code().to_owned())
            );
        }
        // The texts today's pipeline sends are kept.
        assert_eq!(
            RejectReason::SlotTaken.text(),
            "the time is no longer available"
        );
        assert_eq!(
            RejectReason::PatientAmbiguous.to_string(),
            "the patient's details match more than one file; please call the practice"
        );
        // The engine's resolution failures map to reasons.
        assert_eq!(
            RejectReason::from(&ResolveError::UnknownResource("1004".into())),
            RejectReason::PractitionerNotOnline
        );
        assert_eq!(
            RejectReason::from(&ResolveError::NoReasons),
            RejectReason::TypeNotBookable
        );
    }

    fn place(
        stage: Stage,
        practitioner: &str,
        day: Date,
        booked_secs: i64,
        id: i64,
    ) -> (Placement, i64) {
        (
            Placement {
                stage,
                practitioner: practitioner.into(),
                day,
                booked_at: at(booked_secs),
                booking_id: id,
            },
            id,
        )
    }

    #[test]
    fn grouping_table() {
        use Stage::*;
        let mon = date(2026, 3, 2);
        let tue = date(2026, 3, 3);
        let day = |p: &str, d| GroupKey::Day {
            practitioner: p.into(),
            day: d,
        };
        let alone = |id| GroupKey::Alone { booking_id: id };
        // (case, bookings (stage, practitioner, day, booked s, id), expected groups)
        type Case = (
            &'static str,
            Vec<(Stage, &'static str, Date, i64, i64)>,
            Vec<(GroupKey, Vec<i64>)>,
        );
        let rows: Vec<Case> = vec![
            ("nothing: no group", vec![], vec![]),
            (
                "one practitioner, one day: one group in booking order",
                vec![
                    (Received, "1", mon, 5, 30),
                    (Received, "1", mon, 1, 10),
                    (PatientResolved, "1", mon, 3, 20),
                ],
                vec![(day("1", mon), vec![10, 20, 30])],
            ),
            (
                "same booked second: by booking id",
                vec![(Received, "1", mon, 2, 9), (Received, "1", mon, 2, 7)],
                vec![(day("1", mon), vec![7, 9])],
            ),
            (
                "two practitioners and two days: a group each",
                vec![
                    (Received, "2", mon, 1, 1),
                    (Received, "1", tue, 2, 2),
                    (Received, "1", mon, 3, 3),
                    (Received, "1", mon, 0, 4),
                ],
                vec![
                    (day("1", mon), vec![4, 3]),
                    (day("1", tue), vec![2]),
                    (day("2", mon), vec![1]),
                ],
            ),
            (
                "inserted ones on their own, first, whatever their day",
                vec![
                    (Received, "1", mon, 1, 1),
                    (Inserted, "1", mon, 0, 8),
                    (Inserted, "1", mon, 0, 5),
                    (PatientResolved, "1", mon, 2, 2),
                ],
                vec![
                    (alone(5), vec![5]),
                    (alone(8), vec![8]),
                    (day("1", mon), vec![1, 2]),
                ],
            ),
        ];
        for (case, bookings, want) in rows {
            let got = group(
                bookings
                    .into_iter()
                    .map(|(s, p, d, b, id)| place(s, p, d, b, id)),
            );
            assert_eq!(got, want, "{case}");
        }
    }

    fn any_stage() -> impl Strategy<Value = Stage> {
        prop_oneof![
            Just(Stage::Received),
            Just(Stage::PatientResolved),
            Just(Stage::Inserted),
            Just(Stage::Confirmed),
            Just(Stage::Rejected),
        ]
    }

    fn any_reason() -> impl Strategy<Value = RejectReason> {
        prop_oneof![
            Just(RejectReason::SlotTaken),
            Just(RejectReason::PmsRefused),
            Just(RejectReason::NotReachedInTime),
        ]
    }

    fn any_failure() -> impl Strategy<Value = Option<Failure>> {
        prop_oneof![
            Just(None),
            any_reason().prop_map(|r| Some(Failure::Refused(r))),
            Just(Some(Failure::Transient)),
            Just(Some(Failure::LostAnswer)),
            Just(Some(Failure::Gone)),
            Just(Some(Failure::Store)),
        ]
    }

    fn any_facts(stage: impl Strategy<Value = Stage>) -> impl Strategy<Value = Facts> {
        (
            stage,
            -60_000i64..60_000,   // received, ms after booking (negative: skew)
            -5_000i64..1_000_000, // now, ms after receipt
            0u32..100,
        )
            .prop_map(|(stage, received, now, attempts)| Facts {
                stage,
                booked_at: booked(),
                received_at: at_ms(received),
                now: plus(at_ms(received), SignedDuration::from_millis(now)),
                attempts,
            })
    }

    proptest! {
        #[test]
        fn a_retry_never_lands_past_the_reject_deadline(
            facts in any_facts(prop_oneof![Just(Stage::Received), Just(Stage::PatientResolved)]),
            failure in prop_oneof![Just(Failure::Transient), Just(Failure::LostAnswer)],
            j in 0.0f64..=1.0,
        ) {
            let rules = Rules::default();
            let d = rules.deadlines(&facts);
            if let Decision::RetryAt(t) = rules.decide(&facts, Some(&failure), Jitter::new(j)) {
                prop_assert!(t > facts.now, "a retry is later than now");
                prop_assert!(t <= plus(facts.now, SignedDuration::from_secs(60)));
                if facts.now < d.auto_confirm_at {
                    prop_assert!(
                        plus(t, rules.attempt_takes) <= d.reject_by,
                        "retry at {t} plus an attempt ends past {}", d.reject_by
                    );
                } else {
                    prop_assert!(t <= d.give_up_at);
                }
            }
        }

        #[test]
        fn an_inserted_booking_is_never_rejected(
            facts in any_facts(Just(Stage::Inserted)),
            failure in any_failure(),
            j in proptest::num::f64::ANY,
        ) {
            let decision = decide(&facts, failure.as_ref(), Jitter::new(j));
            prop_assert!(!decision.rejects(), "{decision:?}");
            prop_assert!(!matches!(decision, Decision::RetryAt(_)));
        }

        #[test]
        fn a_finished_booking_is_left_alone(
            facts in any_facts(prop_oneof![Just(Stage::Confirmed), Just(Stage::Rejected)]),
            failure in any_failure(),
        ) {
            prop_assert_eq!(decide(&facts, failure.as_ref(), Jitter::NONE), Decision::Done);
        }

        #[test]
        fn only_a_transient_failure_is_retried_and_only_a_refusal_or_the_clock_rejects(
            facts in any_facts(any_stage()),
            failure in any_failure(),
            j in 0.0f64..=1.0,
        ) {
            let rules = Rules::default();
            let decision = rules.decide(&facts, failure.as_ref(), Jitter::new(j));
            let transient = matches!(failure, Some(Failure::Transient | Failure::LostAnswer));
            if matches!(decision, Decision::RetryAt(_) | Decision::KeepConfirming { .. }) {
                prop_assert!(transient);
            }
            if let Decision::CheckThenReject(_) | Decision::GiveUp { .. } = decision {
                prop_assert!(transient);
            }
            if transient && decision.rejects() {
                prop_assert!(facts.now >= rules.deadlines(&facts).last_retry);
            }
            if let Decision::CheckThenReject(_) | Decision::GiveUp { check_first: true, .. } = decision {
                prop_assert_eq!(facts.stage, Stage::PatientResolved);
            }
        }

        /// A booking whose every attempt fails, each attempt taking up to `ATTEMPT_TAKES`, is
        /// rejected by the reject deadline when it first failed before it, in a bounded number of
        /// attempts; after the auto-confirm it is given up by 10 min plus one attempt.
        #[test]
        fn a_booking_that_keeps_failing_is_decided_in_time(
            received in 0i64..30_000,
            takes in proptest::collection::vec(0i64..=4_000, 200),
            jitters in proptest::collection::vec(0.0f64..=1.0, 200),
            stage in prop_oneof![Just(Stage::Received), Just(Stage::PatientResolved)],
        ) {
            let rules = Rules::default();
            let mut f = Facts {
                stage,
                booked_at: booked(),
                received_at: at_ms(received),
                now: plus(at_ms(received), SignedDuration::from_millis(takes[0])),
                attempts: 1,
            };
            let d = rules.deadlines(&f);
            let first_failure = f.now;
            let mut decided = None;
            for i in 1..200 {
                match rules.decide(&f, Some(&Failure::Transient), Jitter::new(jitters[i])) {
                    Decision::RetryAt(t) => {
                        f.now = plus(t, SignedDuration::from_millis(takes[i]));
                        f.attempts += 1;
                    }
                    other => {
                        decided = Some(other);
                        break;
                    }
                }
            }
            let decided = decided.expect("decided within 200 attempts");
            prop_assert!(decided.rejects(), "{decided:?}");
            if first_failure < d.auto_confirm_at {
                prop_assert!(
                    !matches!(decided, Decision::GiveUp { .. }),
                    "given up: {:?}",
                    decided
                );
                prop_assert!(f.now <= d.reject_by.max(first_failure), "decided at {}", f.now);
            } else {
                prop_assert!(
                    matches!(decided, Decision::GiveUp { .. }),
                    "not given up: {:?}",
                    decided
                );
                prop_assert!(f.now <= plus(d.give_up_at, ATTEMPT_TAKES));
            }
        }

        #[test]
        fn grouping_keeps_every_booking_once_in_booking_order(
            bookings in proptest::collection::vec(
                (any_stage(), 0u8..3, 0u8..3, 0i64..20, 0i64..1_000),
                0..40,
            ),
        ) {
            let ids: Vec<i64> = (0..bookings.len() as i64).collect();
            let placed: Vec<(Placement, (Stage, i64, i64))> = bookings
                .iter()
                .zip(&ids)
                .map(|(&(stage, p, d, booked_s, id_hi), &i)| {
                    let booking_id = id_hi * 100 + i; // unique
                    (
                        Placement {
                            stage,
                            practitioner: p.to_string(),
                            day: date(2026, 3, 2 + i8::try_from(d).unwrap()),
                            booked_at: at(booked_s),
                            booking_id,
                        },
                        (stage, booked_s, booking_id),
                    )
                })
                .collect();
            let groups = group(placed.clone());
            let mut seen: Vec<i64> = groups.iter().flat_map(|(_, g)| g.iter().map(|b| b.2)).collect();
            seen.sort_unstable();
            let mut all: Vec<i64> = placed.iter().map(|(p, _)| p.booking_id).collect();
            all.sort_unstable();
            prop_assert_eq!(seen, all);
            for (key, g) in &groups {
                prop_assert!(g.windows(2).all(|w| (w[0].1, w[0].2) <= (w[1].1, w[1].2)));
                match key {
                    GroupKey::Alone { booking_id } => {
                        prop_assert_eq!(g.len(), 1);
                        prop_assert_eq!(g[0].2, *booking_id);
                        prop_assert!(!matches!(g[0].0, Stage::Received | Stage::PatientResolved));
                    }
                    GroupKey::Day { .. } => prop_assert!(
                        g.iter().all(|b| matches!(b.0, Stage::Received | Stage::PatientResolved))
                    ),
                }
            }
        }
    }
}
