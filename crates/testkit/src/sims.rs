//! Both simulators, served by this process, and the practices both sides know.

use std::ops::Deref;
use std::path::PathBuf;

use slotbridge_market_sim::MarketSim;
use slotbridge_pms_sim::{DEMO_API_KEY, DEMO_SLUG, ManifestEntry, PmsSim};
use tokio::net::TcpListener;

use crate::control::Control;
use crate::{CONSUMER, HARBOUR_TZ, MARKET_API_KEY};

/// One practice as both sides know it: a PMS site and a marketplace practice that consents to
/// [`CONSUMER`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Practice {
    /// The marketplace practice id.
    pub practice_id: String,
    /// The marketplace practice key.
    pub practice_key: String,
    /// The PMS site slug.
    pub slug: String,
    /// The PMS site's api key.
    pub api_key: String,
    /// The practice's IANA time zone.
    pub timezone: String,
    /// Its name on the marketplace.
    pub name: String,
}

impl Practice {
    /// Today in the practice's time zone.
    pub fn today(&self) -> jiff::civil::Date {
        crate::today_in(&self.timezone)
    }
}

/// How to start [`Sims`].
pub struct SimsBuilder {
    pms: Option<PmsSim>,
    market_api_key: String,
    record: Option<PathBuf>,
    market_quirks: bool,
    pms_listener: Option<TcpListener>,
    market_listener: Option<TcpListener>,
}

impl SimsBuilder {
    /// The PMS simulator to serve (default: `PmsSim::builder().build()`, Harbour Dental only).
    pub fn pms(mut self, sim: PmsSim) -> Self {
        self.pms = Some(sim);
        self
    }

    /// The api key of [`CONSUMER`] on the marketplace (default [`MARKET_API_KEY`]).
    pub fn market_api_key(mut self, key: impl Into<String>) -> Self {
        self.market_api_key = key.into();
        self
    }

    /// Record every marketplace API call to `path`, one JSON line each.
    pub fn record(mut self, path: impl Into<PathBuf>) -> Self {
        self.record = Some(path.into());
        self
    }

    /// Run the marketplace simulator in its quirks mode: valid but differently shaped answers
    /// (the other dob format, nulls, extra fields, an unknown request type; docs/market-sim.md).
    pub fn market_quirks(mut self, on: bool) -> Self {
        self.market_quirks = on;
        self
    }

    /// Serve the PMS simulator on `listener` (default: a new one on `127.0.0.1:0`).
    pub fn pms_listener(mut self, listener: TcpListener) -> Self {
        self.pms_listener = Some(listener);
        self
    }

    /// Serve the marketplace simulator on `listener` (default: a new one on `127.0.0.1:0`).
    pub fn market_listener(mut self, listener: TcpListener) -> Self {
        self.market_listener = Some(listener);
        self
    }

    /// Serve both.
    ///
    /// # Errors
    /// A listener cannot be bound or read, or the record file cannot be created.
    pub async fn start(self) -> std::io::Result<Sims> {
        let pms_sim = self.pms.unwrap_or_else(|| PmsSim::builder().build());
        let pms_listener = match self.pms_listener {
            Some(l) => l,
            None => TcpListener::bind("127.0.0.1:0").await?,
        };
        let pms = pms_sim.serve(pms_listener).await?;
        let mut market = MarketSim::builder().consumer(CONSUMER, self.market_api_key.clone());
        if let Some(path) = &self.record {
            market = market.record(path.clone());
        }
        if self.market_quirks {
            market = market.quirks(true);
        }
        let market_listener = match self.market_listener {
            Some(l) => l,
            None => TcpListener::bind("127.0.0.1:0").await?,
        };
        let market = market.build()?.serve(market_listener).await?;
        let control = Control::new(market.base_url(), pms.base_url());
        Ok(Sims {
            pms,
            market,
            market_api_key: self.market_api_key,
            record: self.record,
            control,
        })
    }
}

