//! The use cases' one error type, in the terms the pages, the API and the jobs act on.

use kassa_domain::Invalid;
use kassa_domain::workflow::Refused;
use kassa_store::StoreError;

/// Why a command did not happen.
#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    /// Input to fix, field by field.
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("not found")]
    NotFound,
    /// The workflow does not allow this (a paid order paid again, a method the order
    /// does not accept, licenses resent before any was delivered).
    #[error("{0}")]
    Refused(Refused),
    /// A concurrent change got there first (a coupon used up, a key taken).
    #[error("{0}")]
    Conflict(String),
    #[error("storage: {0}")]
    Store(StoreError),
}

impl OrdersError {
    /// Whether the database could not be reached: the same command may succeed shortly.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, OrdersError::Store(e) if e.is_unavailable())
    }
}

impl From<StoreError> for OrdersError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => OrdersError::NotFound,
            StoreError::Conflict(m) => OrdersError::Conflict(m),
            other => OrdersError::Store(other),
        }
    }
}

impl From<Refused> for OrdersError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::WrongAmount(_) => r.at("amount").into(),
            Refused::WrongCurrency(_) => r.at("currency").into(),
            // The customer's to see, on the page, beside what they pay.
            Refused::OfferExpired(_) => r.at("offer").into(),
            Refused::CouponUsedUp => r.at("coupon").into(),
            // A live order and the sandbox: the customer (or the merchant's code) is
            // told next to the method chosen.
            Refused::SandboxInLiveMode(_) => r.at("payment_method").into(),
            // A refund's amount or lines, told next to the field.
            Refused::RefundNotPositive | Refused::RefundAboveLeft(_) => r.at("amount").into(),
            Refused::UnknownLine(_) => r.at("lines").into(),
            Refused::RefundsNotAvailable(_) => r.at("payment_method").into(),
            other => OrdersError::Refused(other),
        }
    }
}
