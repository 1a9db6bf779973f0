//! One test stack for slotbridge: the tests, the benchmarks and `slotbridge demo` start the
//! simulators, the database and the nodes here, and nowhere else.
//!
//! - [`Sims`]: the PMS simulator and the marketplace simulator on loopback ports (or on given
//!   listeners), with [`Practice`]s created on the marketplace for PMS sites.
//! - [`Control`]: HTTP helpers on the simulators' control APIs: the marketplace's patient side
//!   ([`Control::book`]), its slots, bookings and practices, and the PMS desk's diary.
//! - [`TestDb`]: SQLite in a temporary directory, or a fresh PostgreSQL database that is dropped
//!   afterwards ([`PgDatabase`]); without a server and outside CI it says so and is skipped.
//! - [`Stack`]: both simulators, a database and one or several in-process nodes
//!   ([`slotbridge_service::node::Node`]), the demo practice linked; stop and restart nodes.
//! - [`kinds`]: the suite over both PMS kinds: a stack's practice on the Exact-style PMS or on
//!   Cliniko ([`PmsKind`], [`StackBuilder::pms_kind`]), and the desk's actions for either.
//! - [`process`]: `slotbridge run` child processes: kill -9, pause (SIGSTOP), resume (SIGCONT),
//!   restart, and their logs.
//! - [`eventually`]: poll until something holds, failing with what did not within the limit.
//! - [`capture`]: every log line at every level, and every value stored in the database, for
//!   tests that look for what must not be there.
//! - [`proxy`]: a proxy in front of the PMS simulator injecting faults into chosen requests.
//! - [`disk`]: database faults from outside the node: a SQLite file write-locked by another
//!   connection, a small filesystem filled to the last byte and emptied again.
//!
//! The building blocks return errors (the demo reports them); the [`Stack`] and the helpers the
//! tests use panic with a message naming what failed.

pub mod browser;
pub mod capture;
pub mod control;
pub mod db;
pub mod disk;
pub mod kinds;
pub mod poll;
pub mod process;
pub mod proxy;
pub mod sims;
pub mod stack;

pub use capture::{LogCapture, StoredValue, logs, stored_values};
pub use control::{Call, Control, booking_body, patient, recorded_calls};
pub use db::{Db, PgDatabase, TestDb, sqlite_url};
pub use kinds::{ClinikoSide, Held, PmsKind};
pub use poll::{eventually, eventually_or, poll_until};
pub use proxy::{Fault, PmsProxy};
pub use sims::{Practice, Sims, SimsBuilder, finding_code};
pub use stack::{Stack, StackBuilder, link_cliniko, link_practice, node_config};

/// The master key every node of a test shares (32 zero bytes; tests only).
pub const MASTER_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// The marketplace consumer the integration is, as the marketplace simulator knows it.
pub const CONSUMER: &str = "slotbridge";

/// The marketplace api key of [`CONSUMER`] unless a test chooses another.
pub const MARKET_API_KEY: &str = "test-api-key";

/// The demo practice's time zone (Harbour Dental, the PMS simulator's first practice).
pub const HARBOUR_TZ: &str = "Australia/Sydney";

/// The keyring of [`MASTER_KEY`].
pub fn keyring() -> slotbridge_store::Keyring {
    slotbridge_store::Keyring::parse(MASTER_KEY).expect("the test master key parses")
}

/// Today in the time zone `tz` (an IANA name).
pub fn today_in(tz: &str) -> jiff::civil::Date {
    jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get(tz).expect("a known time zone"))
        .date()
}
