//! The events Kassa records and sends to webhook endpoints.

crate::names::named_enum! {
    /// Every event type, in the order of an order's life.
    EventKind {
        OrderCreated = "order.created",
        PaymentSucceeded = "payment.succeeded",
        PaymentFailed = "payment.failed",
        ProductDelivered = "product.delivered",
        OrderDelivered = "order.delivered",
        OrderDeleted = "order.deleted",
        /// A refund was made and the provider is still working on it: the money has
        /// not gone back yet. `refund.succeeded` or `refund.failed` follows, once.
        RefundPending = "refund.pending",
        /// Money went back to the customer (all or part of what was paid): when the
        /// refund is made, or, for one pending at the provider, when it succeeds there.
        RefundSucceeded = "refund.succeeded",
        /// Everything paid went back: the order is `refunded`.
        OrderRefunded = "order.refunded",
        /// A refund the provider had accepted, or even reported succeeded, failed
        /// there: nothing went back, and the order is as it was before it (data:
        /// `order` and `refund`).
        RefundFailed = "refund.failed",
        LicensePoolLowStock = "license_pool.low_stock",
    }
}

impl EventKind {
    /// Reports a paid order's progress: its webhooks are sent before the other events'
    /// waiting (a burst of `order.created`), so a delivery is not queued behind them.
    pub fn reports_paid_order(self) -> bool {
        matches!(
            self,
            EventKind::PaymentSucceeded | EventKind::ProductDelivered | EventKind::OrderDelivered
        )
    }
}
