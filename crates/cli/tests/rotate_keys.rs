//! `slotbridge rotate-keys`, the binary, on a SQLite file: a link and a booking sealed with the
//! old master key are resealed with the new one (the keyring from `SLOTBRIDGE_MASTER_KEY`, the
//! database from `SLOTBRIDGE_DATABASE_URL`), after which the store opens with the new key alone
//! and everything reads back; a second run reseals nothing.

use std::process::Command;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use slotbridge_domain::practice::SiteSlug;
use slotbridge_store::{HorizonDays, Keyring, NewBooking, NewLink, Store};
use slotbridge_testkit::sqlite_url;

const BIN: &str = env!("CARGO_BIN_EXE_slotbridge");

/// `slotbridge rotate-keys` with the keyring `keys` on the database at `url`: its stdout.
fn rotate_keys(url: &str, keys: &str) -> String {
    let out = Command::new(BIN)
        .arg("rotate-keys")
        .env("SLOTBRIDGE_DATABASE_URL", url)
        .env("SLOTBRIDGE_MASTER_KEY", keys)
        .env_remove("SLOTBRIDGE_MASTER_KEY_FILE")
        .env_remove("SLOTBRIDGE_CONFIG")
        .output()
        .expect("slotbridge rotate-keys");
    assert!(
        out.status.success(),
        "rotate-keys failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test]
async fn rotate_keys_reseals_the_links_keys_and_the_booking_requests_so_the_old_key_can_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sqlite_url(&dir.path().join("slotbridge.db"));
    let old = format!("k1:{}", Keyring::generate_key().expose_secret());
    let new = format!("k2:{}", Keyring::generate_key().expose_secret());
    let request = json!({"bookingId": 7, "patient": {"firstname": "Ada", "lastname": "Hopper"}});

    let store = Store::open(&url, Keyring::parse(&old).expect("keyring"))
        .await
        .expect("store");
    let link = store
        .create_link(NewLink {
            site_slug: SiteSlug::parse("sharbour").expect("slug"),
            pms_api_key: SecretString::from("the PMS key".to_owned()),
            market_practice_id: "p-1".into(),
            market_practice_key: SecretString::from("the practice key".to_owned()),
            enabled: true,
            horizon_days: HorizonDays::default(),
        })
        .await
        .expect("link");
    let held = store
        .acquire_leases("rotate-test", 10, Duration::from_secs(60))
        .await
        .expect("lease");
    store
        .enqueue_booking(
            &held[0].lease,
            &NewBooking {
                booking_id: "7".into(),
                link_id: link.id,
                market_practice_id: "p-1".into(),
                request: request.clone(),
                received_at: jiff::Timestamp::now(),
            },
        )
        .await
        .expect("booking");
    store.close().await;

    let said = rotate_keys(&url, &format!("{old}\n{new}"));
    assert!(said.contains("1 links, 1 booking requests"), "{said}");
    let again = rotate_keys(&url, &format!("{old}\n{new}"));
    assert!(again.contains("0 links, 0 booking requests"), "{again}");

    let store = Store::open(&url, Keyring::parse(&new).expect("keyring"))
        .await
        .expect("the store opens with the new key alone");
    let l = store.link(link.id).await.expect("read").expect("the link");
    assert_eq!(l.pms_api_key.expose_secret(), "the PMS key");
    assert_eq!(l.market_practice_key.expose_secret(), "the practice key");
    let b = store
        .booking("7")
        .await
        .expect("read")
        .expect("the booking");
    assert_eq!(b.request, request);
    store.close().await;
}
