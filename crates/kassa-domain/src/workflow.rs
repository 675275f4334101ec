//! The order workflow: what may happen to an order, and what must follow when it does.
//!
//! A use case loads an [`Order`] (its states, not its view), asks it for a transition
//! with the facts from outside (a payment's result, the licenses got, the time), and
//! hands what comes back to storage, which writes the change and its [`Followups`]
//! (events to record, emails to queue, lines to deliver) in one transaction. Every rule
//! of the money path is checked here and nowhere else: a payment by a method the order
//! or the store does not allow, a second payment, a delivery of an unpaid line are
//! [`Refused`], whichever endpoint or job asks. Nothing here touches a database or the
//! clock; times come in as arguments.

use chrono::{DateTime, Utc};

use crate::email::{EmailKind, Recipient};
use crate::error::{Invalid, Reason};
use crate::event::EventKind;
use crate::ids::{LicensePoolId, OrderId, PaymentId, RefundId, WebhookEndpointId};
use crate::mode::Mode;
use crate::money::left_to_refund;
use crate::order::{
    DeliveryStatus, LineStatus, OrderStatus, PaymentMethod, PaymentStatus, RefundStatus,
};

/// An order's states, as the workflow needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub status: OrderStatus,
    pub delivery_status: DeliveryStatus,
    pub payment_method: PaymentMethod,
    /// The world it was placed in, for good: a live order is never paid by a sandbox.
    pub mode: Mode,
    /// ISO 4217 code.
    pub currency: String,
    /// What must be paid, in minor units (and, once paid, what was paid).
    pub total: i64,
    /// What went back to the customer so far, in minor units.
    pub amount_refunded: i64,
    /// False once the customer's personal data was erased.
    pub has_customer_email: bool,
    pub reminded: bool,
    pub lines: Vec<Line>,
    /// When the earliest signed offer among its lines stops holding, if any.
    pub offer_expires_at: Option<DateTime<Utc>>,
    /// The use of a limited coupon the order was placed with, if any.
    pub coupon: Option<CouponUse>,
}

/// How an unpaid order holds the use of the coupon it was placed with. A use is held
/// while the order waits for payment, so that the price it was quoted stays payable,
/// and counted for good when the order is paid; a hold that lapsed gave the use back
/// to other customers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponUse {
    /// The coupon's code.
    pub code: String,
    /// Until when the order holds its use (`None`: it holds none).
    pub held_until: Option<DateTime<Utc>>,
}

/// An order's coupon use to hold until `until`; `lapsed`: its hold had lapsed, so
/// only a use still free may be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponHold {
    pub code: String,
    pub until: DateTime<Utc>,
    pub lapsed: bool,
}

/// How a payment counts the use of the order's coupon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redemption {
    /// The order still holds its use: it becomes a redemption.
    Held,
    /// The hold lapsed and the customer is paying now: the use is counted only if the
    /// coupon still has one free, else the payment is refused before money moves.
    IfStillFree,
    /// The hold lapsed but the money already moved (the merchant received a transfer
    /// made on the instructions given): counted even past the coupon's limit.
    Regardless,
}

/// One order line's delivery state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub line_no: i64,
    pub status: LineStatus,
    /// What the line cost after discounts, in minor units.
    pub total: i64,
    /// Refunded in full: its licenses are revoked and it is never delivered.
    pub refunded: bool,
}

/// What an event's `data` holds beside (or instead of) the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The order alone.
    Order,
    /// The order and this payment attempt.
    Payment(PaymentId),
    /// The order and this line.
    Line(i64),
    /// The order and this refund.
    Refund(RefundId),
    /// A license pool's stock (no order).
    Pool {
        id: LicensePoolId,
        available: i64,
        threshold: i64,
    },
}

/// An event to record (and send to the endpoints that take it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub subject: Subject,
}

/// An email to queue. `key` says what it is about: the same key is queued once per
/// recipient (a receipt per order, a notice per failed attempt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub kind: EmailKind,
    pub to: Recipient,
    pub key: String,
    /// The world an email about no order belongs to (a webhook endpoint's): only that
    /// mode's keys and dashboard list it. `None`: the order's world.
    pub mode: Option<Mode>,
}

/// A line to deliver: now, or at a later try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wake {
    pub line_no: i64,
    pub at: Option<DateTime<Utc>>,
}

/// What must follow a transition, written by storage in the same transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Followups {
    pub events: Vec<Event>,
    pub emails: Vec<Email>,
    pub deliver: Vec<Wake>,
}

impl Followups {
    fn event(mut self, kind: EventKind, subject: Subject) -> Self {
        self.events.push(Event { kind, subject });
        self
    }

    fn email(mut self, kind: EmailKind, to: Recipient, key: String) -> Self {
        self.emails.push(Email {
            kind,
            to,
            key,
            mode: None,
        });
        self
    }
}

/// Why a transition is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the order is {0} and no longer waiting for payment")]
    NotAwaitingPayment(OrderStatus),
    #[error("{0} is not a payment method this order accepts")]
    MethodNotAllowed(PaymentMethod),
    #[error("{0} is a test mode method and cannot pay a live order")]
    SandboxInLiveMode(PaymentMethod),
    #[error("must be the order total, {0}")]
    WrongAmount(i64),
    #[error("the order is in {0}")]
    WrongCurrency(String),
    /// A provider's payment made in its other mode: a Stripe test mode payment never
    /// pays a live order, nor a live one a test order.
    #[error("a {payment} mode payment cannot pay a {order} mode order")]
    PaymentOfOtherMode { order: Mode, payment: Mode },
    /// A provider's event naming another store than the one whose endpoint got it.
    #[error("the payment was made for another store")]
    OtherStore,
    /// A provider's refund of the other mode's payment (a test mode refund reported
    /// for a live order, or the reverse).
    #[error("a {refund} mode refund cannot refund a {order} mode order")]
    RefundOfOtherMode { order: Mode, refund: Mode },
    /// A provider's event naming no order of this store.
    #[error("the payment names no order of this store")]
    UnknownOrder,
    #[error("the order is not paid")]
    NotPaid,
    #[error("the order has no line {0}")]
    NoSuchLine(i64),
    #[error("a {order} mode order takes no keys from a {pool} mode license pool")]
    PoolOfOtherMode { order: Mode, pool: Mode },
    #[error("the line was delivered already")]
    AlreadyDelivered,
    #[error("no license has been delivered yet")]
    NothingDelivered,
    #[error("the order's customer data was erased")]
    Erased,
    #[error("the line's delivery has not failed")]
    NotFailed,
    #[error("the coupon this order was placed with has been used up meanwhile; place a new order")]
    CouponUsedUp,
    #[error(
        "the offer this order was placed with expired on {}; ask the store for a new link",
        .0.format("%Y-%m-%d %H:%M UTC")
    )]
    OfferExpired(DateTime<Utc>),
    #[error("the order is {0}; only a paid order can be refunded")]
    NotRefundable(OrderStatus),
    #[error("nothing is left to refund")]
    NothingLeftToRefund,
    #[error("must be more than 0")]
    RefundNotPositive,
    #[error("must be at most {0} (minor units), what is left to refund")]
    RefundAboveLeft(i64),
    #[error("the order has no line {0}")]
    UnknownLine(i64),
    #[error("line {0} was refunded already")]
    LineRefunded(i64),
    #[error(
        "a {0} payment cannot be refunded here: its payment reference or the store's keys for its mode are missing"
    )]
    RefundsNotAvailable(PaymentMethod),
    #[error("another refund of this order was recorded meanwhile")]
    RefundChangedMeanwhile,
    /// A refund that failed was taken back already: it is not taken back twice.
    #[error("the refund failed already")]
    RefundFailedAlready,
}

impl Refused {
    /// The refusal about `field` (English, as the API says it), with the reason pages
    /// say in their reader's language when customers can meet it.
    pub fn at(self, field: &str) -> Invalid {
        Invalid::with_reason(field, self.to_string(), self.reason())
    }

    /// What pages say instead of the English message, for the refusals customers meet.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Refused::SandboxInLiveMode(m) => Some(Reason::SandboxInLiveMode(m.as_str())),
            Refused::MethodNotAllowed(m) => Some(Reason::MethodNotOffered(m.as_str())),
            Refused::OfferExpired(at) => Some(Reason::OfferExpired(
                at.format("%Y-%m-%d %H:%M UTC").to_string(),
            )),
            Refused::CouponUsedUp => Some(Reason::CouponUsedUp),
            _ => None,
        }
    }
}

/// A new order's followups: `order.created`, and the payment instructions when the
/// customer pays by bank transfer.
pub fn placed(id: &OrderId, method: PaymentMethod) -> Followups {
    let created = Followups::default().event(EventKind::OrderCreated, Subject::Order);
    instructions(created, id, method)
}

