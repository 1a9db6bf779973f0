//! Patient matching: the suggested-testing scenarios, the hard cases (twins, parent and child,
//! namesakes), and invariants as property tests.

use jiff::civil::{Date, date};
use proptest::prelude::*;
use slotbridge_domain::matching::normalise::{
    normalise_email, normalise_name, normalise_phone, parse_dob,
};
use slotbridge_domain::matching::{
    AmbiguityPolicy, AmbiguityReason, BookingPatient, CandidateQuery, CandidateStatus, Conflict,
    Decision, MatchConfig, Outcome, PmsPatient, match_patient, search_queries,
};

fn booking(first: &str, last: &str, dob: &str) -> BookingPatient {
    BookingPatient {
        firstname: Some(first.into()),
        lastname: Some(last.into()),
        dob: Some(dob.into()),
        ..Default::default()
    }
}

fn pms(id: &str, first: &str, last: &str, dob: Date) -> PmsPatient {
    PmsPatient {
        id: id.into(),
        firstname: Some(first.into()),
        lastname: Some(last.into()),
        dob: Some(dob),
        ..Default::default()
    }
}

fn run(b: &BookingPatient, c: &[PmsPatient]) -> Decision {
    match_patient(b, c, &MatchConfig::default())
}

fn matched(id: &str) -> Outcome {
    Outcome::Match {
        patient_id: id.into(),
    }
}

/// Jane Citizen as the PMS has her, with a distractor or two around her.
fn jane_file() -> Vec<PmsPatient> {
    vec![
        PmsPatient {
            mobile: Some("0412 345 678".into()),
            email: Some("jane.citizen@example.com".into()),
            address: Some("12 Harbour Street, Pyrmont NSW 2009".into()),
            medicare: Some("2123456701".into()),
            irn: Some("2".into()),
            ..pms("p-jane", "Jane", "Citizen", date(1985, 4, 12))
        },
        PmsPatient {
            mobile: Some("0499 000 111".into()),
            ..pms("p-john", "John", "Citizen", date(1957, 9, 30))
        },
        pms("p-janet", "Janet", "Citizens", date(1985, 4, 21)),
    ]
}

fn jane_booking() -> BookingPatient {
    BookingPatient {
        phone: Some("0412345678".into()),
        email: Some("jane.citizen@example.com".into()),
        address: Some("12 Harbour St".into()),
        suburb: Some("Pyrmont".into()),
        state: Some("NSW".into()),
        postcode: Some("2009".into()),
        ..booking("Jane", "Citizen", "12-04-1985")
    }
}

#[test]
fn scenario_existing_patient_is_recognised() {
    let d = run(&jane_booking(), &jane_file());
    assert_eq!(d.outcome, matched("p-jane"), "{d:#?}");
    assert_eq!(d.candidates[0].patient_id, "p-jane");
    assert_eq!(d.candidates[0].status, CandidateStatus::Clears);
}

#[test]
fn scenario_changed_details_are_recognised() {
    let changed = [
        BookingPatient {
            address: Some("4/88 New Road".into()),
            postcode: Some("2040".into()),
            ..jane_booking()
        },
        BookingPatient {
            phone: Some("0400 999 888".into()),
            ..jane_booking()
        },
        BookingPatient {
            email: Some("jane.new@example.org".into()),
            ..jane_booking()
        },
        BookingPatient {
            lastname: Some("Nguyen".into()),
            ..jane_booking()
        },
    ];
    for b in changed {
        let d = run(&b, &jane_file());
        assert_eq!(d.outcome, matched("p-jane"), "{b:?}\n{d:#?}");
    }
}

#[test]
fn scenario_unexpected_format_and_misspelling_are_recognised() {
    let variants = [
        BookingPatient {
            firstname: Some("  JANE ".into()),
            lastname: Some("citizen".into()),
            dob: Some("1985-04-12".into()),
            phone: Some("+61 (0)412-345-678".into()),
            email: Some(" Jane.Citizen@EXAMPLE.com".into()),
            ..Default::default()
        },
        BookingPatient {
            firstname: Some("Jnae".into()),
            ..jane_booking()
        },
        BookingPatient {
            lastname: Some("Citizan".into()),
            dob: Some("12/4/1985".into()),
            ..jane_booking()
        },
    ];
    for b in variants {
        let d = run(&b, &jane_file());
        assert_eq!(d.outcome, matched("p-jane"), "{b:?}\n{d:#?}");
    }
}

#[test]
fn new_patient_when_no_candidate_fits() {
    let d = run(&booking("Sam", "Okafor", "01-01-2001"), &jane_file());
    assert_eq!(d.outcome, Outcome::New);
    let d = run(&booking("Sam", "Okafor", "01-01-2001"), &[]);
    assert_eq!(d.outcome, Outcome::New);
    assert!(d.candidates.is_empty());
}

