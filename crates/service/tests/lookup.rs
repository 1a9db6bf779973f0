//! Booking look-up over real HTTP, on SQLite and PostgreSQL: both simulators and one node with
//! an admin token and a console password; patients book on the marketplace, then the admin API
//! and the console find each booking by its id, its PMS appointment id and the patient's
//! surname, and show its whole history. The last test drives the console in headless Chromium
//! (tests/browser/lookup.mjs) and keeps the README's picture of the practice page
//! (docs/console-practice.png).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use slotbridge_pms_sim::PmsSim;
use slotbridge_testkit::{Db, Stack, booking_body, eventually, patient};

const TOKEN: &str = "lookup-admin-token-0123456789";
const PASSWORD: &str = "lookup console password";
/// A surname no other test data has, so finding it in a log line means it was logged.
const SURNAME: &str = "O'Quillfeather";

struct World {
    stack: Stack,
    link: String,
    /// A generated practice with planted misconfigurations, linked too (its page has findings).
    misconfigured_link: String,
    /// The marketplace's booking ids: the two bookings of `SURNAME`'s patients, then one other.
    bookings: [String; 3],
}

impl std::ops::Deref for World {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        &self.stack
    }
}

/// The stack on `db` with Harbour Dental linked, three bookings made on the marketplace and
/// answered; `None` when PostgreSQL is unavailable outside CI.
async fn world(db: Db) -> Option<World> {
    let pms_sim = PmsSim::builder().practices(12).build();
    let manifest = serde_json::to_value(pms_sim.manifest()).expect("manifest");
    // The generated practice with the fewest planted misconfigurations (but some): findings, and
    // practitioners still publishing.
    let mis = manifest["practices"]
        .as_array()
        .expect("practices")
        .iter()
        .skip(1)
        .filter(|p| {
            p["misconfigurations"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
        })
        .min_by_key(|p| p["misconfigurations"].as_array().map(Vec::len))
        .expect("a misconfigured generated practice")
        .clone();
    let stack = Stack::builder()
        .pms(pms_sim)
        .db(db)
        .node_id("lookup-test")
        .admin(TOKEN, PASSWORD)
        .start()
        .await?;
    let link = stack.first_link().await;
    let misconfigured = stack
        .create_practice(
            mis["name"].as_str().expect("name"),
            mis["timezone"].as_str().expect("tz"),
            mis["slug"].as_str().expect("slug"),
            mis["api_key"].as_str().expect("key"),
        )
        .expect("the misconfigured practice");
    let misconfigured_link = stack.link(&misconfigured).await;
    let (day, _) = stack.linked_with_slots(Duration::from_secs(30), 3).await;
    let practice = stack.harbour().practice_id.clone();
    let mut bookings = Vec::new();
    for (first, last) in [
        ("Ada", SURNAME),
        ("Bram", "OQUILLFEATHER"),
        ("Grace", "Hopper"),
    ] {
        // The day's slots as the marketplace offers them now: the ones booked are gone.
        let slots = stack.slots(&practice, &day).await;
        let slot = slots.first().expect("a free slot");
        let p = patient(first, last, "1976-12-09", "0400 111 222", "p@example.com");
        let id = stack.book(&practice, &booking_body(slot, p)).await;
        bookings.push(id.to_string());
    }
    for id in &bookings {
        stack.answered(id, Duration::from_secs(40)).await;
    }
    // Answered on the marketplace; wait until the node has recorded its side too.
    for id in &bookings {
        eventually(
            "the booking final in the node",
            Duration::from_secs(20),
            || async {
                let b = get(&stack, &format!("/api/bookings/{id}")).await.1;
                matches!(b["state"].as_str(), Some("confirmed" | "rejected")).then_some(())
            },
        )
        .await;
    }
    Some(World {
        stack,
        link,
        misconfigured_link,
        bookings: bookings.try_into().expect("three bookings"),
    })
}

/// `GET path` on the admin API with the token: (status, JSON body).
async fn get(s: &Stack, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(s.api(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ids(found: &Value) -> Vec<&str> {
    found
        .as_array()
        .unwrap_or_else(|| panic!("a list: {found}"))
        .iter()
        .map(|b| b["booking_id"].as_str().expect("booking_id"))
        .collect()
}

async fn the_admin_api_finds_bookings_and_shows_their_history(w: World) {
    let logs = slotbridge_testkit::logs();
    let [ada, bram, grace] = &w.bookings;
    let bookings = |q: &str| format!("/api/practices/{}/bookings?{q}", w.link);

    // By surname: case and punctuation do not matter. (Both arrived in one poll: the same
    // time, so their order is the booking ids'.)
    let (status, found) = get(&w, &bookings("surname=oquillfeather")).await;
    assert_eq!(status, 200, "{found}");
    let mut both = ids(&found);
    both.sort();
    let mut expected = [ada.as_str(), bram.as_str()];
    expected.sort();
    assert_eq!(both, expected, "{found}");
    let (_, found) = get(&w, &bookings("surname=O%27QUILLFEATHER")).await;
    assert_eq!(ids(&found).len(), 2, "{found}");
    let (_, found) = get(&w, &bookings("surname=Quillfeather")).await;
    assert!(
        ids(&found).is_empty(),
        "a surname is matched whole: {found}"
    );

    // By booking id, and by the PMS appointment id the diary insert gave it.
    let (_, one) = get(&w, &format!("/api/bookings/{grace}")).await;
    let (_, found) = get(&w, &bookings(&format!("booking={grace}"))).await;
    assert_eq!(ids(&found), [grace.as_str()]);
    // Each names its practice.
    assert_eq!(one["practice_name"], "Harbour Dental", "{one}");
    assert_eq!(found[0]["practice_name"], "Harbour Dental", "{found}");
    if one["state"] == "confirmed" {
        let appointment = one["pms_appointment_id"].as_str().expect("an appointment");
        let (_, found) = get(&w, &bookings(&format!("appointment={appointment}"))).await;
        assert_eq!(ids(&found), [grace.as_str()], "{found}");
        // Both criteria must hold.
        let (_, found) = get(
            &w,
            &bookings(&format!("appointment={appointment}&surname=Hopper")),
        )
        .await;
        assert_eq!(ids(&found), [grace.as_str()]);
        let (_, found) = get(
            &w,
            &bookings(&format!("appointment={appointment}&surname={SURNAME}")),
        )
        .await;
        assert!(ids(&found).is_empty(), "{found}");
    }

    // The whole history: the request, the patient, the diary insert, the answer.
    assert_eq!(one["booking_id"], grace.as_str());
    assert_eq!(one["link_id"], w.link.as_str());
    assert_eq!(one["patient"]["last_name"], "Hopper", "{one}");
    let kinds: Vec<&str> = one["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds.first(), Some(&"request"), "{one}");
    assert_eq!(kinds.last(), Some(&"answer"), "{one}");
    if one["state"] == "confirmed" {
        for k in ["patient", "diary"] {
            assert!(kinds.contains(&k), "no {k} in the history: {one}");
        }
        assert!(one["pms_patient_id"].is_string(), "{one}");
        assert!(one["next_attempt_at"].is_null(), "final: {one}");
    }
    assert!(one["attempts"].as_i64().is_some_and(|a| a >= 1), "{one}");

    // Bad input and unknown things are problem+json with the field named.
    let http = reqwest::Client::new();
    for (path, status, needle) in [
        (bookings(""), 422, "surname"),
        (bookings("surname=%20%27-%20"), 422, "surname"),
        (
            "/api/practices/0191f3f0-0000-7000-8000-000000000000/bookings?booking=1".to_owned(),
            404,
            "link",
        ),
        ("/api/bookings/no-such-booking".to_owned(), 404, "booking"),
    ] {
        let r = http
            .get(w.api(&path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), status, "{path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let body = r.text().await.expect("body");
        assert!(body.contains(needle), "{path}: {body}");
    }
    // Only with the token.
    let r = http
        .get(w.api(&bookings("surname=Hopper")))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);

    // The surname searched for and shown is in no log line.
    let needle = SURNAME.to_lowercase();
    for line in logs.lines() {
        let l = line.to_lowercase();
        assert!(
            !l.contains(&needle) && !l.contains("oquillfeather"),
            "a log line has the surname: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_finds_bookings_and_shows_their_history_on_sqlite() {
    slotbridge_testkit::logs();
    let w = world(Db::Sqlite).await.expect("sqlite stack");
    the_admin_api_finds_bookings_and_shows_their_history(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_finds_bookings_and_shows_their_history_on_postgres() {
    slotbridge_testkit::logs();
    let Some(w) = world(Db::Postgres).await else {
        eprintln!("SKIPPED the_admin_api_finds_bookings_and_shows_their_history on PostgreSQL");
        return;
    };
    the_admin_api_finds_bookings_and_shows_their_history(w).await;
}

/// An `application/x-www-form-urlencoded` body.
fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Log in to the console: (client, session cookie, CSRF token of the page at `path`).
async fn console_session(w: &World, path: &str) -> (reqwest::Client, String, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let cookie = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
            .unwrap_or_else(|| panic!("no {name} cookie"))
    };
    let login_form = http
        .get(w.api("/console/login"))
        .send()
        .await
        .expect("login form");
    let pre = cookie(&login_form, "sb_login");
    let login = http
        .post(w.api("/console/login"))
        .header("cookie", format!("sb_login={pre}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("password", PASSWORD), ("csrf", pre.as_str())]))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 303);
    let session = format!("sb_session={}", cookie(&login, "sb_session"));
    let page = http
        .get(w.api(path))
        .header("cookie", &session)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    let csrf = page[at..at + 64].to_owned();
    (http, session, csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_finds_a_booking_by_surname_and_shows_its_timeline() {
    let w = world(Db::Sqlite).await.expect("sqlite stack");
    let [ada, bram, grace] = &w.bookings;
    let practice_page = format!("/console/practices/{}", w.link);
    let (http, session, csrf) = console_session(&w, &practice_page).await;
    let page = http
        .get(w.api(&practice_page))
        .header("cookie", &session)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("Find a booking"),
        "the practice page has the search"
    );
    assert!(
        page.contains(&format!("/console/bookings/{grace}")),
        "the log links each booking to its page"
    );
    let search = w.api(&format!("{practice_page}/bookings"));
    // A search without its CSRF token is refused.
    let r = http
        .post(&search)
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("surname", SURNAME)]))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    let r = http
        .post(&search)
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("csrf", csrf.as_str()),
            ("surname", "oquillfeather"),
        ]))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    for id in [ada, bram] {
        assert!(
            html.contains(&format!("data-booking=\"{id}\"")),
            "booking {id} found:\n{html}"
        );
    }
    assert!(!html.contains(&format!("data-booking=\"{grace}\"")));
    assert!(
        html.contains("← Harbour Dental</a>"),
        "the search names the practice"
    );
    assert!(html.contains(SURNAME.replace('\'', "&#39;").as_str()) || html.contains(SURNAME));
    // Nothing to look for: the form again, with why.
    let r = http
        .post(&search)
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", csrf.as_str()), ("surname", " ")]))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 422);
    assert!(r.text().await.expect("html").contains("surname"));

    // The booking's page: its facts and its history as a timeline.
    let (status, html) = w.console_page(&format!("/console/bookings/{grace}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Hopper"),
        "the patient is shown to the operator"
    );
    // It names the practice (not its marketplace id) in its title, its way back and its facts.
    assert!(
        html.contains(&format!("<title>Booking {grace} — Harbour Dental")),
        "{html}"
    );
    assert!(html.contains("← Harbour Dental</a>"), "{html}");
    assert!(
        html.contains("<dd class=\"practice-name\">Harbour Dental</dd>"),
        "{html}"
    );
    assert!(html.contains("class=\"timeline\""));
    for kind in ["request", "answer"] {
        assert!(
            html.contains(&format!("data-kind=\"{kind}\"")),
            "no {kind} in the timeline:\n{html}"
        );
    }
    let (status, _) = w.console_page("/console/bookings/no-such-booking").await;
    assert_eq!(status, 404);
    // Without a session: the login page.
    let r = http
        .get(w.api(&format!("/console/bookings/{grace}")))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 303);
}

/// The README's picture of the console: rewritten when this is set, else it must exist.
const UPDATE_SCREENSHOTS: &str = "SLOTBRIDGE_UPDATE_SCREENSHOTS";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_headless_chromium_finds_a_booking_and_keeps_the_readme_picture() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let picture = root.join("docs/console-practice.png");
    let update = std::env::var_os(UPDATE_SCREENSHOTS).is_some_and(|v| v == "1");
    assert!(
        update || picture.is_file(),
        "{} is missing: run this test with {UPDATE_SCREENSHOTS}=1 (CONTRIBUTING.md)",
        picture.display()
    );
    let Some(browser) = slotbridge_testkit::browser::ready("lookup") else {
        return;
    };
    let w = world(Db::Sqlite).await.expect("sqlite stack");
    let shots = root.join("target/console-screenshots");
    browser
        .run(
            "lookup.mjs",
            &[
                ("NODE_URL", w.node().url().to_string()),
                ("CONSOLE_PASSWORD", PASSWORD.to_string()),
                ("PRACTICE_LINK", w.link.to_string()),
                ("MISCONFIGURED_LINK", w.misconfigured_link.to_string()),
                ("SURNAME", SURNAME.to_string()),
                ("BOOKINGS", w.bookings[..2].join(",").to_string()),
            ],
            &shots,
            Duration::from_secs(300),
        )
        .await;
    for shot in [
        "lookup-practice",
        "lookup-results",
        "lookup-booking",
        "lookup-booking-375px",
    ] {
        assert!(shots.join(format!("{shot}.png")).is_file(), "{shot}.png");
    }
    if update {
        std::fs::copy(shots.join("lookup-practice.png"), &picture).expect("update the picture");
        eprintln!("updated {}", picture.display());
    }
}

/// A brand-new link has no name until the PMS is read: its worker's span (on every log line
/// the worker writes) is given the practice's name at that first read, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_links_worker_logs_carry_the_practice_name_from_its_first_read() {
    let logs = slotbridge_testkit::logs();
    let Some(w) = Stack::builder().start().await else {
        return;
    };
    w.linked_with_slots(Duration::from_secs(30), 1).await;
    let link = w.first_link().await;
    let view = w.api_get(&format!("/api/links/{link}")).await;
    assert_eq!(view["name"], "Harbour Dental", "{view}");
    let span = format!("link{{link={link} ");
    let named = eventually(
        "a worker log line with the practice's name",
        Duration::from_secs(30),
        || async {
            logs.lines()
                .into_iter()
                .find(|l| l.contains(&span) && l.contains("name=\"Harbour Dental\""))
        },
    )
    .await;
    // Recorded once: the span does not repeat the name at every sync.
    assert_eq!(named.matches("name=").count(), 1, "{named}");
}