/// The bank transfer instructions, once per order.
fn instructions(followups: Followups, id: &OrderId, method: PaymentMethod) -> Followups {
    match method {
        PaymentMethod::BankTransfer => followups.email(
            EmailKind::PaymentInstructions,
            Recipient::Customer,
            format!("instructions:{id}"),
        ),
        PaymentMethod::TestCard | PaymentMethod::Stripe => followups,
    }
}

/// A payment attempt's result, as the gateway or the merchant reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentFacts {
    pub id: PaymentId,
    pub method: PaymentMethod,
    pub amount: i64,
    pub currency: String,
    pub succeeded: bool,
    /// When the attempt is made.
    pub at: DateTime<Utc>,
}

/// What recording a payment attempt does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub status: PaymentStatus,
    /// The order becomes `paid` (paid by `method`).
    pub order_paid: bool,
    /// How the use of its coupon is counted, when it is paid with one.
    pub redemption: Option<Redemption>,
    pub followups: Followups,
}

/// How a successful payment `p` counts the use of a coupon the order holds as `c`.
fn redemption(c: &CouponUse, p: &PaymentFacts) -> Redemption {
    match c.held_until {
        Some(until) if p.at < until => Redemption::Held,
        _ => match p.method {
            PaymentMethod::TestCard => Redemption::IfStillFree,
            // Money that moved: a transfer made on the order's instructions, or a
            // provider's payment (whose page is only made while the order holds its
            // use: see `Order::hold_coupon_for_provider`).
            PaymentMethod::BankTransfer | PaymentMethod::Stripe => Redemption::Regardless,
        },
    }
}

/// A new order placed in `mode` to be paid by `method`: refused when the method does
/// not exist in that mode (the sandbox in live mode) or the store does not offer it.
pub fn may_place(
    mode: Mode,
    method: PaymentMethod,
    enabled: &[PaymentMethod],
) -> Result<(), Refused> {
    if !mode.allows(method) {
        return Err(Refused::SandboxInLiveMode(method));
    }
    if !enabled.contains(&method) {
        return Err(Refused::MethodNotAllowed(method));
    }
    Ok(())
}

/// A provider's event arrived at `store`'s endpoint: the store it names (kept by the
/// provider since Kassa created the payment) must be that one.
pub fn same_store(store: &str, named: Option<&str>) -> Result<(), Refused> {
    match named {
        Some(named) if named == store => Ok(()),
        _ => Err(Refused::OtherStore),
    }
}

/// A refund as the merchant asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub id: RefundId,
    /// Minor units. `None`: what is left to refund, or, naming lines, their totals
    /// (at most what is left).
    pub amount: Option<i64>,
    /// When given, it must be the order's currency.
    pub currency: Option<String>,
    /// The lines the customer gives back: refunded in full, their licenses revoked,
    /// whatever the amount (a merchant may keep a fee).
    pub lines: Vec<i64>,
}

/// What a refund does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// Minor units going back, in the order's currency.
    pub amount: i64,
    /// Everything paid went back: the order becomes `refunded`.
    pub order_refunded: bool,
    /// The lines refunded in full by this refund: the ones named, or, when the order
    /// is refunded in full, every line not refunded before. Their licenses are revoked
    /// once the money went back ([`revokes_keys`]).
    pub refunded_lines: Vec<i64>,
    /// Those of them not delivered: they end (`cancelled`) and are never delivered,
    /// whether they were waiting for stock, for a retry or failed.
    pub cancelled_lines: Vec<i64>,
    pub followups: Followups,
}

/// Whether a refund in `status` revokes the keys of the lines it refunds in full: only
/// once the money went back. A refund pending at the provider revokes nothing yet (its
/// lines are refunded and never delivered, but their keys stay theirs), so a refund
/// that fails there has no key to give back, and a key returned to its pool never has
/// to be taken back from whoever got it next.
pub fn revokes_keys(status: RefundStatus) -> bool {
    status == RefundStatus::Succeeded
}

/// What follows a refund pending at the provider once the provider says it went
/// through: `refund.succeeded`, now and only now (the refund said `refund.pending`
/// when it was recorded).
pub fn refund_went_through(id: &RefundId) -> Followups {
    Followups::default().event(EventKind::RefundSucceeded, Subject::Refund(id.clone()))
}

impl Refund {
    /// The refund as it is recorded in `status`. One the provider is still working
    /// on says so (`refund.pending`, not `refund.succeeded`: the money has not gone
    /// back yet); [`refund_went_through`] or [`Order::refund_failed`] follows.
    pub fn recorded_as(mut self, status: RefundStatus) -> Self {
        if status == RefundStatus::Pending {
            for e in &mut self.followups.events {
                if e.kind == EventKind::RefundSucceeded {
                    e.kind = EventKind::RefundPending;
                }
            }
        }
        self
    }
}

/// A refund as it was recorded, for what happens to it later at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRefund {
    pub id: RefundId,
    pub amount: i64,
    pub status: RefundStatus,
    /// The lines it refunded in full.
    pub lines: Vec<i64>,
}

/// What a refund that failed at the provider undoes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundTakenBack {
    /// Minor units no longer counted as refunded.
    pub amount: i64,
    /// The lines it had refunded, refunded no more; those it had cancelled are
    /// pending again and due (in `followups.deliver`).
    pub restored_lines: Vec<i64>,
    /// It had succeeded, so it revoked the keys of those lines: each is the line's
    /// again, if no one else has it. A key it returned to its pool and that was given
    /// to another line since stays there (the line and the owners' email say so): the
    /// customer who has it now paid for it.
    pub reinstate_keys: bool,
    pub followups: Followups,
}

/// What a line delivery does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// It was the last line: the order becomes `delivered`.
    pub order_delivered: bool,
    pub followups: Followups,
}

/// What a delivery that did not work does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFailure {
    /// `pending` when retried, `failed` when given up.
    pub status: LineStatus,
    pub followups: Followups,
}

impl Order {
    fn waiting_for_payment(&self) -> Result<(), Refused> {
        match self.status {
            OrderStatus::NotPaid => Ok(()),
            other => Err(Refused::NotAwaitingPayment(other)),
        }
    }

    fn line(&self, line_no: i64) -> Result<&Line, Refused> {
        self.lines
            .iter()
            .find(|l| l.line_no == line_no)
            .ok_or(Refused::NoSuchLine(line_no))
    }

    /// A line that may still get its licenses: the order is paid, the line not
    /// delivered.
    fn deliverable(&self, line_no: i64) -> Result<&Line, Refused> {
        if self.status != OrderStatus::Paid {
            return Err(Refused::NotPaid);
        }
        let line = self.line(line_no)?;
        if line.status == LineStatus::Delivered {
            return Err(Refused::AlreadyDelivered);
        }
        if line.refunded {
            return Err(Refused::LineRefunded(line_no));
        }
        Ok(line)
    }

    /// Whether `method` may pay this order, in a store offering `enabled`.
    pub fn accepts(&self, method: PaymentMethod, enabled: &[PaymentMethod]) -> bool {
        if !self.mode.allows(method) {
            return false;
        }
        match method {
            // The sandbox pays only an order placed (or switched) to be paid with it,
            // in a store that offers it.
            PaymentMethod::TestCard => self.payment_method == method && enabled.contains(&method),
            // Money received offline: the customer chose it, or the store offers it.
            PaymentMethod::BankTransfer => {
                self.payment_method == method || enabled.contains(&method)
            }
            // A provider pays the order the customer sent there. Whether the store
            // still offers it does not matter once the money moved: it moved into the
            // store's own account.
            PaymentMethod::Stripe => self.payment_method == method,
        }
    }

    /// Ok while the signed offers the order was placed with hold at `now`.
    pub fn offer_open(&self, now: DateTime<Utc>) -> Result<(), Refused> {
        match self.offer_expires_at {
            Some(at) if now >= at => Err(Refused::OfferExpired(at)),
            _ => Ok(()),
        }
    }

    /// The customer picks another of the store's methods while the order is unpaid.
    pub fn switch_method(
        &self,
        method: PaymentMethod,
        enabled: &[PaymentMethod],
    ) -> Result<Followups, Refused> {
        self.waiting_for_payment()?;
        may_place(self.mode, method, enabled)?;
        Ok(instructions(Followups::default(), &self.id, method))
    }

