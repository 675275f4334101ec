//! Typed, prefixed ids (`prd_01j…`). The body is a lowercase ULID, so ids sort by
//! creation time and serve directly as pagination cursors.

use crate::Invalid;

/// ULIDs from one generator, so ids made in the same millisecond still sort in the
/// order they were made (lists and cursors depend on it).
fn next_ulid() -> ulid::Ulid {
    static GENERATOR: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut guard = GENERATOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let generator = guard.get_or_insert_with(ulid::Generator::new);
    // Overflow needs 2^80 ids in one millisecond; fall back to a random one.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new, unique id, later than every id made before it in this process.
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, next_ulid().to_string().to_lowercase()))
            }

            /// Accepts only an id of this type: right prefix, well-formed body.
            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                let body = raw
                    .strip_prefix($prefix)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .ok_or_else(|| Invalid::field("id", format!("must start with {}_", $prefix)))?;
                if body.len() != 26 || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(Invalid::field("id", "is not a valid id"));
                }
                Ok(Self(raw.to_ascii_lowercase()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Invalid;
            fn try_from(raw: String) -> Result<Self, Invalid> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

id_type!(TenantId, "ten");
id_type!(UserId, "usr");
id_type!(ApiKeyId, "key");
id_type!(ProductId, "prd");
id_type!(CheckoutLinkId, "lnk");
id_type!(CouponId, "cpn");
id_type!(LicensePoolId, "lpl");
id_type!(LicenseKeyId, "lic");
id_type!(WebhookEndpointId, "ep");
id_type!(OrderId, "ord");
id_type!(EventId, "evt");
id_type!(PluginId, "plg");
id_type!(CartId, "crt");
id_type!(PaymentId, "pay");
id_type!(RefundId, "rfd");
id_type!(DeliveryId, "whd");
id_type!(AttemptId, "wha");
id_type!(EmailId, "eml");
id_type!(InvitationId, "inv");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_round_trip_and_carry_their_prefix() {
        let id = ProductId::generate();
        assert!(id.as_str().starts_with("prd_"));
        assert_eq!(ProductId::parse(id.as_str()), Ok(id));
    }

    #[test]
    fn an_id_of_another_type_is_refused() {
        let order = OrderId::generate();
        assert!(ProductId::parse(order.as_str()).is_err());
        assert!(ProductId::parse("prd_").is_err());
        assert!(ProductId::parse("prd_../../etc/passwd________").is_err());
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let mut last = OrderId::generate();
        for _ in 0..1000 {
            let next = OrderId::generate();
            assert!(next > last);
            last = next;
        }
    }
}
