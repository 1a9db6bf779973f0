//! Conformance with the published spec, both directions: every request the client sends (path,
//! method, headers, query and body) and every response the simulator returns (status and body)
//! is checked against `openapi.yaml`, and so is every webhook payload the simulator sends. A
//! short real run (both simulators and a node, from the testkit) is checked the same way: what
//! the integration actually sends, not only what this test makes the client send.
//!
//! The spec stays outside the project: it is read from `$SLOTBRIDGE_HE_OPENAPI`, else from
//! `../shared/healthengine-pms-api/openapi.yaml` next to the workspace. When it is missing the test
//! fails if `CI` is set and is skipped (with a message) otherwise.
//!
//! Bodies are validated by the `jsonschema` crate (JSON Schema 2020-12): the spec's OpenAPI 3.0
//! schemas are turned into JSON Schema once ([`to_json_schema`]), and the OpenAPI document's own
//! structure (paths, operations, parameters, responses) is walked here.
//!
//! The traffic is captured by the simulator's recorder (`--record`), which keeps header names and
//! masks the key values. Rules beyond the spec's text, each for a stated reason:
//! - 403 is accepted on every operation and checked against `ForbiddenError`: suggested-testing.md
//!   says a missing or revoked consent answers 403, though the spec lists it on few operations.
//! - `null` is accepted where the schema says `nullable` or its description says the field "can be
//!   null" / "May be null".
//! - Properties a schema does not declare are errors (to catch misspelt names), except
//!   `timestamp` in a `SubscriptionErrorLog` entry, which the quick-start guide's example shows.
//! - A `format: date` whose description says `DD-MM-YYYY` (the patient's `dob`) is checked as such.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use common::*;
use serde_json::{Map, Value, json};
use slotbridge_market::{
    ErrorLogQuery, PracticeCredentials,
    types::{ConfirmBookingInsert, RequestType, Subscription, SubscriptionTopic},
};
use slotbridge_market_sim::MarketSim;
use slotbridge_testkit::{Stack, booking_body, eventually, patient};
use std::time::Duration;

fn spec_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SLOTBRIDGE_HE_OPENAPI") {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/healthengine-pms-api/openapi.yaml");
    p.exists().then_some(p)
}

fn load_spec() -> Option<Value> {
    let Some(path) = spec_path().filter(|p| p.exists()) else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "the Healthengine openapi.yaml is missing (set SLOTBRIDGE_HE_OPENAPI); CI requires it"
            );
        }
        eprintln!("SKIPPED conformance: openapi.yaml not found (set SLOTBRIDGE_HE_OPENAPI)");
        return None;
    };
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    Some(
        serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display())),
    )
}

// ---- the spec's schemas, checked by the `jsonschema` crate ---------------------------------------

/// The `$defs` suffix of a component's open variant: the same schema without the closure of its
/// own properties, for use as a part of an `allOf` (the `allOf` closes them all together).
const OPEN: &str = "__open";

/// The spec's schemas as JSON Schema 2020-12, validated by `jsonschema` (compiled once per schema
/// checked). OpenAPI 3.0's dialect and the rules of the module documentation are turned into
/// JSON Schema by [`to_json_schema`]; the OpenAPI document itself (paths, operations, responses,
/// `$ref`s to responses and request bodies) is walked here.
struct Schemas<'a> {
    spec: &'a Value,
    defs: Map<String, Value>,
    compiled: RefCell<HashMap<String, Rc<jsonschema::Validator>>>,
}

