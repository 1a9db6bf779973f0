//! Field-by-field comparison of a booking patient with one PMS candidate: weighted evidence.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::nicknames::{is_known_given_name, same_given_name};
use super::{MatchConfig, Profile};

/// A compared field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Field {
    /// Given name.
    FirstName,
    /// Family name.
    LastName,
    /// Date of birth.
    Dob,
    /// Phone (the booking's one phone against the candidate's mobile and home phone).
    Phone,
    /// Email.
    Email,
    /// Medicare card and IRN.
    Medicare,
    /// Street address and postcode.
    Address,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::FirstName => "first name",
            Field::LastName => "last name",
            Field::Dob => "date of birth",
            Field::Phone => "phone",
            Field::Email => "email",
            Field::Medicare => "medicare",
            Field::Address => "address",
        })
    }
}

/// How two values of a field compare after normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Comparison {
    /// Equal.
    Exact,
    /// Names in one nickname group (Bob/Robert).
    Nickname,
    /// One name is part of the other (Mary Jane/Mary, Smith-Jones/Smith); for Medicare, the same
    /// card with the IRN unknown on one side.
    Partial,
    /// Within a typo.
    Fuzzy,
    /// An initial that agrees (J/John).
    Initial,
    /// Different.
    Different,
    /// Missing on one side (or could not be normalised).
    Missing,
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Comparison::Exact => "exact",
            Comparison::Nickname => "nickname",
            Comparison::Partial => "partial",
            Comparison::Fuzzy => "fuzzy",
            Comparison::Initial => "initial",
            Comparison::Different => "different",
            Comparison::Missing => "missing",
        })
    }
}

/// Hard evidence that the candidate is another person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Conflict {
    /// The dates of birth differ.
    #[serde(rename_all = "camelCase")]
    DifferentDob {
        /// The booking's date of birth.
        booking: jiff::civil::Date,
        /// The candidate's.
        candidate: jiff::civil::Date,
    },
    /// The first names are different names (not a nickname, typo or initial of each other).
    #[serde(rename_all = "camelCase")]
    DifferentFirstName {
        /// The booking's first name, normalised.
        booking: String,
        /// The candidate's, normalised.
        candidate: String,
    },
    /// The same Medicare card but another person on it (different IRN).
    #[serde(rename_all = "camelCase")]
    DifferentMedicareIrn {
        /// The booking's IRN.
        booking: u8,
        /// The candidate's IRN.
        candidate: u8,
    },
    /// The date of birth cannot be compared (missing on one side) and no Medicare card and IRN
    /// agreement stands in for it.
    #[serde(rename_all = "camelCase")]
    DobUnknown,
    /// No first name to compare.
    #[serde(rename_all = "camelCase")]
    FirstNameUnknown,
}

impl Conflict {
    /// What conflicts, without the values (for texts that leave the matcher: the practice's
    /// flag, the outbox's record).
    ///
    /// ```
    /// use slotbridge_domain::matching::Conflict;
    /// let c = Conflict::DifferentDob {
    ///     booking: jiff::civil::date(1931, 2, 3),
    ///     candidate: jiff::civil::date(1931, 3, 2),
    /// };
    /// assert_eq!(c.summary(), "date of birth differs from the file's");
    /// ```
    pub fn summary(&self) -> &'static str {
        match self {
            Conflict::DifferentDob { .. } => "date of birth differs from the file's",
            Conflict::DifferentFirstName { .. } => "first name differs from the file's",
            Conflict::DifferentMedicareIrn { .. } => "same Medicare card, another IRN",
            Conflict::DobUnknown => "date of birth missing on one side",
            Conflict::FirstNameUnknown => "first name missing on one side",
        }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::DifferentDob { booking, candidate } => {
                write!(
                    f,
                    "date of birth {booking} in the booking, {candidate} on file"
                )
            }
            Conflict::DifferentFirstName { booking, candidate } => {
                write!(
                    f,
                    "first name {booking:?} in the booking, {candidate:?} on file"
                )
            }
            Conflict::DifferentMedicareIrn { booking, candidate } => write!(
                f,
                "same Medicare card, IRN {booking} in the booking, {candidate} on file"
            ),
            Conflict::DobUnknown => f.write_str("date of birth missing on one side"),
            Conflict::FirstNameUnknown => f.write_str("first name missing on one side"),
        }
    }
}

