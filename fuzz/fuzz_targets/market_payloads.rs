//! What the marketplace sends the client (`crates/market/src/read.rs`, `lenient.rs`): every
//! request list, the poll, the configuration and subscription answers, the liveness contract
//! and webhook payloads.
//!
//! Properties, beyond "never panics":
//! - a list is read item by item: read and unreadable items together are exactly the list's
//!   items, the unreadable ones in order and each at its place;
//! - no reason or error repeats a text value of the answer (every one is marked);
//! - what is read is written in the spec's formats and reads back to the same thing;
//! - the poll's unknown request types are plain names or `?`, known ones never repeat.
#![no_main]

use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use slotbridge_fuzz::{assert_unmarked, json, marked};
use slotbridge_market::read::{ListItem, Polled, RequestPage};
use slotbridge_market::types::*;

/// How many items the answer lists, read independently of the client: a bare array, or the
/// `data` array of an object (none when `data` is missing or null).
fn listed(v: &Value) -> Option<usize> {
    match v {
        Value::Array(items) => Some(items.len()),
        Value::Object(o) => match o.get("data") {
            None | Some(Value::Null) => Some(0),
            Some(Value::Array(items)) => Some(items.len()),
            Some(_) => None,
        },
        _ => None,
    }
}

/// Read `body` as a list of `T`; returns every message it produced.
fn list<T: ListItem + Serialize + PartialEq + std::fmt::Debug>(
    body: &[u8],
    v: Option<&Value>,
) -> Vec<String> {
    let read_at = Timestamp::UNIX_EPOCH;
    let page = match RequestPage::<T>::parse(body, read_at) {
        Ok(page) => page,
        Err(e) => return vec![e],
    };
    if let Some(n) = v.and_then(listed) {
        assert_eq!(
            page.items.len() + page.unreadable.len(),
            n,
            "items lost or invented"
        );
        let mut last = None;
        for u in &page.unreadable {
            assert!(
                u.index < n && last.is_none_or(|l| l < u.index),
                "unreadable out of place"
            );
            last = Some(u.index);
        }
    }
    for item in &page.items {
        round_trips(item);
    }
    page.unreadable.iter().map(|u| u.to_string()).collect()
}

/// Written, it reads back to what it was written from (after one write: a sub-second time is
/// written to the second).
fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(item: &T) {
    let written = serde_json::to_value(item).expect("written");
    let again: T = serde_json::from_value(written.clone())
        .unwrap_or_else(|e| panic!("what was read does not read back: {e}: {written}"));
    let rewritten = serde_json::to_value(&again).expect("written");
    assert_eq!(written, rewritten, "reading back changed it: {item:?}");
}

fn one<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(body: &[u8]) {
    if let Ok(t) = serde_json::from_slice::<T>(body) {
        round_trips(&t);
    }
}

fn everything(body: &[u8]) -> Vec<String> {
    let v = json(body);
    let v = v.as_ref();
    let mut messages = Vec::new();
    messages.extend(list::<Booking>(body, v));
    messages.extend(list::<BookingUpdate>(body, v));
    messages.extend(list::<AvailabilityRequest>(body, v));
    messages.extend(list::<PmsAppointmentChangesRequest>(body, v));
    messages.extend(list::<ClientSnapshotRequest>(body, v));
    messages.extend(list::<AttachDocumentRequest>(body, v));
    messages.extend(list::<SubscriptionErrorLog>(body, v));
    messages.extend(list::<PmsResource>(body, v));
    messages.extend(list::<PmsAppointmentType>(body, v));
    messages.extend(list::<Subscription>(body, v));
    messages.extend(list::<Feature>(body, v));
    match Polled::parse(body) {
        Ok(p) => {
            let mut known = p.known.clone();
            known.sort();
            known.dedup();
            assert_eq!(known.len(), p.known.len(), "a known request type twice");
            for u in &p.unknown {
                assert!(
                    u == "?"
                        || u.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)),
                    "unknown request type shown as {u:?}"
                );
                messages.push(u.clone());
            }
        }
        Err(e) => messages.push(e),
    }
    one::<LivenessContract>(body);
    one::<Subscription>(body);
    one::<WebhookPayload>(body);
    messages
}

fuzz_target!(|data: &[u8]| {
    everything(data);
    if let Some(v) = json(data) {
        let body = serde_json::to_vec(&marked(&v, &[])).expect("JSON");
        for message in everything(&body) {
            assert_unmarked("a marketplace reason", &message);
        }
    }
});