impl<'a> Schemas<'a> {
    fn new(spec: &'a Value) -> Self {
        let components = spec["components"]["schemas"]
            .as_object()
            .expect("the spec has components.schemas");
        let mut defs = Map::new();
        for (name, schema) in components {
            defs.insert(name.clone(), to_json_schema(schema, Closure::Closed));
            defs.insert(
                format!("{name}{OPEN}"),
                to_json_schema(schema, Closure::Open),
            );
        }
        // The quick-start guide's example of an error log entry carries a `timestamp`.
        if let Some(props) = defs
            .get_mut("SubscriptionErrorLog")
            .and_then(|d| d.get_mut("properties"))
            .and_then(Value::as_object_mut)
        {
            props.insert("timestamp".into(), json!({"type": "string"}));
        }
        Schemas {
            spec,
            defs,
            compiled: RefCell::default(),
        }
    }

    /// An OpenAPI `$ref` (a response, a request body) followed to what it names.
    fn resolve<'b>(&'b self, item: &'b Value) -> &'b Value {
        match item.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let target = self
                    .spec
                    .pointer(r.trim_start_matches('#'))
                    .unwrap_or_else(|| panic!("unresolvable $ref {r}"));
                self.resolve(target)
            }
            None => item,
        }
    }

    /// Every way `v` breaks the OpenAPI `schema`, each as `{at}{path}: {what}`.
    fn validate(&self, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
        let root = to_json_schema(schema, Closure::Closed);
        let key = root.to_string();
        let validator = self
            .compiled
            .borrow_mut()
            .entry(key)
            .or_insert_with(|| Rc::new(self.compile(root)))
            .clone();
        for e in validator.iter_errors(v) {
            errs.push(format!(
                "{at}{}: {e}",
                dotted(&e.instance_path().to_string())
            ));
        }
    }

    fn compile(&self, root: Value) -> jsonschema::Validator {
        let mut defs = self.defs.clone();
        defs.insert("__checked".into(), root);
        let doc = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": defs,
            "$ref": "#/$defs/__checked",
        });
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .with_format("he-datetime", |s: &str| {
                shape_matches("dddd-dd-dd dd:dd:dd", s)
            })
            .with_format("he-date", |s: &str| shape_matches("dddd-dd-dd", s))
            .with_format("he-dob", |s: &str| shape_matches("dd-dd-dddd", s))
            .with_format("he-time", |s: &str| shape_matches("dd:dd", s))
            .build(&doc)
            .unwrap_or_else(|e| panic!("the spec's schema does not compile: {e}"))
    }
}

/// Whether a schema closes its own properties (the rule "properties a schema does not declare
/// are errors"), or leaves that to the `allOf` it is a part of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closure {
    Closed,
    Open,
}

/// An OpenAPI 3.0 schema as JSON Schema 2020-12, with the rules of the module documentation:
/// - `$ref: #/components/schemas/X` points into `$defs` (the open variant inside an `allOf`);
/// - `nullable: true`, or a description that says "null", allows `null`;
/// - a schema declaring properties (or an `allOf`) refuses the others
///   (`unevaluatedProperties: false`, which sees through `allOf`), and is an object;
/// - the spec's formats become checks of their own: `datetime` (`YYYY-MM-DD HH:MM:SS`), `date`
///   (`YYYY-MM-DD`, or `DD-MM-YYYY` where the description says so), `time` (`HH:MM`); the
///   descriptive ones (`int64`, `base64`, `sha1`, `m`) are dropped.
fn to_json_schema(schema: &Value, closure: Closure) -> Value {
    let Some(obj) = schema.as_object() else {
        return schema.clone();
    };
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("a schema $ref outside components.schemas: {r}"));
        let suffix = if closure == Closure::Open { OPEN } else { "" };
        return json!({"$ref": format!("#/$defs/{name}{suffix}")});
    }
    let description = obj
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut out = Map::new();
    for (k, v) in obj {
        let converted = match k.as_str() {
            "properties" => Value::Object(
                v.as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, p)| (name.clone(), to_json_schema(p, Closure::Closed)))
                    .collect(),
            ),
            "items" => to_json_schema(v, Closure::Closed),
            "allOf" => Value::Array(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|part| to_json_schema(part, Closure::Open))
                    .collect(),
            ),
            "format" => match he_format(v.as_str(), &description) {
                Some(f) => json!(f),
                None => continue,
            },
            "nullable" | "example" | "xml" | "discriminator" | "externalDocs" | "readOnly"
            | "writeOnly" | "deprecated" => continue,
            _ => v.clone(),
        };
        out.insert(k.clone(), converted);
    }
    let declares = obj.contains_key("properties") || obj.contains_key("allOf");
    if obj.contains_key("properties") && !obj.contains_key("type") {
        out.insert("type".into(), json!("object"));
    }
    if declares && closure == Closure::Closed {
        out.insert("unevaluatedProperties".into(), json!(false));
    }
    let nullable = obj.get("nullable") == Some(&Value::Bool(true)) || description.contains("null");
    if nullable {
        json!({"anyOf": [{"type": "null"}, Value::Object(out)]})
    } else {
        Value::Object(out)
    }
}