/// What a candidate's evidence amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CandidateStatus {
    /// Clears the threshold with a date of birth and first name that agree and no conflict.
    Clears,
    /// Would clear the threshold but for exactly one conflict (or a date of birth that cannot be
    /// compared): maybe the patient, maybe not. Makes the decision ambiguous.
    Possible,
    /// No conflict, but not enough evidence.
    BelowThreshold,
    /// Hard evidence of another person, or too little evidence to matter.
    Excluded,
}

impl fmt::Display for CandidateStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CandidateStatus::Clears => "clears",
            CandidateStatus::Possible => "possible",
            CandidateStatus::BelowThreshold => "below threshold",
            CandidateStatus::Excluded => "excluded",
        })
    }
}

/// The comparison of one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldEvidence {
    /// Which field.
    pub field: Field,
    /// How the values compare.
    pub comparison: Comparison,
    /// Points earned.
    pub points: u32,
    /// The normalised values compared (booking / candidate), or why not.
    pub detail: String,
}

/// The evidence for one candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateEvidence {
    /// The PMS patient id.
    pub patient_id: String,
    /// The sum of the points.
    pub score: u32,
    /// The threshold that applied (higher when the date of birth cannot be compared).
    pub threshold: u32,
    /// What the evidence amounts to.
    pub status: CandidateStatus,
    /// The booking's first and last names were compared the other way round.
    pub names_swapped: bool,
    /// Field by field.
    pub fields: Vec<FieldEvidence>,
    /// Hard evidence against.
    pub conflicts: Vec<Conflict>,
}

