//! The control API's request counts (`GET /_sim/stats`): what a bench reads to say how much of
//! each key's 200 requests a minute an integration spends.

mod common;

use common::{Env, practice};
use jiff::SignedDuration;
use serde_json::Value;

#[tokio::test]
async fn stats_count_each_accounts_requests_and_its_rate_limited_ones() {
    let env = Env::start(practice("au1", 0), Some(3)).await;
    let other = env.sim.seed(practice("au1", 0)).unwrap();
    for _ in 0..5 {
        env.get("/businesses").await;
    }
    // Refused before the key is known: not counted for anyone.
    let r = env
        .http
        .get(format!("{}/businesses", env.base()))
        .basic_auth("not-a-key", Some(""))
        .header("User-Agent", common::UA)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    env.clock.advance(SignedDuration::from_secs(60));
    assert_eq!(env.get("/businesses").await.status(), 200);
    let stats: Value = env
        .http
        .get(format!("{}/_sim/stats", env.handle.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mine = &stats["accounts"][env.practice.account_id.to_string()];
    assert_eq!(mine["requests"], 4, "{stats}");
    assert_eq!(mine["rate_limited"], 2, "{stats}");
    assert!(
        stats["accounts"][other.account_id.to_string()].is_null(),
        "an account that made no request is not listed: {stats}"
    );
    assert_eq!(
        env.sim.request_counts()[&env.practice.account_id].requests,
        4
    );
}
