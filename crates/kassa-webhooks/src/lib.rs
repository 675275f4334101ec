//! Outgoing webhooks, as the Standard Webhooks spec describes them: the signature
//! headers, the retry schedule with jitter, and an HTTP sender that refuses private
//! and metadata addresses unless the operator allows them. No storage here: the
//! caller decides what to send and records what happened.

mod network;
mod schedule;
mod sender;
mod signature;

pub use network::{Blocked, NetworkPolicy, explain, is_forbidden_ip};
pub use schedule::RetrySchedule;
pub use sender::{Attempt, Sender, guarded_client};
pub use signature::{sign, signature_header};
