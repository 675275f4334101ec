//! The limits of the sandbox: the ones an operator sets per call (memory, fuel, time),
//! the fixed ones, and how a limit that was hit is told to the merchant.

use std::time::Duration;

/// The fixed limits of one call.
pub mod fixed {
    use std::time::Duration;

    /// At most this many licenses, and this many bytes in all, per call.
    pub const MAX_LICENSES: usize = 1_000;
    pub const OUTPUT_BYTES: usize = 1024 * 1024;
    /// Log lines kept per call, and their length.
    pub const LOG_LINES: usize = 100;
    pub const LOG_LINE_BYTES: usize = 1_000;
    /// `http-fetch`: calls per call, timeout, and the largest response body read.
    pub const FETCHES: u32 = 10;
    pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
    pub const FETCH_BODY_BYTES: usize = 1024 * 1024;
    /// How often the epoch advances.
    pub const TICK: Duration = Duration::from_millis(10);
}

const MIB: usize = 1024 * 1024;

/// Memory, fuel and wall-clock time of one call: what the operator gives every plugin.
/// The defaults let a CPython (componentize-py) or StarlingMonkey (componentize-js)
/// plugin run: their runtimes start with tens of MiB of linear memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Linear memory of one instance.
    pub memory_bytes: usize,
    /// Units of computation (roughly wasm instructions): enough for real work, not for
    /// a loop without end.
    pub fuel: u64,
    /// Wall-clock time of one call, host calls (`http-fetch`) included.
    pub deadline: Duration,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 * MIB,
            fuel: 5_000_000_000,
            deadline: Duration::from_secs(5),
        }
    }
}

/// A limit of the sandbox, with its value, as the merchant is told about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Fuel(u64),
    Deadline(Duration),
    Memory(usize),
    Output,
    Fetches,
    FetchBody,
    Logs,
    /// The store's quota of plugin calls running at once.
    Concurrency(u32),
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::Fuel(fuel) => write!(f, "fuel ({fuel} units of computation)"),
            Limit::Deadline(d) => write!(f, "time ({} ms per call)", d.as_millis()),
            Limit::Memory(bytes) => write!(f, "memory ({} MiB)", bytes / MIB),
            Limit::Output => write!(
                f,
                "output (1 to {} licenses, {} bytes in all)",
                fixed::MAX_LICENSES,
                fixed::OUTPUT_BYTES
            ),
            Limit::Fetches => write!(f, "http-fetch calls ({} per call)", fixed::FETCHES),
            Limit::FetchBody => write!(
                f,
                "http-fetch response size ({} bytes)",
                fixed::FETCH_BODY_BYTES
            ),
            Limit::Logs => write!(
                f,
                "log lines ({} per call, {} bytes each)",
                fixed::LOG_LINES,
                fixed::LOG_LINE_BYTES
            ),
            Limit::Concurrency(n) => write!(f, "concurrent plugin calls ({n} per store)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_says_its_value() {
        assert_eq!(Limit::Memory(256 * MIB).to_string(), "memory (256 MiB)",);
        assert_eq!(
            Limit::Deadline(Duration::from_millis(1500)).to_string(),
            "time (1500 ms per call)"
        );
        assert_eq!(Limit::Fuel(7).to_string(), "fuel (7 units of computation)");
    }
}
