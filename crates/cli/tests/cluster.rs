//! Crash and multi-node acceptance, with the real `slotbridge` binary: `slotbridge run` child
//! processes against both simulators (served by the test process), SQLite files or a fresh
//! PostgreSQL database per test. Nodes are killed with SIGKILL, never shut down cleanly.
//!
//! The checks go through the simulators' documented control endpoints only: the marketplace's
//! bookings, slots and `--record` file, and the PMS desk's diary.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::Value;
use slotbridge_pms_sim::{DEMO_API_KEY, DEMO_SLUG, PmsSim};
use slotbridge_testkit::control::{offers, practitioner_of};
use slotbridge_testkit::process::{self, NodeProcess, NodeSpec, user_agent};
use slotbridge_testkit::{
    PgDatabase, Practice, Sims, booking_body, eventually_or, link_practice, patient, recorded_calls,
};

/// The scenarios run one at a time: each starts several processes on a small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a node may take to answer `/readyz` after it was started.
const READY: Duration = Duration::from_secs(60);

/// Both simulators, served by this test process, and a temporary directory for the nodes'
/// logs and the marketplace's record file.
struct World {
    sims: Sims,
    record: PathBuf,
    practices: Vec<Practice>,
    dir: tempfile::TempDir,
}

impl std::ops::Deref for World {
    type Target = Sims;

    fn deref(&self) -> &Sims {
        &self.sims
    }
}

