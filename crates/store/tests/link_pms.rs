//! Which PMS a link reaches (migration 0013), on SQLite and PostgreSQL.

#[allow(dead_code)] // the suite's shared support; this file uses a part of it
mod support;

use secrecy::SecretString;
use slotbridge_domain::practice::SiteSlug;
use slotbridge_store::{HorizonDays, LinkPms, NewLink, StoreError};
use support::Ctx;

both_backends!(
    a_link_remembers_its_pms_kind_and_business,
    a_cliniko_business_id_is_letters_and_digits,
);

fn new_link(slug: &str, practice: &str) -> NewLink {
    NewLink {
        site_slug: SiteSlug::parse(slug).expect("valid slug"),
        pms_api_key: SecretString::from(format!("key-{practice}-au1")),
        market_practice_id: practice.to_owned(),
        market_practice_key: SecretString::from(format!("practice-key-{practice}")),
        enabled: true,
        horizon_days: HorizonDays::default(),
    }
}

async fn a_link_remembers_its_pms_kind_and_business(ctx: Ctx) {
    let s = &ctx.store;
    let exact = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    assert_eq!(exact.pms, LinkPms::Exact);
    let cliniko = s
        .create_link_of(
            new_link("lcliniko514810976554457178", "p-2"),
            LinkPms::Cliniko {
                business_id: "514810976554457178".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(cliniko.pms.kind(), "cliniko");
    let read = s.link(cliniko.id).await.unwrap().expect("link");
    assert_eq!(
        read.pms,
        LinkPms::Cliniko {
            business_id: "514810976554457178".into()
        }
    );
    let kinds: Vec<_> = s
        .list_links()
        .await
        .unwrap()
        .iter()
        .map(|l| l.pms.kind())
        .collect();
    assert_eq!(kinds, ["exact", "cliniko"]);
}

async fn a_cliniko_business_id_is_letters_and_digits(ctx: Ctx) {
    for bad in ["", "12 34", "1/2", &"9".repeat(41)] {
        let err = ctx
            .store
            .create_link_of(
                new_link("lcliniko1", "p-3"),
                LinkPms::Cliniko {
                    business_id: bad.to_owned(),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::InvalidInput {
                    field: "business_id",
                    ..
                }
            ),
            "{bad:?}: {err:?}"
        );
    }
    assert!(ctx.store.list_links().await.unwrap().is_empty());
}
