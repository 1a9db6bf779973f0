//! The marketplace side: a client for the Healthengine PMS API v1.9.0, its wire types, and a
//! webhook receiver.
//!
//! - [`types`]: one definition of each wire type, shared with the simulator.
//! - [`format`]: the API's time and date formats as serde helpers.
//! - [`read`]: request lists read item by item ([`read::RequestPage`], [`read::Unreadable`]) and
//!   the poll's known and unknown request types ([`read::Polled`]).
//! - [`MarketClient`] / [`PracticeClient`]: every endpoint an integration uses.
//! - [`WebhookReceiver`]: acknowledges payloads fast and deduplicates them.
//!
//! ```no_run
//! use slotbridge_market::{ClientConfig, MarketClient, PracticeCredentials, MarketError};
//! # async fn demo() -> Result<(), MarketError> {
//! let client = MarketClient::new(ClientConfig::new(
//!     "https://healthengine.com.au/pms-api/v1",
//!     "api-key-from-healthengine".to_owned().into(),
//! ))?;
//! let practice = client.practice(PracticeCredentials::new("1234567", "practice-key"));
//! match practice.poll().await {
//!     Err(MarketError::ConsentMissing { .. }) => { /* guide the practice to grant consent */ }
//!     other => { let _ = other?; }
//! }
//! # Ok(()) }
//! ```

pub mod client;
pub mod error;
pub mod format;
mod lenient;
pub mod read;
mod safe;
pub mod types;
pub mod webhook;

pub use client::{
    CallGuard, CallObserver, ClientConfig, ErrorLogQuery, MAX_SNAPSHOTS_PER_BATCH, MarketClient,
    PracticeClient, PracticeCredentials, user_agent,
};
pub use error::MarketError;
pub use read::{ListItem, Polled, RequestPage, Requests, Unreadable};
pub use webhook::{PayloadKey, WebhookReceiver};
