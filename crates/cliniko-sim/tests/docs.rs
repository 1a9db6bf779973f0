//! The documentation is the oracle: every example request of the published Cliniko API
//! documentation (each section's `curl` blocks, and the readme's patient filter examples) is
//! replayed against a fresh simulator holding a small practice, and the answer's shape (field
//! names and JSON types, recursively) is compared with the example response that follows it
//! in the markdown. The files are read at test time from `SLOTBRIDGE_CLINIKO_DOCS` (default:
//! `../shared/cliniko-api` beside the workspace); without them the test prints `SKIPPED` on a
//! developer machine and fails under CI.
//!
//! Rules of the comparison:
//! - every field of the example is in the answer, with the example's JSON type; a `null` in
//!   the example says nothing about the type; an empty string in the example ("no value")
//!   also matches `null`;
//! - the answer may be `null` where the example shows a value only for the fields listed in
//!   [`NULLABLE`] (values that are unset in a fresh practice, and which other examples or the
//!   text show as null);
//! - the answer has no field that appears nowhere in the section's examples;
//! - a list of the example that has items must have items in the answer, each shaped like
//!   one of the example's items;
//! - "A status code of `204 no content`" in the text means exactly 204; a `Headers {
//!   Location: ... }` block means the answer carries `Location`.
//!
//! The documentation's own mistakes are listed in [`ERRATA`] and the examples of what the
//! simulator does not simulate in [`SKIPPED`], each with its reason.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::Value;
use slotbridge_cliniko_sim::{ClinikoSim, DeskAction};
use tower::ServiceExt as _;

/// Fields a fresh practice may leave `null` where an example shows a value.
const NULLABLE: &[&str] = &[
    "accepted_privacy_policy",
    "address_2",
    "advertiser_id",
    "archived_at",
    "booking_ip_address",
    "calendar_info",
    "cancellation_note",
    "cancellation_reason",
    "cancelled_at",
    "category",
    "concession_type",
    "custom_fields",
    "deleted_at",
    "description",
    "display_name",
    "gender",
    "gender_identity",
    "logo_url",
    "notes",
    "pixel_id",
    "policy",
    "preferred_first_name",
    "pronouns",
    "referring_doctor",
    "sex",
    "time_zone",
    "tracking_id",
    "max_appointments_per_day_segment",
    "merged_at",
    "merged_with_patient",
];

/// Mistakes of the documentation's examples: (file, path in the example) not compared.
const ERRATA: &[(&str, &str, &str)] = &[
    (
        "businesses.md",
        "total_entires",
        "a misspelling of total_entries, which every other list has",
    ),
    (
        "practitioners.md",
        "total_entries",
        "shown as a string holding an id; a count everywhere else",
    ),
    (
        "practitioners.md",
        "practitioners[].id",
        "the inactive example shows a number; every other practitioner id is a string",
    ),
];

/// Example requests not replayed: (file, method, path prefix, reason).
const SKIPPED: &[(&str, &str, &str, &str)] = &[
    (
        "appointments.md",
        "*",
        "/",
        "removed from the documentation in 2018 (SOURCE.md); the endpoint predates group appointments",
    ),
    (
        "readme.md",
        "*",
        "/appointments",
        "the legacy /appointments endpoint (see appointments.md)",
    ),
    (
        "attendees.md",
        "*",
        "/",
        "attendees belong to group appointments, which are not simulated",
    ),
    (
        "group_appointments.md",
        "*",
        "/",
        "group appointments are not simulated: an integration books individual appointments",
    ),
    (
        "bookings.md",
        "GET",
        "/bookings/",
        "the example is a group appointment, which is not simulated (the list example is replayed)",
    ),
];

fn docs_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SLOTBRIDGE_CLINIKO_DOCS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/cliniko-api")
        });
    dir.join("sections").is_dir().then_some(dir)
}

#[derive(Debug)]
struct Block {
    lang: String,
    text: String,
    /// The prose between the previous block and this one.
    before: String,
}

