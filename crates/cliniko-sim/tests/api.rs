//! The simulator against the rules of the documentation's readme and sections: shards and
//! keys, the `User-Agent`, paging links, every filter operator, ordering, the rate limit (on
//! the injected clock), writes and their errors, and available times with their 7-day limit.

mod common;

use common::{Env, UA, practice};
use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};
use slotbridge_cliniko_sim::{DeskAction, OnlineBookings};

fn ids(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| match &x["id"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

#[tokio::test]
async fn a_key_opens_its_own_shard_only_and_needs_a_user_agent() {
    let env = Env::start(practice("uk1", 1), None).await;
    let key = env.practice.api_key.clone();
    assert!(key.ends_with("-uk1"), "{key}");
    let bare = key.trim_end_matches("-uk1").to_owned();
    let root = env.handle.base_url();
    let call = |url: String, user: Option<String>, ua: Option<&'static str>| {
        let http = env.http.clone();
        async move {
            let mut r = http.get(url).header("Accept", "application/json");
            if let Some(u) = user {
                r = r.basic_auth(u, Some(""));
            }
            if let Some(ua) = ua {
                r = r.header("User-Agent", ua);
            }
            r.send().await.unwrap()
        }
    };
    let uk = format!("{root}/uk1/v1/businesses");
    // With or without the shard suffix, on the key's shard.
    assert_eq!(
        call(uk.clone(), Some(key.clone()), Some(UA)).await.status(),
        200
    );
    assert_eq!(
        call(uk.clone(), Some(bare.clone()), Some(UA))
            .await
            .status(),
        200
    );
    // On another shard (the default one at /v1 is au1), or with another shard's suffix.
    let r = call(format!("{root}/v1/businesses"), Some(key.clone()), Some(UA)).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = call(
        format!("{root}/au1/v1/businesses"),
        Some(bare.clone()),
        Some(UA),
    )
    .await;
    assert_eq!(r.status(), 401);
    let r = call(uk.clone(), Some(format!("{bare}-au2")), Some(UA)).await;
    assert_eq!(r.status(), 401);
    // Unknown key, no key.
    assert_eq!(
        call(uk.clone(), Some("nope-uk1".into()), Some(UA))
            .await
            .status(),
        401
    );
    let r = call(uk.clone(), None, Some(UA)).await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].is_string());
    // The User-Agent must name the app and an email.
    assert_eq!(
        call(uk.clone(), Some(key.clone()), None).await.status(),
        403
    );
    let r = call(
        uk.clone(),
        Some(key.clone()),
        Some("APP_VENDOR_NAME (APP_VENDOR_EMAIL)"),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        call(uk.clone(), Some(key.clone()), Some("reqwest/0.13"))
            .await
            .status(),
        403
    );
    // Not a shard, not the API.
    assert_eq!(
        call(
            format!("{root}/zz/v1/businesses"),
            Some(key.clone()),
            Some(UA)
        )
        .await
        .status(),
        404
    );
    // Accept must allow JSON.
    let r = env
        .http
        .get(&uk)
        .basic_auth(&key, Some(""))
        .header("User-Agent", UA)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);
    // The links of the answer point back at the shard it was asked on.
    let v: Value = call(uk.clone(), Some(key.clone()), Some(UA))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        v["links"]["self"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{root}/uk1/v1/businesses?")),
        "{v}"
    );
    // An au1 key works at /v1 (the default shard, like https://api.cliniko.com) and /au1/v1.
    let au = env.sim.seed(practice("au1", 0)).unwrap();
    for url in [
        format!("{root}/v1/businesses"),
        format!("{root}/au1/v1/businesses"),
    ] {
        assert_eq!(
            call(url, Some(au.api_key.clone()), Some(UA)).await.status(),
            200
        );
    }
    // A method the path does not take: 405, still JSON.
    let r = env
        .http
        .post(&uk)
        .basic_auth(&key, Some(""))
        .header("User-Agent", UA)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.json::<Value>().await.unwrap()["message"].is_string());
    // Businesses, practitioners and appointment types have string ids; patients numbers.
    assert!(v["businesses"][0]["id"].is_string());
    let p = env.json("/practitioners").await;
    assert!(p["practitioners"][0]["id"].is_string());
    let pt = env.json("/patients").await;
    assert!(pt["patients"][0]["id"].is_u64());
}