/// The format check standing in for an OpenAPI `format` (see [`to_json_schema`]).
fn he_format(format: Option<&str>, description: &str) -> Option<&'static str> {
    match format? {
        "datetime" => Some("he-datetime"),
        "date" if description.contains("dd-mm-yyyy") => Some("he-dob"),
        "date" => Some("he-date"),
        "time" => Some("he-time"),
        _ => None,
    }
}

/// A JSON pointer (`/data/0/patient/dob`) as a path (`.data[0].patient.dob`).
fn dotted(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|seg| {
            if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                format!("[{seg}]")
            } else {
                format!(".{}", seg.replace("~1", "/").replace("~0", "~"))
            }
        })
        .collect()
}

/// `d` is a digit, anything else itself.
fn shape_matches(pattern: &str, text: &str) -> bool {
    pattern.len() == text.len()
        && pattern.bytes().zip(text.bytes()).all(|(p, t)| {
            if p == b'd' {
                t.is_ascii_digit()
            } else {
                p == t
            }
        })
}

/// The spec path template matching a concrete path (literal segments win over parameters).
fn match_path<'a>(spec: &'a Value, path: &str) -> Option<(&'a str, &'a Value)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut best: Option<(usize, &str, &Value)> = None;
    for (template, item) in spec["paths"].as_object()? {
        let tsegs: Vec<&str> = template.trim_matches('/').split('/').collect();
        if tsegs.len() != segs.len() {
            continue;
        }
        let mut literal = 0;
        let ok = tsegs.iter().zip(&segs).all(|(t, s)| {
            if t.starts_with('{') {
                !s.is_empty()
            } else {
                literal += 1;
                t == s
            }
        });
        if ok && best.is_none_or(|(l, _, _)| literal > l) {
            best = Some((literal, template, item));
        }
    }
    best.map(|(_, t, i)| (t, i))
}

