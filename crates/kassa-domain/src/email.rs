//! The emails Kassa queues: to customers about their orders, and to merchants about
//! their store.

crate::names::named_enum! {
    /// Every kind of email; each has a `.txt` and an `.html` template.
    EmailKind {
        PaymentInstructions = "payment_instructions",
        PaymentSucceeded = "payment_succeeded",
        PaymentFailed = "payment_failed",
        UnpaidReminder = "unpaid_reminder",
        EndpointDisabled = "endpoint_disabled",
        Licenses = "licenses",
        PoolEmpty = "pool_empty",
        DeliveryFailed = "delivery_failed",
        PoolLow = "pool_low",
        /// "Your refund": the amount, and the licenses it revoked.
        Refund = "refund",
        /// To the owners: a refund failed at the provider, the money did not go back.
        RefundFailed = "refund_failed",
        /// To the owners: a provider took money for an order paid another way
        /// meanwhile, and Kassa sent it back (or could not).
        PaidTwice = "paid_twice",
    }
}

/// Who an email goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    /// The order's customer, in the order's language; nobody once their data is erased.
    Customer,
    /// Each of the store's owners, in English.
    Owners,
}

impl EmailKind {
    /// Tells a customer their order is paid or delivered: sent before the other
    /// emails waiting (a burst of payment instructions).
    pub fn reports_paid_order(self) -> bool {
        matches!(self, EmailKind::PaymentSucceeded | EmailKind::Licenses)
    }

    /// Written to the store's owners (in English), not to a customer.
    pub fn to_merchant(self) -> bool {
        matches!(
            self,
            EmailKind::EndpointDisabled
                | EmailKind::PoolEmpty
                | EmailKind::DeliveryFailed
                | EmailKind::PoolLow
                | EmailKind::RefundFailed
                | EmailKind::PaidTwice
        )
    }
}
