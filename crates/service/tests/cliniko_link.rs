//! A Cliniko practice linked through the admin API, end to end: the node reads it from the
//! Cliniko simulator, publishes its times on the marketplace, and writes a marketplace booking
//! into its diary exactly once.

use std::time::Duration;

use slotbridge_cliniko_sim::{ClinikoSim, generate};
use slotbridge_testkit::{Db, Stack, booking_body, eventually, link_cliniko, patient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cliniko_practice_linked_through_the_admin_api_takes_a_booking_exactly_once_on_sqlite() {
    cliniko_booking(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cliniko_practice_linked_through_the_admin_api_takes_a_booking_exactly_once_on_postgres()
{
    cliniko_booking(Db::Postgres).await;
}

async fn cliniko_booking(db: Db) {
    let Some(mut stack) = Stack::builder().db(db).nodes(0).link(false).start().await else {
        return;
    };
    let sim = ClinikoSim::builder().build();
    let cliniko = sim.seed(generate::practice(11, "au1")).expect("seed");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let handle = slotbridge_cliniko_sim::serve(listener, sim.clone())
        .await
        .expect("serve");
    let mut config = stack.config.clone();
    config.cliniko_url = Some(format!("{}/", handle.api_base("au1")).parse().expect("url"));
    stack.start_node_with(config).await;

    let harbour = stack.harbour().clone();
    // Answered 201 with the link, or the helper says why not.
    let link = link_cliniko(
        &stack.http,
        &stack.node().url(),
        stack.token().as_deref(),
        &cliniko.api_key,
        &cliniko.business_ids[0],
        &harbour,
    )
    .await
    .expect("the Cliniko business is linked");
    assert_eq!(link["pms_kind"], "cliniko");
    assert_eq!(link["business_id"], cliniko.business_ids[0].as_str());

    let (_day, slots) = stack.linked_with_slots(Duration::from_secs(30), 2).await;
    let slot = slots.last().expect("slot");
    let body = booking_body(
        slot,
        patient(
            "Ada",
            "Cliniko",
            "1980-03-04",
            "0411 222 333",
            "ada@example.com",
        ),
    );
    let id = stack.book(&harbour.practice_id, &body).await;
    let booking = eventually("booking confirmed", Duration::from_secs(20), || async {
        let b = stack.booking(id).await;
        (b["status"] != "Requested").then_some(b)
    })
    .await;
    assert_eq!(booking["status"], "Confirmed", "{booking}");
    let mine: Vec<_> = sim
        .live_appointments(cliniko.account_id)
        .into_iter()
        .filter(|a| {
            a.4.as_deref()
                .is_some_and(|n| n.contains(&format!("slotbridge-ref: HE-{id}")))
        })
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "exactly one appointment in Cliniko: {mine:?}"
    );
    let start: jiff::Timestamp = slot["start"]
        .as_str()
        .expect("start")
        .parse()
        .expect("instant");
    assert_eq!(mine[0].2, start, "at the slot's start");
    handle.shutdown().await;
}
