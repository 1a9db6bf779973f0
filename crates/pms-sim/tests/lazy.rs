//! Generated practices are built lazily (each diary day and the patient files on first use) and
//! dropped again while unchanged. Whatever is built, dropped and built again, and in whatever
//! order, the API must answer exactly the same; a changed practice must keep its changes.

use serde_json::{Value, json};
use slotbridge_pms_sim::{Manifest, PmsSim, SimHandle};

async fn start(cap: usize, epoch: jiff::Timestamp) -> (SimHandle, Manifest) {
    let sim = PmsSim::builder()
        .practices(12)
        .seed(11)
        .rate_limit(None)
        .resident_cap(cap)
        .epoch(epoch)
        .build();
    let manifest = sim.manifest();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    (sim.serve(listener).await.expect("serve"), manifest)
}

async fn get(h: &SimHandle, m: &Manifest, i: usize, tail: &str) -> (u16, Value) {
    let p = &m.practices[i];
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/sites/{}/{tail}", h.base_url(), p.slug))
        .header("x-api-key", &p.api_key)
        .send()
        .await
        .expect("get");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

fn dates(m: &Manifest, i: usize, epoch: jiff::Timestamp, from: i64, to: i64) -> (String, String) {
    let tz = jiff::tz::TimeZone::get(&m.practices[i].timezone).expect("tz");
    let today = epoch.to_zoned_datetime(tz).date();
    let d = |n: i64| {
        today
            .checked_add(jiff::Span::new().days(n))
            .expect("date")
            .to_string()
    };
    (d(from), d(to))
}

/// Every page of `…/appointments?from=&to=`.
async fn diary(h: &SimHandle, m: &Manifest, i: usize, from: &str, to: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let (s, page) = get(
            h,
            m,
            i,
            &format!("appointments?from={from}&to={to}&limit=500{cursor}"),
        )
        .await;
        assert_eq!(s, 200, "{page}");
        out.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

#[tokio::test]
async fn lazily_built_days_are_the_same_whatever_the_order_and_evictions() {
    let epoch: jiff::Timestamp = "2026-11-25T01:00:00Z".parse().expect("ts");
    // One simulator keeps everything (large cap), the other drops all but two practices.
    let (big, m) = start(1000, epoch).await;
    let (small, m2) = start(2, epoch).await;
    assert_eq!(m, m2);
    for i in 1..=6 {
        // The whole 90 days at once on one side...
        let (from, to) = dates(&m, i, epoch, 0, 90);
        let whole = diary(&big, &m, i, &from, &to).await;
        assert!(
            whole.len() > 200,
            "practice {i}: {} appointments",
            whole.len()
        );
        // ... and week by week from the end on the other, touching others in between.
        let mut weeks = Vec::new();
        for w in (0..13).rev() {
            let (from, to) = dates(&m, i, epoch, w * 7, (w * 7 + 7).min(90));
            weeks.push(diary(&small, &m, i, &from, &to).await);
            let other = 7 + (w as usize % 5);
            let (f, t) = dates(&m, other, epoch, 0, 1);
            diary(&small, &m, other, &f, &t).await;
        }
        let pieced: Vec<Value> = weeks.into_iter().rev().flatten().collect();
        assert_eq!(whole, pieced, "practice {i}");
        // One appointment by id, from a simulator that dropped the practice meanwhile.
        let a = &whole[whole.len() / 2];
        let (s, one) = get(
            &small,
            &m,
            i,
            &format!("appointments/{}", a["id"].as_str().expect("id")),
        )
        .await;
        assert_eq!((s, &one), (200, a));
        // Patient files too.
        let (s, p) = get(&small, &m, i, "patients/P3").await;
        assert_eq!(s, 200, "{p}");
        let (_, q) = get(&big, &m, i, "patients/P3").await;
        assert_eq!(p, q);
    }
    let resident = small.sim().resident_practices();
    assert!(resident <= 3, "{resident} resident with a cap of 2");
    big.shutdown().await;
    small.shutdown().await;
}

#[tokio::test]
async fn generated_online_bookings_stay_idempotent_and_changes_survive_eviction() {
    let epoch: jiff::Timestamp = "2026-11-25T01:00:00Z".parse().expect("ts");
    let (h, m) = start(1, epoch).await;
    let http = reqwest::Client::new();
    // Find a generated online booking (it carries an external reference).
    let mut found = None;
    'outer: for i in 1..=12 {
        let (from, to) = dates(&m, i, epoch, 20, 40);
        for a in diary(&h, &m, i, &from, &to).await {
            if a["source"] == "online" {
                found = Some((i, a));
                break 'outer;
            }
        }
    }
    let (i, a) = found.expect("some generated online booking");
    // Drop the practice: read others.
    for other in (1..=12).filter(|o| *o != i) {
        let (f, t) = dates(&m, other, epoch, 0, 1);
        diary(&h, &m, other, &f, &t).await;
    }
    // Booking the same reference again returns the existing appointment, as for any insert.
    let p = &m.practices[i];
    let r = http
        .post(format!(
            "{}/api/v1/sites/{}/appointments",
            h.base_url(),
            p.slug
        ))
        .header("x-api-key", &p.api_key)
        .json(
            &json!({"practitioner": a["practitioner"], "start": a["start"], "end": a["end"],
                      "patient": "P1", "external_ref": a["external_ref"]}),
        )
        .send()
        .await
        .expect("insert");
    assert_eq!(r.status(), 200);
    let same: Value = r.json().await.expect("json");
    assert_eq!(same, a);

    // A desk change keeps the practice (and its diary) in memory for good.
    let r = http
        .delete(format!(
            "{}/_desk/sites/{}/appointments/{}",
            h.base_url(),
            p.slug,
            a["id"].as_str().expect("id")
        ))
        .send()
        .await
        .expect("remove");
    assert_eq!(r.status(), 204);
    for other in (1..=12).filter(|o| *o != i) {
        let (f, t) = dates(&m, other, epoch, 0, 1);
        diary(&h, &m, other, &f, &t).await;
    }
    let (s, gone) = get(
        &h,
        &m,
        i,
        &format!("appointments/{}", a["id"].as_str().expect("id")),
    )
    .await;
    assert_eq!(s, 404, "{gone}");
    let (from, to) = dates(&m, i, epoch, 20, 40);
    assert!(
        diary(&h, &m, i, &from, &to)
            .await
            .iter()
            .all(|x| x["id"] != a["id"])
    );
    h.shutdown().await;
}

#[tokio::test]
async fn the_weight_budget_drops_unchanged_practices_read_at_length() {
    let epoch: jiff::Timestamp = "2026-11-25T01:00:00Z".parse().expect("ts");
    let sim = PmsSim::builder()
        .practices(12)
        .seed(11)
        .rate_limit(None)
        .resident_budget(100)
        .epoch(epoch)
        .build();
    let m = sim.manifest();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let h = sim.serve(listener).await.expect("serve");
    // A day of each: light enough that every practice stays in memory.
    for i in 1..=12 {
        let (from, to) = dates(&m, i, epoch, 0, 1);
        diary(&h, &m, i, &from, &to).await;
    }
    assert_eq!(h.sim().resident_practices(), 13);
    let light = h.sim().resident_weight();
    assert!((24..=100).contains(&light), "weight {light}");
    // The whole 90 days of two of them (several pages each): over budget, so unchanged
    // practices are dropped at each next request, oldest first, until the weight fits again
    // (the last request may have built up to 90 days more).
    for i in [3, 4] {
        let (from, to) = dates(&m, i, epoch, 0, 90);
        diary(&h, &m, i, &from, &to).await;
    }
    let (from, to) = dates(&m, 5, epoch, 0, 1);
    diary(&h, &m, 5, &from, &to).await;
    let heavy = h.sim().resident_weight();
    assert!(heavy <= 100 + 92, "weight {heavy} after trimming");
    assert!(h.sim().resident_practices() < 13);
    // A changed practice is never dropped, whatever it weighs.
    let p = &m.practices[6];
    let r = reqwest::Client::new()
        .put(format!("{}/_desk/sites/{}/stacking", h.base_url(), p.slug))
        .json(&json!({"enabled": false}))
        .send()
        .await
        .expect("desk");
    assert_eq!(r.status(), 204);
    let (from, to) = dates(&m, 6, epoch, 0, 90);
    diary(&h, &m, 6, &from, &to).await;
    for i in (1..=12).filter(|i| *i != 6) {
        let (from, to) = dates(&m, i, epoch, 0, 90);
        diary(&h, &m, i, &from, &to).await;
    }
    let (s, web) = get(&h, &m, 6, "web-setup").await;
    assert_eq!((s, &web["stacking"]), (200, &json!(false)));
    h.shutdown().await;
}
