//! The store and the order as emails and pages show them.

use kassa_domain::money::{Currency, Money};
use kassa_domain::order::{OrderStatus, PaymentMethod, PaymentStatus};
use kassa_domain::tenant::TenantSettings;
use kassa_store::{OrderRecord, TenantRecord};
use serde::Serialize;

use crate::texts::Texts;

/// The store as pages and emails show it.
#[derive(Serialize)]
pub struct Brand {
    pub name: String,
    pub slug: String,
    pub logo_url: Option<String>,
    /// The store's colour, for backgrounds and rules.
    pub accent_color: String,
    /// Text on `accent_color` (a button's label), readable.
    pub accent_text: String,
    /// The accent as text or links on a light page, readable.
    pub accent_ink: String,
    pub terms_url: Option<String>,
    pub privacy_url: Option<String>,
    pub support_email: Option<String>,
}

impl Brand {
    /// Kassa's own, for a page that belongs to no known store.
    pub fn kassa() -> Self {
        Self::new("Kassa", "", &TenantSettings::default())
    }

    fn new(name: &str, slug: &str, settings: &TenantSettings) -> Self {
        let accent = settings.accent();
        Self {
            name: name.to_owned(),
            slug: slug.to_owned(),
            logo_url: settings.logo_url.clone(),
            accent_color: accent.to_string(),
            accent_text: accent.text_on().to_string(),
            accent_ink: accent.ink().to_string(),
            terms_url: settings.terms_url.clone(),
            privacy_url: settings.privacy_url.clone(),
            support_email: settings.support_email.clone(),
        }
    }
}

pub fn brand(tenant: &TenantRecord, settings: &TenantSettings) -> Brand {
    Brand::new(&tenant.name, &tenant.slug, settings)
}

pub fn method_label(m: PaymentMethod, t: &Texts) -> String {
    t.get(&format!("method_{}", m.as_str()))
        .cloned()
        .unwrap_or_else(|| m.as_str().to_owned())
}

/// `19.99 USD`; an unknown currency code is shown as stored.
pub fn money(amount: i64, currency: &str) -> String {
    match Currency::parse("currency", currency) {
        Ok(currency) => Money { amount, currency }.display(),
        Err(_) => format!("{amount} {currency}"),
    }
}

#[derive(Serialize)]
struct LineView {
    name: String,
    quantity: i64,
    unit_amount: String,
    total: String,
}

#[derive(Serialize)]
struct LicenseView {
    name: String,
    key: String,
    /// Its line was refunded in full: the key no longer works.
    revoked: bool,
}

/// The order as its customer reads it, in their language.
#[derive(Serialize)]
pub struct OrderView {
    number: i64,
    /// What the templates test, as flags: the statuses stay typed.
    paid: bool,
    deleted: bool,
    awaiting_payment: bool,
    by_card: bool,
    by_transfer: bool,
    by_stripe: bool,
    /// Sent to Stripe and not paid yet: the payment is being confirmed (only Stripe's
    /// signed webhook pays the order).
    confirming: bool,
    status_text: String,
    delivery_text: String,
    method_text: String,
    payment_reference: String,
    lines: Vec<LineView>,
    licenses: Vec<LicenseView>,
    subtotal: String,
    discount: String,
    has_discount: bool,
    total: String,
    /// Money that went back, when some did.
    refunded: Option<String>,
    return_url: Option<String>,
    customer_name: String,
    customer_email: String,
    date: String,
}

pub fn order_view(order: &OrderRecord, t: &Texts) -> OrderView {
    let text = |key: String| t.get(&key).cloned().unwrap_or(key);
    OrderView {
        number: order.number,
        paid: order.status == OrderStatus::Paid,
        deleted: order.status == OrderStatus::Deleted,
        awaiting_payment: order.status == OrderStatus::NotPaid,
        by_card: order.payment_method == PaymentMethod::TestCard,
        by_transfer: order.payment_method == PaymentMethod::BankTransfer,
        by_stripe: order.payment_method == PaymentMethod::Stripe,
        confirming: order.status == OrderStatus::NotPaid
            && order.payment_method == PaymentMethod::Stripe
            && order
                .payments
                .iter()
                .any(|p| p.method == PaymentMethod::Stripe && p.status == PaymentStatus::Pending),
        status_text: text(format!("status_{}", order.status)),
        delivery_text: text(format!("delivery_{}", order.delivery_status)),
        method_text: method_label(order.payment_method, t),
        payment_reference: order.payment_reference.clone(),
        lines: order
            .lines
            .iter()
            .map(|l| LineView {
                name: l.name.clone(),
                quantity: l.quantity,
                unit_amount: money(l.unit_amount, &order.currency),
                total: money(l.total, &order.currency),
            })
            .collect(),
        licenses: order
            .lines
            .iter()
            .flat_map(|l| {
                l.licenses.iter().map(|k| LicenseView {
                    name: l.name.clone(),
                    key: k.clone(),
                    revoked: l.refunded,
                })
            })
            .collect(),
        subtotal: money(order.subtotal, &order.currency),
        discount: money(order.discount, &order.currency),
        has_discount: order.discount > 0,
        total: money(order.total, &order.currency),
        refunded: (order.amount_refunded > 0)
            .then(|| money(order.amount_refunded, &order.currency)),
        return_url: order.return_url.clone(),
        customer_name: order.customer.name.clone().unwrap_or_default(),
        customer_email: order.customer.email.clone().unwrap_or_default(),
        date: order.created_at.get(..10).unwrap_or_default().to_owned(),
    }
}
