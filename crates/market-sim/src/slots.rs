//! How published availability becomes bookable slots (documented in docs/market-sim.md).
//!
//! For a practitioner connected to an appointment book (PMS resource) that is still published,
//! each of the practitioner's appointment types linked to a PMS appointment type that exists and
//! applies to that resource (`pmsResourceId` absent or equal), and each availability range of the
//! day that admits the linked type (`pmsAppointmentTypeIds` absent, empty, or containing it):
//!
//! - the appointment's **length** is the marketplace type's own length if set, else the linked
//!   PMS type's `pmsAppointmentLength` (minutes), else the step;
//! - the **step** is the range's `slotLength` (seconds) when it is at least 60, else the length;
//!   with neither, the type offers nothing in that range;
//! - slots start at the range's start and every step after it, and a slot is offered only when
//!   `[start, start + length)` lies inside the range.
//!
//! Slots that start in the past or overlap an active booking (requested or confirmed) of the
//! same resource are then removed by the caller.

use jiff::{SignedDuration, civil::Date, civil::DateTime};
use serde::Serialize;

use crate::state::Practice;

/// One bookable slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slot {
    /// Practitioner id.
    pub practitioner_id: u64,
    /// Practitioner name.
    pub practitioner: String,
    /// The resource.
    pub pms_resource_id: String,
    /// Marketplace appointment type id.
    pub appointment_type_id: u64,
    /// Marketplace appointment type name.
    pub appointment_type: String,
    /// The linked PMS appointment type.
    pub pms_appointment_type_id: String,
    /// Start, practice civil time.
    pub start: DateTime,
    /// End, practice civil time.
    pub end: DateTime,
}

/// Slice a practice's published availability of one day into slots (before removing booked and
/// past ones), sorted by start, practitioner and type.
pub fn slice(p: &Practice, date: Date) -> Vec<Slot> {
    let mut out = Vec::new();
    for pr in p.practitioners.values() {
        let Some(resource) = pr.pms_resource_id.as_deref() else {
            continue;
        };
        if !p.resources.iter().any(|r| r.pms_resource_id == resource) {
            continue;
        }
        let Some(published) = p.availability.get(&(resource.to_owned(), date)) else {
            continue;
        };
        for ht in &pr.appointment_types {
            let Some(linked) = ht.linked_pms_appointment_type_id.as_deref() else {
                continue;
            };
            let Some(pt) = p.appointment_types.iter().find(|t| {
                t.pms_appointment_type_id == linked
                    && t.pms_resource_id.as_deref().is_none_or(|r| r == resource)
            }) else {
                continue;
            };
            let length = ht
                .length_minutes
                .or(pt.pms_appointment_length)
                .filter(|m| *m > 0)
                .map(|m| m * 60);
            for range in &published.snapshot.availability {
                let admits = range
                    .pms_appointment_type_ids
                    .as_ref()
                    .is_none_or(|ids| ids.is_empty() || ids.iter().any(|i| i == linked));
                if !admits {
                    continue;
                }
                let step = if range.slot_length >= 60 {
                    Some(range.slot_length)
                } else {
                    length
                };
                let Some(step) = step else { continue };
                let len = length.unwrap_or(step);
                let (begin, end) = (date.to_datetime(range.start), date.to_datetime(range.end));
                let mut s = begin;
                while s + SignedDuration::from_secs(len) <= end {
                    out.push(Slot {
                        practitioner_id: pr.id,
                        practitioner: pr.name.clone(),
                        pms_resource_id: resource.to_owned(),
                        appointment_type_id: ht.id,
                        appointment_type: ht.name.clone(),
                        pms_appointment_type_id: linked.to_owned(),
                        start: s,
                        end: s + SignedDuration::from_secs(len),
                    });
                    s += SignedDuration::from_secs(step);
                }
            }
        }
    }
    out.sort_by(|a, b| {
        (a.start, &a.practitioner, &a.appointment_type).cmp(&(
            b.start,
            &b.practitioner,
            &b.appointment_type,
        ))
    });
    out.dedup();
    out
}