fn check_call(spec: &Value, v: &Schemas<'_>, call: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let method = call["method"].as_str().unwrap_or("").to_ascii_lowercase();
    let full = call["path"].as_str().unwrap_or("");
    let Some(path) = full.strip_prefix("/pms-api/v1") else {
        return vec![format!("{full}: not under /pms-api/v1")];
    };
    let here = format!("{} {path}", method.to_uppercase());
    let Some((template, item)) = match_path(spec, path) else {
        return vec![format!("{here}: no such path in the spec")];
    };
    let Some(op) = item.get(&method) else {
        return vec![format!("{here}: {template} has no {method} operation")];
    };
    // Request: headers (security) and User-Agent.
    let headers = &call["headers"];
    for h in ["api-key", "practice-id", "practice-key"] {
        if headers.get(h).is_none() {
            errs.push(format!("{here}: header {h} is missing"));
        }
    }
    let ua = headers["user-agent"].as_str().unwrap_or("");
    let ua_ok = ua
        .split_once(" (")
        .and_then(|(_, rest)| rest.split_once(") "))
        .is_some_and(|(email, env)| email.contains('@') && !env.is_empty());
    if !ua_ok {
        errs.push(format!(
            "{here}: User-Agent {ua:?} is not 'NAME (EMAIL) ENVIRONMENT'"
        ));
    }
    // Query parameters must be declared.
    let declared: Vec<&str> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str())
        .collect();
    if let Some(q) = call["query"].as_str() {
        for pair in q.split('&') {
            let name = pair.split('=').next().unwrap_or("");
            if !declared.contains(&name) {
                errs.push(format!("{here}: query parameter {name:?} is not declared"));
            }
        }
    }
    // Request body.
    let body = &call["body"];
    match op.get("requestBody") {
        Some(rb) => {
            let rb = v.resolve(rb);
            let required = rb["required"].as_bool().unwrap_or(false);
            match rb.pointer("/content/application~1json/schema") {
                Some(schema) if !body.is_null() => {
                    v.validate(schema, body, &format!("{here} request"), &mut errs)
                }
                Some(_) if required => errs.push(format!("{here}: the request body is required")),
                _ => {}
            }
        }
        None if !body.is_null() => {
            errs.push(format!("{here}: sends a body where the spec has none"))
        }
        None => {}
    }
    // Response status and body.
    let status = call["status"].as_u64().unwrap_or(0).to_string();
    let response = match op["responses"].get(&status) {
        Some(r) => v.resolve(r),
        None if status == "403" => v.resolve(&spec["components"]["responses"]["ForbiddenError"]),
        None => {
            errs.push(format!(
                "{here}: status {status} is not a documented response"
            ));
            return errs;
        }
    };
    let resp = &call["response"];
    match response.pointer("/content/application~1json/schema") {
        Some(schema) => v.validate(
            schema,
            resp,
            &format!("{here} {status} response"),
            &mut errs,
        ),
        None if !resp.is_null() => errs.push(format!(
            "{here}: status {status} has a body where the spec has none: {resp}"
        )),
        None => {}
    }
    errs
}

