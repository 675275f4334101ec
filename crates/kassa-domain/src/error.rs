//! The domain's one error: input that is not valid, field by field.

use std::fmt;

/// One field that failed validation, with a message a merchant can act on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Path of the field in the request, e.g. `prices[1].currency`.
    pub field: String,
    /// In English, as the API says it.
    pub message: String,
    /// What the message says, when it is a refusal customers meet: pages say it in
    /// their reader's language by its code (`Reason::code`), never by matching text.
    #[serde(skip)]
    pub reason: Option<Reason>,
}

/// A refusal about a field that customers meet on the pages, with what its message
/// names (`workflow::Refused::reason` gives it); each has its text in every locale
/// (`refused_<code>` in web/locales).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A sandbox method (its name, `test_card`) chosen for a live order.
    SandboxInLiveMode(&'static str),
    /// A method (its name) the store or the order does not take.
    MethodNotOffered(&'static str),
    /// The signed offer the order was placed with expired then (`%Y-%m-%d %H:%M UTC`).
    OfferExpired(String),
    /// The order's coupon was used up meanwhile.
    CouponUsedUp,
}

impl Reason {
    /// Its stable name.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::SandboxInLiveMode(_) => "sandbox_in_live_mode",
            Reason::MethodNotOffered(_) => "method_not_offered",
            Reason::OfferExpired(_) => "offer_expired",
            Reason::CouponUsedUp => "coupon_used_up",
        }
    }
}

/// Every invalid field of one input, so the caller can fix them all at once.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
pub struct Invalid {
    pub errors: Vec<FieldError>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        write!(f, "{}", parts.join("; "))
    }
}

impl Invalid {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            errors: vec![FieldError {
                field: field.into(),
                message: message.into(),
                reason: None,
            }],
        }
    }

    /// One field's `message` (English), with the `reason` pages say in their
    /// reader's language, if any.
    pub fn with_reason(
        field: impl Into<String>,
        message: impl Into<String>,
        reason: Option<Reason>,
    ) -> Self {
        Self {
            errors: vec![FieldError {
                field: field.into(),
                message: message.into(),
                reason,
            }],
        }
    }

    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
            reason: None,
        });
    }

    /// Runs one parse, keeping its value or collecting its errors.
    pub fn check<T>(&mut self, result: Result<T, Invalid>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.errors.extend(e.errors);
                None
            }
        }
    }

    /// Ok when nothing was collected.
    pub fn into_result(self) -> Result<(), Invalid> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

/// Parses a trimmed, non-empty text of at most `max` characters.
pub fn parse_text(field: &str, raw: &str, max: usize) -> Result<String, Invalid> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(Invalid::field(field, "must not be empty"));
    }
    if text.chars().count() > max {
        return Err(Invalid::field(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Invalid::field(field, "must not contain control characters"));
    }
    Ok(text.to_owned())
}
