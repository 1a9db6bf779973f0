//! The patient matcher's input: one marketplace booking's patient and the PMS candidates, as
//! JSON `{"booking": {...}, "patients": [...]}` (`slotbridge match` reads the same two parts).
//!
//! Properties, beyond "never panics":
//! - the decision is deterministic and does not depend on the candidates' order;
//! - a match is one of the candidates, the only one that clears, and never one whose date of
//!   birth differs from the booking's; an ambiguous decision names candidates only;
//! - every candidate is scored once; the decision reads back from its JSON unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::Value;
use slotbridge_domain::matching::normalise::parse_dob;
use slotbridge_domain::matching::{
    BookingPatient, CandidateStatus, Decision, MatchConfig, Outcome, PmsPatient, match_patient,
    search_queries,
};

#[derive(Deserialize)]
struct Input {
    booking: BookingPatient,
    #[serde(default)]
    patients: Vec<Value>,
}

/// A PMS patient as `slotbridge match` reads one: an `address` may be an object of parts.
fn pms_patient(mut v: Value) -> Option<PmsPatient> {
    if let Some(Value::Object(parts)) = v.get("address") {
        let joined: Vec<&str> = parts.values().filter_map(Value::as_str).collect();
        v["address"] = Value::String(joined.join(" "));
    }
    serde_json::from_value(v).ok()
}

struct Case {
    booking: BookingPatient,
    patients: Vec<PmsPatient>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = serde_json::from_slice::<Input>(data) else {
        return;
    };
    let input = Case {
        booking: raw.booking,
        patients: raw.patients.into_iter().filter_map(pms_patient).collect(),
    };
    let config = MatchConfig::default();
    let _ = search_queries(&input.booking);
    let d = match_patient(&input.booking, &input.patients, &config);
    assert_eq!(
        d,
        match_patient(&input.booking, &input.patients, &config),
        "not deterministic"
    );

    let mut ids: Vec<&str> = input.patients.iter().map(|p| p.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(d.candidates.len(), ids.len(), "each candidate scored once");
    if ids.len() == input.patients.len() {
        let mut reversed = input.patients.clone();
        reversed.reverse();
        let r = match_patient(&input.booking, &reversed, &config);
        assert_eq!(
            d.outcome, r.outcome,
            "the candidates' order changed the decision"
        );
    }
    match &d.outcome {
        Outcome::Match { patient_id } => {
            let p = input
                .patients
                .iter()
                .find(|p| &p.id == patient_id)
                .expect("the match is a candidate");
            let clears: Vec<&str> = d
                .candidates
                .iter()
                .filter(|c| c.status == CandidateStatus::Clears)
                .map(|c| c.patient_id.as_str())
                .collect();
            assert_eq!(
                clears,
                [patient_id.as_str()],
                "a match is the only one that clears"
            );
            if let (Some(theirs), Some(Ok(ours))) =
                (p.dob, input.booking.dob.as_deref().map(parse_dob))
            {
                assert_eq!(theirs, ours, "matched a file with another date of birth");
            }
        }
        Outcome::Ambiguous { patient_ids, .. } => {
            for id in patient_ids {
                assert!(
                    ids.contains(&id.as_str()),
                    "ambiguous with a stranger {id:?}"
                );
            }
        }
        Outcome::New => {}
    }
    let json = serde_json::to_string(&d).expect("a decision is JSON");
    let back: Decision = serde_json::from_str(&json).expect("a decision reads back");
    assert_eq!(back, d, "the decision's JSON loses something");
});
