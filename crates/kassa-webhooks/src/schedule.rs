//! When to try again: a list of delays, one per attempt, each with ±20 % jitter so
//! retries from many failures do not arrive together.

use std::time::Duration;

use rand::Rng;

/// The delays before each attempt; the first is usually zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl Default for RetrySchedule {
    /// Immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
    fn default() -> Self {
        Self::parse("0s,5s,5m,30m,2h,5h,10h,14h,20h,24h").expect("the default schedule parses")
    }
}

impl RetrySchedule {
    /// Parses `1s,5s,5m` (humantime durations, comma-separated). If the first entry is
    /// not zero, the first attempt still goes immediately and the list are the retries.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut delays = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let d = humantime::parse_duration(part)
                .map_err(|e| format!("{part:?} is not a duration: {e}"))?;
            delays.push(d);
        }
        if delays.is_empty() {
            return Err("the schedule needs at least one delay".into());
        }
        if delays[0] != Duration::ZERO {
            delays.insert(0, Duration::ZERO);
        }
        Ok(Self(delays))
    }

    /// How many attempts in all.
    pub fn attempts(&self) -> usize {
        self.0.len()
    }

    /// The delay before attempt number `next` (0-based), jittered; `None` when the
    /// schedule is used up.
    pub fn delay_before(&self, next: usize) -> Option<Duration> {
        let base = *self.0.get(next)?;
        if base.is_zero() {
            return Some(base);
        }
        let factor = rand::thread_rng().gen_range(0.8..=1.2);
        Some(base.mul_f64(factor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_has_ten_attempts() {
        let s = RetrySchedule::default();
        assert_eq!(s.attempts(), 10);
        assert_eq!(s.delay_before(0), Some(Duration::ZERO));
        let d = s.delay_before(2).unwrap();
        assert!(
            d >= Duration::from_secs(240) && d <= Duration::from_secs(360),
            "{d:?}"
        );
        assert_eq!(s.delay_before(10), None);
    }

    #[test]
    fn custom_schedules() {
        let s = RetrySchedule::parse("1s, 2s").unwrap();
        assert_eq!(s.attempts(), 3);
        assert!(RetrySchedule::parse("soon").is_err());
        assert!(RetrySchedule::parse("").is_err());
    }
}