fn blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut prose = String::new();
    let mut open: Option<(String, String)> = None;
    for line in md.lines() {
        let fence = line.trim_start().starts_with("```");
        match (&mut open, fence) {
            (None, true) => {
                let t = line.trim();
                // A one-line ```X``` is inline code, not a block.
                if t.len() > 6 && t.ends_with("```") {
                    prose.push_str(line);
                    prose.push('\n');
                    continue;
                }
                open = Some((t.trim_start_matches('`').trim().to_owned(), String::new()));
            }
            (Some((lang, text)), true) => {
                out.push(Block {
                    lang: std::mem::take(lang),
                    text: std::mem::take(text),
                    before: std::mem::take(&mut prose),
                });
                open = None;
            }
            (Some((_, text)), false) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, false) => {
                prose.push_str(line);
                prose.push('\n');
            }
        }
    }
    out
}

/// Shell words, with single and double quotes, after joining `\` continuations.
fn words(cmd: &str) -> Vec<String> {
    let joined = cmd.replace("\\\n", " ");
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut has = false;
    for c in joined.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                has = true;
            }
            None if c.is_whitespace() => {
                if has || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            None => cur.push(c),
        }
    }
    if has || !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[derive(Debug)]
struct Example {
    method: String,
    /// Path after `/v1`, with the query.
    target: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    response: Option<Value>,
    expect_204: bool,
    expect_location: bool,
    /// The example response that follows does not parse as JSON.
    unparsable: Option<String>,
}

/// Remove the trailing commas some examples have before `}` or `]`.
fn lenient_json(s: &str) -> Result<Value, serde_json::Error> {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut in_str = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if in_str {
            out.push(c);
            if c == '\\' && i + 1 < chars.len() {
                out.push(chars[i + 1]);
                i += 1;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if !matches!(next, Some('}') | Some(']')) {
                out.push(c);
            }
        } else {
            out.push(c);
        }
        i += 1;
    }
    serde_json::from_str(&out)
}

fn examples(md: &str) -> Vec<Example> {
    let bs = blocks(md);
    let mut out: Vec<Example> = Vec::new();
    for b in &bs {
        let text = b.text.trim();
        if b.before.contains("204 no content")
            && let Some(last) = out.last_mut()
        {
            last.expect_204 = true;
        }
        if text.starts_with("curl") {
            let w = words(text);
            let mut url = w.get(1).cloned().unwrap_or_default();
            let mut i = 2;
            while url.ends_with('/') && i < w.len() && !w[i].starts_with('-') {
                url.push_str(&w[i]);
                i += 1;
            }
            let (mut method, mut headers, mut body) = ("GET".to_owned(), Vec::new(), None);
            while i < w.len() {
                match w[i].as_str() {
                    "-X" => {
                        method = w[i + 1].clone();
                        i += 1;
                    }
                    "-H" => {
                        if let Some((k, v)) = w[i + 1].split_once(':') {
                            headers.push((k.trim().to_owned(), v.trim().to_owned()));
                        }
                        i += 1;
                    }
                    "-d" => {
                        body = Some(w[i + 1].clone());
                        i += 1;
                    }
                    "-u" => i += 1,
                    _ => {}
                }
                i += 1;
            }
            let target = url
                .split_once("/v1")
                .map(|(_, rest)| rest.to_owned())
                .unwrap_or_default();
            out.push(Example {
                method,
                target,
                headers,
                body,
                response: None,
                expect_204: false,
                expect_location: false,
                unparsable: None,
            });
            continue;
        }
        let Some(last) = out.last_mut() else { continue };
        if last.response.is_some() || last.unparsable.is_some() {
            continue;
        }
        if text.starts_with("Headers {") && text.contains("Location") {
            last.expect_location = true;
        } else if b.lang == "json" {
            match lenient_json(&b.text) {
                Ok(v) => last.response = Some(v),
                Err(e) => last.unparsable = Some(e.to_string()),
            }
        }
    }
    // The prose after the last block may hold the last example's 204.
    if let Some(tail) = md.rsplit("```").next()
        && tail.contains("204 no content")
        && let Some(last) = out.last_mut()
    {
        last.expect_204 = true;
    }
    out
}

/// The ids of the practice every example is replayed against.
struct Ids {
    key: String,
    business: u64,
    practitioner: u64,
    appointment_type: u64,
    patient: u64,
    appointment: u64,
    unavailable_block: u64,
    availability_block: u64,
    daily_availability: u64,
    user: u64,
}

