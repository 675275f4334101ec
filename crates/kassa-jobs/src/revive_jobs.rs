//! Starts again the jobs whose every attempt failed on a database error, once they have
//! been dead for a while: no paid line, email or webhook is left behind by an outage.

use std::time::Duration;

use apalis::prelude::Data;
use apalis_cron::Tick;

use crate::workers::{Error, Workers};

/// How long a job stays dead before it is revived: the schedule's own backoff.
const DEAD_FOR: Duration = Duration::from_secs(60);

pub(crate) async fn run(_: Tick, workers: Data<Workers>) -> Result<(), Error> {
    let revived = workers.store.revive_dead_jobs(DEAD_FOR).await?;
    if revived > 0 {
        tracing::warn!(revived, "revived jobs whose every attempt had failed");
    }
    Ok(())
}