#[tokio::test]
async fn client_requests_and_simulator_responses_follow_the_spec() {
    let Some(spec) = load_spec() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("calls.jsonl");
    let w = world_with(MarketSim::builder().record(&file).per_page(2)).await;

    // Webhook payloads are captured raw.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(v);
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, hook).await });

    // Every endpoint the client covers, successes and failures.
    let p = &w.practice;
    p.set_liveness_contract(&always_live()).await.unwrap();
    p.liveness_contract().await.unwrap();
    p.send_pms_resources(&resources()).await.unwrap();
    p.pms_resources().await.unwrap();
    p.find_pms_resource("R1").await.unwrap();
    p.send_pms_appointment_types(&types()).await.unwrap();
    p.pms_appointment_types().await.unwrap();
    p.find_pms_appointment_type("HE").await.unwrap();
    let _ = p
        .send_pms_resources(&[resources()[0].clone(), resources()[0].clone()])
        .await
        .unwrap_err();
    w.post(&format!("/practices/{}/auto-link", w.pid()), json!({}))
        .await;
    let sub = p
        .create_subscription(&Subscription {
            id: None,
            client_id: None,
            topic: SubscriptionTopic::All,
            callback_url: hook_url.clone(),
            start_at: None,
            expire_at: None,
        })
        .await
        .unwrap();
    p.renew_subscription(
        &sub,
        Some(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(48)),
    )
    .await
    .unwrap();
    p.subscriptions().await.unwrap();
    p.subscription(sub.id.as_deref().unwrap()).await.unwrap();
    let day = future_date(2);
    let mut with_id = snapshot("R1", day, &[("09:00", "12:00", 1800)]);
    with_id.id = Some("a".into());
    p.send_availability(&snapshot("R2", day, &[("09:00", "12:00", 0)]))
        .await
        .unwrap();
    p.send_availability_batch(&[with_id.clone(), snapshot("R9", day, &[])])
        .await
        .unwrap();
    p.send_availability_batch(&[with_id]).await.unwrap();
    let _ = p
        .send_availability(&snapshot("R1", day, &[("12:00", "09:00", 900)]))
        .await
        .unwrap_err();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(w.book_first(&day.to_string()).await.0);
    }
    p.poll().await.unwrap();
    p.booking_requests(1).await.unwrap();
    p.booking_requests(2).await.unwrap();
    let confirm = ConfirmBookingInsert {
        pms_appointment_ids: vec!["A1".into()],
        pms_patient_id: "P1".into(),
        ..Default::default()
    };
    p.confirm_insert(ids[0], &confirm).await.unwrap();
    p.confirm_insert(ids[1], &confirm).await.unwrap();
    p.confirm_insert(ids[2], &confirm).await.unwrap();
    p.reject_insert(ids[3], Some("taken")).await.unwrap();
    p.availability_requests(1).await.unwrap();
    w.post(&format!("/bookings/{}/cancel", ids[0]), json!({}))
        .await;
    w.post(&format!("/bookings/{}/cancel", ids[1]), json!({}))
        .await;
    let ups = p.booking_update_requests(1).await.unwrap();
    p.confirm_update(ids[0], ups.items[0].request_id)
        .await
        .unwrap();
    p.reject_update(ids[1], ups.items[1].request_id, None)
        .await
        .unwrap();
    w.post(
        &format!("/bookings/{}/request-appointment-changes", ids[1]),
        json!({}),
    )
    .await;
    w.post(
        &format!("/bookings/{}/request-appointment-changes", ids[2]),
        json!({}),
    )
    .await;
    p.pms_appointment_change_requests(1).await.unwrap();
    p.no_pms_appointment_change(ids[1]).await.unwrap();
    p.did_not_attend(ids[2], Some("no show")).await.unwrap();
    p.cancel(ids[2], None).await.unwrap();
    let _ = p.confirm_insert(999_999, &confirm).await.unwrap_err();
    p.available_documents_requests(1).await.unwrap();
    p.upload_documents_requests(1).await.unwrap();
    p.client_snapshot_requests(1).await.unwrap();
    p.attach_document_requests(1).await.unwrap();
    let _: slotbridge_market::Requests<Value> =
        p.all_requests(RequestType::Availability).await.unwrap();
    p.features().await.unwrap();
    p.feature("documents").await.unwrap();
    p.enable_feature("documents").await.unwrap();
    p.disable_feature("documents").await.unwrap();
    let _ = p.feature("nope").await.unwrap_err();
    w.post(
        &format!("/practices/{}/refresh-resources", w.pid()),
        json!({}),
    )
    .await;
    p.subscription_error_log(&ErrorLogQuery {
        from: Some(jiff::Timestamp::UNIX_EPOCH),
        page: Some(1),
        ..Default::default()
    })
    .await
    .unwrap();
    p.delete_subscription(sub.id.as_deref().unwrap())
        .await
        .unwrap();
    let _ = p
        .subscription(sub.id.as_deref().unwrap())
        .await
        .unwrap_err();
    let _ = w
        .client
        .practice(PracticeCredentials::new(w.pid(), "wrong"))
        .poll()
        .await
        .unwrap_err();
    let _ = client_for(&w.sim, "wrong")
        .practice(PracticeCredentials::new(w.pid(), &w.practice_key))
        .poll()
        .await
        .unwrap_err();
    // A wrong practice key is a 401 (above); a revoked consent is a 403.
    let revoked = w
        .http
        .delete(w.url(&format!("/practices/{}/consents/{CONSUMER}", w.pid())))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let _ = w.practice.poll().await.unwrap_err();

    // Both directions of every recorded call.
    let v = Schemas::new(&spec);
    let text = std::fs::read_to_string(&file).unwrap();
    let calls: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(calls.len() >= 45, "only {} calls recorded", calls.len());
    let mut errs = Vec::new();
    let mut statuses = std::collections::BTreeSet::new();
    for c in &calls {
        statuses.insert(c["status"].as_u64().unwrap_or(0));
        errs.extend(check_call(&spec, &v, c));
    }
    assert!(
        errs.is_empty(),
        "{} violations:\n{}",
        errs.len(),
        errs.join("\n")
    );
    for s in [200, 201, 204, 400, 401, 403, 404] {
        assert!(
            statuses.contains(&s),
            "status {s} was exercised: {statuses:?}"
        );
    }

    // Webhook payloads against the callbacks' schemas.
    let mut payloads = Vec::new();
    while payloads.len() < 5 {
        match tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv()).await {
            Ok(Some(p)) => payloads.push(p),
            _ => break,
        }
    }
    assert!(payloads.len() >= 5, "webhooks received: {payloads:?}");
    let callbacks = &spec["paths"]["/subscription"]["post"]["callbacks"];
    for pl in &payloads {
        let t = format!(
            "requests.{}",
            pl["data"]["requestType"].as_str().unwrap_or("")
        );
        let schema =
            callbacks[&t][&t]["post"]["requestBody"]["content"]["application/json"]["schema"]
                .clone();
        assert!(!schema.is_null(), "no callback schema for {t}");
        let mut e = Vec::new();
        v.validate(&schema, pl, &format!("webhook {t}"), &mut e);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(pl["topic"], "requests.*", "the topic is the subscription's");
    }
}

