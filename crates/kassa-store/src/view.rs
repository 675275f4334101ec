//! The order as merchants see it, in the API and in every event's `data`: read here,
//! with its lines, payments and consents, in a fixed number of queries.

use kassa_domain::ids::{OrderId, TenantId};
use kassa_domain::mode::Mode;
use kassa_domain::order::{
    DeliveryStatus, LineStatus, OrderStatus, PaymentMethod, PaymentStatus, RefundStatus,
};
use kassa_domain::workflow;
use serde::Serialize;
use sqlx::AssertSqlSafe;

use crate::catalog::HasId;
use crate::db::{Tx, db_run, placeholders};
use crate::error::StoreError;
use crate::error::{corrupt, named};
use crate::page::{Page, PageRequest};
use crate::store::Store;
use crate::time::Timestamp;
use crate::time::{rfc3339, serialize_millis};
use sqlx::types::Json;

/// An accepted consent, with the evidence Kassa keeps of it.
#[derive(Debug, Clone, Serialize)]
pub struct Consent {
    /// `terms` or `personal_data`.
    pub kind: String,
    /// Which text was accepted (a version name or a hash of the text).
    pub text_version: String,
    /// Milliseconds since the epoch; RFC 3339 in JSON, as in the API.
    #[serde(serialize_with = "serialize_millis")]
    pub accepted_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Customer {
    pub email: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderLineRecord {
    pub line_no: i64,
    pub product_id: String,
    pub name: String,
    pub quantity: i64,
    pub unit_amount: i64,
    pub subtotal: i64,
    pub discount: i64,
    pub total: i64,
    pub delivery_status: LineStatus,
    pub licenses: Vec<String>,
    /// Why the last delivery attempt did not work, while it is not delivered.
    pub delivery_error: Option<String>,
    /// Refunded in full (named in a refund, or the order refunded in full).
    pub refunded: bool,
    /// The licenses a refund revoked: every license of a line refunded in full, once
    /// its refund succeeded (a refund pending at the provider revokes nothing yet).
    /// A refund that failed after it succeeded gives them back, but for a key it had
    /// returned to its pool and that went to another order since: that one stays
    /// here (and `delivery_error` says so).
    pub revoked_licenses: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PaymentRecord {
    pub id: String,
    pub method: PaymentMethod,
    pub status: PaymentStatus,
    pub amount: i64,
    pub currency: String,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub reference: Option<String>,
    pub created_at: String,
}

/// A refund as merchants see it, in the API and in `refund.succeeded`.
#[derive(Debug, Clone, Serialize)]
pub struct RefundRecord {
    pub id: String,
    pub order_id: String,
    /// Minor units.
    pub amount: i64,
    pub currency: String,
    /// How the money went back: the order's payment method.
    pub method: PaymentMethod,
    pub status: RefundStatus,
    pub reason: Option<String>,
    pub reference: Option<String>,
    /// The lines it refunded in full (their licenses revoked once it succeeded).
    pub lines: Vec<i64>,
    /// Why the provider could not give the money back (Stripe's reason), once failed.
    pub failure_reason: Option<String>,
    pub livemode: bool,
    pub created_at: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct RefundRow {
    pub(crate) id: String,
    pub(crate) order_id: String,
    amount: i64,
    currency: String,
    method: String,
    status: String,
    reason: Option<String>,
    reference: Option<String>,
    lines: Json<Vec<i64>>,
    failure_reason: Option<String>,
    livemode: bool,
    created_at: Timestamp,
}

pub(crate) const REFUND_SELECT: &str = "SELECT id, order_id, amount, currency, method, status, \
    reason, reference, lines, failure_reason, livemode, created_at FROM refunds";

impl TryFrom<RefundRow> for RefundRecord {
    type Error = StoreError;
    fn try_from(r: RefundRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.id,
            order_id: r.order_id,
            amount: r.amount,
            currency: r.currency,
            method: named(&r.method)?,
            status: named(&r.status)?,
            reason: r.reason,
            reference: r.reference,
            lines: r.lines.0,
            failure_reason: r.failure_reason,
            livemode: r.livemode,
            created_at: rfc3339(r.created_at.millis()),
        })
    }
}

/// An order as merchants see it in the API and in webhook payloads.
#[derive(Debug, Clone, Serialize)]
pub struct OrderRecord {
    pub id: String,
    pub number: i64,
    pub status: OrderStatus,
    pub delivery_status: DeliveryStatus,
    pub currency: String,
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
    pub total: i64,
    /// What went back to the customer so far, in minor units.
    pub amount_refunded: i64,
    pub customer: Customer,
    pub lines: Vec<OrderLineRecord>,
    pub payments: Vec<PaymentRecord>,
    /// Oldest first.
    pub refunds: Vec<RefundRecord>,
    pub consents: Vec<Consent>,
    pub payment_method: PaymentMethod,
    pub payment_reference: String,
    pub coupon_code: Option<String>,
    pub custom: serde_json::Value,
    /// Placed in test mode (the opposite of `livemode`; both are shown).
    pub test_mode: bool,
    /// Placed in live mode: real money, live stock.
    pub livemode: bool,
    pub locale: String,
    pub return_url: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub paid_at: Option<String>,
    /// The capability for the customer's pages; not part of the merchant's view.
    #[serde(skip)]
    pub token: String,
    /// When the earliest signed offer of its lines stops holding: after it the
    /// customer cannot pay online.
    #[serde(skip)]
    pub offer_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Until when the order, unpaid, holds the use of its coupon.
    #[serde(skip)]
    pub coupon_held_until: Option<chrono::DateTime<chrono::Utc>>,
}

impl OrderRecord {
    /// The fields of the order as shown (the API, every event's `data.order`) that hold
    /// the customer's personal data; `Work::erase_order` erases them in the tables and
    /// copies their erased values into the order's events.
    pub const PERSONAL_FIELDS: [&str; 4] = ["customer", "consents", "custom", "return_url"];

    /// The order's states, for the workflow to check a command before it is run (it is
    /// checked again, on the stored row, when it is written).
    pub fn state(&self) -> Result<workflow::Order, StoreError> {
        Ok(workflow::Order {
            id: OrderId::parse(&self.id).map_err(corrupt)?,
            status: self.status,
            delivery_status: self.delivery_status,
            payment_method: self.payment_method,
            mode: Mode::from_livemode(self.livemode),
            currency: self.currency.clone(),
            total: self.total,
            amount_refunded: self.amount_refunded,
            has_customer_email: self.customer.email.is_some(),
            reminded: false,
            offer_expires_at: self.offer_expires_at,
            coupon: self.coupon_code.clone().map(|code| workflow::CouponUse {
                code,
                held_until: self.coupon_held_until,
            }),
            lines: self
                .lines
                .iter()
                .map(|l| workflow::Line {
                    line_no: l.line_no,
                    status: l.delivery_status,
                    total: l.total,
                    refunded: l.refunded,
                })
                .collect(),
        })
    }
}

impl HasId for OrderRecord {
    fn id_str(&self) -> &str {
        &self.id
    }
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: String,
    number: i64,
    token: String,
    status: String,
    delivery_status: String,
    currency: String,
    subtotal: i64,
    discount: i64,
    tax: i64,
    total: i64,
    amount_refunded: i64,
    email: Option<String>,
    name: Option<String>,
    locale: String,
    payment_method: String,
    payment_reference: String,
    coupon_code: Option<String>,
    custom: Json<serde_json::Value>,
    test_mode: bool,
    return_url: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
    paid_at: Option<Timestamp>,
    offer_expires_at: Option<Timestamp>,
    coupon_held_until: Option<Timestamp>,
}

impl TryFrom<OrderRow> for OrderRecord {
    type Error = StoreError;
    fn try_from(r: OrderRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.id,
            number: r.number,
            token: r.token,
            status: named(&r.status)?,
            delivery_status: named(&r.delivery_status)?,
            currency: r.currency,
            subtotal: r.subtotal,
            discount: r.discount,
            tax: r.tax,
            total: r.total,
            amount_refunded: r.amount_refunded,
            customer: Customer {
                email: r.email,
                name: r.name,
            },
            lines: Vec::new(),
            payments: Vec::new(),
            refunds: Vec::new(),
            consents: Vec::new(),
            payment_method: named(&r.payment_method)?,
            payment_reference: r.payment_reference,
            coupon_code: r.coupon_code,
            custom: r.custom.0,
            test_mode: r.test_mode,
            livemode: !r.test_mode,
            locale: r.locale,
            return_url: r.return_url,
            created_at: rfc3339(r.created_at.millis()),
            updated_at: rfc3339(r.updated_at.millis()),
            paid_at: r.paid_at.map(|t| rfc3339(t.millis())),
            offer_expires_at: r.offer_expires_at.map(|t| t.0),
            coupon_held_until: r.coupon_held_until.map(|t| t.0),
        })
    }
}

