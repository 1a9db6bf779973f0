//! Tolerant reading over real HTTP, against a tiny server answering hand-written JSON: what the
//! published API allows (nulls everywhere, `dob` in either format, unknown enum values, unknown
//! request types, no `page` object) is read, one unreadable booking does not spoil its page,
//! and a late answer the marketplace refuses is classified as refused.

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{Router, extract::Request, http::StatusCode, response::IntoResponse, routing::any};
use serde_json::{Value, json};
use slotbridge_market::{
    ClientConfig, MarketClient, MarketError, PracticeClient, PracticeCredentials, WebhookReceiver,
    types::{Booking, BookingStatus, ConfirmBookingInsert, RequestType, SubscriptionTopic},
};

/// A server answering each `path?query` with its canned status and JSON body (404 otherwise).
async fn serve(routes: Vec<(&str, StatusCode, Value)>) -> PracticeClient {
    let routes: Arc<HashMap<String, (StatusCode, String)>> = Arc::new(
        routes
            .into_iter()
            .map(|(p, s, v)| (p.to_owned(), (s, v.to_string())))
            .collect(),
    );
    let app = Router::new().fallback(any(move |req: Request| {
        let routes = routes.clone();
        async move {
            let uri = req.uri();
            let key = match uri.query() {
                Some(q) => format!("{}?{q}", uri.path()),
                None => uri.path().to_owned(),
            };
            let key = key.trim_start_matches("/pms-api/v1").to_owned();
            match routes.get(&key) {
                Some((status, body)) => (
                    *status,
                    [("content-type", "application/json")],
                    body.clone(),
                )
                    .into_response(),
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
    }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/pms-api/v1", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    MarketClient::new(
        ClientConfig::new(url, "k".to_owned().into())
            .with_retries(2, Duration::from_millis(10))
            .with_timeout(Duration::from_secs(10)),
    )
    .unwrap()
    .practice(PracticeCredentials::new("1", "pk"))
}

fn booking(id: i64, dob: &str) -> Value {
    json!({
        "bookingId": id, "pmsResourceId": "1001", "pmsAppointmentTypeId": "G1",
        "pmsAppointmentIds": [], "pmsPatientId": null,
        "bookedTime": "2026-12-01 01:13:55", "bookingStatus": "Requested",
        "pmsAppointmentTime": "2026-12-02 09:30:00", "pmsAppointmentLength": 1800,
        "reason": "Check-up", "comments": "Check-up and clean",
        "patient": {"firstname": "Zebedee", "lastname": "Quixotic", "dob": dob,
                    "phone": "0412 345 678", "email": "zq@example.com", "gender": "Female"},
        "isNewPatient": false
    })
}

fn one_page(total: usize) -> Value {
    json!({"currentPage": 1, "totalPages": 1, "perPage": 10, "total": total})
}

#[tokio::test]
async fn one_unreadable_booking_is_reported_and_the_others_on_its_page_are_read() {
    let page = json!({
        "data": [
            booking(1, "23-02-1990"),
            booking(2, "Zebedee Quixotic"),
            booking(3, "1990-02-23"),
        ],
        "page": one_page(3),
    });
    let p = serve(vec![("/requests/bookings?page=1", StatusCode::OK, page)]).await;
    let got = p.booking_requests(1).await.expect("the page is read");
    let ids: Vec<i64> = got.items.iter().map(|b| b.booking_id).collect();
    assert_eq!(ids, [1, 3]);
    // dob in either format is the same date.
    assert_eq!(got.items[0].patient.dob, got.items[1].patient.dob);
    assert_eq!(
        got.items[0].patient.dob,
        Some(jiff::civil::date(1990, 2, 23))
    );
    assert_eq!(got.unreadable.len(), 1);
    let bad = &got.unreadable[0];
    assert_eq!((bad.index, bad.booking_id), (1, Some(2)));
    assert_eq!(
        bad.reason,
        "patient.dob: not a date in DD-MM-YYYY or YYYY-MM-DD"
    );
    let shown = format!("{bad} {bad:?}");
    for pii in ["Zebedee", "Quixotic", "0412", "zq@example.com"] {
        assert!(!shown.contains(pii), "{shown}");
    }
    // Sending (the service stores the request as JSON) keeps the spec's dob format.
    let stored = serde_json::to_value(&got.items[1]).unwrap();
    assert_eq!(stored["patient"]["dob"], "23-02-1990");
    let again: Booking = serde_json::from_value(stored).unwrap();
    assert_eq!(again, got.items[1]);
}

#[tokio::test]
async fn nulls_wherever_the_api_allows_them_and_unknown_values_are_read() {
    let nulls = json!({
        "bookingId": 11, "pmsResourceId": null, "pmsAppointmentTypeId": null,
        "pmsAppointmentIds": null, "pmsPatientId": null, "bookedTime": null,
        "bookingStatus": null, "pmsAppointmentTime": "2026-12-02 10:00:00",
        "pmsAppointmentLength": null, "reason": null, "comments": null,
        "patient": {"firstname": null, "lastname": null, "dob": null, "phone": null,
                    "email": null, "address": null, "suburb": null, "state": null,
                    "postcode": null, "gender": null, "medicareNumber": null,
                    "medicareIrn": null, "medicareExpiry": null},
        "telehealthUrl": null, "isNewPatient": null
    });
    let mut odd = booking(12, "");
    odd["patient"]["gender"] = json!("Nonbinary");
    odd["patient"]["postcode"] = json!(6000);
    odd["bookingStatus"] = json!("Pending");
    odd["aFieldFromANewerApi"] = json!({"nested": [1, 2]});
    let minimal = json!({"bookingId": 13, "pmsAppointmentTime": "2026-12-02T11:00:00"});
    let page = json!({"data": [nulls, odd, minimal], "page": one_page(3)});
    let p = serve(vec![("/requests/bookings?page=1", StatusCode::OK, page)]).await;
    let before = jiff::Timestamp::now();
    let got = p.booking_requests(1).await.expect("the page is read");
    assert!(got.unreadable.is_empty(), "{:?}", got.unreadable);
    let [nulls, odd, minimal] = &got.items[..] else {
        panic!("three bookings: {:?}", got.items)
    };
    assert_eq!(nulls.pms_resource_id, None);
    assert!(nulls.pms_appointment_ids.is_empty());
    assert_eq!(nulls.booking_status, BookingStatus::Requested);
    assert_eq!(nulls.pms_appointment_length, 0);
    assert!(
        nulls.booked_time
            >= before
                .checked_sub(jiff::SignedDuration::from_secs(1))
                .unwrap()
    );
    assert_eq!(nulls.patient.dob, None);
    assert_eq!(odd.patient.gender, None, "an unknown gender is not guessed");
    assert_eq!(odd.patient.postcode.as_deref(), Some("6000"));
    assert_eq!(odd.patient.dob, None);
    assert_eq!(odd.booking_status, BookingStatus::Other);
    assert_eq!(
        minimal.pms_appointment_time,
        jiff::civil::date(2026, 12, 2).at(11, 0, 0, 0)
    );
    assert_eq!(minimal.patient.gender, None);
}

#[tokio::test]
async fn a_list_without_a_page_object_is_a_single_page() {
    let p = serve(vec![
        (
            "/requests/bookings?page=1",
            StatusCode::OK,
            json!({"data": [booking(1, "23-02-1990"), {"bookingId": 2}]}),
        ),
        // Never asked for: without a page object there is no second page.
        (
            "/requests/bookings?page=2",
            StatusCode::OK,
            json!({"data": [booking(3, "23-02-1990")]}),
        ),
    ])
    .await;
    let all = p
        .all_requests::<Booking>(RequestType::Bookings)
        .await
        .expect("read");
    assert_eq!(all.items.len(), 1);
    assert_eq!(all.items[0].booking_id, 1);
    assert_eq!(all.unreadable.len(), 1);
    assert_eq!(all.unreadable[0].booking_id, Some(2));
    assert_eq!(all.unreadable[0].reason, "pmsAppointmentTime: missing");
}

#[tokio::test]
async fn every_page_is_followed_and_unreadable_items_are_kept_from_each() {
    let two = |n| json!({"currentPage": n, "totalPages": 2, "perPage": 2, "total": 4});
    let p = serve(vec![
        (
            "/requests/bookings?page=1",
            StatusCode::OK,
            json!({"data": [booking(1, "23-02-1990"), booking(2, "31-02-1990")], "page": two(1)}),
        ),
        (
            "/requests/bookings?page=2",
            StatusCode::OK,
            json!({"data": [{"bookingId": null}, booking(4, "1990-02-23")], "page": two(2)}),
        ),
    ])
    .await;
    let all = p
        .all_requests::<Booking>(RequestType::Bookings)
        .await
        .expect("read");
    let ids: Vec<i64> = all.items.iter().map(|b| b.booking_id).collect();
    assert_eq!(ids, [1, 4]);
    let bad: Vec<(usize, Option<i64>, &str)> = all
        .unreadable
        .iter()
        .map(|u| (u.index, u.booking_id, u.reason.as_str()))
        .collect();
    assert_eq!(
        bad,
        [
            (
                1,
                Some(2),
                "patient.dob: not a date in DD-MM-YYYY or YYYY-MM-DD"
            ),
            (0, None, "bookingId: is null"),
        ]
    );
}

#[tokio::test]
async fn an_unknown_request_type_does_not_fail_the_poll() {
    let p = serve(vec![(
        "/requests",
        StatusCode::OK,
        json!(["videoConsults", "bookings", "availability", "videoConsults"]),
    )])
    .await;
    let polled = p.poll().await.expect("the poll is read");
    assert_eq!(
        polled.known,
        [RequestType::Bookings, RequestType::Availability]
    );
    assert_eq!(polled.unknown, ["videoConsults"]);
}

#[tokio::test]
async fn a_late_answer_refused_by_the_marketplace_is_classified_as_refused() {
    let refused = |path: &'static str, status: u16| {
        (
            path,
            StatusCode::from_u16(status).unwrap(),
            json!({"error": "Booking has already been confirmed"}),
        )
    };
    let p = serve(vec![
        refused("/bookings/1/confirmInsert", 400),
        refused("/bookings/2/confirmInsert", 409),
        refused("/bookings/3/rejectInsert", 410),
        refused("/bookings/4/rejectInsert", 422),
        refused("/bookings/5/cancel", 400),
        refused("/bookings/6/didNotAttend", 409),
        refused("/bookings/7/noPmsAppointmentChange", 410),
        refused("/bookings/8/confirmInsert", 503),
        refused("/bookings/9/confirmInsert", 401),
        refused("/bookings/10/confirmInsert", 429),
    ])
    .await;
    let body = ConfirmBookingInsert {
        pms_appointment_ids: vec!["A1".into()],
        pms_patient_id: "P1".into(),
        ..Default::default()
    };
    let late = [
        p.confirm_insert(1, &body).await.unwrap_err(),
        p.confirm_insert(2, &body).await.unwrap_err(),
        p.reject_insert(3, Some("the time is no longer available"))
            .await
            .unwrap_err(),
        p.reject_insert(4, None).await.unwrap_err(),
        p.cancel(5, None).await.unwrap_err(),
        p.did_not_attend(6, None).await.unwrap_err(),
        p.no_pms_appointment_change(7).await.unwrap_err(),
        // Never registered: 404.
        p.confirm_insert(99, &body).await.unwrap_err(),
    ];
    for e in &late {
        assert!(e.is_refused_answer(), "{e:?}");
        assert!(!e.is_transient(), "{e:?}");
        assert!(!e.to_string().contains("already been confirmed"), "{e}");
    }
    assert!(matches!(late[0], MarketError::Invalid { .. }));
    assert!(matches!(late[1], MarketError::Conflict { .. }));
    assert_eq!(late[1].kind(), "conflict");
    assert!(matches!(late[2], MarketError::Gone { .. }));
    assert!(matches!(late[3], MarketError::Invalid { ref detail } if detail.contains("422")));
    assert!(matches!(late[7], MarketError::NotFound { .. }));
    let unavailable = p.confirm_insert(8, &body).await.unwrap_err();
    assert!(unavailable.is_transient() && !unavailable.is_refused_answer());
    let unauthorized = p.confirm_insert(9, &body).await.unwrap_err();
    assert!(matches!(unauthorized, MarketError::Unauthorized));
    assert!(!unauthorized.is_refused_answer() && !unauthorized.is_transient());
    let limited = p.confirm_insert(10, &body).await.unwrap_err();
    assert!(limited.is_transient() && !limited.is_refused_answer());
}

#[tokio::test]
async fn a_webhook_of_an_unknown_request_type_is_acknowledged_and_not_handed_on() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let app = Router::new().nest("/hook", WebhookReceiver::new(tx).router());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    let payload = |request_type: &str| {
        json!({
            "timestamp": "2026-12-01 01:13:55", "id": "sub-1", "clientId": null,
            "topic": "requests.*",
            "data": {"target": null, "requestType": request_type, "bookingId": 5}
        })
    };
    let http = reqwest::Client::new();
    let r = http
        .post(&url)
        .json(&payload("videoConsults"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(&url)
        .json(&payload("bookings"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let handed = rx.recv().await.expect("the known one is handed on");
    assert_eq!(handed.data.request_type, RequestType::Bookings);
    assert!(rx.try_recv().is_err(), "the unknown one was not handed on");
}

#[tokio::test]
async fn configuration_subscription_and_liveness_answers_are_read_tolerantly() {
    let p = serve(vec![
        (
            "/config/pmsResources",
            StatusCode::OK,
            json!([
                {"pmsResourceId": 1001, "pmsResourceName": "Dr Ann Lee",
                 "pmsPractitionerTitle": null, "aFieldFromANewerApi": true},
                {"pmsResourceId": null, "pmsResourceName": "Zebedee Quixotic"},
            ]),
        ),
        (
            "/config/pmsAppointmentTypes/findById?id=HE",
            StatusCode::OK,
            json!([{"pmsAppointmentTypeId": "HE", "pmsAppointmentTypeName": "Check-up",
                    "pmsAppointmentLength": "30", "pmsResourceId": null}]),
        ),
        (
            "/subscription",
            StatusCode::OK,
            json!([
                {"id": "6f1c", "clientId": null, "topic": "requests.videoConsults",
                 "callbackUrl": "https://node.example/hooks", "startAt": null, "expireAt": null},
                {"id": "7a2d", "topic": "requests.*", "callbackUrl": "https://node.example/hooks",
                 "expireAt": "2027-02-01 00:00:00"},
            ]),
        ),
        (
            "/subscription/7a2d",
            StatusCode::OK,
            json!({"id": "7a2d", "topic": "requests.*", "callbackUrl": null, "clientId": 17}),
        ),
        (
            "/config/livenessContract",
            StatusCode::OK,
            json!({"liveHours": {"monday": [{"start": "08:00:00", "end": "17:00"}],
                                 "tuesday": null}, "version": 3}),
        ),
    ])
    .await;
    let resources = p.pms_resources().await.expect("resources");
    assert_eq!(resources.len(), 1, "the unreadable one is left out");
    assert_eq!(resources[0].pms_resource_id, "1001");
    let types = p.find_pms_appointment_type("HE").await.expect("types");
    assert_eq!(types[0].pms_appointment_length, Some(30));
    assert_eq!(types[0].pms_resource_id, None);
    let subs = p.subscriptions().await.expect("subscriptions");
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0].topic, SubscriptionTopic::Other);
    assert_eq!(subs[0].expire_at, None);
    assert_eq!(subs[1].topic, SubscriptionTopic::All);
    let one = p.subscription("7a2d").await.expect("subscription");
    assert_eq!(one.callback_url, "");
    assert_eq!(one.client_id.as_deref(), Some("17"));
    let contract = p.liveness_contract().await.expect("liveness contract");
    assert_eq!(
        contract.live_hours.day(jiff::civil::Weekday::Monday)[0].start,
        jiff::civil::time(8, 0, 0, 0)
    );
    assert_eq!(contract.live_hours.tuesday, None);
    // A topic read as unknown is never sent back.
    let e = p
        .renew_subscription(&subs[0], None)
        .await
        .expect_err("an unknown topic is not sent");
    assert!(matches!(e, MarketError::Usage { .. }), "{e:?}");
}
