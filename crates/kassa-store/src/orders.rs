//! Carts, orders, payment attempts and the events they emit. Every state change and
//! its event are written in one transaction.

use kassa_domain::catalog::Delivery;
use kassa_domain::ids::{CartId, OrderId, PaymentId, ProductId, TenantId};
use kassa_domain::order::{OrderStatus, PaymentMethod, Quote};
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;

use crate::catalog::{HasId, list_page};
use crate::emails::queue_email;
use crate::error::corrupt;
use crate::events::insert_event;
use crate::{Page, PageRequest, Store, StoreError, Timestamp, Tx, db_run};

/// One line of a cart, before prices are fixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub product_id: ProductId,
    pub quantity: i64,
    /// A unit price fixed by a signed link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_amount: Option<i64>,
    /// A fixed discount on the line from a signed link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<i64>,
}

/// A customer's cart in one store, kept across visits by a cookie.
#[derive(Debug, Clone, Default)]
pub struct CartRecord {
    pub id: Option<CartId>,
    pub token: String,
    pub lines: Vec<CartLine>,
    pub currency: Option<String>,
    pub coupon_code: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub locale: Option<String>,
    pub return_url: Option<String>,
    pub custom: serde_json::Map<String, serde_json::Value>,
    pub payment_method: Option<String>,
    /// Set once Continue created the order; the cart is then spent.
    pub order_id: Option<OrderId>,
}

#[derive(sqlx::FromRow)]
struct CartRow {
    id: String,
    token: String,
    lines: Json<Vec<CartLine>>,
    currency: Option<String>,
    coupon_code: Option<String>,
    email: Option<String>,
    name: Option<String>,
    locale: Option<String>,
    return_url: Option<String>,
    custom: Json<serde_json::Map<String, serde_json::Value>>,
    payment_method: Option<String>,
    order_id: Option<String>,
}

impl TryFrom<CartRow> for CartRecord {
    type Error = StoreError;
    fn try_from(r: CartRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: Some(CartId::parse(&r.id).map_err(corrupt)?),
            token: r.token,
            lines: r.lines.0,
            currency: r.currency,
            coupon_code: r.coupon_code,
            email: r.email,
            name: r.name,
            locale: r.locale,
            return_url: r.return_url,
            custom: r.custom.0,
            payment_method: r.payment_method,
            order_id: r
                .order_id
                .map(|o| OrderId::parse(&o))
                .transpose()
                .map_err(corrupt)?,
        })
    }
}

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

/// Everything Continue (or `POST /orders`) needs to create an order.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub quote: Quote,
    pub email: String,
    pub name: Option<String>,
    pub locale: String,
    pub payment_method: PaymentMethod,
    pub custom: serde_json::Map<String, serde_json::Value>,
    pub return_url: Option<String>,
    pub consents: Vec<Consent>,
    /// The cart this order is made from; an order is made from a cart only once.
    pub cart_id: Option<CartId>,
    /// The coupon to redeem, if one took something off.
    pub coupon_code: Option<String>,
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
    pub delivery_status: String,
    pub licenses: Vec<String>,
    /// Why the last delivery attempt did not work, while it is not delivered.
    pub delivery_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PaymentRecord {
    pub id: String,
    pub method: String,
    pub status: String,
    pub amount: i64,
    pub currency: String,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub reference: Option<String>,
    pub created_at: String,
}

/// An order as merchants see it in the API and in webhook payloads.
#[derive(Debug, Clone, Serialize)]
pub struct OrderRecord {
    pub id: String,
    pub number: i64,
    pub status: String,
    pub delivery_status: String,
    pub currency: String,
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
    pub total: i64,
    pub customer: Customer,
    pub lines: Vec<OrderLineRecord>,
    pub payments: Vec<PaymentRecord>,
    pub consents: Vec<Consent>,
    pub payment_method: String,
    pub payment_reference: String,
    pub coupon_code: Option<String>,
    pub custom: serde_json::Value,
    pub test_mode: bool,
    pub locale: String,
    pub return_url: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub paid_at: Option<String>,
    /// The capability for the customer's pages; not part of the merchant's view.
    #[serde(skip)]
    pub token: String,
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
}

