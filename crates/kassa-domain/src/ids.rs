//! Typed, prefixed ids (`prd_01j…`). The body is a lowercase ULID, so ids sort by
//! creation time and serve directly as pagination cursors.

use crate::Invalid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new, unique id.
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, ulid::Ulid::new().to_string().to_lowercase()))
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
        let first = OrderId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(OrderId::generate() > first);
    }
}
