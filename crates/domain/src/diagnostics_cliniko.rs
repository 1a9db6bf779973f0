//! Diagnostics of a Cliniko business, in Cliniko's own terms.
//!
//! A Cliniko practice is read into the same [`PracticeSetup`] and [`Diary`] as an Exact-style
//! one (see `crates/pms/src/cliniko`): each appointment type is a reason (`marketing` when shown
//! in online bookings), each practitioner who offers a shown type has a rule in it (hidden
//! practitioners too; only those in `online_booking` publish), and daily availabilities are the
//! weekly sessions. The Exact-style causes (Web Setup's stacking, the "Healthengine" reason, the
//! Online Booking Configuration's durations) do not exist there; these do:
//!
//! | cause | code |
//! |---|---|
//! | a practitioner who offers shown types is not shown in online bookings | [`Code::ClinikoPractitionerHidden`] |
//! | a practitioner shown online offers no type shown online | [`Code::ClinikoPractitionerNoShownType`] |
//! | an appointment type is not shown in online bookings | [`Code::ClinikoTypeHidden`] |
//! | a practitioner shown online has no daily availability at the business | [`Code::ClinikoNoDailyAvailability`] |
//! | a type is longer than every availability window of a practitioner who offers it | [`Code::ClinikoTypeLongerThanAvailability`] |

use super::{Code, Finding, Input, Severity, finding, weekly_spans};
use crate::practice::{PracticeSetup, Weekday};

const WEEK: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

fn name_of(setup: &PracticeSetup, id: &str) -> String {
    setup
        .practitioner(id)
        .map(|p| p.display_name())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("practitioner {id}"))
}

/// The Cliniko findings of a setup and diary.
pub(super) fn findings(input: &Input<'_>, out: &mut Vec<Finding>) {
    let setup = input.setup;
    let online = |id: &str| setup.publishes_online(id);
    for p in &setup.practitioners {
        let id = p.id.as_str();
        let offers_shown = setup
            .reasons
            .iter()
            .any(|r| r.marketing && r.rule_for(id).is_some());
        if !online(id) && offers_shown {
            let name = name_of(setup, id);
            out.push(finding(
                Code::ClinikoPractitionerHidden,
                Severity::Warning,
                Some(id),
                None,
                format!(
                    "{name} offers appointment types shown in online bookings but is not shown in online bookings: none of their times are published."
                ),
                format!(
                    "In Cliniko, go to Settings → Practitioners, edit {name} and tick \"Show in online bookings\", if they should take online bookings."
                ),
            ));
        }
    }
    for entry in &setup.online_booking {
        let id = entry.practitioner.as_str();
        let name = name_of(setup, id);
        let hours = input.diary.hours_of(id);
        let longest = WEEK
            .iter()
            .flat_map(|d| {
                hours
                    .map(|h| weekly_spans(&h.sessions, *d))
                    .unwrap_or_default()
            })
            .map(|(s, e)| e.saturating_sub(s))
            .max()
            .unwrap_or(0);
        if longest == 0 {
            out.push(finding(
                Code::ClinikoNoDailyAvailability,
                Severity::Error,
                Some(id),
                None,
                format!(
                    "{name} is shown in online bookings but has no daily availability at this business: Cliniko offers no times for them."
                ),
                format!(
                    "In Cliniko, go to Settings → Practitioners, edit {name} and set their availability at this business for the days they work."
                ),
            ));
            continue;
        }
        for r in setup.reasons.iter().filter(|r| r.marketing) {
            let Some(rule) = r.rule_for(id) else { continue };
            if rule.duration_minutes > longest {
                out.push(finding(
                    Code::ClinikoTypeLongerThanAvailability,
                    Severity::Warning,
                    Some(id),
                    Some(&r.name),
                    format!(
                        "\"{}\" lasts {} minutes, longer than every availability window of {name} (the longest is {longest} minutes): it is never offered with them.",
                        r.name, rule.duration_minutes
                    ),
                    format!(
                        "In Cliniko, shorten \"{}\" under Settings → Appointment types, or give {name} a longer availability under Settings → Practitioners.",
                        r.name
                    ),
                ));
            }
        }
    }
    for p in &setup.practitioners {
        let id = p.id.as_str();
        let offers_shown = setup
            .reasons
            .iter()
            .any(|r| r.marketing && r.rule_for(id).is_some());
        let hidden_types: Vec<&str> = setup
            .reasons
            .iter()
            .filter(|r| !r.marketing)
            .map(|r| r.name.as_str())
            .collect();
        // Working here but in no shown type's rules (so not flagged as hidden above).
        if !online(id) && !offers_shown && input.diary.hours_of(id).is_some() {
            let name = name_of(setup, id);
            out.push(finding(
                Code::ClinikoPractitionerNoShownType,
                Severity::Warning,
                Some(id),
                None,
                format!(
                    "{name} works at this business but offers no appointment type shown in online bookings (or is not shown in online bookings): none of their times are published."
                ),
                format!(
                    "In Cliniko, go to Settings → Practitioners, edit {name}: tick \"Show in online bookings\" and, under their appointment types, add one that is shown in online bookings{}.",
                    if hidden_types.is_empty() {
                        String::new()
                    } else {
                        " (or show one of theirs under Settings → Appointment types)".to_owned()
                    }
                ),
            ));
        }
    }
    for r in setup.reasons.iter().filter(|r| !r.marketing) {
        out.push(finding(
            Code::ClinikoTypeHidden,
            Severity::Info,
            None,
            Some(&r.name),
            format!(
                "The appointment type \"{}\" is not shown in online bookings: it is not published.",
                r.name
            ),
            format!(
                "If patients should book \"{}\" online, in Cliniko go to Settings → Appointment types, edit it and tick \"Show in online bookings\".",
                r.name
            ),
        ));
    }
}
