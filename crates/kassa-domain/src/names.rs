//! Enums that travel as names (`not_paid`, `order.created`): in JSON, in the database
//! and in URLs. `named_enum!` gives each one `as_str`, `parse`, `ALL` and serde by
//! name, so a status is compared as a value everywhere and spelled in one place.

/// Declares an enum whose variants are written as the given names.
macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value with this name, if there is one.
            pub fn from_name(raw: &str) -> Option<Self> {
                match raw {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// Every name, for messages ("known: a, b, c").
            pub fn names() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::names::UnknownName;

            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                Self::from_name(raw).ok_or(crate::names::UnknownName)
            }
        }

        impl TryFrom<String> for $name {
            type Error = crate::names::UnknownName;

            fn try_from(raw: String) -> Result<Self, Self::Error> {
                raw.parse()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::from_name(&raw).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "unknown {} {raw:?}; known: {}",
                        stringify!($name),
                        Self::names()
                    ))
                })
            }
        }
    };
}

pub(crate) use named_enum;

/// A name that is none of an enum's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a known name")]
pub struct UnknownName;