impl World {
    /// The simulators with `count` correctly set-up practices (Harbour Dental first), each
    /// with a marketplace practice that consents to the `slotbridge` consumer.
    async fn start(count: usize) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = dir.path().join("market-calls.jsonl");
        let pms_sim = PmsSim::builder()
            // About one generated practice in five is set up correctly.
            .practices(u32::try_from(count * 9 + 9).unwrap_or(90))
            .build();
        let manifest = pms_sim.manifest();
        let sims = Sims::builder()
            .pms(pms_sim)
            .record(&record)
            .start()
            .await
            .expect("the simulators start");
        let practices: Vec<Practice> = manifest
            .practices
            .iter()
            .filter(|p| p.misconfigurations.is_empty())
            .take(count)
            .map(|entry| sims.practice_for(entry).expect("marketplace practice"))
            .collect();
        assert_eq!(practices.len(), count, "not enough clean practices");
        assert_eq!(practices[0].slug, DEMO_SLUG);
        assert_eq!(practices[0].api_key, DEMO_API_KEY);
        World {
            sims,
            record,
            practices,
            dir,
        }
    }

    fn spec(&self, node_id: &str, database_url: &str, lease_ttl_secs: Option<u64>) -> NodeSpec {
        NodeSpec {
            lease_ttl_secs,
            ..NodeSpec::new(
                env!("CARGO_BIN_EXE_slotbridge"),
                &self.sims,
                node_id,
                database_url,
                self.dir.path(),
            )
        }
    }

    /// Every node log of this world, each with its last lines (for failure messages).
    fn logs(&self) -> String {
        process::logs(self.dir.path(), 30)
    }

    /// Link a practice through a node's admin API.
    async fn link(&self, node_url: &str, p: &Practice) {
        link_practice(&self.http, node_url, None, p)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// Wait until the practice's configuration is on the marketplace, then give every
    /// practitioner its appointment book and types (the admin's Step 2).
    async fn published_and_auto_linked(&self, p: &Practice, context: &dyn Fn() -> String) {
        self.configured_then_auto_linked(&p.practice_id, Duration::from_secs(60), context)
            .await;
    }

    /// At least `wanted` bookable slots of `p` from tomorrow on, no two of them overlapping for
    /// one PMS practitioner (so no booking can be refused for another one's sake).
    async fn distinct_slots(
        &self,
        p: &Practice,
        wanted: usize,
        context: &dyn Fn() -> String,
    ) -> Vec<Value> {
        let best = std::sync::atomic::AtomicUsize::new(0);
        let per_day: Mutex<Vec<usize>> = Mutex::new(Vec::new());
        let found = || {
            format!(
                "found at most {} (per day: {:?})\n{}",
                best.load(std::sync::atomic::Ordering::Relaxed),
                per_day.lock().map(|d| d.clone()).unwrap_or_default(),
                context()
            )
        };
        eventually_or(
            &format!("{wanted} bookable slots at {}", p.slug),
            Duration::from_secs(60),
            found,
            || async {
                let today = p.today();
                let mut taken: HashMap<String, Vec<(Timestamp, Timestamp)>> = HashMap::new();
                let mut picked = Vec::new();
                let mut days = Vec::new();
                for n in 1..=30 {
                    let day = today + jiff::Span::new().days(n);
                    let all = self.slots(&p.practice_id, day).await;
                    days.push(all.len());
                    for s in all {
                        let (start, end) = interval(&s);
                        let who = practitioner_of(&s);
                        let mine = taken.entry(who).or_default();
                        if mine.iter().all(|(a, b)| end <= *a || start >= *b) {
                            mine.push((start, end));
                            picked.push(s);
                        }
                    }
                    if picked.len() >= wanted {
                        return Some(picked);
                    }
                }
                best.fetch_max(picked.len(), std::sync::atomic::Ordering::Relaxed);
                if let Ok(mut d) = per_day.lock() {
                    *d = days;
                }
                None
            },
        )
        .await
    }

    /// A marketplace booking of `slot` by patient number `n`: `Ok(booking id)`, or `Err` with
    /// the simulator's answer when the slot was not bookable (409).
    async fn patient_books(&self, p: &Practice, slot: &Value, n: usize) -> Result<String, String> {
        let dob = jiff::civil::date(1950, 1, 1)
            + jiff::Span::new().days(i64::try_from(n * 37).unwrap_or(0));
        let patient = patient(
            &format!("Cluster{n}"),
            &format!("Patient{n}"),
            &dob.to_string(),
            &format!("04{:08}", 10_000_000 + n * 7919),
            &format!("cluster.patient{n}@example.com"),
        );
        self.try_book(&p.practice_id, &booking_body(slot, patient))
            .await
            .map(|id| id.to_string())
    }

    /// Every booking's marketplace status, by id.
    async fn booking_states(&self, p: &Practice) -> HashMap<String, Value> {
        self.bookings(&p.practice_id)
            .await
            .into_iter()
            .map(|b| (id_string(&b["booking_id"]), b))
            .collect()
    }

    /// The diary entries of `days` that carry an external reference, by reference.
    async fn diary_refs(
        &self,
        p: &Practice,
        days: &BTreeSet<String>,
    ) -> HashMap<String, Vec<Value>> {
        let mut refs: HashMap<String, Vec<Value>> = HashMap::new();
        for day in days {
            for a in self.diary(&p.slug, day).await {
                if let Some(r) = a["external_ref"].as_str().filter(|r| !r.is_empty()) {
                    refs.entry(r.to_owned()).or_default().push(a.clone());
                }
            }
        }
        refs
    }
}

/// A booking id as the control API returns it (a number), as a string.
fn id_string(v: &Value) -> String {
    v.as_i64()
        .map(|n| n.to_string())
        .or_else(|| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("not an id: {v}"))
}

fn interval(slot: &Value) -> (Timestamp, Timestamp) {
    let t = |k: &str| -> Timestamp {
        slot[k]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("slot {k}: {slot}"))
    };
    (t("start"), t("end"))
}

/// The practice-local day of a slot (`YYYY-MM-DD`, the start's date as the simulator prints it).
fn day_of(slot: &Value) -> String {
    slot["start"].as_str().unwrap_or_default()[..10].to_owned()
}

/// A booking made through the marketplace during a scenario.
#[derive(Debug, Clone)]
struct Made {
    practice: usize,
    id: String,
    day: String,
}

