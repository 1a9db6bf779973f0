//! Publishing a practice to the marketplace: its configuration (liveness contract, resources,
//! appointment types) and its availability, each sent only when its content changed since the
//! last successful send (content hashes in the store).
//!
//! Everything here takes the PMS's setup and diary as already read; reading them is the PMS
//! connector's job, deciding when to publish is the worker's.

use jiff::Timestamp;
use jiff::civil::Date;
use slotbridge_domain::availability::compute_slots;
use slotbridge_domain::horizon::Horizon;
use slotbridge_domain::practice::{Diary, PracticeSetup, PractitionerHours, to_snapshot};
use slotbridge_domain::publish::{self, AppointmentType, DayAvailability, Resource};
use slotbridge_domain::snapshot::SnapshotError;
use slotbridge_market::PracticeClient;
use slotbridge_market::types::{
    AvailabilityRange, AvailabilitySnapshot, LivenessContract, PmsAppointmentType, PmsResource,
    Schedule, TimeRange,
};
use slotbridge_store::{ConfigHashKind, ContentHash, Lease, Link, PublishItem, Store, StoreError};

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The marketplace refused or failed the call.
    #[error(transparent)]
    Market(#[from] slotbridge_market::MarketError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The PMS data could not be turned into a valid snapshot.
    #[error("the PMS setup is not a valid diary snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
}

/// What a configuration publish did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigOutcome {
    /// The liveness contract was sent.
    pub liveness_sent: bool,
    /// The resources snapshot was sent.
    pub resources_sent: bool,
    /// The appointment types snapshot was sent.
    pub types_sent: bool,
}

/// What an availability publish did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AvailabilityOutcome {
    /// (resource, date) pairs in the horizon.
    pub days: usize,
    /// Pairs whose content changed and were sent.
    pub sent: usize,
    /// Pairs the marketplace accepted as new.
    pub created: usize,
    /// Pairs the marketplace already had with the same content.
    pub existing: usize,
    /// Pairs the marketplace refused, with its reasons.
    pub failed: Vec<String>,
    /// Slots the engine published in the horizon.
    pub slots: usize,
    /// Published (resource, date) pairs beyond the horizon (it shrank), withdrawn with empty
    /// snapshots.
    pub withdrawn: usize,
}

/// The liveness contract: the practice's opening hours from the PMS (the weekly sessions of its
/// online practitioners, see [`publish::opening_hours`]), in the practice's time. Outside them
/// the marketplace does not hold an unanswered request against the integration's health. Public
/// holidays are left out: the PMS knows the practice's closed dates, not the public holidays, and
/// on a closed date there is nothing to book anyway.
pub fn liveness_contract(setup: &PracticeSetup, hours: &[PractitionerHours]) -> LivenessContract {
    let open = publish::opening_hours(setup, hours);
    let day = |i: usize| {
        Some(
            open[i]
                .iter()
                .map(|(start, end)| TimeRange {
                    start: civil_time(*start),
                    end: civil_time(*end),
                })
                .collect(),
        )
    };
    LivenessContract {
        live_hours: Schedule {
            monday: day(0),
            tuesday: day(1),
            wednesday: day(2),
            thursday: day(3),
            friday: day(4),
            saturday: day(5),
            sunday: day(6),
            public_holidays: None,
        },
    }
}

/// The marketplace's resources for the practice.
pub fn resources_wire(resources: &[Resource]) -> Vec<PmsResource> {
    resources
        .iter()
        .map(|r| PmsResource {
            pms_resource_id: r.id.clone(),
            pms_resource_name: r.name.clone(),
            pms_practitioner_title: Some(r.title.clone()).filter(|t| !t.is_empty()),
            pms_practitioner_firstname: Some(r.first_name.clone()),
            pms_practitioner_lastname: Some(r.last_name.clone()),
        })
        .collect()
}

/// The marketplace's appointment types for the practice.
pub fn types_wire(types: &[AppointmentType]) -> Vec<PmsAppointmentType> {
    types
        .iter()
        .map(|t| PmsAppointmentType {
            pms_appointment_type_id: t.id.clone(),
            pms_appointment_type_name: t.name.clone(),
            pms_appointment_length: Some(i64::from(t.length_minutes)),
            pms_resource_id: t.resource.clone(),
        })
        .collect()
}