fn fixture() -> (ClinikoSim, Ids) {
    let clock = std::sync::Arc::new(slotbridge_domain::clock::ManualClock::new(common::t0()));
    let sim = ClinikoSim::builder().clock(clock).rate_limit(None).build();
    let p = sim.seed(common::practice("au1", 3)).unwrap();
    let acct = p.account_id;
    let id = |s: &String| s.parse::<u64>().unwrap();
    let (b, pr, t) = (
        id(&p.business_ids[0]),
        id(&p.practitioner_ids[0]),
        id(&p.appointment_type_ids[0]),
    );
    let desk = |a: DeskAction| sim.desk(acct, a).unwrap().id;
    let book = |at: &str| {
        desk(DeskAction::Book {
            business_id: b,
            practitioner_id: pr,
            appointment_type_id: t,
            patient_id: Some(p.patient_ids[0]),
            starts_at: at.parse().unwrap(),
            ends_at: None,
            notes: Some("first visit".into()),
        })
        .unwrap()
    };
    let appointment = book("2026-03-02T00:00:00Z");
    let cancelled = book("2026-03-02T01:00:00Z");
    desk(DeskAction::Cancel {
        appointment_id: cancelled,
        reason: 50,
    });
    let deleted = book("2026-03-02T02:00:00Z");
    desk(DeskAction::Delete {
        appointment_id: deleted,
    });
    let block = |at: &str| {
        let s: jiff::Timestamp = at.parse().unwrap();
        desk(DeskAction::Block {
            business_id: b,
            practitioner_id: pr,
            starts_at: s,
            ends_at: s.checked_add(jiff::SignedDuration::from_mins(30)).unwrap(),
        })
        .unwrap()
    };
    let unavailable_block = block("2026-03-02T03:00:00Z");
    let gone = block("2026-03-02T04:00:00Z");
    desk(DeskAction::Unblock { block_id: gone });
    let availability_block = desk(DeskAction::OpenTime {
        business_id: b,
        practitioner_id: pr,
        starts_at: "2026-03-07T22:00:00Z".parse().unwrap(),
        ends_at: "2026-03-08T01:00:00Z".parse().unwrap(),
    })
    .unwrap();
    let daily_availability = desk(DeskAction::SetDailyAvailability {
        business_id: b,
        practitioner_id: pr,
        day_of_week: 6,
        intervals: vec![("09:00".into(), "12:00".into())],
    })
    .unwrap();
    desk(DeskAction::SetAppointmentType {
        appointment_type_id: id(&p.appointment_type_ids[1]),
        duration_in_minutes: None,
        show_in_online_bookings: None,
        archived: Some(true),
    });
    desk(DeskAction::ArchivePatient {
        patient_id: p.patient_ids[1],
        archived: true,
    });
    desk(DeskAction::DeletePatient {
        patient_id: p.patient_ids[2],
    });
    let ids = Ids {
        key: p.api_key.clone(),
        business: b,
        practitioner: pr,
        appointment_type: t,
        patient: p.patient_ids[0],
        appointment,
        unavailable_block,
        availability_block,
        daily_availability,
        user: 1,
    };
    (sim, ids)
}

/// The example's path with its ids replaced by the fixture's, and the dates of an available
/// times request moved to today and tomorrow.
fn rewrite_target(target: &str, ids: &Ids) -> String {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let segs: Vec<&str> = path.split('/').collect();
    let mut out = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        let prev = if i > 0 { segs[i - 1] } else { "" };
        if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) {
            let id = match prev {
                "businesses" => ids.business,
                "practitioners" => ids.practitioner,
                "appointment_types" => ids.appointment_type,
                "patients" => ids.patient,
                "individual_appointments" | "bookings" => ids.appointment,
                "unavailable_blocks" => ids.unavailable_block,
                "availability_blocks" => ids.availability_block,
                "daily_availabilities" => ids.daily_availability,
                "users" => ids.user,
                other => panic!("no fixture id for /{other}/{s}"),
            };
            out.push(id.to_string());
        } else {
            out.push((*s).to_owned());
        }
    }
    let mut path = out.join("/");
    if !query.is_empty() {
        let q = if path.ends_with("/available_times") {
            "from=2026-03-01&to=2026-03-02".to_owned()
        } else {
            query.to_owned()
        };
        path = format!("{path}?{q}");
    }
    path
}