#[test]
fn twins_are_told_apart_by_first_name() {
    let shared = |id: &str, first: &str| PmsPatient {
        mobile: Some("0411 222 333".into()),
        email: Some("family@example.com".into()),
        address: Some("3 Gum Tree Ct, Bendigo VIC 3550".into()),
        ..pms(id, first, "Walker", date(2015, 6, 1))
    };
    let b = BookingPatient {
        phone: Some("0411222333".into()),
        email: Some("family@example.com".into()),
        address: Some("3 Gum Tree Court".into()),
        postcode: Some("3550".into()),
        ..booking("Emma", "Walker", "01-06-2015")
    };
    let both = [shared("t-ella", "Ella"), shared("t-emma", "Emma")];
    assert_eq!(run(&b, &both).outcome, matched("t-emma"));
    // Only the other twin on file: never her file. Conflicting evidence, flagged.
    let d = run(&b, &[shared("t-ella", "Ella")]);
    assert!(
        matches!(
            d.outcome,
            Outcome::Ambiguous {
                reason: AmbiguityReason::ConflictingEvidence,
                ..
            }
        ),
        "{d:#?}"
    );
    assert!(matches!(
        d.candidates[0].conflicts[0],
        Conflict::DifferentFirstName { .. }
    ));
}

#[test]
fn parent_and_child_sharing_contacts() {
    let mum = PmsPatient {
        mobile: Some("0433 444 555".into()),
        email: Some("kim.tran@example.com".into()),
        ..pms("mum", "Kim", "Tran", date(1982, 11, 3))
    };
    let child = BookingPatient {
        phone: Some("0433444555".into()),
        email: Some("kim.tran@example.com".into()),
        ..booking("Lily", "Tran", "14-02-2014")
    };
    assert_eq!(
        run(&child, std::slice::from_ref(&mum)).outcome,
        Outcome::New
    );
    let lily = pms("lily", "Lily", "Tran", date(2014, 2, 14));
    assert_eq!(run(&child, &[mum, lily]).outcome, matched("lily"));
}

#[test]
fn same_name_different_dob_is_not_matched() {
    let other = pms("x", "Jane", "Citizen", date(1990, 1, 1));
    let d = run(&jane_booking(), &[other]);
    assert_eq!(d.outcome, Outcome::New);
    // With shared contact details it may be a typo in the date: flagged, not matched.
    let other = PmsPatient {
        mobile: Some("0412345678".into()),
        ..pms("x", "Jane", "Citizen", date(1985, 12, 4))
    };
    let d = run(&jane_booking(), &[other]);
    assert_eq!(d.kind(), "ambiguous");
}

#[test]
fn swapped_names_are_recognised() {
    let b = BookingPatient {
        firstname: Some("Citizen".into()),
        lastname: Some("Jane".into()),
        ..jane_booking()
    };
    let d = run(&b, &jane_file());
    assert_eq!(d.outcome, matched("p-jane"));
    assert!(d.candidates[0].names_swapped);
}

#[test]
fn duplicate_files_are_ambiguous_and_policy_is_carried() {
    let mut files = jane_file();
    let mut dup = files[0].clone();
    dup.id = "p-jane-2".into();
    files.push(dup);
    let config = MatchConfig {
        on_ambiguous: AmbiguityPolicy::RejectBooking,
        ..MatchConfig::default()
    };
    let d = match_patient(&jane_booking(), &files, &config);
    assert_eq!(
        d.outcome,
        Outcome::Ambiguous {
            reason: AmbiguityReason::SeveralCandidates,
            patient_ids: vec!["p-jane".into(), "p-jane-2".into()],
            action: AmbiguityPolicy::RejectBooking,
        }
    );
    assert!(d.practice_flag().unwrap().contains("rejected"));
}

#[test]
fn medicare_irn_tells_family_members_apart() {
    let b = BookingPatient {
        medicare_number: Some("2123 45670 1".into()),
        medicare_irn: Some("3".into()),
        ..booking("Jane", "Citizen", "12-04-1985")
    };
    let d = run(&b, &jane_file());
    assert!(
        d.candidates[0]
            .conflicts
            .contains(&Conflict::DifferentMedicareIrn {
                booking: 3,
                candidate: 2
            })
    );
    assert_ne!(d.outcome, matched("p-jane"));
}

#[test]
fn bad_fields_are_noted_and_ignored() {
    let b = BookingPatient {
        phone: Some("call me".into()),
        medicare_number: Some("1234".into()),
        ..jane_booking()
    };
    let d = run(&b, &jane_file());
    assert_eq!(d.outcome, matched("p-jane"));
    let fields: Vec<&str> = d.notes.iter().map(|n| n.field.as_str()).collect();
    assert_eq!(fields, ["medicareNumber", "phone"]);
}

#[test]
fn decision_serialises_with_its_evidence() {
    let d = run(&jane_booking(), &jane_file());
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["decision"], "match");
    assert_eq!(json["patientId"], "p-jane");
    assert_eq!(json["candidates"][0]["fields"][2]["field"], "dob");
    let back: Decision = serde_json::from_value(json).unwrap();
    assert_eq!(back, d);
}