    /// Whether a payment attempt `p` may be made or recorded: the order waits for
    /// payment, accepts the method, and `p` is its total in its currency.
    pub fn may_pay(&self, p: &PaymentFacts, enabled: &[PaymentMethod]) -> Result<(), Refused> {
        self.waiting_for_payment()?;
        if !self.mode.allows(p.method) {
            return Err(Refused::SandboxInLiveMode(p.method));
        }
        if !self.accepts(p.method, enabled) {
            return Err(Refused::MethodNotAllowed(p.method));
        }
        match p.method {
            // Online, `at` is when the customer started paying (for a provider, when
            // its page was made): the offer must hold then.
            PaymentMethod::TestCard | PaymentMethod::Stripe => self.offer_open(p.at)?,
            // Money the merchant received offline was sent on the instructions given
            // while the offer held; the merchant, who signed it, records it or not.
            PaymentMethod::BankTransfer => {}
        }
        if !p.currency.eq_ignore_ascii_case(&self.currency) {
            return Err(Refused::WrongCurrency(self.currency.clone()));
        }
        if p.amount != self.total {
            return Err(Refused::WrongAmount(self.total));
        }
        Ok(())
    }

    /// Records what a provider's signed webhook reported: the payment must be of the
    /// order's mode (`payment`, the provider's: a Stripe test mode event never pays a
    /// live order), then everything `pay` checks. `sent_there`: Kassa recorded the
    /// attempt the provider names (it sent the customer to that page), so the order
    /// takes that payment even if the customer switched method since; otherwise only
    /// an order placed for the provider does.
    pub fn pay_online(
        &self,
        p: &PaymentFacts,
        payment: Mode,
        sent_there: bool,
        enabled: &[PaymentMethod],
    ) -> Result<Payment, Refused> {
        if payment != self.mode {
            return Err(Refused::PaymentOfOtherMode {
                order: self.mode,
                payment,
            });
        }
        if sent_there && p.method.is_provider() {
            let sent = Order {
                payment_method: p.method,
                ..self.clone()
            };
            return sent.pay(p, enabled);
        }
        self.pay(p, enabled)
    }

    /// Whether money a provider says it took for this order goes back to the customer:
    /// the order stopped waiting for payment (paid meanwhile another way, refunded,
    /// deleted) and this money is not what paid it (`counted`: the provider's payment
    /// it names already succeeded here, as a second event for it would say). Kept, it
    /// would be paid twice and recorded nowhere; it goes back in full, and the order is
    /// left as it is.
    pub fn returns_late_payment(&self, p: &PaymentFacts, payment: Mode, counted: bool) -> bool {
        p.succeeded
            && p.method.is_provider()
            && !counted
            && payment == self.mode
            && self.status != OrderStatus::NotPaid
    }

    /// Records a payment attempt: checked against the order (waiting for payment, a
    /// method it accepts, its total in its currency, and for a payment the customer
    /// makes online, signed offers that still hold) before anything is written. A
    /// success pays the order and makes every pending line due.
    pub fn pay(&self, p: &PaymentFacts, enabled: &[PaymentMethod]) -> Result<Payment, Refused> {
        self.may_pay(p, enabled)?;
        if !p.succeeded {
            let followups = Followups::default()
                .event(EventKind::PaymentFailed, Subject::Payment(p.id.clone()))
                .email(
                    EmailKind::PaymentFailed,
                    Recipient::Customer,
                    format!("failed:{}", p.id),
                );
            return Ok(Payment {
                status: PaymentStatus::Failed,
                order_paid: false,
                redemption: None,
                followups,
            });
        }
        let mut followups = Followups::default()
            .event(EventKind::PaymentSucceeded, Subject::Payment(p.id.clone()))
            .email(
                EmailKind::PaymentSucceeded,
                Recipient::Customer,
                format!("receipt:{}", self.id),
            );
        followups.deliver = self
            .lines
            .iter()
            .filter(|l| l.status == LineStatus::Pending)
            .map(|l| Wake {
                line_no: l.line_no,
                at: None,
            })
            .collect();
        Ok(Payment {
            status: PaymentStatus::Succeeded,
            order_paid: true,
            redemption: self.coupon.as_ref().map(|c| redemption(c, p)),
            followups,
        })
    }