fn rewrite_body(body: &str, ids: &Ids) -> String {
    let mut v: Value = serde_json::from_str(body).expect("example body is JSON");
    if let Value::Object(m) = &mut v {
        for (k, val) in m.iter_mut() {
            let id = match k.as_str() {
                "business_id" => ids.business,
                "practitioner_id" => ids.practitioner,
                "appointment_type_id" => ids.appointment_type,
                "patient_id" => ids.patient,
                _ => continue,
            };
            *val = Value::String(id.to_string());
        }
        // The examples' times are on their own (past) dates; move them onto the fixture's
        // diary day so an update keeps its appointment's start before its end.
        for val in m.values_mut() {
            if let Value::String(s) = val
                && s.len() == 20
                && s.as_bytes()[10] == b'T'
                && s.ends_with('Z')
            {
                *s = format!("2026-03-02{}", &s[10..]);
            }
        }
    }
    v.to_string()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn all_keys(v: &Value, into: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                into.insert(k.clone());
                all_keys(x, into);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| all_keys(x, into)),
        _ => {}
    }
}

struct Cmp<'a> {
    file: &'a str,
    keys: &'a BTreeSet<String>,
}

impl Cmp<'_> {
    fn erratum(&self, path: &str) -> bool {
        ERRATA.iter().any(|(f, p, _)| *f == self.file && *p == path)
    }

    fn shape(&self, doc: &Value, ours: &Value, path: &str, key: &str, errs: &mut Vec<String>) {
        if self.erratum(path) {
            return;
        }
        match (doc, ours) {
            (Value::Null, _) => {}
            (Value::String(s), Value::Null) if s.is_empty() => {}
            (_, Value::Null) if NULLABLE.contains(&key) => {}
            (Value::Object(d), Value::Object(o)) => {
                for (k, dv) in d {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    if self.erratum(&p) {
                        continue;
                    }
                    match o.get(k) {
                        Some(ov) => self.shape(dv, ov, &p, k, errs),
                        // "The pagination links will only be included if they are relevant".
                        None if path.ends_with("links") && (k == "next" || k == "previous") => {}
                        None => errs.push(format!("{p}: documented, missing")),
                    }
                }
                for k in o.keys() {
                    if !self.keys.contains(k) {
                        errs.push(format!("{path}.{k}: not in the documentation"));
                    }
                }
            }
            (Value::Array(d), Value::Array(o)) => {
                if d.is_empty() {
                    return;
                }
                if o.is_empty() {
                    if !path.contains('.') && !path.contains('[') {
                        errs.push(format!("{path}: the example has items, the answer none"));
                    }
                    return;
                }
                let p = format!("{path}[]");
                for (i, ov) in o.iter().enumerate() {
                    let mut best: Option<Vec<String>> = None;
                    for dv in d {
                        let mut e = Vec::new();
                        self.shape(dv, ov, &p, key, &mut e);
                        if best.as_ref().is_none_or(|b| e.len() < b.len()) {
                            best = Some(e);
                        }
                    }
                    if let Some(e) = best
                        && !e.is_empty()
                    {
                        errs.push(format!("{path}[{i}] matches no example item: {e:?}"));
                    }
                }
            }
            (d, o) if kind(d) == kind(o) => {}
            (d, o) => errs.push(format!(
                "{path}: documented {} ({d}), answered {} ({o})",
                kind(d),
                kind(o)
            )),
        }
    }
}