/// One day's availability as the marketplace's snapshot.
pub fn day_wire(day: &DayAvailability) -> AvailabilitySnapshot {
    AvailabilitySnapshot {
        id: Some(format!("{}/{}", day.resource, day.date)),
        date: day.date,
        pms_resource_id: day.resource.clone(),
        availability: day
            .ranges
            .iter()
            .map(|r| AvailabilityRange {
                start: civil_time(r.start),
                end: civil_time(r.end),
                slot_length: i64::from(r.slot_length_secs),
                pms_appointment_type_ids: Some(r.type_ids.clone()),
            })
            .collect(),
    }
}

/// `HH:MM` as a civil time; 24:00 (never in a range, which ends on its own date) is 23:59.
fn civil_time(c: slotbridge_domain::practice::ClockTime) -> jiff::civil::Time {
    let m = c.minutes().min(1439);
    jiff::civil::Time::new((m / 60) as i8, (m % 60) as i8, 0, 0).unwrap_or(jiff::civil::Time::MIN)
}

fn hash_of<T: serde::Serialize>(value: &T) -> ContentHash {
    // Serialising our own plain data cannot fail; an empty rendering would still hash.
    ContentHash::of(&serde_json::to_vec(value).unwrap_or_default())
}

/// Where a link's worker publishes: the marketplace practice, and the store it records what
/// the marketplace holds in, under the worker's lease.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    /// The store.
    pub store: &'a Store,
    /// The worker's lease: every record is fenced by it.
    pub lease: &'a Lease,
    /// The marketplace practice.
    pub market: &'a PracticeClient,
    /// The link.
    pub link: &'a Link,
}

/// Send the liveness contract, resources and appointment types that changed since the last
/// successful send (all of them when `force`, as on link, re-enable and manual resync). The
/// liveness contract follows the practitioners' weekly `hours`: a change of the practice's hours
/// sends it again.
pub async fn publish_config(
    to: Target<'_>,
    setup: &PracticeSetup,
    hours: &[PractitionerHours],
    force: bool,
    now: Timestamp,
) -> Result<ConfigOutcome, PublishError> {
    let Target {
        store,
        lease,
        market,
        link,
    } = to;
    let known = store.config_hashes(link.id).await?;
    let mut outcome = ConfigOutcome::default();

    let liveness = liveness_contract(setup, hours);
    let h = hash_of(&liveness);
    if force || known.liveness != Some(h) {
        market.set_liveness_contract(&liveness).await?;
        store
            .record_config_hash(lease, link.generation, ConfigHashKind::Liveness, h, now)
            .await?;
        outcome.liveness_sent = true;
    }

    let resources = publish::resources(setup);
    let wire = resources_wire(&resources);
    let h = hash_of(&wire);
    if force || known.resources != Some(h) {
        market.send_pms_resources(&wire).await?;
        store
            .record_config_hash(lease, link.generation, ConfigHashKind::Resources, h, now)
            .await?;
        outcome.resources_sent = true;
    }

    let types = types_wire(&publish::appointment_types(setup, &resources));
    let h = hash_of(&types);
    if force || known.appointment_types != Some(h) {
        market.send_pms_appointment_types(&types).await?;
        store
            .record_config_hash(
                lease,
                link.generation,
                ConfigHashKind::AppointmentTypes,
                h,
                now,
            )
            .await?;
        outcome.types_sent = true;
    }
    Ok(outcome)
}

