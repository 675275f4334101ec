//! Test and live mode: a store's two worlds, as in Stripe. Every order, API key,
//! license pool and event belongs to one of them, decided when it is made and never
//! changed: a test key makes and sees only test things, a live key only live ones.
//! Sandbox payment methods exist only in test mode; no real money moves there and no
//! live stock is given out.

use crate::order::PaymentMethod;

/// Which world a thing belongs to. Live by default: the world where the sandbox
/// pays nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    Test,
    #[default]
    Live,
}

impl Mode {
    pub fn from_livemode(livemode: bool) -> Self {
        if livemode { Mode::Live } else { Mode::Test }
    }

    /// `livemode`, as payloads and the API name it.
    pub fn is_live(self) -> bool {
        self == Mode::Live
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }

    /// Where a store's buy links and checkout live in this mode: `/{slug}` for live,
    /// `/{slug}/test` for test (like Stripe's test payment links, a test link is a
    /// link of its own; the order it makes is a test order for good).
    pub fn store_path(self, slug: &str) -> String {
        match self {
            Mode::Live => format!("/{slug}"),
            Mode::Test => format!("/{slug}/test"),
        }
    }

    /// Whether `method` exists in this mode: sandbox methods only in test mode.
    pub fn allows(self, method: PaymentMethod) -> bool {
        self == Mode::Test || !method.is_sandbox()
    }

    /// Of the methods a store enabled, those its customers may choose in this mode.
    pub fn methods(self, enabled: &[PaymentMethod]) -> Vec<PaymentMethod> {
        enabled
            .iter()
            .copied()
            .filter(|m| self.allows(*m))
            .collect()
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_exists_only_in_test_mode() {
        let all = [PaymentMethod::TestCard, PaymentMethod::BankTransfer];
        assert_eq!(Mode::Test.methods(&all), all);
        assert_eq!(Mode::Live.methods(&all), [PaymentMethod::BankTransfer]);
        assert!(!Mode::Live.allows(PaymentMethod::TestCard));
        assert!(Mode::from_livemode(true).is_live());
        assert_eq!(Mode::from_livemode(false), Mode::Test);
    }

    #[test]
    fn stripe_exists_in_both_modes() {
        assert!(Mode::Live.allows(PaymentMethod::Stripe));
        assert!(Mode::Test.allows(PaymentMethod::Stripe));
    }
}