#[tokio::test]
async fn every_documented_example_is_answered_in_the_documented_shape() {
    let Some(dir) = docs_dir() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the Cliniko documentation is needed under CI: set SLOTBRIDGE_CLINIKO_DOCS"
        );
        println!(
            "SKIPPED every_documented_example_is_answered_in_the_documented_shape: no documentation (SLOTBRIDGE_CLINIKO_DOCS)"
        );
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("sections"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    files.sort();
    files.push(dir.join("readme.md"));
    let mut replayed = Vec::new();
    let mut skipped = 0;
    let mut failures = Vec::new();
    for path in &files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let md = std::fs::read_to_string(path).unwrap();
        // Every list has total_entries (the readme's "Pagination").
        let mut keys = BTreeSet::from(["total_entries".to_owned()]);
        let union: &[&str] = if file == "bookings.md" {
            &[
                "bookings.md",
                "individual_appointments.md",
                "unavailable_blocks.md",
            ]
        } else {
            &[]
        };
        for other in union {
            let text = std::fs::read_to_string(dir.join("sections").join(other)).unwrap();
            for b in blocks(&text).iter().filter(|b| b.lang == "json") {
                all_keys(&lenient_json(&b.text).unwrap(), &mut keys);
            }
        }
        let exs = examples(&md);
        for ex in &exs {
            if let Some(r) = &ex.response {
                all_keys(r, &mut keys);
            }
        }
        for ex in exs {
            if file == "readme.md"
                && !ex.target.starts_with("/patients")
                && !ex.target.starts_with("/appointments")
            {
                panic!(
                    "a readme example not accounted for: {} {}",
                    ex.method, ex.target
                );
            }
            if SKIPPED.iter().any(|(f, m, p, _)| {
                *f == file && (*m == "*" || *m == ex.method) && ex.target.starts_with(p)
            }) {
                skipped += 1;
                continue;
            }
            if let Some(e) = &ex.unparsable {
                failures.push(format!(
                    "{file}: {} {}: the example response does not parse: {e}",
                    ex.method, ex.target
                ));
                continue;
            }
            let (sim, ids) = fixture();
            let target = rewrite_target(&ex.target, &ids);
            let mut req = Request::builder()
                .method(Method::from_bytes(ex.method.as_bytes()).unwrap())
                .uri(format!("/v1{target}"))
                .header("host", "api.test")
                .header("user-agent", common::UA)
                .header(
                    "authorization",
                    format!(
                        "Basic {}",
                        base64::Engine::encode(
                            &base64::engine::general_purpose::STANDARD,
                            format!("{}:", ids.key)
                        )
                    ),
                );
            for (k, v) in &ex.headers {
                if !k.eq_ignore_ascii_case("user-agent") {
                    req = req.header(k.as_str(), v.as_str());
                }
            }
            let body = ex
                .body
                .as_deref()
                .map(|b| rewrite_body(b, &ids))
                .unwrap_or_default();
            let resp = sim
                .router()
                .oneshot(req.body(Body::from(body)).unwrap())
                .await
                .unwrap();
            let status = resp.status();
            let location = resp.headers().contains_key("location");
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
                .await
                .unwrap();
            let what = format!("{file}: {} {}", ex.method, ex.target);
            if ex.expect_204 {
                if status != 204 {
                    failures.push(format!("{what}: expected 204, got {status}"));
                }
            } else if !status.is_success() {
                failures.push(format!(
                    "{what}: got {status}: {}",
                    String::from_utf8_lossy(&bytes)
                ));
                continue;
            }
            if ex.expect_location && !location {
                failures.push(format!("{what}: no Location header"));
            }
            if let Some(doc) = &ex.response {
                let ours: Value = match serde_json::from_slice(&bytes) {
                    Ok(v) => v,
                    Err(e) => {
                        failures.push(format!("{what}: the answer is not JSON: {e}"));
                        continue;
                    }
                };
                let mut errs = Vec::new();
                Cmp {
                    file: &file,
                    keys: &keys,
                }
                .shape(doc, &ours, "", "", &mut errs);
                if !errs.is_empty() {
                    failures.push(format!("{what}:\n    {}", errs.join("\n    ")));
                }
            }
            replayed.push(what);
        }
    }
    println!("replayed {} examples, skipped {skipped}:", replayed.len());
    for r in &replayed {
        println!("  {r}");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every section the connector relies on had its examples replayed.
    for needed in [
        "businesses.md: GET /businesses",
        "practitioners.md: GET /practitioners",
        "appointment_types.md: GET /appointment_types",
        "daily_availabilities.md: GET /businesses/3/daily_availabilities",
        "unavailable_blocks.md: GET /unavailable_blocks",
        "availability_blocks.md: GET /availability_blocks",
        "settings.md: GET /settings",
        "patients.md: POST /patients",
        "individual_appointments.md: POST /individual_appointments",
        "individual_appointments.md: PATCH /individual_appointments/1/cancel",
        "available_times.md: GET /businesses/1/practitioners/1/appointment_types/1/available_times?from=2013-05-21&to=2013-05-22",
        "bookings.md: GET /bookings",
        "readme.md: GET /patients?q=last_name:~son",
    ] {
        assert!(
            replayed.iter().any(|r| r == needed),
            "not replayed: {needed}"
        );
    }
    assert!(
        replayed.len() >= 40,
        "only {} examples replayed",
        replayed.len()
    );
}
