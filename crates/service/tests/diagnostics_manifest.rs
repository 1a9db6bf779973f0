//! Every misconfiguration the PMS simulator plants in its generated practices is found by the
//! diagnostics, with none missed and no false alarms. The practices are read the way the
//! integration reads them: through the connector, over HTTP.

use std::collections::BTreeSet;

use slotbridge_domain::diagnostics::{Input, diagnose};
use slotbridge_domain::practice::SiteSlug;
use slotbridge_pms::{ExactConfig, ExactConnector, PmsConnector};
use slotbridge_pms_sim::PmsSim;
use slotbridge_testkit::finding_code;
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_planted_misconfiguration_is_found_with_none_missed_and_no_false_alarms() {
    let sim = PmsSim::builder().practices(45).seed(7).build();
    let manifest = serde_json::to_value(sim.manifest()).expect("manifest");
    let handle = sim
        .serve(TcpListener::bind("127.0.0.1:0").await.expect("bind"))
        .await
        .expect("serve");
    let base: url::Url = handle.base_url().parse().expect("url");
    let practices = manifest["practices"].as_array().expect("practices");
    assert!(practices.len() >= 46);
    let mut planted_kinds = BTreeSet::new();
    let now = jiff::Timestamp::now();
    for p in practices {
        let slug = p["slug"].as_str().expect("slug");
        let pms = ExactConnector::new(ExactConfig::new(
            base.clone(),
            SiteSlug::parse(slug).expect("slug"),
            p["api_key"].as_str().expect("key").to_owned().into(),
        ));
        let setup = pms.read_setup().await.expect("setup");
        let today = now
            .to_zoned_datetime(setup.timezone.time_zone().clone())
            .date();
        let end = today + jiff::Span::new().days(30);
        let diary = pms.read_diary(today, end).await.expect("diary");
        let found: BTreeSet<(String, Option<String>)> =
            diagnose(&Input::new(&setup, &diary, today, 30))
                .into_iter()
                .map(|f| (f.code.as_str().to_owned(), f.practitioner))
                .collect();
        let planted: BTreeSet<(String, Option<String>)> = p["misconfigurations"]
            .as_array()
            .expect("misconfigurations")
            .iter()
            .map(|m| {
                let kind = m["kind"].as_str().expect("kind");
                planted_kinds.insert(kind.to_owned());
                let per_practitioner = matches!(
                    kind,
                    "practitioner_missing_from_reason" | "duration_mismatch"
                );
                (
                    finding_code(kind).to_owned(),
                    per_practitioner
                        .then(|| m["practitioner"].as_str().map(str::to_owned))
                        .flatten(),
                )
            })
            .collect();
        assert_eq!(found, planted, "practice {slug}: found vs planted");
    }
    assert_eq!(
        planted_kinds.len(),
        7,
        "every kind is planted somewhere: {planted_kinds:?}"
    );
    handle.shutdown().await;
}