/// Issue 13: what a node actually sends in a short end-to-end run (a real stack: both
/// simulators, a node on SQLite, Harbour Dental linked) is checked against the spec by this
/// validator too, not only by the strict simulator: configuration, availability, the poll, a
/// booking confirmed, a cancellation answered and an appointment-change request answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requests_a_node_sends_in_a_real_run_follow_the_spec() {
    let Some(spec) = load_spec() else { return };
    let w = Stack::builder()
        .record()
        .start()
        .await
        .expect("a stack on SQLite");
    let (_, slots) = w.linked_with_slots(Duration::from_secs(40), 1).await;
    let pid = w.harbour().practice_id.clone();
    let person = |first: &str| {
        patient(
            first,
            "Conformance",
            "1980-03-04",
            "0411 222 333",
            &format!("{first}@example.com"),
        )
    };
    let kept = w.book(&pid, &booking_body(&slots[0], person("Ada"))).await;
    let cancelled = w
        .book(&pid, &booking_body(&slots[slots.len() - 1], person("Bea")))
        .await;
    for id in [kept, cancelled] {
        let b = w.answered(id, Duration::from_secs(25)).await;
        assert_eq!(b["status"], "Confirmed", "{b}");
    }
    w.cancel_booking(cancelled).await;
    let asked = w
        .http
        .post(w.market(&format!("/bookings/{kept}/request-appointment-changes")))
        .json(&json!({}))
        .send()
        .await
        .expect("request appointment changes");
    assert!(asked.status().is_success(), "{}", asked.status());
    let lines = |w: &Stack| {
        std::fs::read_to_string(w.record())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect::<Vec<Value>>()
    };
    let answered = |calls: &[Value], what: &str| {
        calls
            .iter()
            .any(|c| c["method"] == "POST" && c["path"].as_str().is_some_and(|p| p.contains(what)))
    };
    eventually(
        "the cancellation and the appointment-change request answered",
        Duration::from_secs(25),
        || async {
            let calls = lines(&w);
            (answered(&calls, "Update") && answered(&calls, "noPmsAppointmentChange")).then_some(())
        },
    )
    .await;

    let calls = lines(&w);
    let v = Schemas::new(&spec);
    let mut errs = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for c in &calls {
        errs.extend(check_call(&spec, &v, c));
        let path = c["path"].as_str().unwrap_or_default();
        let shape: Vec<&str> = path
            .split('/')
            .map(|s| {
                if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                    "{id}"
                } else {
                    s
                }
            })
            .collect();
        seen.insert(format!(
            "{} {}",
            c["method"].as_str().unwrap_or_default(),
            shape.join("/")
        ));
    }
    assert!(
        errs.is_empty(),
        "{} violations in {} calls:\n{}",
        errs.len(),
        calls.len(),
        errs.join("\n")
    );
    for wanted in [
        "POST /pms-api/v1/config/livenessContract",
        "POST /pms-api/v1/config/pmsResources/snapshot",
        "POST /pms-api/v1/config/pmsAppointmentTypes/snapshot",
        "GET /pms-api/v1/requests",
        "GET /pms-api/v1/requests/bookings",
        "POST /pms-api/v1/bookings/{id}/confirmInsert",
        "GET /pms-api/v1/requests/bookingUpdates",
        "GET /pms-api/v1/requests/pmsAppointmentChanges",
    ] {
        assert!(seen.contains(wanted), "{wanted} was not sent: {seen:#?}");
    }
    assert!(
        seen.iter()
            .any(|s| s.starts_with("POST /pms-api/v1/availability/snapshot")),
        "no availability sent: {seen:#?}"
    );
    let with_body = calls.iter().filter(|c| !c["body"].is_null()).count();
    assert!(with_body >= 6, "only {with_body} request bodies checked");
}