fn serialize_millis<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

pub(crate) fn rfc3339(ms: i64) -> String {
    Timestamp::from(ms)
        .0
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl TryFrom<OrderRow> for OrderRecord {
    type Error = StoreError;
    fn try_from(r: OrderRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.id,
            number: r.number,
            token: r.token,
            status: r.status,
            delivery_status: r.delivery_status,
            currency: r.currency,
            subtotal: r.subtotal,
            discount: r.discount,
            tax: r.tax,
            total: r.total,
            customer: Customer {
                email: r.email,
                name: r.name,
            },
            lines: Vec::new(),
            payments: Vec::new(),
            consents: Vec::new(),
            payment_method: r.payment_method,
            payment_reference: r.payment_reference,
            coupon_code: r.coupon_code,
            custom: r.custom.0,
            test_mode: r.test_mode,
            locale: r.locale,
            return_url: r.return_url,
            created_at: rfc3339(r.created_at.millis()),
            updated_at: rfc3339(r.updated_at.millis()),
            paid_at: r.paid_at.map(|t| rfc3339(t.millis())),
        })
    }
}

const ORDER_COLUMNS: &str = "id, number, token, status, delivery_status, currency, subtotal, \
    discount, tax, total, email, name, locale, payment_method, payment_reference, coupon_code, \
    custom, test_mode, return_url, created_at, updated_at, paid_at";

/// What happened to a payment attempt, for `record_payment`.
#[derive(Debug, Clone)]
pub struct PaymentAttempt {
    pub method: PaymentMethod,
    pub succeeded: bool,
    pub amount: i64,
    pub currency: String,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub reference: Option<String>,
    /// Paid with the sandbox gateway.
    pub test_mode: bool,
}