/// Compute the practice's availability with the engine and send every (resource, date) whose
/// content changed since it was last accepted (all of them when `force`). With `only`, just
/// those days of the horizon (a day-scoped sync: `diary` may cover only them); without, the
/// whole horizon, and days published beyond it are withdrawn.
pub async fn publish_availability(
    to: Target<'_>,
    setup: &PracticeSetup,
    diary: &Diary,
    force: bool,
    only: Option<&std::collections::BTreeSet<Date>>,
    now: Timestamp,
) -> Result<AvailabilityOutcome, PublishError> {
    let Target {
        store,
        lease,
        market,
        link,
    } = to;
    // The link's horizon, cut to how far ahead the PMS itself offers bookings: days beyond are
    // withdrawn, and asked-for days there answered empty.
    let horizon = Horizon::new(
        setup.timezone.time_zone(),
        now,
        setup.online_rules.horizon(link.horizon_days),
    );
    let snapshot = to_snapshot(setup, diary, now, horizon.days().days()).validate()?;
    let slots = compute_slots(&snapshot);
    let resources = publish::resources(setup);
    let types = publish::appointment_types(setup, &resources);
    let mut dates = horizon.dates();
    if let Some(only) = only {
        dates.retain(|d| only.contains(d));
    }
    let days = publish::availability(&resources, &types, &slots, &dates);

    let wire: Vec<AvailabilitySnapshot> = days.iter().map(day_wire).collect();
    let items: Vec<PublishItem> = days
        .iter()
        .zip(&wire)
        .map(|(d, w)| PublishItem {
            resource_id: d.resource.clone(),
            day: d.date,
            hash: hash_of(w),
        })
        .collect();
    let changed: Vec<PublishItem> = if force {
        items.clone()
    } else {
        store.changed_publish_items(link.id, &items).await?
    };
    let mut outcome = AvailabilityOutcome {
        days: days.len(),
        slots: slots.len(),
        ..AvailabilityOutcome::default()
    };
    if only.is_none() {
        outcome.withdrawn = withdraw_beyond(to, horizon.end()).await?;
    }
    if changed.is_empty() {
        return Ok(outcome);
    }
    // Look the changed pairs up by key: a 90-day horizon of many resources is thousands of pairs.
    let by_key: std::collections::HashMap<(&str, Date), &AvailabilitySnapshot> = wire
        .iter()
        .map(|w| ((w.pms_resource_id.as_str(), w.date), w))
        .collect();
    let to_send: Vec<AvailabilitySnapshot> = changed
        .iter()
        .filter_map(|c| {
            by_key
                .get(&(c.resource_id.as_str(), c.day))
                .map(|w| (*w).clone())
        })
        .collect();
    outcome.sent = to_send.len();
    let result = market.send_availability_all(&to_send).await?;
    outcome.created = result.created.len();
    outcome.existing = result.existing.len();
    outcome.failed = result
        .errors
        .iter()
        .map(|e| format!("{}: {}", e.snapshot, e.error))
        .collect();
    // Record what the marketplace now holds: everything sent except what it refused.
    let accepted: Vec<PublishItem> = changed
        .into_iter()
        .filter(|c| {
            let id = format!("{}/{}", c.resource_id, c.day);
            !result.failed.contains(&id)
        })
        .collect();
    store
        .record_published(lease, link.generation, &accepted, now)
        .await?;
    Ok(outcome)
}

/// Days published earlier beyond the horizon's end (the horizon shrank) are withdrawn: an empty
/// snapshot for each, then forgotten. Returns how many (resource, date) pairs.
async fn withdraw_beyond(to: Target<'_>, end: Date) -> Result<usize, PublishError> {
    let beyond = to.store.published_from(to.link.id, end).await?;
    if beyond.is_empty() {
        return Ok(0);
    }
    let empties: Vec<AvailabilitySnapshot> = beyond
        .iter()
        .map(|i| empty_day(&i.resource_id, i.day))
        .collect();
    to.market.send_availability_all(&empties).await?;
    to.store.forget_published(to.lease, &beyond).await?;
    Ok(beyond.len())
}

/// A day with nothing bookable, for `resource`.
pub fn empty_day(resource: &str, date: Date) -> AvailabilitySnapshot {
    day_wire(&DayAvailability {
        resource: resource.to_owned(),
        date,
        ranges: Vec::new(),
    })
}

/// Answer the marketplace's availability requests for days outside the horizon (past, or
/// beyond what the link publishes) with empty days: nothing there is bookable online. For a
/// request naming no resource, every resource of the setup. Returns how many were sent.
pub async fn answer_outside(
    to: Target<'_>,
    setup: &PracticeSetup,
    now: Timestamp,
    asked: &[(Date, Option<String>)],
) -> Result<usize, PublishError> {
    let horizon = Horizon::new(
        setup.timezone.time_zone(),
        now,
        setup.online_rules.horizon(to.link.horizon_days),
    );
    let resources = publish::resources(setup);
    let mut empties = Vec::new();
    for (day, resource) in asked.iter().filter(|(d, _)| !horizon.contains(*d)) {
        match resource {
            Some(r) => empties.push(empty_day(r, *day)),
            None => empties.extend(resources.iter().map(|r| empty_day(&r.id, *day))),
        }
    }
    if !empties.is_empty() {
        to.market.send_availability_all(&empties).await?;
    }
    Ok(empties.len())
}