#[test]
fn the_validator_catches_what_it_should() {
    let Some(spec) = load_spec() else { return };
    let v = Schemas::new(&spec);
    let check = |schema: Value, value: Value| {
        let mut e = Vec::new();
        v.validate(&schema, &value, "b", &mut e);
        e
    };
    let booking = json!({"$ref": "#/components/schemas/Booking"});
    let e = check(
        booking.clone(),
        json!({"bookingId": "7", "bookedTime": "2024-01-01T00:00:00Z", "bookingStatus": "Done",
               "patient": {"dob": "1990-02-23"}, "pmsResourceId": null, "extra": 1}),
    );
    let all = e.join("\n");
    for needle in [
        "b.bookingId: \"7\" is not of type \"integer\"",
        "b.bookedTime: ",
        "b.bookingStatus: ",
        "b.patient.dob: ",
        "'extra'",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert_eq!(e.len(), 5, "{all}");
    assert!(
        !all.contains("pmsResourceId"),
        "'May be null' allows null:\n{all}"
    );
    // The spec's formats: a dob is DD-MM-YYYY, a booked time YYYY-MM-DD HH:MM:SS.
    assert_eq!(
        check(
            booking,
            json!({"bookingId": 7, "bookedTime": "2024-01-01 00:00:00",
                   "patient": {"dob": "23-02-1990", "gender": null}})
        ),
        Vec::<String>::new()
    );
    let e = check(
        json!({"$ref": "#/components/schemas/PmsResource"}),
        json!({"pmsResourceId": "1"}),
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("b: ") && e[0].contains("pmsResourceName"),
        "{e:?}"
    );
    // An allOf takes the properties of all its parts, and only those.
    let attach = json!({"$ref": "#/components/schemas/AttachDocumentRequest"});
    let e = check(attach.clone(), json!({"requestId": 3, "bookingId": 9}));
    assert!(e.is_empty(), "{e:?}");
    let e = check(attach, json!({"requestId": 3, "surprise": true}));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("'surprise'"), "{e:?}");
    // `nullable: true`.
    let reject = json!({"$ref": "#/components/schemas/RejectBookingInsert"});
    assert!(check(reject.clone(), json!({"reason": null})).is_empty());
    assert_eq!(check(reject, json!({"reason": 3})).len(), 1);
    assert!(
        match_path(&spec, "/bookings/12/confirmUpdate/4")
            .is_some_and(|(t, _)| t == "/bookings/{bookingId}/confirmUpdate/{requestId}")
    );
    assert!(
        match_path(&spec, "/config/pmsResources/findById")
            .is_some_and(|(t, _)| t == "/config/pmsResources/findById")
    );
}