const ORDER_COLUMNS: &str = "id, number, token, status, delivery_status, currency, subtotal, \
    discount, tax, total, amount_refunded, email, name, locale, payment_method, payment_reference, \
    coupon_code, custom, test_mode, return_url, created_at, updated_at, paid_at, offer_expires_at, \
    coupon_held_until";

impl Store {
    pub async fn order(&self, tenant: &TenantId, id: &str) -> Result<OrderRecord, StoreError> {
        let mut conn = self.begin_read().await?;
        let order = load_order(&mut conn, tenant, id).await?;
        conn.commit().await?;
        Ok(order)
    }

    /// Several orders of one store, read together: five queries however many (an
    /// email batch's orders). Orders not found are left out.
    pub async fn orders(
        &self,
        tenant: &TenantId,
        ids: &[&str],
    ) -> Result<Vec<OrderRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_read().await?;
        let list = placeholders(2, ids.len());
        let rows: Vec<OrderRow> = db_run!(&mut tx, c => {
            let mut query = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE tenant_id = $1 AND id IN ({list})"
            )))
            .bind(tenant.as_str());
            for id in ids {
                query = query.bind(*id);
            }
            query.fetch_all(c).await?
        });
        let orders = rows
            .into_iter()
            .map(OrderRecord::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let orders = with_children(&mut tx, tenant, orders).await?;
        tx.commit().await?;
        Ok(orders)
    }

    /// The order a customer's token opens.
    pub async fn order_by_token(
        &self,
        tenant: &TenantId,
        token: &str,
    ) -> Result<OrderRecord, StoreError> {
        let id: Option<String> = db_run!(self, c => sqlx::query_scalar("SELECT id FROM orders WHERE tenant_id = $1 AND token = $2")
                .bind(tenant.as_str())
                .bind(token)
                .fetch_optional(c).await?);
        self.order(tenant, &id.ok_or(StoreError::NotFound)?).await
    }
}