#[test]
fn search_queries_cover_every_identifying_field() {
    let q = search_queries(&jane_booking());
    assert_eq!(
        q,
        vec![
            CandidateQuery::Dob {
                dob: date(1985, 4, 12)
            },
            CandidateQuery::Phone {
                phone: "+61412345678".into()
            },
            CandidateQuery::Email {
                email: "jane.citizen@example.com".into()
            },
            CandidateQuery::Name {
                first: "Jane".into(),
                last: "Citizen".into()
            },
        ]
    );
    assert!(search_queries(&BookingPatient::default()).is_empty());
}

// ---- properties ----

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Z][a-z]{2,9}",
        "[A-Z][a-z]{2,6}-[A-Z][a-z]{2,6}",
        "O'[A-Z][a-z]{3,7}",
        "Mac[A-Z][a-z]{3,6}",
        "(Zoë|José|Renée|Søren|Łukasz|Ünal|Aimée)",
    ]
}

fn arb_dob() -> impl Strategy<Value = Date> {
    (1920i16..2024, 1i8..=12, 1i8..=28).prop_map(|(y, m, d)| date(y, m, d))
}

fn arb_pms(id: String) -> impl Strategy<Value = PmsPatient> {
    (
        arb_name(),
        arb_name(),
        arb_dob(),
        proptest::option::of("04[0-9]{8}"),
        proptest::option::of("[a-z]{3,8}@example\\.(com|org)"),
    )
        .prop_map(move |(first, last, dob, mobile, email)| PmsPatient {
            mobile,
            email,
            ..pms(&id, &first, &last, dob)
        })
}

fn arb_candidates() -> impl Strategy<Value = Vec<PmsPatient>> {
    (0usize..6).prop_flat_map(|n| (0..n).map(|i| arb_pms(format!("c{i}"))).collect::<Vec<_>>())
}

fn as_booking(p: &PmsPatient) -> BookingPatient {
    BookingPatient {
        firstname: p.firstname.clone(),
        lastname: p.lastname.clone(),
        dob: p.dob.map(|d| d.strftime("%d-%m-%Y").to_string()),
        phone: p.mobile.clone(),
        email: p.email.clone(),
        ..Default::default()
    }
}

proptest! {
    #[test]
    fn decision_is_invariant_to_candidate_order(
        me in arb_pms("me".into()),
        others in arb_candidates(),
        seed in any::<u64>(),
    ) {
        let mut all = others.clone();
        all.push(me.clone());
        let b = as_booking(&me);
        let first = run(&b, &all);
        // A deterministic shuffle.
        let mut shuffled = all.clone();
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(first, run(&b, &shuffled));
    }

    #[test]
    fn exact_copy_matches_itself_without_conflicting_candidates(
        me in arb_pms("me".into()),
        others in arb_candidates(),
    ) {
        // Distractors that do not share the date of birth.
        let others: Vec<PmsPatient> = others
            .into_iter()
            .filter(|o| o.dob != me.dob)
            .collect();
        let mut all = others;
        all.push(me.clone());
        let d = run(&as_booking(&me), &all);
        prop_assert_eq!(d.outcome, matched("me"));
    }

    #[test]
    fn never_matches_a_candidate_with_a_different_dob(
        me in arb_pms("me".into()),
        others in arb_candidates(),
        dob in arb_dob(),
    ) {
        let b = BookingPatient { dob: Some(dob.strftime("%d-%m-%Y").to_string()), ..as_booking(&me) };
        let mut all = others;
        all.push(me);
        let d = run(&b, &all);
        if let Some(id) = d.patient_id() {
            let chosen = all.iter().find(|c| c.id == id).unwrap();
            prop_assert_eq!(chosen.dob, Some(dob));
        }
    }

    #[test]
    fn name_normalisation_is_idempotent(raw in "\\PC{0,30}") {
        let once = normalise_name(&raw);
        prop_assert_eq!(normalise_name(&once), once);
    }

    #[test]
    fn realistic_name_normalisation_is_idempotent(raw in arb_name()) {
        let once = normalise_name(&raw);
        prop_assert_eq!(normalise_name(&once), once.clone());
        prop_assert!(once.chars().all(|c| c.is_ascii_lowercase() || c == ' '));
    }

    #[test]
    fn phone_normalisation_is_idempotent(raw in "(\\+61 ?|0|61)?4[0-9]{2}[ -]?[0-9]{3}[ -]?[0-9]{3}") {
        let once = normalise_phone(&raw).unwrap();
        prop_assert_eq!(normalise_phone(&once).unwrap(), once);
    }

    #[test]
    fn email_normalisation_is_idempotent(raw in " ?[A-Za-z.]{1,10}@[A-Za-z]{1,8}\\.[A-Za-z]{2,3} ?") {
        let once = normalise_email(&raw).unwrap();
        prop_assert_eq!(normalise_email(&once).unwrap(), once);
    }

    #[test]
    fn dob_formats_agree(d in arb_dob()) {
        for fmt in ["%d-%m-%Y", "%Y-%m-%d", "%-d/%-m/%Y", "%d.%m.%Y", "%d %B %Y", "%d%m%Y"] {
            let text = d.strftime(fmt).to_string();
            prop_assert_eq!(parse_dob(&text), Ok(d), "{}", text);
        }
    }
}