#[tokio::test]
async fn paging_follows_links_with_page_and_per_page() {
    let env = Env::start(practice("au1", 120), None).await;
    let first = env.json("/patients?per_page=50").await;
    assert_eq!(first["total_entries"], 120);
    assert_eq!(first["patients"].as_array().unwrap().len(), 50);
    let links = &first["links"];
    assert!(links.get("previous").is_none(), "{links}");
    assert!(links["self"].as_str().unwrap().contains("page=1"));
    // Follow next to the end, collecting every id once.
    let mut seen = ids(&first, "patients");
    let mut next = links["next"].as_str().map(str::to_owned);
    let mut pages = 1;
    while let Some(url) = next {
        let r = env.get_url(&url).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert!(v["links"]["previous"].is_string(), "{v}");
        seen.extend(ids(&v, "patients"));
        next = v["links"]["next"].as_str().map(str::to_owned);
        pages += 1;
    }
    assert_eq!(pages, 3);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (120, 120));
    // The default page is 50; per_page is capped at 100; a bad page is refused.
    assert_eq!(
        env.json("/patients").await["patients"]
            .as_array()
            .unwrap()
            .len(),
        50
    );
    assert_eq!(
        env.json("/patients?per_page=500").await["patients"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
    assert_eq!(env.get("/patients?page=0").await.status(), 400);
    assert_eq!(env.get("/patients?per_page=x").await.status(), 400);
    // Past the last page: empty, with a previous link.
    let v = env.json("/patients?page=9").await;
    assert_eq!(v["patients"].as_array().unwrap().len(), 0);
    assert!(v["links"]["previous"].is_string());
    // Filters survive in the links.
    let v = env.json("/patients?q[]=last_name:=Smith&per_page=10").await;
    let next = v["links"]["next"].as_str().unwrap();
    assert!(next.contains("q%5B%5D=last_name%3A%3DSmith"), "{next}");
}

async fn count(env: &Env, path: &str) -> u64 {
    env.json(path).await["total_entries"].as_u64().unwrap()
}

#[tokio::test]
async fn every_filter_operator_works_on_its_field_types() {
    let mut spec = practice("au1", 0);
    spec.patients = [
        ("Brian", "Jameson", (1980, 5, 1)),
        ("Jason", "Jason", (1990, 5, 20)),
        ("Ann", "Jones", (1975, 11, 3)),
        ("Bridget", "Robson", (2001, 1, 9)),
    ]
    .iter()
    .map(|(f, l, (y, m, d))| slotbridge_cliniko_sim::PatientSpec {
        first_name: (*f).into(),
        last_name: (*l).into(),
        date_of_birth: Some(jiff::civil::date(*y, *m, *d)),
        email: Some(format!("{}@example.com", f.to_lowercase())),
        mobile: None,
    })
    .collect();
    let env = Env::start(spec, None).await;
    // String: = != ~ ~~ (case-insensitive contains and wildcard).
    assert_eq!(count(&env, "/patients?q[]=last_name:=Jones").await, 1);
    assert_eq!(count(&env, "/patients?q[]=last_name:!=Jones").await, 3);
    assert_eq!(count(&env, "/patients?q=last_name:~son").await, 3);
    assert_eq!(count(&env, "/patients?q=last_name:~~ja%25on%25").await, 2);
    assert_eq!(count(&env, "/patients?q=last_name:~~J%25s").await, 1);
    assert_eq!(
        count(
            &env,
            "/patients?q%5B%5D=first_name:~bri&q%5B%5D=last_name:~son"
        )
        .await,
        2
    );
    // Date: = with wildcards, and the comparisons.
    assert_eq!(
        count(&env, "/patients?q[]=date_of_birth:=1980-05-01").await,
        1
    );
    assert_eq!(
        count(&env, "/patients?q[]=date_of_birth:=****-05-**").await,
        2
    );
    assert_eq!(
        count(&env, "/patients?q[]=date_of_birth:>1980-05-01").await,
        2
    );
    assert_eq!(
        count(&env, "/patients?q[]=date_of_birth:>=1980-05-01").await,
        3
    );
    assert_eq!(
        count(&env, "/patients?q[]=date_of_birth:<1980-05-01").await,
        1
    );
    assert_eq!(
        count(&env, "/patients?q[]=date_of_birth:<=1980-05-01").await,
        2
    );
    // Integer: = (and a list) != < <= > >=.
    let all = env.json("/patients?sort=id").await;
    let pids: Vec<u64> = all["patients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    let (a, b) = (pids[0], pids[1]);
    assert_eq!(count(&env, &format!("/patients?q[]=id:={a}")).await, 1);
    assert_eq!(count(&env, &format!("/patients?q[]=id:={a},{b}")).await, 2);
    assert_eq!(count(&env, &format!("/patients?q[]=id:!={a}")).await, 3);
    assert_eq!(count(&env, &format!("/patients?q[]=id:>{a}")).await, 3);
    assert_eq!(count(&env, &format!("/patients?q[]=id:>={b}")).await, 3);
    assert_eq!(count(&env, &format!("/patients?q[]=id:<{b}")).await, 1);
    assert_eq!(count(&env, &format!("/patients?q[]=id:<={b}")).await, 2);
    // DateTime: < <= > >= on updated_at, after a change later on the clock.
    let before = env.sim.now();
    env.clock.advance(SignedDuration::from_secs(90));
    let r = env
        .send(
            Method::PUT,
            &format!("/patients/{b}"),
            json!({ "email": "new@example.com" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let t = |x: Timestamp| x.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(
        count(&env, &format!("/patients?q[]=updated_at:>{}", t(before))).await,
        1
    );
    assert_eq!(
        count(&env, &format!("/patients?q[]=updated_at:>={}", t(before))).await,
        4
    );
    assert_eq!(
        count(&env, &format!("/patients?q[]=updated_at:<={}", t(before))).await,
        3
    );
    assert_eq!(
        count(&env, &format!("/patients?q[]=updated_at:<{}", t(before))).await,
        0
    );
    // Refused: an unknown field, an operator the type does not take, a time not in UTC, no
    // operator at all.
    for bad in [
        "/patients?q[]=nickname:=x",
        "/patients?q[]=updated_at:=2026-03-01T09:00:00Z",
        "/patients?q[]=updated_at:>2026-03-01T20:00:00%2B11:00",
        "/patients?q[]=last_name:>Jones",
        "/patients?q[]=id:~1",
        "/patients?q[]=id:>1,2",
        "/patients?q[]=last_name",
        "/patients?q[]=date_of_birth:=1980-5-1",
        "/individual_appointments?q[]=deleted_at:>2026-03-01T09:00:00Z",
    ] {
        let r = env.get(bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        let v: Value = r.json().await.unwrap();
        assert!(v["message"].is_string(), "{bad}: {v}");
    }
    // Ordering: sort with a direction, order for all columns; unknown columns refused.
    let v = env.json("/patients?sort=last_name&order=desc").await;
    assert_eq!(v["patients"][0]["last_name"], "Robson");
    let v = env.json("/patients?sort=date_of_birth:desc").await;
    assert_eq!(v["patients"][0]["last_name"], "Robson");
    let v = env.json("/patients").await; // created_at, then id
    assert_eq!(v["patients"][0]["first_name"], "Brian");
    assert_eq!(env.get("/patients?sort=nickname").await.status(), 400);
    assert_eq!(env.get("/patients?order=sideways").await.status(), 400);
}

#[tokio::test]
async fn appointments_are_written_cancelled_deleted_and_filtered_as_documented() {
    let env = Env::start(practice("au1", 2), None).await;
    let (b, p, t) = (env.b(), env.p(), env.t(0));
    let patient = env.practice.patient_ids[0];
    let body = json!({
        "starts_at": "2026-03-02T00:00:00Z",
        "patient_id": patient.to_string(),
        "practitioner_id": p.to_string(),
        "appointment_type_id": t.to_string(),
        "business_id": b.to_string(),
        "notes": "ref:HE-1",
    });
    let r = env
        .send(Method::POST, "/individual_appointments", body.clone())
        .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let a: Value = r.json().await.unwrap();
    // ends_at from the type's duration.
    assert_eq!(a["ends_at"], "2026-03-02T00:30:00Z");
    assert_eq!(a["links"]["self"], location.as_str());
    assert_eq!(a["patient_name"], "Pat000 Smith");
    let id = a["id"].as_u64().unwrap();
    // Cliniko lets a second appointment overlap; the conflicts resource says so.
    let r = env
        .send(Method::POST, "/individual_appointments", body.clone())
        .await;
    assert_eq!(r.status(), 201);
    let second: Value = r.json().await.unwrap();
    let c = env
        .json(&format!("/individual_appointments/{id}/conflicts"))
        .await;
    assert_eq!(c, json!({ "conflicts": { "exist": true } }));
    // Filters on the diary.
    let q = format!(
        "/individual_appointments?q[]=practitioner_id:={p}&q[]=starts_at:>=2026-03-02T00:00:00Z&q[]=starts_at:<2026-03-03T00:00:00Z"
    );
    assert_eq!(count(&env, &q).await, 2);
    assert_eq!(
        count(
            &env,
            &format!(
                "/individual_appointments?q[]=appointment_type_id:={}",
                env.t(1)
            )
        )
        .await,
        0
    );
    // 422 with errors naming the fields; 415 and 400 for the body itself.
    let r = env
        .send(
            Method::POST,
            "/individual_appointments",
            json!({ "starts_at": "2026-03-02T11:00:00+11:00" }),
        )
        .await;
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    for field in [
        "starts_at",
        "patient_id",
        "practitioner_id",
        "appointment_type_id",
        "business_id",
    ] {
        assert!(e["errors"][field].is_array(), "{field}: {e}");
    }
    let r = env
        .http
        .post(format!("{}/individual_appointments", env.base()))
        .basic_auth(&env.practice.api_key, Some(""))
        .header("User-Agent", UA)
        .header("Content-Type", "text/plain")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = env
        .http
        .post(format!("{}/individual_appointments", env.base()))
        .basic_auth(&env.practice.api_key, Some(""))
        .header("User-Agent", UA)
        .header("Content-Type", "application/json")
        .body("{\"starts_at\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Cancel: the reason is mandatory and one of the codes.
    let cancel = format!("/individual_appointments/{}/cancel", second["id"]);
    let r = env
        .send(Method::PATCH, &cancel, json!({ "cancellation_note": "x" }))
        .await;
    assert_eq!(r.status(), 422);
    let r = env
        .send(Method::PATCH, &cancel, json!({ "cancellation_reason": 99 }))
        .await;
    assert_eq!(r.status(), 422);
    env.clock.advance(SignedDuration::from_secs(5));
    let r = env
        .send(
            Method::PATCH,
            &cancel,
            json!({ "cancellation_reason": 50, "cancellation_note": "A note" }),
        )
        .await;
    assert_eq!(r.status(), 204);
    // A cancelled appointment stays in the list, with cancelled_at; it is in /cancelled too.
    let all = env.json("/individual_appointments").await;
    assert_eq!(all["total_entries"], 2);
    assert_eq!(count(&env, "/individual_appointments/cancelled").await, 1);
    let since = "2026-03-01T09:00:01Z";
    let changed = env
        .json(&format!("/individual_appointments?q[]=updated_at:>{since}"))
        .await;
    assert_eq!(changed["total_entries"], 1);
    assert_eq!(
        changed["individual_appointments"][0]["cancellation_reason"],
        50
    );
    assert!(changed["individual_appointments"][0]["cancelled_at"].is_string());
    assert_eq!(
        count(
            &env,
            &format!("/individual_appointments?q[]=cancelled_at:>{since}")
        )
        .await,
        1
    );
    let c = env
        .json(&format!("/individual_appointments/{id}/conflicts"))
        .await;
    assert_eq!(c["conflicts"]["exist"], false);
    // Delete: gone from the lists, in /deleted.
    let r = env
        .send(
            Method::DELETE,
            &format!("/individual_appointments/{id}"),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(count(&env, "/individual_appointments").await, 1);
    assert_eq!(count(&env, "/individual_appointments/deleted").await, 1);
    let r = env
        .send(
            Method::DELETE,
            &format!("/individual_appointments/{id}"),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 404);
    // 404 answers.
    let r = env.get("/individual_appointments/999999").await;
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["message"].is_string());
    assert_eq!(env.get("/individual_appointments/abc").await.status(), 404);
    // Patients: create needs both names; filters find the new one.
    let r = env
        .send(Method::POST, "/patients", json!({ "first_name": "John" }))
        .await;
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert!(e["errors"]["last_name"].is_array());
    let r = env
        .send(
            Method::POST,
            "/patients",
            json!({ "first_name": "John", "last_name": "Snow", "date_of_birth": "1990-02-03",
                    "email": "john@example.com",
                    "patient_phone_numbers": [{ "phone_type": "Mobile", "number": "0412345678" }] }),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert!(r.headers().contains_key("location"));
    let v = env
        .json("/patients?q[]=last_name:=Snow&q[]=date_of_birth:=1990-02-03")
        .await;
    assert_eq!(v["total_entries"], 1);
    assert_eq!(
        v["patients"][0]["patient_phone_numbers"][0]["number"],
        "0412345678"
    );
}

#[tokio::test]
async fn the_rate_limit_is_200_a_minute_per_user_with_the_reset_time() {
    let env = Env::start(practice("au1", 0), Some(200)).await;
    let t0 = env.sim.now();
    for i in 0..200u32 {
        let r = env.get("/businesses").await;
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(
            r.headers()["x-ratelimit-remaining"],
            (199 - i).to_string().as_str()
        );
    }
    env.clock.advance(SignedDuration::from_secs(59));
    let r = env.get("/businesses").await;
    assert_eq!(r.status(), 429);
    let reset: i64 = r.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(reset, t0.as_second() + 60);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().await.unwrap();
    assert!(v["message"].is_string());
    // Another account's user is not limited by this one.
    let other = env.sim.seed(practice("au1", 0)).unwrap();
    let r = env
        .http
        .get(format!("{}/businesses", env.base()))
        .basic_auth(&other.api_key, Some(""))
        .header("User-Agent", UA)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // At the reset time the window opens again.
    env.clock.advance(SignedDuration::from_secs(1));
    assert_eq!(env.get("/businesses").await.status(), 200);
}

fn times(v: &Value) -> Vec<String> {
    v["available_times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["appointment_start"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn available_times_come_from_the_diary_and_refuse_more_than_seven_days() {
    let env = Env::start(practice("au1", 1), None).await;
    let (b, p, t) = (env.b(), env.p(), env.t(0));
    let base = format!("/businesses/{b}/practitioners/{p}/appointment_types/{t}");
    let at =
        |from: &str, to: &str| format!("{base}/available_times?from={from}&to={to}&per_page=100");
    // The 7-day limit (today is Sunday 2026-03-01 in Sydney), the past, missing or bad dates.
    assert_eq!(env.get(&at("2026-03-01", "2026-03-07")).await.status(), 200);
    for (from, to) in [
        ("2026-03-01", "2026-03-08"),
        ("2026-02-28", "2026-03-01"),
        ("2026-03-03", "2026-03-02"),
        ("2026-3-2", "2026-03-03"),
    ] {
        let r = env.get(&at(from, to)).await;
        assert_eq!(r.status(), 400, "{from}..{to}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            v["message"],
            "Invalid time frame definition. Please check from/to param limitations."
        );
    }
    assert_eq!(
        env.get(&format!("{base}/available_times?from=2026-03-02"))
            .await
            .status(),
        400
    );
    // Monday 2 March: 09:00-12:00 and 13:00-17:00 local (UTC+11), 30 min, every 15 min.
    let monday = env.json(&at("2026-03-02", "2026-03-02")).await;
    let all = times(&monday);
    assert_eq!(monday["total_entries"], 26);
    assert_eq!(all.len(), 26);
    assert_eq!(all[0], "2026-03-01T22:00:00Z"); // 09:00
    assert_eq!(all[10], "2026-03-02T00:30:00Z"); // 11:30, the last of the morning
    assert_eq!(all[11], "2026-03-02T02:00:00Z"); // 13:00
    assert_eq!(all[25], "2026-03-02T05:30:00Z"); // 16:30
    // An appointment 10:00-10:30 takes 09:45, 10:00 and 10:15 away; a block 14:00-15:00 five.
    let acct = env.practice.account_id;
    let booked = env
        .sim
        .desk(
            acct,
            DeskAction::Book {
                business_id: b,
                practitioner_id: p,
                appointment_type_id: t,
                patient_id: None,
                starts_at: "2026-03-01T23:00:00Z".parse().unwrap(),
                ends_at: None,
                notes: None,
            },
        )
        .unwrap()
        .id
        .unwrap();
    env.sim
        .desk(
            acct,
            DeskAction::Block {
                business_id: b,
                practitioner_id: p,
                starts_at: "2026-03-02T03:00:00Z".parse().unwrap(),
                ends_at: "2026-03-02T04:00:00Z".parse().unwrap(),
            },
        )
        .unwrap();
    let busy = times(&env.json(&at("2026-03-02", "2026-03-02")).await);
    assert_eq!(busy.len(), 18);
    for gone in [
        "2026-03-01T22:45:00Z",
        "2026-03-01T23:00:00Z",
        "2026-03-01T23:15:00Z",
        "2026-03-02T02:45:00Z",
        "2026-03-02T03:45:00Z",
    ] {
        assert!(!busy.contains(&gone.to_owned()), "{gone}");
    }
    assert!(busy.contains(&"2026-03-01T23:30:00Z".to_owned()));
    assert!(busy.contains(&"2026-03-02T04:00:00Z".to_owned()));
    // Cancelling frees the time again.
    env.sim
        .desk(
            acct,
            DeskAction::Cancel {
                appointment_id: booked,
                reason: 40,
            },
        )
        .unwrap();
    assert_eq!(
        times(&env.json(&at("2026-03-02", "2026-03-02")).await).len(),
        21
    );
    // The per-day-segment limit keeps the earliest times of each segment.
    let mut ob = OnlineBookings {
        max_appointments_per_day_segment: Some(2),
        ..OnlineBookings::default()
    };
    env.sim
        .desk(
            acct,
            DeskAction::SetOnlineBookings {
                online_bookings: ob.clone(),
            },
        )
        .unwrap();
    let limited = times(&env.json(&at("2026-03-02", "2026-03-02")).await);
    assert_eq!(
        limited,
        [
            "2026-03-01T22:00:00Z",
            "2026-03-01T22:15:00Z",
            "2026-03-02T02:00:00Z",
            "2026-03-02T02:15:00Z"
        ]
    );
    // Minimum advance: at 08:30 on Monday with 2 hours' notice, nothing before 10:30.
    ob.max_appointments_per_day_segment = None;
    ob.min_hours_advance_required_to_book = 2;
    env.sim
        .desk(
            acct,
            DeskAction::SetOnlineBookings {
                online_bookings: ob.clone(),
            },
        )
        .unwrap();
    env.clock.set("2026-03-01T21:30:00Z".parse().unwrap());
    let soon = times(&env.json(&at("2026-03-02", "2026-03-02")).await);
    assert_eq!(soon[0], "2026-03-01T23:30:00Z");
    // next_available_time agrees.
    let next = env.json(&format!("{base}/next_available_time")).await;
    assert_eq!(next["appointment_start"], "2026-03-01T23:30:00Z");
    // How far ahead: with 7 days, nothing on the eighth day from today.
    ob.max_days_in_advance = 7;
    env.sim
        .desk(
            acct,
            DeskAction::SetOnlineBookings {
                online_bookings: ob.clone(),
            },
        )
        .unwrap();
    assert!(!times(&env.json(&at("2026-03-06", "2026-03-06")).await).is_empty());
    assert!(times(&env.json(&at("2026-03-09", "2026-03-09")).await).is_empty());
    // Not shown online: the type, the practitioner, the business. Unknown ids: 404.
    let hidden = format!(
        "/businesses/{b}/practitioners/{p}/appointment_types/{}/available_times?from=2026-03-02&to=2026-03-02",
        env.t(1)
    );
    assert_eq!(env.json(&hidden).await["total_entries"], 0);
    env.sim
        .desk(
            acct,
            DeskAction::SetPractitioner {
                practitioner_id: p,
                active: None,
                show_in_online_bookings: Some(false),
            },
        )
        .unwrap();
    assert_eq!(
        env.json(&at("2026-03-02", "2026-03-02")).await["total_entries"],
        0
    );
    assert_eq!(
        env.json(&format!("{base}/next_available_time")).await["appointment_start"],
        Value::Null
    );
    let r = env.get(&format!("/businesses/{b}/practitioners/{p}/appointment_types/1/available_times?from=2026-03-02&to=2026-03-02")).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn the_control_api_seeds_generates_and_acts_at_the_desk() {
    let env = Env::start(practice("au1", 0), None).await;
    let root = env.handle.base_url();
    let r = env
        .http
        .post(format!("{root}/_sim/practices/generate"))
        .json(&json!({ "seed": 7, "shard": "au2", "fill": 0.5, "days": 7 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let p: Value = r.json().await.unwrap();
    let key = p["api_key"].as_str().unwrap();
    assert!(key.ends_with("-au2"));
    let list: Value = env
        .http
        .get(format!(
            "{root}/au2/v1/individual_appointments?per_page=100"
        ))
        .basic_auth(key, Some(""))
        .header("User-Agent", UA)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        list["total_entries"].as_u64().unwrap() > 10,
        "{}",
        list["total_entries"]
    );
    // A desk action over HTTP.
    let account = p["account_id"].as_u64().unwrap();
    let r = env
        .http
        .post(format!("{root}/_sim/practices/{account}/desk"))
        .json(&json!({ "action": "set_online_bookings", "online_bookings": { "enabled": false } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let settings: Value = env
        .http
        .get(format!("{root}/au2/v1/settings"))
        .basic_auth(key, Some(""))
        .header("User-Agent", UA)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["online_bookings"]["enabled"], false);
    // Bad specs are refused as problems.
    let r = env
        .http
        .post(format!("{root}/_sim/practices"))
        .json(&json!({ "name": "x", "time_zone": "Mars/Olympus", "businesses": [], "appointment_types": [], "practitioners": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn available_times_step_in_real_time_across_daylight_saving_changes() {
    // Sundays 01:00-04:00 in Sydney: on 2026-10-04 clocks go from 02:00 to 03:00 (two real
    // hours of work), on 2026-04-05 from 03:00 back to 02:00 (four real hours).
    let mut spec = practice("au1", 1);
    spec.practitioners[0]
        .availabilities
        .push(slotbridge_cliniko_sim::WeeklySpec {
            business: 0,
            day_of_week: 7,
            intervals: vec![("01:00".into(), "04:00".into())],
        });
    let env = Env::start(spec, None).await;
    let (b, p, t) = (env.b(), env.p(), env.t(0));
    let at = |d: &str| {
        format!(
            "/businesses/{b}/practitioners/{p}/appointment_types/{t}/available_times?from={d}&to={d}&per_page=100"
        )
    };
    let spring = times(&env.json(&at("2026-10-04")).await);
    assert_eq!(spring.first().unwrap(), "2026-10-03T15:00:00Z"); // 01:00 +10:00
    assert_eq!(spring.last().unwrap(), "2026-10-03T16:30:00Z"); // 03:30 +11:00
    assert_eq!(spring.len(), 7);
    let autumn = times(&env.json(&at("2026-04-05")).await);
    assert_eq!(autumn.first().unwrap(), "2026-04-04T14:00:00Z"); // 01:00 +11:00
    assert_eq!(autumn.last().unwrap(), "2026-04-04T17:30:00Z"); // 03:30 +10:00
    assert_eq!(autumn.len(), 15);
    for list in [&spring, &autumn] {
        let mut sorted = list.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(&sorted, list, "in order, each once");
    }
    // The settings name the zone the Rails way, as Cliniko does.
    let s = env.json("/settings").await;
    assert_eq!(s["account"]["time_zone"], "Sydney");
    assert_eq!(s["calendar"]["timeslot_size_in_minutes"], 15);
}

#[tokio::test]
async fn availability_blocks_add_time_and_a_week_spans_days() {
    let env = Env::start(practice("au1", 1), None).await;
    let (b, p, t) = (env.b(), env.p(), env.t(0));
    let acct = env.practice.account_id;
    let week = format!(
        "/businesses/{b}/practitioners/{p}/appointment_types/{t}/available_times?from=2026-03-01&to=2026-03-07&per_page=100"
    );
    // Monday to Friday, 26 times a day; the weekend none.
    let v = env.json(&week).await;
    assert_eq!(v["total_entries"], 130);
    assert_eq!(v["available_times"].as_array().unwrap().len(), 100);
    assert!(v["links"]["next"].is_string());
    let rest = env.get_url(v["links"]["next"].as_str().unwrap()).await;
    let rest: Value = rest.json().await.unwrap();
    assert_eq!(rest["available_times"].as_array().unwrap().len(), 30);
    // Saturday 09:00-10:00 opened by an availability block: 09:00, 09:15, 09:30.
    env.sim
        .desk(
            acct,
            DeskAction::OpenTime {
                business_id: b,
                practitioner_id: p,
                starts_at: "2026-03-06T22:00:00Z".parse().unwrap(),
                ends_at: "2026-03-06T23:00:00Z".parse().unwrap(),
            },
        )
        .unwrap();
    let sat = format!(
        "/businesses/{b}/practitioners/{p}/appointment_types/{t}/available_times?from=2026-03-07&to=2026-03-07"
    );
    assert_eq!(
        times(&env.json(&sat).await),
        [
            "2026-03-06T22:00:00Z",
            "2026-03-06T22:15:00Z",
            "2026-03-06T22:30:00Z"
        ]
    );
    // An inactive practitioner: nothing.
    let grace = env.practice.practitioner_ids[1].clone();
    let none = format!(
        "/businesses/{b}/practitioners/{grace}/appointment_types/{t}/available_times?from=2026-03-02&to=2026-03-02"
    );
    assert_eq!(env.json(&none).await["total_entries"], 0);
}