/// Fire bookings of `plan` (practice index, slot) one after the other, `pause` apart, in a
/// task; every accepted booking is pushed to the returned list as it is made.
fn fire(
    world: Arc<World>,
    plan: Vec<(usize, Value)>,
    wanted: usize,
    pause: Duration,
) -> (Arc<Mutex<Vec<Made>>>, tokio::task::JoinHandle<Vec<String>>) {
    let made = Arc::new(Mutex::new(Vec::new()));
    let out = made.clone();
    let task = tokio::spawn(async move {
        let mut refused = Vec::new();
        for (n, (practice, slot)) in plan.into_iter().enumerate() {
            if out.lock().expect("made").len() >= wanted {
                break;
            }
            match world
                .patient_books(&world.practices[practice], &slot, n)
                .await
            {
                Ok(id) => out.lock().expect("made").push(Made {
                    practice,
                    id,
                    day: day_of(&slot),
                }),
                Err(why) => refused.push(why),
            }
            tokio::time::sleep(pause).await;
        }
        refused
    });
    (made, task)
}

fn made_now(made: &Arc<Mutex<Vec<Made>>>) -> Vec<Made> {
    made.lock().expect("made").clone()
}

/// Whether the integration has answered a booking: Confirmed or Rejected, nothing pending.
fn answered(b: &Value) -> bool {
    (b["status"] == "Confirmed" || b["status"] == "Rejected") && b["insert_pending"] == false
}

/// How many of `made` the integration has answered so far.
async fn answered_count(world: &World, made: &[Made]) -> usize {
    let mut n = 0;
    for (i, p) in world.practices.iter().enumerate() {
        let states = world.booking_states(p).await;
        n += made
            .iter()
            .filter(|m| m.practice == i)
            .filter(|m| states.get(&m.id).is_some_and(answered))
            .count();
    }
    n
}

/// The outcome counts of a scenario.
#[derive(Debug, Default)]
struct Outcome {
    confirmed: usize,
    auto_confirmed: usize,
    rejected: usize,
    /// Why bookings were rejected, with how many each.
    reasons: BTreeMap<String, usize>,
}

/// Every booking ends Confirmed or Rejected, none is in a diary twice, every Confirmed one is
/// in its diary exactly once (as the appointment the marketplace was given) and no Rejected one
/// is in it at all.
async fn assert_exactly_once(
    world: &World,
    made: &[Made],
    context: &dyn Fn() -> String,
) -> Outcome {
    let mut outcome = Outcome::default();
    for (i, p) in world.practices.iter().enumerate() {
        let mine: Vec<&Made> = made.iter().filter(|m| m.practice == i).collect();
        if mine.is_empty() {
            continue;
        }
        let states = world.booking_states(p).await;
        let days: BTreeSet<String> = mine.iter().map(|m| m.day.clone()).collect();
        let refs = world.diary_refs(p, &days).await;
        for (r, entries) in &refs {
            assert_eq!(
                entries.len(),
                1,
                "{r} is in the diary of {} {} times: {entries:?}\n{}",
                p.slug,
                entries.len(),
                context()
            );
        }
        for m in mine {
            let b = states
                .get(&m.id)
                .unwrap_or_else(|| panic!("booking {} unknown to the marketplace", m.id));
            assert!(
                answered(b),
                "booking {} not answered: {b}\n{}",
                m.id,
                context()
            );
            let in_diary = refs.get(&format!("HE-{}", m.id));
            if b["status"] == "Confirmed" {
                assert_eq!(
                    b["late_reject"], false,
                    "booking {} rejected after the auto-confirm: {b}",
                    m.id
                );
                let entries = in_diary.unwrap_or_else(|| {
                    panic!(
                        "Confirmed booking {} is not in the diary of {}: {b}\n{}",
                        m.id,
                        p.slug,
                        context()
                    )
                });
                let appt = entries[0]["id"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| entries[0]["id"].to_string());
                assert!(
                    b["pms_appointment_ids"]
                        .as_array()
                        .is_some_and(|ids| ids.iter().any(|x| x.as_str() == Some(appt.as_str()))),
                    "booking {} was confirmed with {} but the diary holds {appt}",
                    m.id,
                    b["pms_appointment_ids"]
                );
                outcome.confirmed += 1;
                if b["auto_confirmed"] == true {
                    outcome.auto_confirmed += 1;
                }
            } else {
                assert!(
                    in_diary.is_none(),
                    "Rejected booking {} is in the diary of {}: {b} {in_diary:?}\n{}",
                    m.id,
                    p.slug,
                    context()
                );
                assert!(
                    b["reject_reason"].as_str().is_some_and(|r| !r.is_empty()),
                    "booking {} rejected without a reason: {b}",
                    m.id
                );
                outcome.rejected += 1;
                *outcome
                    .reasons
                    .entry(b["reject_reason"].as_str().unwrap_or_default().to_owned())
                    .or_default() += 1;
            }
        }
    }
    outcome
}