/// The number of edits a name of this length may be off by and still count as a typo.
fn typo_allowance(a: &str, b: &str) -> usize {
    let shortest = a.chars().count().min(b.chars().count());
    match shortest {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

fn tokens(s: &str) -> Vec<&str> {
    s.split(' ').filter(|t| !t.is_empty()).collect()
}

fn subset(small: &[&str], big: &[&str]) -> bool {
    !small.is_empty() && small.len() < big.len() && small.iter().all(|t| big.contains(t))
}

/// Compare two normalised names. `given` applies the given-name rules: nicknames, initials, and
/// no typo tolerance between two known, different real names.
fn compare_names(a: &str, b: &str, given: bool) -> Comparison {
    let joined_a: String = a.split(' ').collect();
    let joined_b: String = b.split(' ').collect();
    if joined_a == joined_b {
        return Comparison::Exact;
    }
    let (ta, tb) = (tokens(a), tokens(b));
    if subset(&ta, &tb) || subset(&tb, &ta) {
        return Comparison::Partial;
    }
    if given && let (Some(fa), Some(fb)) = (ta.first(), tb.first()) {
        if same_given_name(fa, fb) || same_given_name(&joined_a, &joined_b) {
            return Comparison::Nickname;
        }
        let initial = |x: &str, y: &str| x.chars().count() == 1 && y.starts_with(x);
        if initial(fa, fb) || initial(fb, fa) {
            return Comparison::Initial;
        }
    }
    let distance = strsim::damerau_levenshtein(&joined_a, &joined_b);
    if distance <= typo_allowance(&joined_a, &joined_b) {
        if given && is_known_given_name(&joined_a) && is_known_given_name(&joined_b) {
            // Emma and Ella: two real names, not a typo.
            return Comparison::Different;
        }
        return Comparison::Fuzzy;
    }
    Comparison::Different
}

fn name_points(c: Comparison, full: u32, fuzzy: u32, initial: u32) -> u32 {
    match c {
        Comparison::Exact | Comparison::Nickname | Comparison::Partial => full,
        Comparison::Fuzzy => fuzzy,
        Comparison::Initial => initial,
        Comparison::Different | Comparison::Missing => 0,
    }
}

fn positive(c: Comparison) -> bool {
    !matches!(c, Comparison::Different | Comparison::Missing)
}

fn opt_name(a: &Option<String>, b: &Option<String>, given: bool) -> Comparison {
    match (a, b) {
        (Some(a), Some(b)) => compare_names(a, b, given),
        _ => Comparison::Missing,
    }
}

fn show(v: Option<&str>) -> &str {
    v.unwrap_or("—")
}

/// Score one candidate against the booking patient.
pub(crate) fn score(
    booking: &Profile,
    candidate: &Profile,
    id: &str,
    config: &MatchConfig,
) -> CandidateEvidence {
    let w = &config.weights;
    let mut fields = Vec::new();
    let mut conflicts = Vec::new();

    // Names, straight and swapped (first typed as last and the other way round).
    let straight = (
        opt_name(&booking.first, &candidate.first, true),
        opt_name(&booking.last, &candidate.last, false),
    );
    let swapped = (
        opt_name(&booking.last, &candidate.first, true),
        opt_name(&booking.first, &candidate.last, false),
    );
    let points = |(f, l): (Comparison, Comparison)| {
        name_points(f, w.first_name, w.first_name_fuzzy, w.first_initial)
            + name_points(l, w.last_name, w.last_name_fuzzy, 0)
    };
    let names_swapped = !positive(straight.0)
        && positive(swapped.0)
        && positive(swapped.1)
        && points(swapped) > points(straight);
    let (first_cmp, last_cmp) = if names_swapped { swapped } else { straight };
    let (booking_first, booking_last) = if names_swapped {
        (&booking.last, &booking.first)
    } else {
        (&booking.first, &booking.last)
    };
    fields.push(FieldEvidence {
        field: Field::FirstName,
        comparison: first_cmp,
        points: name_points(first_cmp, w.first_name, w.first_name_fuzzy, w.first_initial),
        detail: format!(
            "{} / {}",
            show(booking_first.as_deref()),
            show(candidate.first.as_deref())
        ),
    });
    fields.push(FieldEvidence {
        field: Field::LastName,
        comparison: last_cmp,
        points: name_points(last_cmp, w.last_name, w.last_name_fuzzy, 0),
        detail: format!(
            "{} / {}",
            show(booking_last.as_deref()),
            show(candidate.last.as_deref())
        ),
    });
    match (first_cmp, booking_first, &candidate.first) {
        (Comparison::Different, Some(b), Some(c)) => conflicts.push(Conflict::DifferentFirstName {
            booking: b.clone(),
            candidate: c.clone(),
        }),
        (Comparison::Missing, _, _) => conflicts.push(Conflict::FirstNameUnknown),
        _ => {}
    }

    // Date of birth.
    let dob_cmp = match (booking.dob, candidate.dob) {
        (Some(b), Some(c)) if b == c => Comparison::Exact,
        (Some(b), Some(c)) => {
            conflicts.push(Conflict::DifferentDob {
                booking: b,
                candidate: c,
            });
            Comparison::Different
        }
        _ => Comparison::Missing,
    };
    fields.push(FieldEvidence {
        field: Field::Dob,
        comparison: dob_cmp,
        points: if dob_cmp == Comparison::Exact {
            w.dob
        } else {
            0
        },
        detail: format!(
            "{} / {}",
            booking.dob.map(|d| d.to_string()).as_deref().unwrap_or("—"),
            candidate
                .dob
                .map(|d| d.to_string())
                .as_deref()
                .unwrap_or("—")
        ),
    });

    // Phone: the booking's phone against any of the candidate's.
    let phone_cmp = if booking.phones.is_empty() || candidate.phones.is_empty() {
        Comparison::Missing
    } else if booking.phones.iter().any(|p| candidate.phones.contains(p)) {
        Comparison::Exact
    } else {
        Comparison::Different
    };
    fields.push(FieldEvidence {
        field: Field::Phone,
        comparison: phone_cmp,
        points: if phone_cmp == Comparison::Exact {
            w.phone
        } else {
            0
        },
        detail: format!(
            "{} / {}",
            show(
                Some(&booking.phones.join(", "))
                    .filter(|s| !s.is_empty())
                    .map(|s| s.as_str())
            ),
            show(
                Some(&candidate.phones.join(", "))
                    .filter(|s| !s.is_empty())
                    .map(|s| s.as_str())
            )
        ),
    });

    // Email.
    let email_cmp = match (&booking.email, &candidate.email) {
        (Some(a), Some(b)) if a == b => Comparison::Exact,
        (Some(_), Some(_)) => Comparison::Different,
        _ => Comparison::Missing,
    };
    fields.push(FieldEvidence {
        field: Field::Email,
        comparison: email_cmp,
        points: if email_cmp == Comparison::Exact {
            w.email
        } else {
            0
        },
        detail: format!(
            "{} / {}",
            show(booking.email.as_deref()),
            show(candidate.email.as_deref())
        ),
    });

    // Medicare: the card is the household, the IRN the person on it.
    let (medicare_cmp, medicare_points) = match (&booking.medicare, &candidate.medicare) {
        (Some(a), Some(b)) if a.card() == b.card() => match (a.irn, b.irn) {
            (Some(x), Some(y)) if x == y => (Comparison::Exact, w.medicare),
            (Some(x), Some(y)) => {
                conflicts.push(Conflict::DifferentMedicareIrn {
                    booking: x,
                    candidate: y,
                });
                (Comparison::Different, 0)
            }
            _ => (Comparison::Partial, w.medicare_card),
        },
        (Some(_), Some(_)) => (Comparison::Different, 0),
        _ => (Comparison::Missing, 0),
    };
    let medicare_text = |m: &Option<super::normalise::Medicare>| match m {
        Some(m) => match m.irn {
            Some(irn) => format!("{} irn {irn}", m.number),
            None => m.number.clone(),
        },
        None => "—".to_string(),
    };
    fields.push(FieldEvidence {
        field: Field::Medicare,
        comparison: medicare_cmp,
        points: medicare_points,
        detail: format!(
            "{} / {}",
            medicare_text(&booking.medicare),
            medicare_text(&candidate.medicare)
        ),
    });

    // Address: the booking's street line inside the candidate's address, postcodes not differing.
    let address_cmp = match (&booking.street, &candidate.full_address) {
        (Some(street), Some(full)) => {
            let postcodes_agree = match (&booking.postcode, &candidate.postcode) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            let street_in = format!(" {full} ").contains(&format!(" {street} "));
            let whole_equal = booking.full_address.as_deref() == Some(full.as_str());
            if whole_equal || (street_in && postcodes_agree) {
                Comparison::Exact
            } else {
                Comparison::Different
            }
        }
        _ => Comparison::Missing,
    };
    fields.push(FieldEvidence {
        field: Field::Address,
        comparison: address_cmp,
        points: if address_cmp == Comparison::Exact {
            w.address
        } else {
            0
        },
        detail: format!(
            "{} / {}",
            show(booking.full_address.as_deref()),
            show(candidate.full_address.as_deref())
        ),
    });

    let score: u32 = fields.iter().map(|f| f.points).sum();
    let dob_known = dob_cmp != Comparison::Missing;
    let person_medicare = medicare_cmp == Comparison::Exact;
    if !dob_known && !person_medicare {
        conflicts.push(Conflict::DobUnknown);
    }
    let threshold = if dob_known {
        config.threshold
    } else {
        config.threshold_without_dob
    };
    let status = if conflicts.is_empty() && score >= threshold {
        CandidateStatus::Clears
    } else if conflicts.len() <= 1 && score >= config.threshold {
        // One doubt, otherwise strong evidence: maybe the patient, maybe not.
        CandidateStatus::Possible
    } else if conflicts.is_empty() {
        CandidateStatus::BelowThreshold
    } else {
        CandidateStatus::Excluded
    };
    CandidateEvidence {
        patient_id: id.to_string(),
        score,
        threshold,
        status,
        names_swapped,
        fields,
        conflicts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_names() {
        assert_eq!(compare_names("bob", "robert", true), Comparison::Nickname);
        assert_eq!(compare_names("jonh", "john", true), Comparison::Fuzzy);
        assert_eq!(compare_names("emma", "ella", true), Comparison::Different);
        assert_eq!(
            compare_names("mary jane", "mary", true),
            Comparison::Partial
        );
        assert_eq!(compare_names("j", "john", true), Comparison::Initial);
        assert_eq!(compare_names("ann", "anne", true), Comparison::Nickname);
        assert_eq!(compare_names("jo", "al", true), Comparison::Different);
        assert_eq!(
            compare_names("smith jones", "smith", false),
            Comparison::Partial
        );
        assert_eq!(compare_names("smyth", "smith", false), Comparison::Fuzzy);
        assert_eq!(
            compare_names("de souza", "desouza", false),
            Comparison::Exact
        );
    }
}
