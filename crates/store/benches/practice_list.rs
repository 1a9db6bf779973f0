//! How long one page of the practice list takes with 10,000 practices: search, filter, the
//! attention order and the total, in SQL (`Store::list_practices`). A tenth of the practices
//! have setup findings, a fiftieth a change waiting.
//! SQLite always; PostgreSQL too when `SLOTBRIDGE_BENCH_PG_URL` names an empty database to use.

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::{Timestamp, ToSpan};
use secrecy::{ExposeSecret, SecretString};
use slotbridge_domain::practice::SiteSlug;
use slotbridge_store::{
    HorizonDays, Keyring, ListFilter, ListQuery, NewLink, SetupFindings, Store, SyncChanges,
};

const PRACTICES: usize = 10_000;

async fn setup(url: &str) -> Store {
    let keys = Keyring::parse(Keyring::generate_key().expose_secret()).expect("keyring");
    let store = Store::open(url, keys).await.expect("open store");
    for i in 0..PRACTICES {
        store
            .create_link(NewLink {
                site_slug: SiteSlug::parse(&format!("sbench{i}")).expect("slug"),
                pms_api_key: SecretString::from("bench-pms-key"),
                market_practice_id: format!("bench-{i}"),
                market_practice_key: SecretString::from("bench-practice-key"),
                enabled: true,
                horizon_days: HorizonDays::default(),
            })
            .await
            .expect("create link");
    }
    let held = store
        .acquire_leases(
            "bench-node",
            PRACTICES as u32,
            std::time::Duration::from_secs(3600),
        )
        .await
        .expect("leases");
    let t0 = Timestamp::from_second(1_800_000_000).expect("instant");
    for (i, h) in held.iter().enumerate() {
        let findings = (i % 10 == 0).then(|| SetupFindings {
            errors: u32::from(i % 30 == 0),
            warnings: 2,
            codes: ["stacking-off".to_owned()].into(),
        });
        store
            .update_sync_state(
                &h.lease,
                SyncChanges {
                    pms_practice_name: Some(format!("Dental practice {i}")),
                    setup_findings: findings,
                    change_pending_since: (i % 50 == 0).then(|| t0 + (i as i64).seconds()),
                    last_publish_at: Some(t0),
                    ..SyncChanges::default()
                },
            )
            .await
            .expect("sync state");
    }
    store
}

fn bench_backend(c: &mut Criterion, name: &str, url: &str) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = rt.block_on(setup(url));
    let mut group = c.benchmark_group(format!("practice_list_10000/{name}"));
    group.sample_size(20);
    let cases = [
        ("first_page_of_50", "", ListFilter::All, 0),
        ("last_page_of_50", "", ListFilter::All, 9_950),
        ("needs_attention", "", ListFilter::NeedsAttention, 0),
        (
            "finding_code",
            "",
            ListFilter::Finding("stacking-off".into()),
            0,
        ),
        ("search_name", "practice 77", ListFilter::All, 0),
    ];
    for (case, search, filter, offset) in cases {
        let q = ListQuery {
            search: search.to_owned(),
            filter,
            offset,
            limit: 50,
        };
        group.bench_function(case, |b| {
            b.iter(|| {
                let page = rt.block_on(store.list_practices(&q)).expect("page");
                assert!(!page.links.is_empty());
            })
        });
    }
    group.finish();
    for l in rt.block_on(store.list_links()).expect("links") {
        rt.block_on(store.delete_link(l.id)).expect("clean up");
    }
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    bench_backend(c, "sqlite", &url);
    if let Ok(pg) = std::env::var("SLOTBRIDGE_BENCH_PG_URL") {
        bench_backend(c, "postgres", &pg);
    }
}

criterion_group!(list, benches);
criterion_main!(list);