/// What an order list (the dashboard's, the API's) is narrowed to; every part is optional.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub delivery_status: Option<DeliveryStatus>,
    /// Part of the customer's email, any case.
    pub email: Option<String>,
    /// Created at or after.
    pub from: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
    /// Only test or only live orders.
    pub mode: Option<Mode>,
}

impl Store {
    /// Orders newest first, narrowed by `filter`.
    pub async fn search_orders(
        &self,
        tenant: &TenantId,
        filter: &OrderFilter,
        page: &PageRequest,
    ) -> Result<Page<OrderRecord>, StoreError> {
        let email = filter.email.as_deref().map(|e| {
            let escaped = e
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE tenant_id = $1 AND ($2 IS NULL OR id < $2)
             AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR delivery_status = $4)
             AND ($5 IS NULL OR LOWER(email) LIKE $5 ESCAPE '\\')
             AND ($6 IS NULL OR created_at >= $6) AND ($7 IS NULL OR created_at < $7)
             AND ($9 IS NULL OR test_mode = $9)
             ORDER BY id DESC LIMIT $8"
        );
        let rows: Vec<OrderRow> = db_run!(self, c => sqlx::query_as(AssertSqlSafe(sql.clone()))
            .bind(tenant.as_str())
            .bind(page.after.as_deref())
            .bind(filter.status.map(|s| s.as_str()))
            .bind(filter.delivery_status.map(|s| s.as_str()))
            .bind(email.as_deref())
            .bind(filter.from)
            .bind(filter.until)
            .bind(page.limit + 1)
            .bind(filter.mode.map(|m| !m.is_live()))
            .fetch_all(c).await?);
        let records = rows
            .into_iter()
            .map(OrderRecord::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let page = Page::from_rows(records, page.limit, |r| r.id_str().to_owned());
        let mut tx = self.begin_read().await?;
        let data = with_children(&mut tx, tenant, page.data).await?;
        tx.commit().await?;
        Ok(Page {
            data,
            next_cursor: page.next_cursor,
        })
    }
}

/// Reads an order with its lines, payments and consents.
pub(crate) async fn load_order(
    tx: &mut Tx,
    tenant: &TenantId,
    id: &str,
) -> Result<OrderRecord, StoreError> {
    let row: Option<OrderRow> = db_run!(tx, c => sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(c).await?);
    let order = OrderRecord::try_from(row.ok_or(StoreError::NotFound)?)?;
    with_children(tx, tenant, vec![order])
        .await?
        .pop()
        .ok_or(StoreError::NotFound)
}

/// The rows of `select` (`SELECT … FROM table`, with an `order_id` column) that
/// belong to `orders`, in one query, sorted by `order_by`.
async fn rows_of<R>(
    tx: &mut Tx,
    tenant: &TenantId,
    orders: &[OrderRecord],
    select: &str,
    order_by: &str,
) -> Result<Vec<R>, StoreError>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin,
{
    let ids = placeholders(2, orders.len());
    let sql = format!("{select} WHERE tenant_id = $1 AND order_id IN ({ids}) ORDER BY {order_by}");
    Ok(db_run!(tx, c => {
        let mut query = sqlx::query_as(AssertSqlSafe(sql));
        query = query.bind(tenant.as_str());
        for o in orders {
            query = query.bind(o.id.as_str());
        }
        query.fetch_all(c).await?
    }))
}

/// Reads the lines, payments, refunds and consents of `orders`: four queries, however
/// many orders there are.
async fn with_children(
    tx: &mut Tx,
    tenant: &TenantId,
    mut orders: Vec<OrderRecord>,
) -> Result<Vec<OrderRecord>, StoreError> {
    if orders.is_empty() {
        return Ok(orders);
    }
    let index: std::collections::HashMap<String, usize> = orders
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id.clone(), i))
        .collect();
    let at = |order_id: &str| {
        index
            .get(order_id)
            .copied()
            .ok_or_else(|| corrupt("a row of another order"))
    };
    #[derive(sqlx::FromRow)]
    struct LineRow {
        order_id: String,
        line_no: i64,
        product_id: String,
        name: String,
        quantity: i64,
        unit_amount: i64,
        subtotal: i64,
        discount: i64,
        total: i64,
        delivery_status: String,
        licenses: Json<Vec<String>>,
        delivery_error: Option<String>,
        refunded_at: Option<Timestamp>,
        revoked_at: Option<Timestamp>,
        lost_licenses: Option<Json<Vec<String>>>,
    }
    let lines: Vec<LineRow> = rows_of(
        tx,
        tenant,
        &orders,
        "SELECT order_id, line_no, product_id, name, quantity, unit_amount, subtotal, discount, \
         total, delivery_status, licenses, delivery_error, refunded_at, revoked_at, lost_licenses \
         FROM order_lines",
        "order_id, line_no",
    )
    .await?;
    for l in lines {
        let i = at(&l.order_id)?;
        orders[i].lines.push(OrderLineRecord {
            line_no: l.line_no,
            product_id: l.product_id,
            name: l.name,
            quantity: l.quantity,
            unit_amount: l.unit_amount,
            subtotal: l.subtotal,
            discount: l.discount,
            total: l.total,
            delivery_status: named(&l.delivery_status)?,
            revoked_licenses: match (l.revoked_at, l.lost_licenses) {
                (Some(_), _) => l.licenses.0.clone(),
                (None, Some(lost)) => lost.0,
                (None, None) => Vec::new(),
            },
            refunded: l.refunded_at.is_some(),
            licenses: l.licenses.0,
            delivery_error: l.delivery_error,
        });
    }
    #[derive(sqlx::FromRow)]
    struct PaymentRow {
        order_id: String,
        id: String,
        method: String,
        status: String,
        amount: i64,
        currency: String,
        failure_code: Option<String>,
        failure_message: Option<String>,
        card_brand: Option<String>,
        card_last4: Option<String>,
        reference: Option<String>,
        created_at: Timestamp,
    }
    let payments: Vec<PaymentRow> = rows_of(
        tx,
        tenant,
        &orders,
        "SELECT order_id, id, method, status, amount, currency, failure_code, failure_message, \
         card_brand, card_last4, reference, created_at FROM payments",
        "id",
    )
    .await?;
    for p in payments {
        let i = at(&p.order_id)?;
        orders[i].payments.push(PaymentRecord {
            id: p.id,
            method: named(&p.method)?,
            status: named(&p.status)?,
            amount: p.amount,
            currency: p.currency,
            failure_code: p.failure_code,
            failure_message: p.failure_message,
            card_brand: p.card_brand,
            card_last4: p.card_last4,
            reference: p.reference,
            created_at: rfc3339(p.created_at.millis()),
        });
    }
    let refunds: Vec<RefundRow> = rows_of(tx, tenant, &orders, REFUND_SELECT, "id").await?;
    for r in refunds {
        let i = at(&r.order_id)?;
        orders[i].refunds.push(RefundRecord::try_from(r)?);
    }
    #[derive(sqlx::FromRow)]
    struct ConsentRow {
        order_id: String,
        kind: String,
        text_version: String,
        accepted_at: Timestamp,
        ip: Option<String>,
        user_agent: Option<String>,
    }
    let consents: Vec<ConsentRow> = rows_of(
        tx,
        tenant,
        &orders,
        "SELECT order_id, kind, text_version, accepted_at, ip, user_agent FROM order_consents",
        "order_id, kind",
    )
    .await?;
    for c in consents {
        let i = at(&c.order_id)?;
        orders[i].consents.push(Consent {
            kind: c.kind,
            text_version: c.text_version,
            accepted_at: c.accepted_at.millis(),
            ip: c.ip,
            user_agent: c.user_agent,
        });
    }
    Ok(orders)
}
