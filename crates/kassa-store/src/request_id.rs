//! The id of the HTTP request being served, carried into the jobs it writes.
//!
//! The server gives each request an id (`req_<ulid>`), logs it and runs the request in
//! its scope; a job written in that scope carries it in its arguments, and a worker
//! runs the job in the same scope again, so the jobs that job writes (a delivered
//! line's `product.delivered`) carry it on. An id says nothing about the request: no
//! path, no customer, no secret.

use std::fmt;

tokio::task_local! {
    static CURRENT: RequestId;
}

/// A request's id, as logged with the request and with every job it caused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    /// A new id for a request.
    pub fn generate() -> Self {
        Self(format!("req_{}", ulid::Ulid::new()))
    }

    /// An id as stored with the work it caused (a webhook delivery's row, an email's).
    pub fn from_stored(id: String) -> Self {
        Self(id)
    }

    /// The id of the request (or of the job) this task serves, if any.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `work` as part of this request: the jobs it writes carry this id.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
