//! What an API key may do: the scope each action of the merchant API needs
//! ([`ApiAction::minimal_scope`]), and which actions a test key never may, since they
//! reach what both modes share ([`ApiAction::allowed_in`]).

use crate::Invalid;
use crate::mode::Mode;

crate::names::named_enum! {
    /// How much an API key may do; each scope includes the ones before it.
    KeyScope {
        /// Read the store's objects, never its secrets.
        ReadOnly = "read_only",
        /// Read, and what a merchant's own checkout or back office does with orders:
        /// place them, record payments, refund them, email licenses again.
        Orders = "orders",
        /// Everything, including keys, secrets, webhooks, plugins, catalog and settings.
        Full = "full",
    }
}

impl KeyScope {
    fn rank(self) -> u8 {
        match self {
            KeyScope::ReadOnly => 0,
            KeyScope::Orders => 1,
            KeyScope::Full => 2,
        }
    }

    /// Whether a key of this scope may do `action`.
    pub fn allows(self, action: ApiAction) -> bool {
        self.rank() >= action.minimal_scope().rank()
    }

    /// A scope as a merchant names it; absent means `full`.
    pub fn parse(field: &str, raw: Option<&str>) -> Result<Self, Invalid> {
        match raw.map(str::trim) {
            None => Ok(KeyScope::Full),
            Some(name) => Self::from_name(name)
                .ok_or_else(|| Invalid::field(field, format!("must be one of {}", Self::names()))),
        }
    }
}

/// What a request to the merchant API does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiAction {
    /// Read the store's objects: catalog, orders, events, emails, deliveries, keys'
    /// names. No secrets.
    Read,
    /// Place an order, as the checkout page does.
    PlaceOrder,
    /// Record a payment received outside Kassa.
    RecordPayment,
    /// Give money back to a customer (and revoke the licenses of lines given back).
    Refund,
    /// Email a customer their licenses again.
    ResendEmails,
    /// Create or change products, coupons, license pools and their keys, checkout links.
    EditCatalog,
    /// Change the store's settings.
    EditSettings,
    /// Read or rotate the store's signing secrets.
    ManageSecrets,
    /// Create and revoke API keys.
    ManageKeys,
    /// Add, change, rotate, redeliver to and delete webhook endpoints.
    ManageWebhooks,
    /// Upload, configure, test and delete plugins (they hold secrets and run code).
    ManagePlugins,
}

impl ApiAction {
    /// Every action.
    pub const ALL: [ApiAction; 11] = [
        ApiAction::Read,
        ApiAction::PlaceOrder,
        ApiAction::RecordPayment,
        ApiAction::Refund,
        ApiAction::ResendEmails,
        ApiAction::EditCatalog,
        ApiAction::EditSettings,
        ApiAction::ManageSecrets,
        ApiAction::ManageKeys,
        ApiAction::ManageWebhooks,
        ApiAction::ManagePlugins,
    ];

    /// Whether a key of `mode` may do this. The store's settings, signing secrets and
    /// plugins serve both modes, so what a test key did to them would reach live mode
    /// (the live checkout's payment methods and bank details, the live Stripe account,
    /// live links signed with the store's secret, the code, config and secrets that
    /// deliver live orders): a test key never changes them, nor reads the settings.
    pub fn allowed_in(self, mode: Mode) -> bool {
        mode.is_live()
            || !matches!(
                self,
                ApiAction::EditSettings | ApiAction::ManageSecrets | ApiAction::ManagePlugins
            )
    }

    /// The one rule: the least scope a key needs to do this.
    pub fn minimal_scope(self) -> KeyScope {
        use ApiAction::*;
        match self {
            Read => KeyScope::ReadOnly,
            PlaceOrder | RecordPayment | Refund | ResendEmails => KeyScope::Orders,
            EditCatalog | EditSettings | ManageSecrets | ManageKeys | ManageWebhooks
            | ManagePlugins => KeyScope::Full,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scope_includes_the_ones_before_it() {
        use ApiAction::*;
        let all = ApiAction::ALL;
        let allowed = |scope: KeyScope| all.iter().filter(|a| scope.allows(**a)).count();
        assert_eq!(allowed(KeyScope::ReadOnly), 1);
        assert_eq!(allowed(KeyScope::Orders), 5);
        assert_eq!(allowed(KeyScope::Full), all.len());
        assert!(
            !KeyScope::Orders.allows(ManageKeys),
            "no key mints a wider one"
        );
        assert!(!KeyScope::ReadOnly.allows(ManageSecrets));
    }

    #[test]
    fn a_test_key_never_reaches_what_both_modes_share() {
        use ApiAction::*;
        for action in ApiAction::ALL {
            assert!(action.allowed_in(Mode::Live), "{action:?}");
        }
        let refused: Vec<_> = ApiAction::ALL
            .into_iter()
            .filter(|a| !a.allowed_in(Mode::Test))
            .collect();
        assert_eq!(refused, [EditSettings, ManageSecrets, ManagePlugins]);
    }

    #[test]
    fn scopes_are_named() {
        assert_eq!(KeyScope::parse("scope", None).unwrap(), KeyScope::Full);
        assert_eq!(
            KeyScope::parse("scope", Some("read_only")).unwrap(),
            KeyScope::ReadOnly
        );
        assert!(KeyScope::parse("scope", Some("admin")).is_err());
    }
}