impl Store {
    pub async fn cart_by_token(
        &self,
        tenant: &TenantId,
        token: &str,
    ) -> Result<CartRecord, StoreError> {
        let row: Option<CartRow> = db_run!(self, c => sqlx::query_as(
            "SELECT id, token, lines, currency, coupon_code, email, name, locale,
             return_url, custom, payment_method, order_id FROM carts WHERE tenant_id = $1 AND token = $2",
        )
        .bind(tenant.as_str())
        .bind(token)
        .fetch_optional(c).await?);
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Inserts a new cart or saves an existing one.
    pub async fn save_cart(
        &self,
        tenant: &TenantId,
        cart: &CartRecord,
    ) -> Result<CartRecord, StoreError> {
        let now = Timestamp::now().millis();
        let lines = Json(&cart.lines);
        let custom = Json(&cart.custom);
        let id = cart.id.clone().unwrap_or_else(CartId::generate);
        // A cart that became an order is not changed any more.
        db_run!(self, c => sqlx::query(
            "INSERT INTO carts (tenant_id, id, token, lines, currency, coupon_code, email,
             name, locale, return_url, custom, payment_method, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
             ON CONFLICT (tenant_id, id) DO UPDATE SET lines = excluded.lines,
             currency = excluded.currency, coupon_code = excluded.coupon_code, email = excluded.email,
             name = excluded.name, locale = excluded.locale, return_url = excluded.return_url,
             custom = excluded.custom, payment_method = excluded.payment_method,
             updated_at = excluded.updated_at
             WHERE carts.order_id IS NULL",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(&cart.token)
        .bind(lines)
        .bind(cart.currency.as_deref())
        .bind(cart.coupon_code.as_deref())
        .bind(cart.email.as_deref())
        .bind(cart.name.as_deref())
        .bind(cart.locale.as_deref())
        .bind(cart.return_url.as_deref())
        .bind(custom)
        .bind(cart.payment_method.as_deref())
        .bind(Timestamp::from(now))
        .execute(c).await?.rows_affected());
        let mut saved = cart.clone();
        saved.id = Some(id);
        Ok(saved)
    }

    /// Creates an order with its lines, consents and `order.created` event in one
    /// transaction. When the cart already became an order (a double submit, a
    /// refresh), that order is returned and nothing new is written. A coupon that ran
    /// out meanwhile is a `Conflict`.
    pub async fn create_order(
        &self,
        tenant: &TenantId,
        new: &NewOrder,
        test_mode: bool,
    ) -> Result<OrderRecord, StoreError> {
        let id = OrderId::generate();
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        if let Some(cart) = &new.cart_id {
            let claimed = db_run!(&mut tx, c => sqlx::query(
                "UPDATE carts SET order_id = $3 WHERE tenant_id = $1 AND id = $2 AND order_id IS NULL",
            )
            .bind(tenant.as_str())
            .bind(cart.as_str())
            .bind(id.as_str())
            .execute(c).await?.rows_affected());
            if claimed == 0 {
                let existing: Option<Option<String>> = db_run!(&mut tx, c => sqlx::query_scalar(
                    "SELECT order_id FROM carts WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.as_str())
                .bind(cart.as_str())
                .fetch_optional(c).await?);
                drop(tx);
                let order = existing.flatten().ok_or(StoreError::NotFound)?;
                return self.order(tenant, &order).await;
            }
        }
        if let Some(code) = &new.coupon_code {
            let redeemed = db_run!(&mut tx, c => sqlx::query(
                "UPDATE coupons SET times_redeemed = times_redeemed + 1
                 WHERE tenant_id = $1 AND code = $2 AND active = TRUE
                 AND (max_redemptions IS NULL OR times_redeemed < max_redemptions)
                 AND (expires_at IS NULL OR expires_at > $3)",
            )
            .bind(tenant.as_str())
            .bind(code)
            .bind(Timestamp::from(now))
            .execute(c).await?.rows_affected());
            if redeemed == 0 {
                return Err(StoreError::Conflict(
                    "the coupon can no longer be used".into(),
                ));
            }
        }
        let number: i64 = db_run!(&mut tx, c => sqlx::query_scalar(
            "UPDATE tenants SET order_seq = order_seq + 1 WHERE id = $1 RETURNING order_seq",
        )
        .bind(tenant.as_str())
        .fetch_one(c).await?);
        let q = &new.quote;
        db_run!(&mut tx, c => sqlx::query(
            "INSERT INTO orders (tenant_id, id, number, token, status, delivery_status, currency, subtotal,
             discount, tax, total, email, name, locale, payment_method, payment_reference, coupon_code,
             custom, test_mode, return_url, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'not_paid', 'not_delivered', $5, $6, $7, $8, $9, $10, $11, $12, $13,
             $14, $15, $16, $17, $18, $19, $19)",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(number)
        .bind(kassa_domain::order::order_token())
        .bind(q.currency.code())
        .bind(q.subtotal)
        .bind(q.discount)
        .bind(q.tax)
        .bind(q.total)
        .bind(&new.email)
        .bind(new.name.as_deref())
        .bind(&new.locale)
        .bind(new.payment_method.as_str())
        .bind(kassa_domain::order::payment_reference())
        .bind(q.coupon_code.as_deref())
        .bind(Json(&new.custom))
        .bind(test_mode)
        .bind(new.return_url.as_deref())
        .bind(Timestamp::from(now))
        .execute(c).await?.rows_affected());
        for (i, line) in q.lines.iter().enumerate() {
            // The line keeps the delivery method it was sold with.
            let delivery: Json<serde_json::Value> = db_run!(&mut tx, c => sqlx::query_scalar(
                "SELECT delivery FROM products WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(line.product_id.as_str())
            .fetch_optional(c).await?)
            .ok_or(StoreError::NotFound)?;
            let pool_id =
                match serde_json::from_value::<Delivery>(delivery.0.clone()).map_err(corrupt)? {
                    Delivery::LicensePool { pool_id, .. } => Some(pool_id.to_string()),
                    _ => None,
                };
            db_run!(&mut tx, c => sqlx::query(
                "INSERT INTO order_lines (tenant_id, order_id, line_no, product_id, name, quantity,
                 unit_amount, subtotal, discount, total, delivery_status, licenses, delivery, pool_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', '[]', $11, $12)",
            )
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(i64::try_from(i).unwrap_or(i64::MAX) + 1)
            .bind(line.product_id.as_str())
            .bind(&line.name)
            .bind(line.quantity)
            .bind(line.unit_amount)
            .bind(line.subtotal)
            .bind(line.discount)
            .bind(line.total)
            .bind(&delivery)
            .bind(pool_id)
            .execute(c).await?.rows_affected());
        }
        for c in &new.consents {
            db_run!(&mut tx, conn => sqlx::query(
                "INSERT INTO order_consents (tenant_id, order_id, kind, text_version, accepted_at, ip, user_agent)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(&c.kind)
            .bind(&c.text_version)
            .bind(Timestamp::from(c.accepted_at))
            .bind(c.ip.as_deref())
            .bind(c.user_agent.as_deref())
            .execute(conn).await?.rows_affected());
        }
        let order = load_order(&mut tx, tenant, id.as_str()).await?;
        insert_event(
            &mut tx,
            tenant,
            "order.created",
            Some(id.as_str()),
            serde_json::json!({ "order": order }),
        )
        .await?;
        if new.payment_method == PaymentMethod::BankTransfer {
            queue_instructions(&mut tx, tenant, &order).await?;
        }
        tx.commit().await?;
        Ok(order)
    }

    pub async fn order(&self, tenant: &TenantId, id: &str) -> Result<OrderRecord, StoreError> {
        let mut conn = self.begin_read().await?;
        let order = load_order(&mut conn, tenant, id).await?;
        conn.commit().await?;
        Ok(order)
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

    /// Orders newest first, optionally only those with `status`.
    pub async fn list_orders(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<OrderRecord>, StoreError> {
        let page =
            list_page::<OrderRow, OrderRecord>(self, ORDER_COLUMNS, "orders", tenant, page).await?;
        let mut data = Vec::with_capacity(page.data.len());
        for o in page.data {
            data.push(self.order(tenant, &o.id).await?);
        }
        Ok(Page {
            data,
            next_cursor: page.next_cursor,
        })
    }

    /// Changes an unpaid order's payment method; a paid order keeps its own. Choosing
    /// bank transfer queues the payment instructions email (once per order).
    pub async fn set_payment_method(
        &self,
        tenant: &TenantId,
        order: &str,
        method: PaymentMethod,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = db_run!(&mut tx, c => sqlx::query(
            "UPDATE orders SET payment_method = $3, updated_at = $4
             WHERE tenant_id = $1 AND id = $2 AND status = 'not_paid'",
        )
        .bind(tenant.as_str())
        .bind(order)
        .bind(method.as_str())
        .bind(Timestamp::now())
        .execute(c).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::Conflict(
                "the order is no longer waiting for payment".into(),
            ));
        }
        if method == PaymentMethod::BankTransfer {
            let record = load_order(&mut tx, tenant, order).await?;
            queue_instructions(&mut tx, tenant, &record).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a payment attempt. A success marks the order paid and emits
    /// `payment.succeeded`; a failure emits `payment.failed`. Both in one transaction.
    /// Paying an order that is not waiting for payment is a `Conflict` and records
    /// nothing.
    pub async fn record_payment(
        &self,
        tenant: &TenantId,
        order: &str,
        attempt: &PaymentAttempt,
    ) -> Result<(OrderRecord, PaymentRecord), StoreError> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        let status: Option<String> = db_run!(&mut tx, c => sqlx::query_scalar("SELECT status FROM orders WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(order)
                .fetch_optional(c).await?);
        let status = OrderStatus::parse(&status.ok_or(StoreError::NotFound)?)
            .ok_or_else(|| corrupt("order status"))?;
        if !status.can_become(OrderStatus::Paid) {
            return Err(StoreError::Conflict(format!(
                "the order is {} and cannot be paid",
                status.as_str()
            )));
        }
        let id = PaymentId::generate();
        db_run!(&mut tx, c => sqlx::query(
            "INSERT INTO payments (tenant_id, id, order_id, method, status, amount, currency, failure_code,
             failure_message, card_brand, card_last4, reference, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(order)
        .bind(attempt.method.as_str())
        .bind(if attempt.succeeded { "succeeded" } else { "failed" })
        .bind(attempt.amount)
        .bind(&attempt.currency)
        .bind(attempt.failure_code.as_deref())
        .bind(attempt.failure_message.as_deref())
        .bind(attempt.card_brand.as_deref())
        .bind(attempt.card_last4.as_deref())
        .bind(attempt.reference.as_deref())
        .bind(Timestamp::from(now))
        .execute(c).await?.rows_affected());
        if attempt.succeeded {
            db_run!(&mut tx, c => sqlx::query(
                "UPDATE orders SET status = 'paid', paid_at = $3, updated_at = $3, payment_method = $4,
                 test_mode = $5 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(order)
            .bind(Timestamp::from(now))
            .bind(attempt.method.as_str())
            .bind(attempt.test_mode)
            .execute(c).await?.rows_affected());
            // Paid: every line is now due for delivery.
            let due = db_run!(&mut tx, c => sqlx::query_as(
                "UPDATE order_lines SET next_delivery_at = $3 WHERE tenant_id = $1 AND order_id = $2
                 AND delivery_status = 'pending' RETURNING tenant_id, order_id, line_no",
            )
            .bind(tenant.as_str())
            .bind(order)
            .bind(Timestamp::from(now))
            .fetch_all(c).await?);
            crate::fulfillment::wake_lines(&mut tx, due, now).await?;
        }
        let record = load_order(&mut tx, tenant, order).await?;
        let payment = record
            .payments
            .iter()
            .find(|p| p.id == id.as_str())
            .cloned()
            .ok_or_else(|| corrupt("payment just written"))?;
        let kind = if attempt.succeeded {
            "payment.succeeded"
        } else {
            "payment.failed"
        };
        insert_event(
            &mut tx,
            tenant,
            kind,
            Some(order),
            serde_json::json!({ "order": record, "payment": payment }),
        )
        .await?;
        if let Some(to) = &record.customer.email {
            let (email, key) = if attempt.succeeded {
                ("payment_succeeded", format!("receipt:{order}"))
            } else {
                ("payment_failed", format!("failed:{}", payment.id))
            };
            queue_email(
                &mut tx,
                tenant,
                email,
                Some(order),
                &key,
                to,
                &record.locale,
            )
            .await?;
        }
        tx.commit().await?;
        Ok((record, payment))
    }

    /// The secret a store signs its buy links with; made on first use.
    pub async fn link_secret(&self, tenant: &TenantId) -> Result<String, StoreError> {
        let fresh = kassa_domain::signed_link::generate_secret();
        self.tenant_secret(tenant, "link_secret", &fresh).await
    }

    /// The `whsec_` secret a store's license web service requests are signed with;
    /// made on first use.
    pub async fn service_secret(&self, tenant: &TenantId) -> Result<String, StoreError> {
        let fresh = kassa_domain::webhook::generate_secret();
        self.tenant_secret(tenant, "service_secret", &fresh).await
    }

    /// A store's secret in `column`, set to `fresh` if it has none yet (in one UPDATE,
    /// so concurrent first uses agree on one secret).
    async fn tenant_secret(
        &self,
        tenant: &TenantId,
        column: &'static str,
        fresh: &str,
    ) -> Result<String, StoreError> {
        db_run!(self, c => sqlx::query(AssertSqlSafe(format!(
            "UPDATE tenants SET {column} = $2 WHERE id = $1 AND {column} = ''"
        )))
        .bind(tenant.as_str())
        .bind(fresh)
        .execute(c).await?.rows_affected());
        db_run!(self, c => sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT {column} FROM tenants WHERE id = $1"
        )))
        .bind(tenant.as_str())
        .fetch_optional(c).await?)
        .ok_or(StoreError::NotFound)
    }

    /// Replaces a store's settings (branding, legal links, bank details, methods).
    pub async fn update_tenant_settings(
        &self,
        tenant: &TenantId,
        settings: &kassa_domain::tenant::TenantSettings,
    ) -> Result<(), StoreError> {
        db_run!(self, c => sqlx::query("UPDATE tenants SET settings = $2 WHERE id = $1")
            .bind(tenant.as_str())
            .bind(Json(settings))
            .execute(c).await?.rows_affected());
        Ok(())
    }
}

/// Queues the bank transfer instructions for an order, once.
async fn queue_instructions(
    tx: &mut Tx,
    tenant: &TenantId,
    order: &OrderRecord,
) -> Result<(), StoreError> {
    match &order.customer.email {
        Some(to) => {
            queue_email(
                tx,
                tenant,
                "payment_instructions",
                Some(&order.id),
                &format!("instructions:{}", order.id),
                to,
                &order.locale,
            )
            .await
        }
        None => Ok(()),
    }
}

/// Reads an order with its lines, payments and consents.
pub(crate) async fn load_order(
    conn: &mut Tx,
    tenant: &TenantId,
    id: &str,
) -> Result<OrderRecord, StoreError> {
    let row: Option<OrderRow> = db_run!(conn, c => sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(c).await?);
    let mut order = OrderRecord::try_from(row.ok_or(StoreError::NotFound)?)?;
    #[derive(sqlx::FromRow)]
    struct LineRow {
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
    }
    let lines: Vec<LineRow> = db_run!(conn, c => sqlx::query_as(
        "SELECT line_no, product_id, name, quantity, unit_amount, subtotal, discount, total,
         delivery_status, licenses, delivery_error FROM order_lines WHERE tenant_id = $1 AND order_id = $2 ORDER BY line_no",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_all(c).await?);
    for l in lines {
        order.lines.push(OrderLineRecord {
            line_no: l.line_no,
            product_id: l.product_id,
            name: l.name,
            quantity: l.quantity,
            unit_amount: l.unit_amount,
            subtotal: l.subtotal,
            discount: l.discount,
            total: l.total,
            delivery_status: l.delivery_status,
            licenses: l.licenses.0,
            delivery_error: l.delivery_error,
        });
    }
    #[derive(sqlx::FromRow)]
    struct PaymentRow {
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
    let payments: Vec<PaymentRow> = db_run!(conn, c => sqlx::query_as(
        "SELECT id, method, status, amount, currency, failure_code, failure_message, card_brand,
         card_last4, reference, created_at FROM payments WHERE tenant_id = $1 AND order_id = $2 ORDER BY id",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_all(c).await?);
    order.payments = payments
        .into_iter()
        .map(|p| PaymentRecord {
            id: p.id,
            method: p.method,
            status: p.status,
            amount: p.amount,
            currency: p.currency,
            failure_code: p.failure_code,
            failure_message: p.failure_message,
            card_brand: p.card_brand,
            card_last4: p.card_last4,
            reference: p.reference,
            created_at: rfc3339(p.created_at.millis()),
        })
        .collect();
    #[derive(sqlx::FromRow)]
    struct ConsentRow {
        kind: String,
        text_version: String,
        accepted_at: Timestamp,
        ip: Option<String>,
        user_agent: Option<String>,
    }
    let consents: Vec<ConsentRow> = db_run!(conn, c => sqlx::query_as(
        "SELECT kind, text_version, accepted_at, ip, user_agent FROM order_consents
         WHERE tenant_id = $1 AND order_id = $2 ORDER BY kind",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_all(c).await?);
    order.consents = consents
        .into_iter()
        .map(|c| Consent {
            kind: c.kind,
            text_version: c.text_version,
            accepted_at: c.accepted_at.millis(),
            ip: c.ip,
            user_agent: c.user_agent,
        })
        .collect();
    Ok(order)
}