/// The PMS simulator and the marketplace simulator, served until dropped. Derefs to the
/// [`Control`] helpers on them.
pub struct Sims {
    /// The PMS simulator (`.sim()` for its manifest, faults and desk).
    pub pms: slotbridge_pms_sim::SimHandle,
    /// The marketplace simulator (`.sim()` for its model).
    pub market: slotbridge_market_sim::SimHandle,
    /// The api key of [`CONSUMER`].
    pub market_api_key: String,
    /// The record file, when recording.
    pub record: Option<PathBuf>,
    control: Control,
}

impl Deref for Sims {
    type Target = Control;

    fn deref(&self) -> &Control {
        &self.control
    }
}

impl Sims {
    /// Start with [`SimsBuilder`]'s defaults changed as wanted.
    pub fn builder() -> SimsBuilder {
        SimsBuilder {
            pms: None,
            market_api_key: MARKET_API_KEY.into(),
            record: None,
            market_quirks: false,
            pms_listener: None,
            market_listener: None,
        }
    }

    /// The helpers' HTTP client (e.g. one that does not follow redirects).
    pub fn set_http(&mut self, http: reqwest::Client) {
        self.control.http = http;
    }

    /// The marketplace API base URL a node is given (`…/pms-api/v1`).
    pub fn market_api_url(&self) -> String {
        self.market.api_url()
    }

    /// A marketplace practice `name` in `timezone` for the PMS site `slug` (`api_key`).
    ///
    /// # Errors
    /// The marketplace simulator refuses it (unknown time zone).
    pub fn create_practice(
        &self,
        name: &str,
        timezone: &str,
        slug: &str,
        api_key: &str,
    ) -> anyhow::Result<Practice> {
        let (practice_id, practice_key) = self
            .market
            .sim()
            .create_practice(name, timezone, CONSUMER)
            .map_err(|e| anyhow::anyhow!("creating the marketplace practice {name}: {e:?}"))?;
        Ok(Practice {
            practice_id,
            practice_key,
            slug: slug.into(),
            api_key: api_key.into(),
            timezone: timezone.into(),
            name: name.into(),
        })
    }

    /// "Harbour Dental" on the marketplace, for the PMS simulator's demo site.
    ///
    /// # Errors
    /// See [`Sims::create_practice`].
    pub fn harbour(&self) -> anyhow::Result<Practice> {
        self.listing("Harbour Dental")
    }

    /// Another marketplace listing `name` of the demo site (Harbour Dental's PMS).
    ///
    /// # Errors
    /// See [`Sims::create_practice`].
    pub fn listing(&self, name: &str) -> anyhow::Result<Practice> {
        self.create_practice(name, HARBOUR_TZ, DEMO_SLUG, DEMO_API_KEY)
    }

    /// A marketplace practice for a PMS practice of the simulator's manifest.
    ///
    /// # Errors
    /// See [`Sims::create_practice`].
    pub fn practice_for(&self, entry: &ManifestEntry) -> anyhow::Result<Practice> {
        self.create_practice(&entry.name, &entry.timezone, &entry.slug, &entry.api_key)
    }
}

/// The diagnostics finding code of a misconfiguration the PMS simulator plants (its manifest's
/// `kind`); panics on a kind the diagnostics do not know.
pub fn finding_code(kind: &str) -> &'static str {
    match kind {
        "stacking_off" => "stacking-off",
        "no_healthengine_reason" => "healthengine-reason-missing",
        "health_engine_misspelt" => "healthengine-reason-misspelt",
        "default_reason_too_short" => "default-reason-too-short",
        "default_reason_not_all_types" => "default-reason-not-all-types",
        "practitioner_missing_from_reason" => "practitioner-missing-from-reason",
        "duration_mismatch" => "duration-mismatch",
        other => panic!("the simulator plants {other:?}, which the diagnostics do not know"),
    }
}
