//! Deletes finished work that is past its keeping time (see `kassa_store::retention`).

use apalis::prelude::Data;
use apalis_cron::Tick;

use crate::workers::{Error, Workers};

pub(crate) async fn run(_: Tick, workers: Data<Workers>) -> Result<(), Error> {
    let done = workers.store.clean_up().await?;
    tracing::debug!(?done, "cleaned up finished work");
    Ok(())
}
