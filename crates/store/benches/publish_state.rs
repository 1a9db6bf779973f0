//! How long the publish-state round trip takes for one practice's whole horizon: 20 resources x
//! 90 days = 1,800 (resource, day) hashes, diffed against the stored ones, and recorded in one
//! transaction.
//! SQLite always; PostgreSQL too when `SLOTBRIDGE_BENCH_PG_URL` names a database to use
//! (its tables are written to).

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::civil::date;
use jiff::{Timestamp, ToSpan};
use secrecy::{ExposeSecret, SecretString};
use slotbridge_domain::practice::SiteSlug;
use slotbridge_store::{ContentHash, HorizonDays, Keyring, LinkId, NewLink, PublishItem, Store};

fn horizon(round: u64) -> Vec<PublishItem> {
    let start = date(2026, 11, 25);
    (0..20u64)
        .flat_map(|r| {
            (0..90i64).map(move |d| PublishItem {
                resource_id: format!("resource-{r}"),
                day: start.checked_add(d.days()).expect("in range"),
                hash: ContentHash::of(format!("{r}/{d}/{round}").as_bytes()),
            })
        })
        .collect()
}

async fn setup(url: &str) -> (Store, LinkId) {
    let keys = Keyring::parse(Keyring::generate_key().expose_secret()).expect("keyring");
    let store = Store::open(url, keys).await.expect("open store");
    let link = store
        .create_link(NewLink {
            site_slug: SiteSlug::parse("sbench").expect("slug"),
            pms_api_key: SecretString::from("bench-pms-key"),
            market_practice_id: format!("bench-{}", uuid::Uuid::new_v4()),
            market_practice_key: SecretString::from("bench-practice-key"),
            enabled: true,
            horizon_days: HorizonDays::new(90).expect("horizon"),
        })
        .await
        .expect("create link");
    (store, link.id)
}

fn bench_backend(c: &mut Criterion, name: &str, url: &str) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (store, link) = rt.block_on(setup(url));
    // Publish state is written by the link's lease holder.
    let lease = rt
        .block_on(store.acquire_leases("bench-node", 1, std::time::Duration::from_secs(3600)))
        .expect("lease")
        .pop()
        .expect("the link's lease")
        .lease;
    let mut round = 0u64;
    let mut group = c.benchmark_group(format!("publish_state/{name}"));
    group.sample_size(20);
    // Steady state: the whole horizon is stored and nothing changed.
    let stored = horizon(0);
    rt.block_on(store.record_published(&lease, 1, &stored, Timestamp::now()))
        .expect("record");
    group.bench_function("diff_1800_against_1800_stored", |b| {
        b.iter(|| {
            let changed = rt
                .block_on(store.changed_publish_items(link, &stored))
                .expect("diff");
            assert!(changed.is_empty());
        })
    });
    group.bench_function("record_1800_in_one_transaction", |b| {
        b.iter(|| {
            round += 1;
            let items = horizon(round);
            rt.block_on(store.record_published(&lease, 1, &items, Timestamp::now()))
                .expect("record")
        })
    });
    group.finish();
    rt.block_on(store.delete_link(link)).expect("clean up");
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

criterion_group!(publish, benches);
criterion_main!(publish);
