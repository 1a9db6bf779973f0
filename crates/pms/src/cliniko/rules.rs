//! Cliniko's online-booking settings as the domain's [`OnlineRules`].
//!
//! Cliniko's available times follow three settings beyond the diary (the available-times
//! section's "extra information"): the minimum advance time, the maximum number of times per day
//! segment, and how far ahead bookings are offered. The first two are fields of
//! `GET /settings/public` (`min_hours_advance_required_to_book`,
//! `max_appointments_per_day_segment`). The third is documented as a setting (28, 84, 182 or
//! 365 days) but has no field in the settings resource, so it is learnt from the available times
//! themselves ([`ClinikoConnector::days_ahead`]): only 28 and 84 are shorter than the longest
//! horizon slotbridge publishes (90 days), and for each the connector asks Cliniko for the week
//! that begins that many days from today, for a practitioner and type our engine finds a free
//! time for in that week. Cliniko offering nothing there, while the diary has room, is the
//! setting; Cliniko offering a time rules it out. A week the diary gives no time in tells
//! nothing, and the longer setting is assumed (the practice's diary, not the display, is what a
//! booking must fit).

use std::time::Instant;

use jiff::Timestamp;
use jiff::civil::Date;
use slotbridge_domain::availability::compute_slots;
use slotbridge_domain::practice::{OnlineRules, PracticeSetup, to_snapshot};

use super::{ClinikoConnector, digits_only, local_instant, path_segment, wire};
use crate::{PmsConnector, PmsError};

/// The "how far ahead" settings shorter than the longest horizon slotbridge publishes (90 days):
/// the longer ones (182, 365) never cut what is published.
pub const SHORT_DAYS_AHEAD: [u32; 2] = [28, 84];

/// The rules of `settings.online_bookings`, without how far ahead (not a field of the
/// settings), and whether online bookings are on.
pub(super) fn from_settings(ob: &wire::OnlineBookings) -> (bool, OnlineRules) {
    (
        ob.enabled.unwrap_or(true),
        OnlineRules {
            min_notice_minutes: ob.min_hours_advance_required_to_book.unwrap_or(0) * 60,
            max_days_ahead: ob.max_days_in_advance,
            max_per_day_segment: ob.max_appointments_per_day_segment.filter(|n| *n > 0),
        },
    )
}

/// What a probe of one week found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Cliniko offers nothing in the week while the diary has room: the setting ends there.
    Ends,
    /// Cliniko offers a time in the week.
    Offers,
    /// The diary has no room that week: the probe tells nothing.
    Unknown,
}

impl ClinikoConnector {
    /// How far ahead Cliniko offers bookings, in days, when shorter than 90 (see the module's
    /// documentation): 28, 84, or `None`. Learnt at most every
    /// [`ClinikoConfig::rules_every`](super::ClinikoConfig::rules_every) and remembered between.
    /// `setup` is the setup just read (its notice and segment limit apply to our side of the
    /// comparison), `now` the server's time.
    pub(super) async fn days_ahead(
        &self,
        setup: &PracticeSetup,
        now: Timestamp,
    ) -> Result<Option<u32>, PmsError> {
        let every = self.inner.cfg.rules_every;
        if let Ok(known) = self.inner.days_ahead.lock()
            && let Some((at, days)) = *known
            && at.elapsed() < every
        {
            return Ok(days);
        }
        let mut found = None;
        for days in SHORT_DAYS_AHEAD {
            match self.probe_week(setup, now, days).await? {
                Probe::Ends => {
                    found = Some(days);
                    break;
                }
                Probe::Offers | Probe::Unknown => {}
            }
        }
        if let Ok(mut known) = self.inner.days_ahead.lock() {
            *known = Some((Instant::now(), found));
        }
        Ok(found)
    }

    /// Whether Cliniko offers times in the week starting `days` days after today.
    async fn probe_week(
        &self,
        setup: &PracticeSetup,
        now: Timestamp,
        days: u32,
    ) -> Result<Probe, PmsError> {
        let op = "days ahead probe";
        let tz = setup.timezone.time_zone();
        let today = now.to_zoned_datetime(tz.clone()).date();
        let span = |n: u32| jiff::Span::new().days(i64::from(n));
        let (Ok(from), Ok(to)) = (
            today.checked_add(span(days)),
            today.checked_add(span(days + 7)),
        ) else {
            return Ok(Probe::Unknown);
        };
        let diary = self.read_diary(from, to).await?;
        // Our engine on that week alone, as if it were now the week's first midnight: the
        // notice then cuts no more than Cliniko's does, today.
        let midnight = local_instant(from.at(0, 0, 0, 0), tz)?;
        let mut week = setup.clone();
        week.online_rules.max_days_ahead = None;
        let Ok(valid) = to_snapshot(&week, &diary, midnight, 7).validate() else {
            return Ok(Probe::Unknown);
        };
        let Some(slot) = compute_slots(&valid).into_iter().next() else {
            return Ok(Probe::Unknown);
        };
        let last = to.yesterday().unwrap_or(to);
        let times = self
            .available_times(op, slot.practitioner, slot.reason, from, last)
            .await?;
        Ok(if times.is_empty() {
            Probe::Ends
        } else {
            Probe::Offers
        })
    }

    /// Cliniko's available times for a practitioner and type on the local days `from..=to`
    /// (at most 7: the API's limit).
    async fn available_times(
        &self,
        op: &'static str,
        practitioner: &str,
        kind: &str,
        from: Date,
        to: Date,
    ) -> Result<Vec<wire::AvailableTime>, PmsError> {
        let path = format!(
            "businesses/{}/practitioners/{}/appointment_types/{}/available_times",
            path_segment(&self.inner.cfg.business_id),
            digits_only(practitioner, op)?,
            digits_only(kind, op)?,
        );
        let q = [("from", from.to_string()), ("to", to.to_string())];
        self.all(op, &path, "available_times", &q).await
    }
}