/// Scenario 1 and 2: one node, 200 bookings at distinct slots, SIGKILL mid-way, restart on the
/// same database.
async fn kill_during_200_bookings(database_url: &str, backend: &str) {
    const BOOKINGS: usize = 200;
    let world = Arc::new(World::start(1).await);
    let spec = world.spec("crash-node", database_url, Some(5));
    let mut node = NodeProcess::start(&spec, READY).await;
    let log = || world.logs();
    let p = world.practices[0].clone();
    world.link(&node.url, &p).await;
    world.published_and_auto_linked(&p, &log).await;
    // A few more slots than bookings: a slot may stop being bookable meanwhile.
    let slots = world.distinct_slots(&p, BOOKINGS + 20, &log).await;
    let plan: Vec<(usize, Value)> = slots.into_iter().map(|s| (0, s)).collect();
    let started = Instant::now();
    let (made, firing) = fire(world.clone(), plan, BOOKINGS, Duration::from_millis(40));
    // Mid-way: a third of the bookings made and a good part of them answered.
    let at_kill = eventually_or(
        "a third of the bookings made and 30 answered",
        Duration::from_secs(120),
        &log,
        || async {
            let now = made_now(&made);
            let done = answered_count(&world, &now).await;
            (now.len() >= BOOKINGS / 3 && done >= 30).then_some((now.len(), done))
        },
    )
    .await;
    node.kill9();
    let killed_at = started.elapsed();
    eprintln!(
        "{backend}: SIGKILL after {killed_at:?} with {} bookings made, {} answered",
        at_kill.0, at_kill.1
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut restarted = NodeProcess::start(&spec, READY).await;
    let refused = firing.await.expect("booking task");
    let made = made_now(&made);
    assert_eq!(
        made.len(),
        BOOKINGS,
        "only {} bookings were accepted; refused: {refused:?}",
        made.len()
    );
    eventually_or(
        "every booking answered after the restart",
        Duration::from_secs(240),
        &log,
        || async { (answered_count(&world, &made).await == made.len()).then_some(()) },
    )
    .await;
    let took = started.elapsed();
    let outcome = assert_exactly_once(&world, &made, &log).await;
    eprintln!(
        "{backend}: {BOOKINGS} bookings answered {took:?} after the first ({outcome:?}, {} slots refused by the marketplace)",
        refused.len()
    );
    assert!(
        outcome.confirmed > 0,
        "no booking was confirmed: {outcome:?}"
    );
    assert!(restarted.alive(), "the restarted node died\n{}", log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_200_bookings_on_sqlite_every_booking_ends_confirmed_or_rejected_and_none_is_in_the_diary_twice()
 {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/slotbridge.db?mode=rwc", dir.path().display());
    kill_during_200_bookings(&url, "SQLite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_200_bookings_on_postgres_every_booking_ends_confirmed_or_rejected_and_none_is_in_the_diary_twice()
 {
    let _serial = SERIAL.lock().await;
    let Some(db) = PgDatabase::fresh() else {
        return;
    };
    kill_during_200_bookings(&db.url, "PostgreSQL").await;
}

/// Per practice id, the user agents of the recorded calls, in order, with repeats collapsed.
fn workers_by_practice(record: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for call in recorded_calls(record) {
        if call.practice_id.is_empty() {
            continue;
        }
        let seq = out.entry(call.practice_id).or_default();
        if seq.last() != Some(&call.user_agent) {
            seq.push(call.user_agent);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres_never_work_one_practice_at_once_and_a_killed_nodes_practices_are_taken_over_within_30_seconds()
 {
    const PRACTICES: usize = 4;
    const PER_PRACTICE: usize = 12;
    let _serial = SERIAL.lock().await;
    let Some(db) = PgDatabase::fresh() else {
        return;
    };
    let world = Arc::new(World::start(PRACTICES).await);
    // The binary's default lease time-to-live (20 s): the takeover bound is the product's.
    let specs = [
        world.spec("node-a", &db.url, None),
        world.spec("node-b", &db.url, None),
    ];
    let mut nodes = [
        NodeProcess::start(&specs[0], READY).await,
        NodeProcess::start(&specs[1], READY).await,
    ];
    let log = || world.logs();
    for (i, p) in world.practices.iter().enumerate() {
        // Half the links through each node's admin API: either node may work any of them.
        world.link(&nodes[i % 2].url, p).await;
    }
    for p in world.practices.iter() {
        world.published_and_auto_linked(p, &log).await;
    }
    // Who works what: each practice is worked by exactly one node so far.
    let agents = [user_agent("node-a"), user_agent("node-b")];
    let before = eventually_or(
        "every practice worked by a node",
        Duration::from_secs(30),
        &log,
        || async {
            let w = workers_by_practice(&world.record);
            world
                .practices
                .iter()
                .all(|p| w.contains_key(&p.practice_id))
                .then_some(w)
        },
    )
    .await;
    for (practice, seq) in &before {
        assert_eq!(
            seq.len(),
            1,
            "practice {practice} worked by {seq:?} while both nodes ran"
        );
    }
    let held = |agent: &str| before.values().filter(|s| s[0] == agent).count();
    let victim = usize::from(held(&agents[1]) > held(&agents[0]));
    let survivor = 1 - victim;
    let victims: Vec<&Practice> = world
        .practices
        .iter()
        .filter(|p| before[&p.practice_id][0] == agents[victim])
        .collect();
    eprintln!(
        "before the kill: {} works {} practices, {} works {}",
        agents[0],
        held(&agents[0]),
        agents[1],
        held(&agents[1])
    );
    // Bookings at every practice, interleaved, with a day kept free of them for the desk check.
    let mut plan = Vec::new();
    let mut per: Vec<Vec<Value>> = Vec::new();
    for p in world.practices.iter() {
        per.push(world.distinct_slots(p, PER_PRACTICE, &log).await);
    }
    for k in 0..PER_PRACTICE {
        for (i, slots) in per.iter().enumerate() {
            if let Some(s) = slots.get(k) {
                plan.push((i, s.clone()));
            }
        }
    }
    let total = plan.len();
    let (made, firing) = fire(world.clone(), plan, total, Duration::from_millis(150));
    eventually_or(
        "a third of the bookings made",
        Duration::from_secs(60),
        &log,
        || async { (made_now(&made).len() >= total / 3).then_some(()) },
    )
    .await;
    nodes[victim].kill9();
    let killed = Instant::now();
    let calls_at_kill = recorded_calls(&world.record).len();
    eprintln!(
        "SIGKILL {} with {} bookings made",
        agents[victim],
        made_now(&made).len()
    );
    // Taken over: the survivor calls the marketplace for each of the victim's practices.
    let mut takeover = Duration::ZERO;
    for p in &victims {
        eventually_or(
            &format!("{} taken over by {}", p.slug, agents[survivor]),
            Duration::from_secs(30).saturating_sub(killed.elapsed()),
            &log,
            || async {
                recorded_calls(&world.record)[calls_at_kill..]
                    .iter()
                    .any(|c| c.practice_id == p.practice_id && c.user_agent == agents[survivor])
                    .then_some(())
            },
        )
        .await;
        takeover = takeover.max(killed.elapsed());
    }
    eprintln!(
        "{} practices of the killed node taken over {takeover:?} after the kill",
        victims.len()
    );
    // Availability is fresh again: a desk booking at a taken-over practice leaves the
    // marketplace within 5 s.
    if let Some(p) = victims.first() {
        let used: BTreeSet<String> = made_now(&made).iter().map(|m| m.day.clone()).collect();
        let mut chosen = None;
        for n in 1..=30 {
            let day = p.today() + jiff::Span::new().days(n);
            if used.contains(&day.to_string()) {
                continue;
            }
            if let Some(s) = world.slots(&p.practice_id, day).await.first() {
                chosen = Some((day, s.clone()));
                break;
            }
        }
        let (day, slot) = chosen.expect("a day with slots and no bookings");
        world.desk_book(&p.slug, &slot).await;
        eventually_or(
            "the desk booking's slot gone from the marketplace after the takeover",
            Duration::from_secs(5),
            &log,
            || async { (!offers(&world.slots(&p.practice_id, day).await, &slot)).then_some(()) },
        )
        .await;
    }
    let refused = firing.await.expect("booking task");
    let made = made_now(&made);
    assert!(
        made.len() * 10 >= total * 9,
        "only {} of {total} bookings accepted; refused: {refused:?}",
        made.len()
    );
    eventually_or(
        "every booking answered after the takeover",
        Duration::from_secs(120),
        &log,
        || async { (answered_count(&world, &made).await == made.len()).then_some(()) },
    )
    .await;
    let outcome = assert_exactly_once(&world, &made, &log).await;
    eprintln!("two nodes: {} bookings, {outcome:?}", made.len());
    // Never two nodes on one practice: per practice, the killed node's calls (if any) all come
    // before the survivor's, and nobody else called.
    for (practice, seq) in workers_by_practice(&world.record) {
        let ok = match seq.as_slice() {
            [only] => agents.contains(only),
            [first, second] => *first == agents[victim] && *second == agents[survivor],
            _ => false,
        };
        assert!(
            ok,
            "practice {practice} was worked by {seq:?} in turn\n{}",
            log()
        );
    }
    assert!(
        nodes[survivor].alive(),
        "the surviving node died\n{}",
        log()
    );
    // And the survivor holds every lease now.
    let holders = db.query("SELECT DISTINCT node_id FROM link_leases");
    assert_eq!(
        holders,
        vec![specs[survivor].node_id.clone()],
        "lease holders"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_answers_nothing_until_it_is_resumed_and_a_restarted_one_serves_again() {
    let _serial = SERIAL.lock().await;
    let world = World::start(1).await;
    let db = slotbridge_testkit::TestDb::sqlite();
    let mut node = NodeProcess::start(&world.spec("pause-node", db.url(), Some(5)), READY).await;
    // Whether the node answers `/readyz` within `within`. A running node answers within a
    // second on a quiet machine, but the suite runs beside other nodes and builds on 2 cores:
    // the checks of a running node allow 10 s. A paused node never answers: 2 s show it.
    let ready = |url: String, within: Duration| {
        let http = world.http.clone();
        async move {
            http.get(format!("{url}/readyz"))
                .timeout(within)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    };
    let running = Duration::from_secs(10);
    assert!(
        ready(node.url.clone(), running).await,
        "{}",
        node.log_tail(20)
    );
    node.pause();
    assert!(node.alive(), "a paused process still exists");
    assert!(
        !ready(node.url.clone(), Duration::from_secs(2)).await,
        "a paused node does not answer"
    );
    node.resume();
    eventually_or(
        "the resumed node answers",
        Duration::from_secs(10),
        || node.log_tail(20),
        || async {
            ready(node.url.clone(), Duration::from_secs(1))
                .await
                .then_some(())
        },
    )
    .await;
    let before = node.log.clone();
    node.restart(READY).await;
    assert_ne!(node.log, before, "a restart writes a new log");
    assert!(
        ready(node.url.clone(), running).await,
        "{}",
        node.log_tail(20)
    );
    assert!(
        node.log_text().contains("slotbridge node started"),
        "{}",
        node.log_tail(20)
    );
    node.kill9();
    assert!(!node.alive());
}
