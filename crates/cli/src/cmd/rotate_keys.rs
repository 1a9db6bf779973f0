//! `slotbridge rotate-keys`: reseal every stored secret (the links' keys, the bookings'
//! requests) with the keyring's newest master key, so the older keys can be removed
//! (docs/operations.md, "Rotating the master key"). Safe while nodes run; run it again to
//! finish an interrupted run.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use slotbridge_store::{Keyring, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The nodes' configuration file (TOML): only `database_url` is read, and
    /// SLOTBRIDGE_DATABASE_URL wins. The keyring comes from SLOTBRIDGE_MASTER_KEY or
    /// SLOTBRIDGE_MASTER_KEY_FILE, with the new key last.
    #[arg(long, short, env = "SLOTBRIDGE_CONFIG")]
    config: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let file = match super::run::file_config(args.config.as_deref())? {
        Ok(c) => c,
        Err(message) => return Ok(super::usage_error(message)),
    };
    super::init_tracing(false);
    let keys = match Keyring::from_env() {
        Ok(k) => k,
        Err(e) => return Ok(super::usage_error(format!("master key: {e}"))),
    };
    let newest = keys.newest_key_id().to_owned();
    let url = super::run::database_url(&file);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let store = Store::open(&url, keys)
            .await
            .context("opening the database")?;
        let resealed = store.rotate_secrets().await;
        store.close().await;
        let resealed = resealed.context("resealing (run it again to finish)")?;
        println!(
            "resealed with master key {newest:?}: {} links, {} booking requests; every stored \
             secret is now sealed with it, and the older keys may be removed",
            resealed.links, resealed.booking_requests
        );
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