    /// Before the customer is sent to a provider's page, valid until `until`: whether
    /// the order's coupon use must be held (again) until then. A hold that lapsed must
    /// find a use still free (`lapsed`), since the provider's payment, once made, is
    /// counted whatever the coupon has left.
    pub fn hold_coupon_for_provider(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<CouponHold> {
        let coupon = self.coupon.as_ref()?;
        match coupon.held_until {
            Some(held) if held >= until => None,
            Some(held) if held > now => Some(CouponHold {
                code: coupon.code.clone(),
                until,
                lapsed: false,
            }),
            _ => Some(CouponHold {
                code: coupon.code.clone(),
                until,
                lapsed: true,
            }),
        }
    }

    /// A line got its licenses: `product.delivered` and the licenses email, and when it
    /// was the last line, `order.delivered`.
    pub fn deliver(&self, line_no: i64) -> Result<Delivered, Refused> {
        self.deliverable(line_no)?;
        let order_delivered = self
            .lines
            .iter()
            .all(|l| l.line_no == line_no || l.status == LineStatus::Delivered);
        let mut followups = Followups::default()
            .event(EventKind::ProductDelivered, Subject::Line(line_no))
            .email(
                EmailKind::Licenses,
                Recipient::Customer,
                format!("licenses:{}:{line_no}", self.id),
            );
        if order_delivered {
            followups = followups.event(EventKind::OrderDelivered, Subject::Order);
        }
        Ok(Delivered {
            order_delivered,
            followups,
        })
    }

    /// A line takes its keys from a pool of `pool` mode: only a pool of the order's
    /// own world (a test order never takes live stock, nor a live order test keys).
    pub fn deliver_from_pool(&self, line_no: i64, pool: Mode) -> Result<Delivered, Refused> {
        self.deliverable(line_no)?;
        stock_for(self.mode, pool)?;
        self.deliver(line_no)
    }

    /// A line's pool has too few keys: it waits, and the owners hear of it once.
    pub fn wait_for_stock(&self, line_no: i64) -> Result<Followups, Refused> {
        let line = self.deliverable(line_no)?;
        let followups = Followups::default();
        Ok(if line.status == LineStatus::WaitingStock {
            followups
        } else {
            followups.email(
                EmailKind::PoolEmpty,
                Recipient::Owners,
                format!("pool_empty:{}:{line_no}", self.id),
            )
        })
    }

    /// A delivery did not work: tried again at `retry_at`, or, with no try left,
    /// failed for good and the owners told.
    pub fn delivery_failed(
        &self,
        line_no: i64,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<LineFailure, Refused> {
        self.deliverable(line_no)?;
        Ok(match retry_at {
            Some(at) => LineFailure {
                status: LineStatus::Pending,
                followups: Followups {
                    deliver: vec![Wake {
                        line_no,
                        at: Some(at),
                    }],
                    ..Followups::default()
                },
            },
            None => LineFailure {
                status: LineStatus::Failed,
                followups: Followups::default().email(
                    EmailKind::DeliveryFailed,
                    Recipient::Owners,
                    format!("delivery_failed:{}:{line_no}", self.id),
                ),
            },
        })
    }

    /// The merchant asks to try a failed line again: it is due at once, with a fresh
    /// round of retries.
    pub fn retry_delivery(&self, line_no: i64) -> Result<Followups, Refused> {
        let line = self.deliverable(line_no)?;
        if line.status != LineStatus::Failed {
            return Err(Refused::NotFailed);
        }
        Ok(Followups {
            deliver: vec![Wake { line_no, at: None }],
            ..Followups::default()
        })
    }

    /// The customer is reminded of an unpaid order, once.
    pub fn remind(&self) -> Result<Followups, Refused> {
        self.waiting_for_payment()?;
        Ok(Followups::default().email(
            EmailKind::UnpaidReminder,
            Recipient::Customer,
            format!("reminder:{}", self.id),
        ))
    }

    /// An unpaid order is deleted, its personal data erased.
    pub fn delete(&self) -> Result<Followups, Refused> {
        self.waiting_for_payment()?;
        Ok(Followups::default().event(EventKind::OrderDeleted, Subject::Order))
    }

    /// Money goes back to the customer: all that is left to refund, an amount of it,
    /// or the lines named. Only a paid order is refunded, in its currency, by more than
    /// 0 and at most what was paid less what went back before (so refunds, one or
    /// many, never add up to more than was paid). The refund that takes the last of it
    /// refunds the order (`order.refunded`) and every line; a partial one keeps the
    /// order `paid` and refunds only the lines it names.
    pub fn refund(&self, r: &RefundRequest) -> Result<Refund, Refused> {
        if self.status != OrderStatus::Paid {
            return Err(Refused::NotRefundable(self.status));
        }
        if let Some(currency) = &r.currency
            && !currency.trim().eq_ignore_ascii_case(&self.currency)
        {
            return Err(Refused::WrongCurrency(self.currency.clone()));
        }
        let left = left_to_refund(self.total, self.amount_refunded);
        if left == 0 {
            return Err(Refused::NothingLeftToRefund);
        }
        let mut named: Vec<&Line> = Vec::new();
        for &line_no in &r.lines {
            let line = self
                .lines
                .iter()
                .find(|l| l.line_no == line_no)
                .ok_or(Refused::UnknownLine(line_no))?;
            if line.refunded {
                return Err(Refused::LineRefunded(line_no));
            }
            if !named.iter().any(|l| l.line_no == line_no) {
                named.push(line);
            }
        }
        let amount = match r.amount {
            Some(amount) => amount,
            None if named.is_empty() => left,
            None => named
                .iter()
                .fold(0i64, |sum, l| sum.saturating_add(l.total.max(0)))
                .min(left),
        };
        if amount <= 0 {
            return Err(Refused::RefundNotPositive);
        }
        if amount > left {
            return Err(Refused::RefundAboveLeft(left));
        }
        let order_refunded = amount == left;
        let refunded_lines: Vec<i64> = if order_refunded {
            self.lines
                .iter()
                .filter(|l| !l.refunded)
                .map(|l| l.line_no)
                .collect()
        } else {
            named.iter().map(|l| l.line_no).collect()
        };
        let cancelled_lines = self
            .lines
            .iter()
            .filter(|l| refunded_lines.contains(&l.line_no) && l.status != LineStatus::Delivered)
            .map(|l| l.line_no)
            .collect();
        let mut followups =
            Followups::default().event(EventKind::RefundSucceeded, Subject::Refund(r.id.clone()));
        if order_refunded {
            followups = followups.event(EventKind::OrderRefunded, Subject::Order);
        }
        let followups = followups.email(
            EmailKind::Refund,
            Recipient::Customer,
            format!("refund:{}", r.id),
        );
        Ok(Refund {
            amount,
            order_refunded,
            refunded_lines,
            cancelled_lines,
            followups,
        })
    }

    /// A refund failed at the provider (Stripe's `failed` or `canceled`): while it was
    /// pending, or after it was reported succeeded (a card refund the customer's bank
    /// returned). The money did not go back, so it no longer counts. What it took is
    /// refundable again, an order it had refunded is `paid` again, the lines it
    /// refunded are refunded no more (those it cancelled pending again and due now),
    /// `refund.failed` is recorded and the owners are told. A pending refund revoked
    /// no key ([`revokes_keys`]); one that had succeeded did, and they are reinstated
    /// (`reinstate_keys`), since the customer paid and got nothing back. A refund
    /// failed already is not taken back twice.
    pub fn refund_failed(&self, r: &RecordedRefund) -> Result<RefundTakenBack, Refused> {
        if r.status == RefundStatus::Failed {
            return Err(Refused::RefundFailedAlready);
        }
        if !matches!(self.status, OrderStatus::Paid | OrderStatus::Refunded) {
            return Err(Refused::NotRefundable(self.status));
        }
        let restored: Vec<&Line> = self
            .lines
            .iter()
            .filter(|l| r.lines.contains(&l.line_no))
            .collect();
        let followups = Followups {
            deliver: restored
                .iter()
                .filter(|l| l.status != LineStatus::Delivered)
                .map(|l| Wake {
                    line_no: l.line_no,
                    at: None,
                })
                .collect(),
            ..Followups::default()
        }
        .event(EventKind::RefundFailed, Subject::Refund(r.id.clone()))
        .email(
            EmailKind::RefundFailed,
            Recipient::Owners,
            format!("refund_failed:{}", r.id),
        );
        Ok(RefundTakenBack {
            amount: r.amount.min(self.amount_refunded).max(0),
            restored_lines: restored.iter().map(|l| l.line_no).collect(),
            reinstate_keys: revokes_keys(r.status),
            followups,
        })
    }

    /// A refund the provider reports it made of this order's payment (the merchant
    /// refunded in the provider's own dashboard): the money went back already, so it
    /// is [`Order::refund`] of exactly that amount, in that currency, naming no line,
    /// for an order of the provider's mode paid through a provider. The last of the
    /// money refunds the order and every line, as any refund does.
    pub fn refund_at_provider(
        &self,
        id: RefundId,
        mode: Mode,
        amount: i64,
        currency: &str,
    ) -> Result<Refund, Refused> {
        if mode != self.mode {
            return Err(Refused::RefundOfOtherMode {
                order: self.mode,
                refund: mode,
            });
        }
        if !self.payment_method.is_provider() {
            return Err(Refused::RefundsNotAvailable(self.payment_method));
        }
        self.refund(&RefundRequest {
            id,
            amount: Some(amount),
            currency: Some(currency.to_owned()),
            lines: Vec::new(),
        })
    }

    /// A refund decided on `before`, whose money the provider or sandbox already sent
    /// back as `sent`, decided again on the order as locked now: recorded only as it
    /// was sent.
    pub fn refund_as_sent(
        &self,
        r: &RefundRequest,
        before: &Order,
        sent: &Refund,
    ) -> Result<Refund, Refused> {
        let now = self.refund(r)?;
        // A provider was asked with a key naming `before`'s state: two refunds racing
        // with one key are one refund at the provider, so only one may be recorded.
        let same_state =
            !self.payment_method.is_provider() || self.amount_refunded == before.amount_refunded;
        if now.amount != sent.amount || !same_state {
            return Err(Refused::RefundChangedMeanwhile);
        }
        Ok(now)
    }

    /// The customer gets the licenses delivered so far again.
    pub fn resend_licenses(&self, now: DateTime<Utc>) -> Result<Followups, Refused> {
        if !self.lines.iter().any(|l| l.status == LineStatus::Delivered) {
            return Err(Refused::NothingDelivered);
        }
        if !self.has_customer_email {
            return Err(Refused::Erased);
        }
        Ok(Followups::default().email(
            EmailKind::Licenses,
            Recipient::Customer,
            format!("licenses:{}:resend:{}", self.id, now.timestamp_millis()),
        ))
    }
}

/// Keys arrived: every line waiting for this pool is due now.
pub fn restocked(waiting: &[i64]) -> Followups {
    Followups {
        deliver: waiting
            .iter()
            .map(|&line_no| Wake { line_no, at: None })
            .collect(),
        ..Followups::default()
    }
}

/// After `taken` keys left a pool that now has `available`: when that crossed the
/// pool's threshold, `license_pool.low_stock` and an email to the owners.
pub fn low_stock(
    pool: &LicensePoolId,
    threshold: Option<i64>,
    available: i64,
    taken: i64,
    now: DateTime<Utc>,
) -> Followups {
    match threshold {
        Some(threshold) if available <= threshold && available + taken > threshold => {
            Followups::default()
                .event(
                    EventKind::LicensePoolLowStock,
                    Subject::Pool {
                        id: pool.clone(),
                        available,
                        threshold,
                    },
                )
                .email(
                    EmailKind::PoolLow,
                    Recipient::Owners,
                    format!("pool_low:{pool}:{}", now.timestamp_millis()),
                )
        }
        _ => Followups::default(),
    }
}

/// A provider's payment `reference` (a Stripe PaymentIntent) paid an order paid
/// another way meanwhile, and went back (`Order::returns_late_payment`): the owners
/// are told, once per payment, as the order page and the log say it.
pub fn paid_twice(reference: &str) -> Followups {
    Followups::default().email(
        EmailKind::PaidTwice,
        Recipient::Owners,
        format!("paid_twice:{reference}"),
    )
}

/// A webhook endpoint of `mode` was disabled: the owners are told, in that mode's
/// world (its URL is not for the other mode's keys).
pub fn endpoint_disabled(
    endpoint: &WebhookEndpointId,
    mode: Mode,
    now: DateTime<Utc>,
) -> Followups {
    let mut followups = Followups::default().email(
        EmailKind::EndpointDisabled,
        Recipient::Owners,
        format!("endpoint_disabled:{endpoint}:{}", now.timestamp_millis()),
    );
    for email in &mut followups.emails {
        email.mode = Some(mode);
    }
    followups
}

/// Whether an order of `order`'s mode may take keys from a pool of `pool`'s: only
/// from its own world's (a plugin's `take-pool-keys` names any pool of the store).
pub fn stock_for(order: Mode, pool: Mode) -> Result<(), Refused> {
    if order == pool {
        Ok(())
    } else {
        Err(Refused::PoolOfOtherMode { order, pool })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: &[PaymentMethod] = &[PaymentMethod::TestCard, PaymentMethod::BankTransfer];

    fn order(method: PaymentMethod, lines: &[LineStatus]) -> Order {
        Order {
            id: OrderId::generate(),
            status: OrderStatus::NotPaid,
            delivery_status: DeliveryStatus::NotDelivered,
            payment_method: method,
            mode: Mode::Test,
            currency: "USD".into(),
            total: 1999,
            amount_refunded: 0,
            has_customer_email: true,
            reminded: false,
            lines: lines
                .iter()
                .zip(1..)
                .map(|(&status, line_no)| Line {
                    line_no,
                    status,
                    total: 1999,
                    refunded: false,
                })
                .collect(),
            offer_expires_at: None,
            coupon: None,
        }
    }

    fn paid(mut o: Order) -> Order {
        o.status = OrderStatus::Paid;
        o
    }

    #[test]
    fn a_held_coupon_use_is_redeemed_and_a_lapsed_one_only_if_free_unless_money_moved() {
        let at = card(true).at;
        let with_hold = |held_until| {
            let mut o = order(PaymentMethod::TestCard, &[LineStatus::Pending]);
            o.coupon = Some(CouponUse {
                code: "LAUNCH".into(),
                held_until,
            });
            o
        };
        let later = at + chrono::Duration::seconds(1);
        let redeemed = |o: &Order, p: &PaymentFacts| o.pay(p, BOTH).unwrap().redemption;
        assert_eq!(
            redeemed(&with_hold(Some(later)), &card(true)),
            Some(Redemption::Held)
        );
        assert_eq!(
            redeemed(&with_hold(Some(at)), &card(true)),
            Some(Redemption::IfStillFree)
        );
        assert_eq!(
            redeemed(&with_hold(None), &card(true)),
            Some(Redemption::IfStillFree)
        );
        let mut transfer = card(true);
        transfer.method = PaymentMethod::BankTransfer;
        assert_eq!(
            redeemed(&with_hold(Some(at)), &transfer),
            Some(Redemption::Regardless)
        );
        let plain = order(PaymentMethod::TestCard, &[LineStatus::Pending]);
        assert_eq!(redeemed(&plain, &card(true)), None);
        assert_eq!(
            with_hold(Some(later))
                .pay(&card(false), BOTH)
                .unwrap()
                .redemption,
            None
        );
    }

    #[test]
    fn money_a_provider_took_after_the_order_was_paid_goes_back() {
        let transfer_paid = paid(order(PaymentMethod::BankTransfer, &[LineStatus::Delivered]));
        let late = stripe(true);
        assert!(transfer_paid.returns_late_payment(&late, Mode::Test, false));
        assert!(
            !transfer_paid.returns_late_payment(&late, Mode::Test, true),
            "the money that paid it stays"
        );
        assert!(!transfer_paid.returns_late_payment(&stripe(false), Mode::Test, false));
        assert!(
            !transfer_paid.returns_late_payment(&late, Mode::Live, false),
            "another mode's money is refused, not handled"
        );
        assert!(!transfer_paid.returns_late_payment(&card(true), Mode::Test, false));
        let waiting = order(PaymentMethod::Stripe, &[LineStatus::Pending]);
        assert!(
            !waiting.returns_late_payment(&late, Mode::Test, false),
            "an order waiting for it is paid by it"
        );
    }

    fn card(succeeded: bool) -> PaymentFacts {
        PaymentFacts {
            id: PaymentId::generate(),
            method: PaymentMethod::TestCard,
            amount: 1999,
            currency: "USD".into(),
            succeeded,
            at: DateTime::from_timestamp(1_000, 0).unwrap(),
        }
    }

    fn transfer() -> PaymentFacts {
        PaymentFacts {
            method: PaymentMethod::BankTransfer,
            ..card(true)
        }
    }

    fn kinds(f: &Followups) -> (Vec<EventKind>, Vec<EmailKind>) {
        (
            f.events.iter().map(|e| e.kind).collect(),
            f.emails.iter().map(|e| e.kind).collect(),
        )
    }

    #[test]
    fn placing_records_the_order_and_sends_transfer_instructions() {
        let id = OrderId::generate();
        let by_card = placed(&id, PaymentMethod::TestCard);
        assert_eq!(kinds(&by_card), (vec![EventKind::OrderCreated], vec![]));
        let by_transfer = placed(&id, PaymentMethod::BankTransfer);
        assert_eq!(
            kinds(&by_transfer),
            (
                vec![EventKind::OrderCreated],
                vec![EmailKind::PaymentInstructions]
            )
        );
        assert_eq!(by_transfer.emails[0].key, format!("instructions:{id}"));
    }

    #[test]
    fn a_payment_pays_the_order_and_makes_pending_lines_due() {
        let o = order(
            PaymentMethod::TestCard,
            &[LineStatus::Pending, LineStatus::Pending],
        );
        let p = o.pay(&card(true), BOTH).unwrap();
        assert!(p.order_paid);
        assert_eq!(p.status, PaymentStatus::Succeeded);
        assert_eq!(
            kinds(&p.followups),
            (
                vec![EventKind::PaymentSucceeded],
                vec![EmailKind::PaymentSucceeded]
            )
        );
        assert_eq!(
            p.followups
                .deliver
                .iter()
                .map(|w| w.line_no)
                .collect::<Vec<_>>(),
            [1, 2]
        );
    }

    #[test]
    fn a_declined_payment_is_recorded_and_pays_nothing() {
        let o = order(PaymentMethod::TestCard, &[LineStatus::Pending]);
        let facts = card(false);
        let p = o.pay(&facts, BOTH).unwrap();
        assert!(!p.order_paid);
        assert_eq!(p.status, PaymentStatus::Failed);
        assert!(p.followups.deliver.is_empty());
        assert_eq!(
            kinds(&p.followups),
            (
                vec![EventKind::PaymentFailed],
                vec![EmailKind::PaymentFailed]
            )
        );
        assert_eq!(p.followups.emails[0].key, format!("failed:{}", facts.id));
    }

    #[test]
    fn a_paid_or_deleted_order_is_never_paid_again() {
        for status in [
            OrderStatus::Paid,
            OrderStatus::Deleted,
            OrderStatus::Refunded,
        ] {
            let mut o = order(PaymentMethod::TestCard, &[LineStatus::Pending]);
            o.status = status;
            assert_eq!(
                o.pay(&card(true), BOTH),
                Err(Refused::NotAwaitingPayment(status))
            );
            assert_eq!(
                o.pay(&transfer(), BOTH),
                Err(Refused::NotAwaitingPayment(status))
            );
        }
    }

    #[test]
    fn the_sandbox_pays_only_orders_meant_for_it_in_stores_that_offer_it() {
        // A bank transfer order, in a store that offers only bank transfer: the test
        // card posted to its pay form is refused.
        let o = order(PaymentMethod::BankTransfer, &[LineStatus::Pending]);
        let transfer_only = &[PaymentMethod::BankTransfer];
        assert_eq!(
            o.pay(&card(true), transfer_only),
            Err(Refused::MethodNotAllowed(PaymentMethod::TestCard))
        );
        // Nor when the store offers both but the order was placed for a transfer.
        assert_eq!(
            o.pay(&card(true), BOTH),
            Err(Refused::MethodNotAllowed(PaymentMethod::TestCard))
        );
        // A card order in a store that no longer offers the card.
        let o = order(PaymentMethod::TestCard, &[LineStatus::Pending]);
        assert_eq!(
            o.pay(&card(true), transfer_only),
            Err(Refused::MethodNotAllowed(PaymentMethod::TestCard))
        );
        // Money received by transfer is recorded for a card order in a store that
        // offers transfers, and is not a sandbox payment.
        let p = o.pay(&transfer(), BOTH).unwrap();
        assert!(p.order_paid);
        assert_eq!(
            o.pay(&transfer(), &[PaymentMethod::TestCard]),
            Err(Refused::MethodNotAllowed(PaymentMethod::BankTransfer))
        );
    }

    /// The attack: the test card posted for a live order, whatever the order was placed
    /// for and whatever the store enabled. Nothing lets a sandbox pay it, switch to it,
    /// or place a live order with it; money received offline still pays it.
    #[test]
    fn no_sandbox_payment_ever_pays_a_live_order() {
        for method in [PaymentMethod::TestCard, PaymentMethod::BankTransfer] {
            let mut o = order(method, &[LineStatus::Pending]);
            o.mode = Mode::Live;
            for enabled in [
                BOTH,
                &[PaymentMethod::BankTransfer][..],
                &[PaymentMethod::TestCard][..],
            ] {
                assert_eq!(
                    o.pay(&card(true), enabled),
                    Err(Refused::SandboxInLiveMode(PaymentMethod::TestCard))
                );
                assert_eq!(
                    o.pay(&card(false), enabled),
                    Err(Refused::SandboxInLiveMode(PaymentMethod::TestCard))
                );
                assert!(!o.accepts(PaymentMethod::TestCard, enabled));
                assert_eq!(
                    o.switch_method(PaymentMethod::TestCard, enabled),
                    Err(Refused::SandboxInLiveMode(PaymentMethod::TestCard))
                );
                assert_eq!(
                    may_place(Mode::Live, PaymentMethod::TestCard, enabled),
                    Err(Refused::SandboxInLiveMode(PaymentMethod::TestCard))
                );
            }
            assert!(o.pay(&transfer(), BOTH).unwrap().order_paid);
        }
        assert_eq!(may_place(Mode::Test, PaymentMethod::TestCard, BOTH), Ok(()));
        assert_eq!(
            may_place(
                Mode::Test,
                PaymentMethod::TestCard,
                &[PaymentMethod::BankTransfer]
            ),
            Err(Refused::MethodNotAllowed(PaymentMethod::TestCard))
        );
    }

    /// The attack: a signed offer's price kept after its expiry. The customer's card
    /// is refused once it has expired; money the merchant received offline is theirs
    /// to record.
    #[test]
    fn an_expired_offer_is_not_paid_online() {
        let mut o = order(PaymentMethod::TestCard, &[LineStatus::Pending]);
        let expiry = DateTime::from_timestamp(1_000, 0).unwrap();
        o.offer_expires_at = Some(expiry);
        let refused = o.pay(&card(true), BOTH).unwrap_err();
        assert_eq!(refused, Refused::OfferExpired(expiry));
        assert!(
            refused
                .to_string()
                .contains("expired on 1970-01-01 00:16 UTC")
        );
        assert_eq!(o.offer_open(expiry), Err(Refused::OfferExpired(expiry)));
        let before = PaymentFacts {
            at: DateTime::from_timestamp(999, 0).unwrap(),
            ..card(true)
        };
        assert!(o.pay(&before, BOTH).unwrap().order_paid);
        assert!(o.pay(&transfer(), BOTH).unwrap().order_paid);
    }

    #[test]
    fn a_payment_must_be_the_total_in_the_orders_currency() {
        let o = order(PaymentMethod::BankTransfer, &[LineStatus::Pending]);
        let short = PaymentFacts {
            amount: 1998,
            ..transfer()
        };
        assert_eq!(o.pay(&short, BOTH), Err(Refused::WrongAmount(1999)));
        let euros = PaymentFacts {
            currency: "EUR".into(),
            ..transfer()
        };
        assert_eq!(
            o.pay(&euros, BOTH),
            Err(Refused::WrongCurrency("USD".into()))
        );
        let lower = PaymentFacts {
            currency: "usd".into(),
            ..transfer()
        };
        assert!(o.pay(&lower, BOTH).is_ok());
    }

    #[test]
    fn switching_method_only_while_unpaid_and_to_an_offered_method() {
        let o = order(PaymentMethod::TestCard, &[LineStatus::Pending]);
        let f = o.switch_method(PaymentMethod::BankTransfer, BOTH).unwrap();
        assert_eq!(kinds(&f), (vec![], vec![EmailKind::PaymentInstructions]));
        assert_eq!(
            o.switch_method(PaymentMethod::BankTransfer, &[PaymentMethod::TestCard]),
            Err(Refused::MethodNotAllowed(PaymentMethod::BankTransfer))
        );
        let done = paid(o);
        assert_eq!(
            done.switch_method(PaymentMethod::BankTransfer, BOTH),
            Err(Refused::NotAwaitingPayment(OrderStatus::Paid))
        );
    }

    #[test]
    fn unpaid_lines_are_never_delivered() {
        let o = order(PaymentMethod::TestCard, &[LineStatus::Pending]);
        assert_eq!(o.deliver(1), Err(Refused::NotPaid));
        assert_eq!(o.wait_for_stock(1), Err(Refused::NotPaid));
        assert_eq!(o.delivery_failed(1, None), Err(Refused::NotPaid));
    }

    #[test]
    fn a_line_is_delivered_once_and_the_last_one_delivers_the_order() {
        let o = paid(order(
            PaymentMethod::TestCard,
            &[
                LineStatus::Delivered,
                LineStatus::Pending,
                LineStatus::WaitingStock,
            ],
        ));
        assert_eq!(o.deliver(1), Err(Refused::AlreadyDelivered));
        assert_eq!(o.deliver(9), Err(Refused::NoSuchLine(9)));
        let second = o.deliver(2).unwrap();
        assert!(!second.order_delivered);
        assert_eq!(
            kinds(&second.followups),
            (vec![EventKind::ProductDelivered], vec![EmailKind::Licenses])
        );
        let mut o = o;
        o.lines[1].status = LineStatus::Delivered;
        let last = o.deliver(3).unwrap();
        assert!(last.order_delivered);
        assert_eq!(
            kinds(&last.followups).0,
            [EventKind::ProductDelivered, EventKind::OrderDelivered]
        );
    }

    /// The attack: a test order paid with the sandbox, delivered from a live pool.
    #[test]
    fn a_test_order_never_takes_live_stock() {
        let o = paid(order(PaymentMethod::TestCard, &[LineStatus::Pending]));
        assert_eq!(
            o.deliver_from_pool(1, Mode::Live),
            Err(Refused::PoolOfOtherMode {
                order: Mode::Test,
                pool: Mode::Live
            })
        );
        assert!(o.deliver_from_pool(1, Mode::Test).is_ok());
        let mut live = o.clone();
        live.mode = Mode::Live;
        assert!(live.deliver_from_pool(1, Mode::Test).is_err());
        assert!(live.deliver_from_pool(1, Mode::Live).is_ok());
    }

    #[test]
    fn owners_hear_once_that_a_line_waits_for_stock() {
        let o = paid(order(
            PaymentMethod::TestCard,
            &[LineStatus::Pending, LineStatus::WaitingStock],
        ));
        assert_eq!(
            kinds(&o.wait_for_stock(1).unwrap()).1,
            [EmailKind::PoolEmpty]
        );
        assert_eq!(o.wait_for_stock(2).unwrap(), Followups::default());
    }

    #[test]
    fn failed_deliveries_are_retried_then_given_up_with_the_owners_told() {
        let o = paid(order(PaymentMethod::TestCard, &[LineStatus::Pending]));
        let at = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let retry = o.delivery_failed(1, Some(at)).unwrap();
        assert_eq!(retry.status, LineStatus::Pending);
        assert_eq!(
            retry.followups.deliver,
            [Wake {
                line_no: 1,
                at: Some(at)
            }]
        );
        assert!(retry.followups.emails.is_empty());
        let given_up = o.delivery_failed(1, None).unwrap();
        assert_eq!(given_up.status, LineStatus::Failed);
        assert_eq!(kinds(&given_up.followups).1, [EmailKind::DeliveryFailed]);
    }

    #[test]
    fn only_a_failed_line_is_tried_again_at_once() {
        let mut o = paid(order(PaymentMethod::TestCard, &[LineStatus::Pending]));
        assert_eq!(o.retry_delivery(1), Err(Refused::NotFailed));
        assert_eq!(o.retry_delivery(2), Err(Refused::NoSuchLine(2)));
        o.lines[0].status = LineStatus::Failed;
        assert_eq!(
            o.retry_delivery(1).unwrap().deliver,
            [Wake {
                line_no: 1,
                at: None
            }]
        );
        o.lines[0].status = LineStatus::Delivered;
        assert_eq!(o.retry_delivery(1), Err(Refused::AlreadyDelivered));
        let unpaid = order(PaymentMethod::BankTransfer, &[LineStatus::Failed]);
        assert_eq!(unpaid.retry_delivery(1), Err(Refused::NotPaid));
    }

    #[test]
    fn only_unpaid_orders_are_reminded_and_deleted() {
        let o = order(PaymentMethod::BankTransfer, &[LineStatus::Pending]);
        assert_eq!(kinds(&o.remind().unwrap()).1, [EmailKind::UnpaidReminder]);
        assert_eq!(kinds(&o.delete().unwrap()).0, [EventKind::OrderDeleted]);
        let o = paid(o);
        assert!(o.remind().is_err());
        assert_eq!(
            o.delete(),
            Err(Refused::NotAwaitingPayment(OrderStatus::Paid))
        );
    }

    #[test]
    fn licenses_are_resent_only_when_some_were_delivered_to_a_known_customer() {
        let now = Utc::now();
        let mut o = paid(order(PaymentMethod::TestCard, &[LineStatus::Pending]));
        assert_eq!(o.resend_licenses(now), Err(Refused::NothingDelivered));
        o.lines[0].status = LineStatus::Delivered;
        assert_eq!(
            kinds(&o.resend_licenses(now).unwrap()).1,
            [EmailKind::Licenses]
        );
        o.has_customer_email = false;
        assert_eq!(o.resend_licenses(now), Err(Refused::Erased));
    }

    #[test]
    fn low_stock_is_reported_when_the_threshold_is_crossed() {
        let pool = LicensePoolId::generate();
        let now = Utc::now();
        // 12 → 10 with a threshold of 10: crossed.
        assert_eq!(
            kinds(&low_stock(&pool, Some(10), 10, 2, now)),
            (
                vec![EventKind::LicensePoolLowStock],
                vec![EmailKind::PoolLow]
            )
        );
        // Already below before: told once, not again.
        assert_eq!(low_stock(&pool, Some(10), 8, 1, now), Followups::default());
        assert_eq!(low_stock(&pool, None, 0, 5, now), Followups::default());
        assert_eq!(low_stock(&pool, Some(10), 11, 1, now), Followups::default());
    }

    #[test]
    fn restocked_lines_are_due_now() {
        assert_eq!(
            restocked(&[2, 5]).deliver,
            [
                Wake {
                    line_no: 2,
                    at: None
                },
                Wake {
                    line_no: 5,
                    at: None
                }
            ]
        );
    }

    fn stripe(succeeded: bool) -> PaymentFacts {
        PaymentFacts {
            method: PaymentMethod::Stripe,
            ..card(succeeded)
        }
    }

    /// The attacks on a provider's payment: its other mode, another amount or
    /// currency, another store, an order not meant for it. Each is refused before
    /// anything is written; the genuine one pays.
    #[test]
    fn a_provider_payment_pays_only_the_order_it_was_made_for() {
        let mut o = order(PaymentMethod::Stripe, &[LineStatus::Pending]);
        for mode in [Mode::Test, Mode::Live] {
            o.mode = mode;
            let other = if mode.is_live() {
                Mode::Test
            } else {
                Mode::Live
            };
            assert_eq!(
                o.pay_online(&stripe(true), other, true, &[]),
                Err(Refused::PaymentOfOtherMode {
                    order: mode,
                    payment: other
                })
            );
            let p = o.pay_online(&stripe(true), mode, true, &[]).unwrap();
            assert!(p.order_paid);
            assert_eq!(kinds(&p.followups).0, [EventKind::PaymentSucceeded]);
        }
        let cheaper = PaymentFacts {
            amount: 1,
            ..stripe(true)
        };
        assert_eq!(
            o.pay_online(&cheaper, o.mode, true, &[]),
            Err(Refused::WrongAmount(1999))
        );
        let euros = PaymentFacts {
            currency: "EUR".into(),
            ..stripe(true)
        };
        assert_eq!(
            o.pay_online(&euros, o.mode, true, &[]),
            Err(Refused::WrongCurrency("USD".into()))
        );
        let failed = o.pay_online(&stripe(false), o.mode, true, &[]).unwrap();
        assert!(!failed.order_paid);
        assert_eq!(
            kinds(&failed.followups),
            (
                vec![EventKind::PaymentFailed],
                vec![EmailKind::PaymentFailed]
            )
        );
        // An order placed for another method is not paid by Stripe unless Kassa sent
        // its customer there (who then switched method); nor is any order paid twice.
        let transfer = order(PaymentMethod::BankTransfer, &[LineStatus::Pending]);
        assert_eq!(
            transfer.pay_online(&stripe(true), Mode::Test, false, &[PaymentMethod::Stripe]),
            Err(Refused::MethodNotAllowed(PaymentMethod::Stripe))
        );
        assert!(
            transfer
                .pay_online(&stripe(true), Mode::Test, true, &[])
                .unwrap()
                .order_paid
        );
        assert_eq!(
            paid(o.clone()).pay_online(&stripe(true), o.mode, true, &[]),
            Err(Refused::NotAwaitingPayment(OrderStatus::Paid))
        );
        assert_eq!(same_store("ten_a", Some("ten_a")), Ok(()));
        assert_eq!(same_store("ten_a", Some("ten_b")), Err(Refused::OtherStore));
        assert_eq!(same_store("ten_a", None), Err(Refused::OtherStore));
    }

    /// A paid order of two lines, 1000 and 999 (1999 paid).
    fn paid_two_lines() -> Order {
        let mut o = paid(order(
            PaymentMethod::TestCard,
            &[LineStatus::Delivered, LineStatus::Delivered],
        ));
        o.lines[0].total = 1000;
        o.lines[1].total = 999;
        o
    }

    fn refund(amount: Option<i64>, lines: &[i64]) -> RefundRequest {
        RefundRequest {
            id: RefundId::generate(),
            amount,
            currency: None,
            lines: lines.to_vec(),
        }
    }

    /// `o` once `r` was written: what storage does with a refund.
    fn after(mut o: Order, r: &Refund) -> Order {
        o.amount_refunded += r.amount;
        if r.order_refunded {
            o.status = OrderStatus::Refunded;
        }
        for l in &mut o.lines {
            if r.refunded_lines.contains(&l.line_no) {
                l.refunded = true;
            }
        }
        o
    }

    #[test]
    fn a_refund_made_at_the_provider_is_a_refund_of_its_amount_in_its_mode() {
        let mut o = paid_two_lines();
        o.payment_method = PaymentMethod::Stripe;
        let id = RefundId::generate;
        // Part of it: the order stays paid, no line is given back.
        let part = o.refund_at_provider(id(), o.mode, 500, "usd").unwrap();
        assert_eq!((part.amount, part.order_refunded), (500, false));
        assert!(part.refunded_lines.is_empty());
        let o = after(o, &part);
        // Another currency, more than is left, the other mode: refused.
        assert_eq!(
            o.refund_at_provider(id(), o.mode, 100, "EUR"),
            Err(Refused::WrongCurrency("USD".into()))
        );
        assert_eq!(
            o.refund_at_provider(id(), o.mode, 1500, "USD"),
            Err(Refused::RefundAboveLeft(1499))
        );
        let other = match o.mode {
            Mode::Live => Mode::Test,
            Mode::Test => Mode::Live,
        };
        assert_eq!(
            o.refund_at_provider(id(), other, 100, "USD"),
            Err(Refused::RefundOfOtherMode {
                order: o.mode,
                refund: other
            })
        );
        // The rest: the order and every line refunded.
        let rest = o.refund_at_provider(id(), o.mode, 1499, "USD").unwrap();
        assert!(rest.order_refunded);
        assert_eq!(rest.refunded_lines, [1, 2]);
        // An order the sandbox paid has no provider to refund it.
        let sandbox = paid_two_lines();
        assert_eq!(
            sandbox.refund_at_provider(id(), sandbox.mode, 100, "USD"),
            Err(Refused::RefundsNotAvailable(PaymentMethod::TestCard))
        );
    }

    #[test]
    fn a_refund_already_sent_back_is_recorded_only_as_it_was_sent() {
        let before = paid_two_lines();
        let half = refund(Some(500), &[]);
        let sent = before.refund(&half).unwrap();
        assert_eq!(
            before.refund_as_sent(&half, &before, &sent),
            Ok(sent.clone())
        );
        // Another refund got there first: the rest is less than what was sent back.
        let rest = before.refund(&refund(None, &[])).unwrap();
        let after_other = after(before.clone(), &sent);
        assert_eq!(
            after_other.refund_as_sent(&refund(None, &[]), &before, &rest),
            Err(Refused::RefundChangedMeanwhile)
        );
        // The same amount still fits, but a provider was asked with a key naming the
        // state before: recorded only in that state (the sandbox's has no key).
        assert!(
            after_other
                .refund_as_sent(&refund(Some(500), &[]), &before, &sent)
                .is_ok()
        );
        let mut by_stripe = before.clone();
        by_stripe.payment_method = PaymentMethod::Stripe;
        let moved_on = after(by_stripe.clone(), &sent);
        assert_eq!(
            moved_on.refund_as_sent(&refund(Some(500), &[]), &by_stripe, &sent),
            Err(Refused::RefundChangedMeanwhile)
        );
    }

    #[test]
    fn a_refund_cancels_the_lines_it_refunds_that_were_not_delivered() {
        let o = paid(order(
            PaymentMethod::TestCard,
            &[LineStatus::Delivered, LineStatus::WaitingStock],
        ));
        let r = o.refund(&refund(None, &[])).unwrap();
        assert_eq!(r.refunded_lines, [1, 2]);
        assert_eq!(r.cancelled_lines, [2], "the delivered line keeps its state");
        let named = o.refund(&refund(Some(1), &[1])).unwrap();
        assert!(named.cancelled_lines.is_empty());
    }

    #[test]
    fn only_a_succeeded_refund_revokes_keys() {
        assert!(revokes_keys(RefundStatus::Succeeded));
        assert!(!revokes_keys(RefundStatus::Pending));
        assert!(!revokes_keys(RefundStatus::Failed));
    }

    #[test]
    fn a_refund_that_fails_pending_or_after_it_succeeded_is_taken_back() {
        let o = paid(order(
            PaymentMethod::Stripe,
            &[LineStatus::Delivered, LineStatus::WaitingStock],
        ));
        let full = o.refund(&refund(None, &[])).unwrap();
        let recorded = RecordedRefund {
            id: RefundId::generate(),
            amount: full.amount,
            status: RefundStatus::Pending,
            lines: full.refunded_lines.clone(),
        };
        let mut refunded = after(o.clone(), &full);
        for l in &mut refunded.lines {
            if full.cancelled_lines.contains(&l.line_no) {
                l.status = LineStatus::Cancelled;
            }
        }
        let back = refunded.refund_failed(&recorded).unwrap();
        assert_eq!(back.amount, full.amount);
        assert_eq!(back.restored_lines, [1, 2]);
        assert_eq!(
            back.followups.deliver,
            [Wake {
                line_no: 2,
                at: None
            }],
            "the cancelled line is due again"
        );
        assert_eq!(
            kinds(&back.followups),
            (vec![EventKind::RefundFailed], vec![EmailKind::RefundFailed])
        );
        assert_eq!(back.followups.emails[0].to, Recipient::Owners);
        assert!(!back.reinstate_keys, "a pending refund revoked no key");
        // Failed after it succeeded (a card refund the bank returned): taken back
        // the same way, and the keys it revoked are reinstated.
        let succeeded = RecordedRefund {
            status: RefundStatus::Succeeded,
            ..recorded.clone()
        };
        let late = refunded.refund_failed(&succeeded).unwrap();
        assert_eq!(
            (late.amount, late.restored_lines.clone()),
            (full.amount, vec![1, 2])
        );
        assert!(late.reinstate_keys);
        assert_eq!(kinds(&late.followups), kinds(&back.followups));
        // A failed one is not taken back twice.
        let failed = RecordedRefund {
            status: RefundStatus::Failed,
            ..recorded
        };
        assert_eq!(
            refunded.refund_failed(&failed),
            Err(Refused::RefundFailedAlready)
        );
    }

    #[test]
    fn a_pending_refund_says_so_and_succeeds_once() {
        let o = paid_two_lines();
        let r = o.refund(&refund(None, &[])).unwrap();
        let pending = r.clone().recorded_as(RefundStatus::Pending);
        assert_eq!(
            kinds(&pending.followups),
            (
                vec![EventKind::RefundPending, EventKind::OrderRefunded],
                vec![EmailKind::Refund]
            )
        );
        assert_eq!(r.clone().recorded_as(RefundStatus::Succeeded), r);
        let id = RefundId::generate();
        assert_eq!(
            kinds(&refund_went_through(&id)),
            (vec![EventKind::RefundSucceeded], vec![])
        );
    }

    #[test]
    fn a_full_refund_refunds_the_order_and_every_line() {
        let o = paid_two_lines();
        let r = o.refund(&refund(None, &[])).unwrap();
        assert_eq!(r.amount, 1999);
        assert!(r.order_refunded);
        assert_eq!(r.refunded_lines, [1, 2]);
        assert_eq!(
            kinds(&r.followups),
            (
                vec![EventKind::RefundSucceeded, EventKind::OrderRefunded],
                vec![EmailKind::Refund]
            )
        );
        let o = after(o, &r);
        assert_eq!(
            o.refund(&refund(None, &[])),
            Err(Refused::NotRefundable(OrderStatus::Refunded))
        );
    }

    #[test]
    fn a_partial_refund_keeps_the_order_paid_and_then_the_rest() {
        let o = paid_two_lines();
        let r = o.refund(&refund(Some(500), &[])).unwrap();
        assert!(!r.order_refunded);
        assert!(r.refunded_lines.is_empty(), "no line named, none revoked");
        assert_eq!(kinds(&r.followups).0, [EventKind::RefundSucceeded]);
        let o = after(o, &r);
        assert_eq!(o.status, OrderStatus::Paid);
        // Naming a line: its total, and only it is refunded.
        let r = o.refund(&refund(None, &[2])).unwrap();
        assert_eq!((r.amount, r.order_refunded), (999, false));
        assert_eq!(r.refunded_lines, [2]);
        let o = after(o, &r);
        assert_eq!(o.refund(&refund(None, &[2])), Err(Refused::LineRefunded(2)));
        assert_eq!(o.deliver(2), Err(Refused::AlreadyDelivered));
        // The rest: 1999 - 500 - 999 = 500, and the order is refunded.
        let r = o.refund(&refund(None, &[])).unwrap();
        assert_eq!((r.amount, r.order_refunded), (500, true));
        assert_eq!(r.refunded_lines, [1]);
    }

    /// The attacks: more than was paid, at once or bit by bit; nothing or less than
    /// nothing; another currency; an order not paid; a line that is not there.
    #[test]
    fn a_refund_never_takes_more_than_was_paid() {
        let o = paid_two_lines();
        assert_eq!(
            o.refund(&refund(Some(2000), &[])),
            Err(Refused::RefundAboveLeft(1999))
        );
        let o = after(o.clone(), &o.refund(&refund(Some(1500), &[])).unwrap());
        assert_eq!(
            o.refund(&refund(Some(500), &[])),
            Err(Refused::RefundAboveLeft(499))
        );
        assert_eq!(
            o.refund(&refund(Some(0), &[])),
            Err(Refused::RefundNotPositive)
        );
        assert_eq!(
            o.refund(&refund(Some(-5), &[])),
            Err(Refused::RefundNotPositive)
        );
        // A line of 1000 named when 499 is left: the rest, not the line's total.
        assert_eq!(o.refund(&refund(None, &[1])).unwrap().amount, 499);
        assert_eq!(o.refund(&refund(None, &[7])), Err(Refused::UnknownLine(7)));
        let euros = RefundRequest {
            currency: Some("EUR".into()),
            ..refund(None, &[])
        };
        assert_eq!(o.refund(&euros), Err(Refused::WrongCurrency("USD".into())));
        for status in [OrderStatus::NotPaid, OrderStatus::Deleted] {
            let mut unpaid = paid_two_lines();
            unpaid.status = status;
            assert_eq!(
                unpaid.refund(&refund(Some(1), &[])),
                Err(Refused::NotRefundable(status))
            );
        }
        let mut free = paid_two_lines();
        free.total = 0;
        assert_eq!(
            free.refund(&refund(None, &[])),
            Err(Refused::NothingLeftToRefund)
        );
    }

    #[test]
    fn a_refunded_line_is_never_delivered() {
        let mut o = paid(order(PaymentMethod::TestCard, &[LineStatus::Pending]));
        o.total = 5000;
        let r = o.refund(&refund(Some(100), &[1])).unwrap();
        let o = after(o, &r);
        assert_eq!(o.deliver(1), Err(Refused::LineRefunded(1)));
        assert_eq!(o.wait_for_stock(1), Err(Refused::LineRefunded(1)));
    }

    mod refund_maths {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            /// Whatever amounts are asked, in any order: what is refunded never goes
            /// negative, never exceeds what was paid, each refund is more than 0, they
            /// add up to what the order says went back, and the order is `refunded`
            /// exactly when all of it did.
            #[test]
            fn refunds_add_up_and_never_exceed_what_was_paid(
                total in 0..=crate::money::MAX_AMOUNT,
                asks in proptest::collection::vec(
                    prop_oneof![Just(None), any::<i64>().prop_map(Some), (0..=10_000i64).prop_map(Some)],
                    1..20,
                ),
            ) {
                let mut o = paid(order(PaymentMethod::TestCard, &[LineStatus::Delivered]));
                o.total = total;
                o.lines[0].total = total;
                let mut sum = 0i64;
                for ask in asks {
                    let Ok(r) = o.refund(&refund(ask, &[])) else {
                        continue;
                    };
                    prop_assert!(r.amount > 0);
                    prop_assert!(r.amount <= total - o.amount_refunded);
                    sum += r.amount;
                    o = after(o, &r);
                    prop_assert_eq!(o.amount_refunded, sum);
                    prop_assert!(0 <= sum && sum <= total);
                    prop_assert_eq!(o.status == OrderStatus::Refunded, sum == total);
                    prop_assert_eq!(left_to_refund(total, sum), total - sum);
                }
            }
        }
    }
}
