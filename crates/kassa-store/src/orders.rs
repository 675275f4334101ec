//! Carts, orders, payment attempts and the events they emit. Every state change and
//! its event are written in one transaction.

use chrono::{DateTime, Utc};
use kassa_domain::catalog::Delivery;
use kassa_domain::email::Recipient;
use kassa_domain::ids::{CartId, OrderId, ProductId, TenantId};
use kassa_domain::mode::Mode;
use kassa_domain::offer::Offer;
use kassa_domain::order::{
    DeliveryStatus, LineStatus, OrderStatus, PaymentMethod, PaymentStatus, Quote,
};
use kassa_domain::workflow::{CouponHold, Followups, PaymentFacts, Redemption};
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;

use crate::db::{Backend, db_run, values_rows};
use crate::emails::{EMAIL_ARGS, bind_email, email_sql};
use crate::error::StoreError;
use crate::error::corrupt;
use crate::events::{EVENT_ARGS, NewEvent, bind_event, event_sql};
use crate::queues::{self, Queue};
use crate::sealed::Place;
use crate::store::Store;
use crate::tenants::order_numbers;
use crate::time::{Timestamp, rfc3339};
use crate::view::{Consent, Customer, OrderLineRecord, OrderRecord};
use crate::work::{Work, customer_email, order_event_data};

/// The statement writing a cart (parameters bound by [`bind_cart!`]), with
/// `on_conflict` deciding what an existing row (its id's or its token's) gets.
fn cart_sql(on_conflict: &str) -> String {
    format!(
        "INSERT INTO carts (tenant_id, id, token, lines, currency, coupon_code, email,
         name, locale, return_url, custom, payment_method, created_at, updated_at, livemode,
         order_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15)
         {on_conflict}"
    )
}

/// Binds a cart of `tenant` with the id `id`, written at `now` and spent by the order
/// `order` (or not), in [`cart_sql`]'s order.
macro_rules! bind_cart {
    ($query:expr, $tenant:expr, $id:expr, $cart:expr, $now:expr, $order:expr) => {
        $query
            .bind($tenant.as_str())
            .bind($id.as_str())
            .bind(&$cart.token)
            .bind(Json(&$cart.lines))
            .bind($cart.currency.as_deref())
            .bind($cart.coupon_code.as_deref())
            .bind($cart.email.as_deref())
            .bind($cart.name.as_deref())
            .bind($cart.locale.as_deref())
            .bind($cart.return_url.as_deref())
            .bind(Json(&$cart.custom))
            .bind($cart.payment_method.as_deref())
            .bind($now)
            .bind($cart.mode.is_live())
            .bind($order)
    };
}

/// One line of a cart, before prices are fixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub product_id: ProductId,
    pub quantity: i64,
    /// The terms of the signed link the line came from, checked whenever the line is
    /// priced. (Lines saved in the first format carried `unit_amount` and `discount`
    /// instead; those are no longer read, so such a line costs the catalog price.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<Offer>,
}

/// A customer's cart in one store, kept across visits by a cookie.
#[derive(Debug, Clone, Default)]
pub struct CartRecord {
    pub id: Option<CartId>,
    pub token: String,
    /// The world it was filled in (its checkout's): it is no cart in the other one.
    pub mode: Mode,
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
    livemode: bool,
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
            mode: Mode::from_livemode(r.livemode),
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

/// Everything Continue (or `POST /orders`) needs to create an order.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// The order's id, made by the caller (what follows the placement names it).
    pub id: OrderId,
    pub quote: Quote,
    pub email: String,
    pub name: Option<String>,
    pub locale: String,
    pub payment_method: PaymentMethod,
    pub custom: serde_json::Map<String, serde_json::Value>,
    pub return_url: Option<String>,
    pub consents: Vec<Consent>,
    /// The cart this order is made from; an order is made from a cart only once.
    pub cart: Option<FromCart>,
    /// The coupon to redeem, if one took something off.
    pub coupon_code: Option<String>,
    /// How long the unpaid order holds the use of its coupon.
    pub coupon_hold: chrono::TimeDelta,
    /// Placed to be paid in the sandbox.
    pub test_mode: bool,
    /// When the earliest signed offer of its lines stops holding.
    pub offer_expires_at: Option<DateTime<Utc>>,
    /// The delivery method of each product, as read when the lines were priced: each
    /// line keeps the one it was sold with. A product missing here is read in the
    /// placing transaction.
    pub deliveries: Vec<(ProductId, Delivery)>,
}

/// The cart an order is made from.
#[derive(Debug, Clone)]
pub enum FromCart {
    /// A saved cart: the placement spends it, unless an order spent it before.
    Saved(CartId),
    /// A cart not saved yet (a buy link's page whose first action is Continue): the
    /// placing transaction writes it, spent, in one statement. Its token may name a
    /// cart already: spent by an order (another submit of the page), the placement
    /// gives that order; not spent, or another world's or store's, nothing is written
    /// and the placement is `NotFound` (the caller saves the cart as any other action
    /// does, and places it from there).
    New(Box<CartRecord>),
}

/// A payment attempt to record.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub facts: PaymentFacts,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub reference: Option<String>,
}

/// Where placing an order from a cart ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// A new order, written with its lines and consents.
    New(OrderId),
    /// The cart became this order before (a double submit, a refresh): nothing written.
    Existing(String),
}

impl Store {
    /// The cart of `mode` a cart cookie names: another world's cart (its token put in
    /// this world's cookie) is not found.
    pub async fn cart_by_token(
        &self,
        tenant: &TenantId,
        mode: Mode,
        token: &str,
    ) -> Result<CartRecord, StoreError> {
        let row: Option<CartRow> = db_run!(self, c => sqlx::query_as(
            "SELECT id, token, livemode, lines, currency, coupon_code, email, name, locale,
             return_url, custom, payment_method, order_id FROM carts
             WHERE tenant_id = $1 AND token = $2 AND livemode = $3",
        )
        .bind(tenant.as_str())
        .bind(token)
        .bind(mode.is_live())
        .fetch_optional(c).await?);
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Inserts a new cart or saves an existing one (of its own mode only).
    pub async fn save_cart(
        &self,
        tenant: &TenantId,
        cart: &CartRecord,
    ) -> Result<CartRecord, StoreError> {
        // A cart that became an order is not changed any more.
        self.write_cart(
            tenant,
            cart,
            "ON CONFLICT (tenant_id, id) DO UPDATE SET lines = excluded.lines,
             currency = excluded.currency, coupon_code = excluded.coupon_code, email = excluded.email,
             name = excluded.name, locale = excluded.locale, return_url = excluded.return_url,
             custom = excluded.custom, payment_method = excluded.payment_method,
             updated_at = excluded.updated_at
             WHERE carts.order_id IS NULL AND carts.livemode = excluded.livemode",
        )
        .await
        .map(|(saved, _)| saved)
    }

    /// The cart with `cart`'s token: inserted now unless it exists (two submits of
    /// one page racing to make it), in which case the stored one. True when `cart` was
    /// inserted now (then the cart given, with its new id, without reading it back).
    /// `NotFound` when the token is another world's (or store's) cart: the caller
    /// gives the cart a new token.
    pub async fn insert_cart_if_new(
        &self,
        tenant: &TenantId,
        cart: &CartRecord,
    ) -> Result<(CartRecord, bool), StoreError> {
        let (saved, inserted) = self
            .write_cart(tenant, cart, "ON CONFLICT DO NOTHING")
            .await?;
        if inserted {
            return Ok((saved, true));
        }
        Ok((
            self.cart_by_token(tenant, cart.mode, &cart.token).await?,
            false,
        ))
    }

    /// Inserts `cart`, with `on_conflict` deciding what an existing row gets.
    async fn write_cart(
        &self,
        tenant: &TenantId,
        cart: &CartRecord,
        on_conflict: &'static str,
    ) -> Result<(CartRecord, bool), StoreError> {
        let now = Timestamp::now();
        let id = cart.id.clone().unwrap_or_else(CartId::generate);
        let sql = cart_sql(on_conflict);
        let written = db_run!(self.writer(), c =>
            bind_cart!(sqlx::query(AssertSqlSafe(sql.as_str())), tenant, id, cart, now, None::<&str>)
                .execute(c).await?.rows_affected());
        let mut saved = cart.clone();
        saved.id = Some(id);
        Ok((saved, written == 1))
    }

    /// The secret a store signs its buy links with; made on first use.
    pub async fn link_secret(&self, tenant: &TenantId) -> Result<kassa_domain::Secret, StoreError> {
        self.tenant_secret(
            tenant,
            "link_secret",
            kassa_domain::signed_link::generate_secret,
        )
        .await
    }

    /// The `whsec_` secret a store's license web service requests are signed with;
    /// made on first use.
    pub async fn service_secret(
        &self,
        tenant: &TenantId,
    ) -> Result<kassa_domain::Secret, StoreError> {
        self.tenant_secret(
            tenant,
            "service_secret",
            kassa_domain::webhook::generate_secret,
        )
        .await
    }

    /// The secrets a signed buy link may be signed with now: the current one, and the
    /// one it replaced while its overlap lasts.
    pub async fn link_secrets(&self, tenant: &TenantId) -> Result<RotatingSecret, StoreError> {
        self.secrets_now(tenant, StoreSecret::Link).await
    }

    /// The secrets web-service requests are signed with now (each request carries one
    /// signature per secret).
    pub async fn service_secrets(&self, tenant: &TenantId) -> Result<RotatingSecret, StoreError> {
        self.secrets_now(tenant, StoreSecret::Service).await
    }

    /// The secrets of `which` that count now, in one read (every checkout with a buy
    /// link asks); a store whose secret was never used gets one first.
    async fn secrets_now(
        &self,
        tenant: &TenantId,
        which: StoreSecret,
    ) -> Result<RotatingSecret, StoreError> {
        let column = which.column();
        let (current, previous, until): (String, Option<String>, Option<Timestamp>) =
            db_run!(self, c => sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {column}, previous_{column}, previous_{column}_until FROM tenants WHERE id = $1"
        )))
        .bind(tenant.as_str())
        .fetch_optional(c).await?)
            .ok_or(StoreError::NotFound)?;
        if current.is_empty() {
            let current = match which {
                StoreSecret::Link => self.link_secret(tenant).await?,
                StoreSecret::Service => self.service_secret(tenant).await?,
            };
            return self.rotating(tenant, which, current).await;
        }
        let place = Place::tenant(tenant.as_str(), column);
        Ok(RotatingSecret {
            current: self.open(&place, &current)?,
            previous: self.still_valid(&place, previous, until)?,
        })
    }

    /// Replaces a store's secret with `fresh`; the one it replaces stays valid until
    /// `until` (now, for none).
    pub async fn rotate_store_secret(
        &self,
        tenant: &TenantId,
        which: StoreSecret,
        fresh: &kassa_domain::Secret,
        until: Timestamp,
    ) -> Result<RotatingSecret, StoreError> {
        // A secret never used yet is made first, so the rotation replaces a real one.
        match which {
            StoreSecret::Link => self.link_secret(tenant).await?,
            StoreSecret::Service => self.service_secret(tenant).await?,
        };
        let column = which.column();
        // The replaced value moves over sealed as it is: both share one place.
        let sealed = self.seal(
            &Place::tenant(tenant.as_str(), column),
            fresh.expose_secret(),
        )?;
        db_run!(self.writer(), c => sqlx::query(AssertSqlSafe(format!(
            "UPDATE tenants SET previous_{column} = {column}, previous_{column}_until = $3,
             {column} = $2 WHERE id = $1"
        )))
        .bind(tenant.as_str())
        .bind(sealed)
        .bind(until)
        .execute(c).await?.rows_affected());
        self.rotating(tenant, which, fresh.clone()).await
    }

    async fn rotating(
        &self,
        tenant: &TenantId,
        which: StoreSecret,
        current: kassa_domain::Secret,
    ) -> Result<RotatingSecret, StoreError> {
        let column = which.column();
        let (previous, until): (Option<String>, Option<Timestamp>) =
            db_run!(self, c => sqlx::query_as(AssertSqlSafe(format!(
            "SELECT previous_{column}, previous_{column}_until FROM tenants WHERE id = $1"
        )))
        .bind(tenant.as_str())
        .fetch_optional(c).await?)
            .ok_or(StoreError::NotFound)?;
        Ok(RotatingSecret {
            current,
            previous: self.still_valid(&Place::tenant(tenant.as_str(), column), previous, until)?,
        })
    }

    /// A replaced secret, opened, while its overlap lasts.
    fn still_valid(
        &self,
        place: &Place,
        previous: Option<String>,
        until: Option<Timestamp>,
    ) -> Result<Option<(kassa_domain::Secret, Timestamp)>, StoreError> {
        Ok(match (previous, until) {
            (Some(sealed), Some(until)) if until.millis() > Timestamp::now().millis() => {
                Some((self.open(place, &sealed)?, until))
            }
            _ => None,
        })
    }

    /// A store's secret in `column`, read; on first use set to a `fresh` one (in one
    /// UPDATE that only sets it if still unset, so concurrent first uses agree on one
    /// secret). Reading it, as every checkout does, writes nothing.
    async fn tenant_secret(
        &self,
        tenant: &TenantId,
        column: &'static str,
        fresh: fn() -> kassa_domain::Secret,
    ) -> Result<kassa_domain::Secret, StoreError> {
        let place = Place::tenant(tenant.as_str(), column);
        let read = || async {
            db_run!(self, c => sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT {column} FROM tenants WHERE id = $1"
            )))
            .bind(tenant.as_str())
            .fetch_optional(c).await?)
            .ok_or(StoreError::NotFound)
        };
        let mut stored: String = read().await?;
        if stored.is_empty() {
            db_run!(self.writer(), c => sqlx::query(AssertSqlSafe(format!(
                "UPDATE tenants SET {column} = $2 WHERE id = $1 AND {column} = ''"
            )))
            .bind(tenant.as_str())
            .bind(self.seal(&place, fresh().expose_secret())?)
            .execute(c).await?.rows_affected());
            stored = read().await?;
        }
        self.open(&place, &stored)
    }

    /// Replaces a store's settings (branding, legal links, bank details, methods).
    pub async fn update_tenant_settings(
        &self,
        tenant: &TenantId,
        settings: &kassa_domain::tenant::TenantSettings,
    ) -> Result<(), StoreError> {
        db_run!(self.writer(), c => sqlx::query("UPDATE tenants SET settings = $2 WHERE id = $1")
            .bind(tenant.as_str())
            .bind(Json(settings))
            .execute(c).await?.rows_affected());
        self.state.recent.forget();
        Ok(())
    }
}

impl Work {
    /// Writes a new order (`not_paid`, `not_delivered`) with its lines and consents,
    /// spending its cart and redeeming its coupon, and what follows its placement
    /// (`followups`, from `kassa_domain::workflow::placed`). A cart spent before gives
    /// the order it became; a coupon that ran out meanwhile is a `Conflict`.
    ///
    /// The order, its lines, consents, events with their deliveries and the customer's
    /// emails are written in one round trip; what else follows (none today) after it.
    pub async fn insert_order(
        &mut self,
        new: &NewOrder,
        followups: &Followups,
    ) -> Result<Placement, StoreError> {
        let id = new.id.clone();
        let tenant = self.tenant.clone();
        let now = self.now;
        if let Some(FromCart::New(cart)) = &new.cart {
            // Written spent, in the order's transaction: a fresh cart costs one round
            // trip, not an insert of its own and then its claim.
            let cart_id = cart.id.clone().unwrap_or_else(CartId::generate);
            let sql = cart_sql("ON CONFLICT DO NOTHING");
            let written = db_run!(&mut self.tx, c =>
                bind_cart!(sqlx::query(AssertSqlSafe(sql.as_str())), tenant, cart_id, cart, now, Some(id.as_str()))
                    .execute(c).await?.rows_affected());
            if written == 0 {
                // Another submit of the same page made the cart first (on PostgreSQL
                // the insert waited for its commit).
                let spent: Option<Option<String>> = db_run!(&mut self.tx, c => sqlx::query_scalar(
                    "SELECT order_id FROM carts WHERE tenant_id = $1 AND token = $2 AND livemode = $3",
                )
                .bind(tenant.as_str())
                .bind(&cart.token)
                .bind(cart.mode.is_live())
                .fetch_optional(c).await?);
                let order = spent.flatten().ok_or(StoreError::NotFound)?;
                return Ok(Placement::Existing(order));
            }
        }
        if let Some(FromCart::Saved(cart)) = &new.cart {
            let claimed = db_run!(&mut self.tx, c => sqlx::query(
                "UPDATE carts SET order_id = $3 WHERE tenant_id = $1 AND id = $2 AND order_id IS NULL",
            )
            .bind(tenant.as_str())
            .bind(cart.as_str())
            .bind(id.as_str())
            .execute(c).await?.rows_affected());
            if claimed == 0 {
                let existing: Option<Option<String>> = db_run!(&mut self.tx, c => sqlx::query_scalar(
                    "SELECT order_id FROM carts WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.as_str())
                .bind(cart.as_str())
                .fetch_optional(c).await?);
                let order = existing.flatten().ok_or(StoreError::NotFound)?;
                return Ok(Placement::Existing(order));
            }
        }
        let mode = Mode::from_livemode(!new.test_mode);
        let coupon_held_until = match &new.coupon_code {
            Some(code) => {
                if !self.coupon_has_room(code, mode).await? {
                    return Err(StoreError::Conflict(
                        "the coupon can no longer be used".into(),
                    ));
                }
                Some(Timestamp::from(now.0 + new.coupon_hold))
            }
            None => None,
        };
        // The lines, each with the delivery method it is sold with: its product's in the
        // order's mode (the other world may have a twin with the same id).
        let q = &new.quote;
        let mut lines = Vec::with_capacity(q.lines.len());
        for line in &q.lines {
            let delivery = match new.deliveries.iter().find(|(p, _)| *p == line.product_id) {
                Some((_, d)) => serde_json::to_value(d).map_err(corrupt)?,
                None => {
                    db_run!(&mut self.tx, c => sqlx::query_scalar::<_, Json<serde_json::Value>>(
                    "SELECT delivery FROM products WHERE tenant_id = $1 AND livemode = $2 AND id = $3",
                )
                .bind(tenant.as_str())
                .bind(mode.is_live())
                .bind(line.product_id.as_str())
                .fetch_optional(c).await?)
                    .ok_or(StoreError::NotFound)?
                    .0
                }
            };
            let pool_id =
                match serde_json::from_value::<Delivery>(delivery.clone()).map_err(corrupt)? {
                    Delivery::LicensePool { pool_id, .. } => Some(pool_id.to_string()),
                    _ => None,
                };
            lines.push((line, delivery, pool_id));
        }
        let token = kassa_domain::order::order_token();
        let payment_reference = kassa_domain::order::payment_reference();
        // The order as it is written, for what follows and for the answer: read back it
        // would be the same rows. Its number is the database's, written into the events'
        // payloads by the statement.
        let created = rfc3339(now.millis());
        let mut consents = new.consents.clone();
        consents.sort_by(|a, b| a.kind.cmp(&b.kind));
        let mut record = OrderRecord {
            id: id.to_string(),
            number: 0,
            status: OrderStatus::NotPaid,
            delivery_status: DeliveryStatus::NotDelivered,
            currency: q.currency.code().to_owned(),
            subtotal: q.subtotal,
            discount: q.discount,
            tax: q.tax,
            total: q.total,
            amount_refunded: 0,
            customer: Customer {
                email: Some(new.email.clone()),
                name: new.name.clone(),
            },
            lines: q
                .lines
                .iter()
                .enumerate()
                .map(|(i, line)| OrderLineRecord {
                    line_no: i64::try_from(i).unwrap_or(i64::MAX) + 1,
                    product_id: line.product_id.to_string(),
                    name: line.name.clone(),
                    quantity: line.quantity,
                    unit_amount: line.unit_amount,
                    subtotal: line.subtotal,
                    discount: line.discount,
                    total: line.total,
                    delivery_status: LineStatus::Pending,
                    licenses: Vec::new(),
                    delivery_error: None,
                    refunded: false,
                    revoked_licenses: Vec::new(),
                })
                .collect(),
            payments: Vec::new(),
            refunds: Vec::new(),
            consents,
            payment_method: new.payment_method,
            payment_reference,
            coupon_code: q.coupon_code.clone(),
            custom: serde_json::Value::Object(new.custom.clone()),
            test_mode: new.test_mode,
            livemode: !new.test_mode,
            locale: new.locale.clone(),
            return_url: new.return_url.clone(),
            created_at: created.clone(),
            updated_at: created,
            paid_at: None,
            token,
            offer_expires_at: new.offer_expires_at.map(|t| Timestamp::from(t).0),
            coupon_held_until: coupon_held_until.map(|t| t.0),
        };
        // What follows the placement: the order's events and the customer's emails go
        // in its statement, anything else after it.
        let mode = Mode::from_livemode(!new.test_mode);
        let mut events = Vec::new();
        let mut emails = Vec::new();
        let mut rest = Followups {
            deliver: followups.deliver.clone(),
            ..Followups::default()
        };
        for event in &followups.events {
            match order_event_data(&event.subject, &record) {
                Some(data) => events.push(NewEvent::new(
                    event.kind.as_str(),
                    Some(id.as_str()),
                    mode,
                    data,
                    now,
                )),
                None => rest.events.push(event.clone()),
            }
        }
        for email in &followups.emails {
            match email.to {
                Recipient::Customer => emails.extend(customer_email(email, &record, now)),
                Recipient::Owners => rest.emails.push(email.clone()),
            }
        }
        // `$3`: the store whose counter numbers the order, or its sequence (see
        // `placement_sql`).
        let number_arg = match self.backend {
            Backend::Sqlite => tenant.to_string(),
            Backend::Postgres => order_numbers(&tenant),
        };
        let sql = placement_sql(
            self.backend,
            lines.len(),
            new.consents.len(),
            events.len(),
            emails.len(),
        );
        let (number, deliveries): (i64, i64) = db_run!(&mut self.tx, c => {
            let mut query = sqlx::query_as(AssertSqlSafe(sql.as_str()))
                .bind(tenant.as_str())
                .bind(id.as_str())
                .bind(number_arg.as_str())
                .bind(&record.token)
                .bind(q.currency.code())
                .bind(q.subtotal)
                .bind(q.discount)
                .bind(q.tax)
                .bind(q.total)
                .bind(&new.email)
                .bind(new.name.as_deref())
                .bind(&new.locale)
                .bind(new.payment_method.as_str())
                .bind(&record.payment_reference)
                .bind(q.coupon_code.as_deref())
                .bind(Json(&new.custom))
                .bind(new.test_mode)
                .bind(new.return_url.as_deref())
                .bind(new.offer_expires_at.map(Timestamp::from))
                .bind(now)
                .bind(coupon_held_until);
            for (i, (line, delivery, pool_id)) in lines.iter().enumerate() {
                query = query
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
                    .bind(Json(delivery))
                    .bind(pool_id.as_deref());
            }
            for consent in &new.consents {
                query = query
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .bind(&consent.kind)
                    .bind(&consent.text_version)
                    .bind(Timestamp::from(consent.accepted_at))
                    .bind(consent.ip.as_deref())
                    .bind(consent.user_agent.as_deref());
            }
            for event in &events {
                query = bind_event!(query, tenant, event);
            }
            for email in &emails {
                query = bind_email!(query, tenant, email);
            }
            query.fetch_one(c).await?
        });
        if deliveries > 0 {
            queues::wrote(Queue::Webhooks);
        }
        if !emails.is_empty() {
            queues::wrote(Queue::Emails);
        }
        record.number = number;
        self.follow_rest(record, &rest).await?;
        Ok(Placement::New(id))
    }

    /// Sets the method an unpaid order is to be paid with.
    pub async fn set_payment_method(
        &mut self,
        order: &str,
        method: PaymentMethod,
    ) -> Result<(), StoreError> {
        db_run!(&mut self.tx, c => sqlx::query(
            "UPDATE orders SET payment_method = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(self.tenant.as_str())
        .bind(order)
        .bind(method.as_str())
        .bind(self.now)
        .execute(c).await?.rows_affected());
        Ok(())
    }

    /// Records a payment attempt.
    pub async fn insert_payment(
        &mut self,
        order: &str,
        payment: &NewPayment,
        status: PaymentStatus,
    ) -> Result<(), StoreError> {
        let p = &payment.facts;
        db_run!(&mut self.tx, c => sqlx::query(
            "INSERT INTO payments (tenant_id, id, order_id, method, status, amount, currency, failure_code,
             failure_message, card_brand, card_last4, reference, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(self.tenant.as_str())
        .bind(p.id.as_str())
        .bind(order)
        .bind(p.method.as_str())
        .bind(status.as_str())
        .bind(p.amount)
        .bind(&p.currency)
        .bind(payment.failure_code.as_deref())
        .bind(payment.failure_message.as_deref())
        .bind(payment.card_brand.as_deref())
        .bind(payment.card_last4.as_deref())
        .bind(payment.reference.as_deref())
        .bind(self.now)
        .execute(c).await?.rows_affected());
        Ok(())
    }

    /// Marks an order paid by `method`. Its mode (`test_mode`) was set when it was
    /// placed and never changes.
    pub async fn mark_paid(
        &mut self,
        order: &str,
        method: PaymentMethod,
    ) -> Result<(), StoreError> {
        db_run!(&mut self.tx, c => sqlx::query(
            "UPDATE orders SET status = 'paid', paid_at = $3, updated_at = $3, payment_method = $4,
             coupon_held_until = NULL
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(self.tenant.as_str())
        .bind(order)
        .bind(self.now)
        .bind(method.as_str())
        .execute(c).await?.rows_affected());
        Ok(())
    }
}

impl Work {
    /// Whether the coupon `code` of `mode`'s world works now and has a use left: its
    /// redemptions (paid orders) and the uses unpaid orders hold stay under its limit.
    /// The coupon's row is locked first, so on PostgreSQL two orders taking its last
    /// use count one after the other (each statement reads what committed before it).
    async fn coupon_has_room(&mut self, code: &str, mode: Mode) -> Result<bool, StoreError> {
        let now = self.now;
        let limits: Option<(Option<i64>, i64)> = db_run!(&mut self.tx, c => sqlx::query_as(
            "UPDATE coupons SET times_redeemed = times_redeemed
             WHERE tenant_id = $1 AND code = $2 AND livemode = $4 AND active = TRUE
             AND (expires_at IS NULL OR expires_at > $3)
             RETURNING max_redemptions, times_redeemed",
        )
        .bind(self.tenant.as_str())
        .bind(code)
        .bind(now)
        .bind(mode.is_live())
        .fetch_optional(c).await?);
        let Some((max, redeemed)) = limits else {
            return Ok(false);
        };
        let Some(max) = max else {
            return Ok(true);
        };
        let held: i64 = db_run!(&mut self.tx, c => sqlx::query_scalar(COUPON_HOLDS)
            .bind(self.tenant.as_str())
            .bind(code)
            .bind(now)
            .bind(!mode.is_live())
            .fetch_one(c).await?);
        Ok(redeemed + held < max)
    }

    /// Holds the use of its coupon (of the order's `mode`) for the unpaid order `order`
    /// until `hold.until`, as the workflow decided; false when its hold had lapsed and
    /// no use is left.
    pub async fn hold_coupon(
        &mut self,
        order: &str,
        mode: Mode,
        hold: &CouponHold,
    ) -> Result<bool, StoreError> {
        if hold.lapsed && !self.coupon_has_room(&hold.code, mode).await? {
            return Ok(false);
        }
        db_run!(&mut self.tx, c => sqlx::query(
            "UPDATE orders SET coupon_held_until = $3 WHERE tenant_id = $1 AND id = $2 AND status = 'not_paid'",
        )
        .bind(self.tenant.as_str())
        .bind(order)
        .bind(Timestamp::from(hold.until))
        .execute(c).await?.rows_affected());
        Ok(true)
    }

    /// Counts the use of the coupon `code` of the order's `mode` by an order being
    /// paid, as the workflow decided; false when it wanted a free use and none is left.
    pub async fn redeem_coupon(
        &mut self,
        code: &str,
        mode: Mode,
        redemption: Redemption,
    ) -> Result<bool, StoreError> {
        if redemption == Redemption::IfStillFree && !self.coupon_has_room(code, mode).await? {
            return Ok(false);
        }
        db_run!(&mut self.tx, c => sqlx::query(
            "UPDATE coupons SET times_redeemed = times_redeemed + 1
             WHERE tenant_id = $1 AND code = $2 AND livemode = $3",
        )
        .bind(self.tenant.as_str())
        .bind(code)
        .bind(mode.is_live())
        .execute(c).await?.rows_affected());
        Ok(true)
    }
}

/// How many uses of a coupon (`$2`) unpaid orders of one mode (`$4`: `test_mode`)
/// hold at `$3`.
const COUPON_HOLDS: &str = "SELECT COUNT(*) FROM orders WHERE tenant_id = $1 AND coupon_code = $2
     AND status = 'not_paid' AND coupon_held_until > $3 AND test_mode = $4";

impl Store {
    /// How many uses of the coupon `code` of `mode`'s world unpaid orders hold now.
    pub async fn coupon_holds(
        &self,
        tenant: &TenantId,
        mode: Mode,
        code: &str,
    ) -> Result<i64, StoreError> {
        Ok(db_run!(self, c => sqlx::query_scalar(COUPON_HOLDS)
            .bind(tenant.as_str())
            .bind(code)
            .bind(Timestamp::now())
            .bind(!mode.is_live())
            .fetch_one(c).await?))
    }
}

/// A store's signing secrets that rotate with an overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreSecret {
    /// Signs buy links.
    Link,
    /// Signs requests to license web services.
    Service,
}

impl StoreSecret {
    fn column(self) -> &'static str {
        match self {
            StoreSecret::Link => "link_secret",
            StoreSecret::Service => "service_secret",
        }
    }
}

/// A store's secret, and the one a rotation replaced while its overlap lasts.
#[derive(Debug, Clone)]
pub struct RotatingSecret {
    pub current: kassa_domain::Secret,
    /// The replaced secret and when it stops counting.
    pub previous: Option<(kassa_domain::Secret, Timestamp)>,
}

impl RotatingSecret {
    /// Every secret that counts now, the current one first.
    pub fn valid(&self) -> Vec<&str> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref().map(|(s, _)| s))
            .map(|s| s.expose_secret())
            .collect()
    }
}

/// The placement's one statement ([`Work::insert_order`]): the order (parameters
/// 1–21), its `lines` lines (12 each), `consents` consents (7 each), `events` events
/// with their deliveries ([`EVENT_ARGS`] each) and `emails` emails ([`EMAIL_ARGS`]
/// each), parameters in that order. Its row: the order's number and how many
/// deliveries it wrote.
fn placement_sql(
    backend: Backend,
    lines: usize,
    consents: usize,
    events: usize,
    emails: usize,
) -> String {
    // The order's number is the store's next: on SQLite from its counter, inside this
    // transaction (writers take turns anyway); on PostgreSQL from the store's
    // sequence, which locks nothing, so orders of one store are placed side by side (a
    // placement that fails after it leaves a gap). `$3` is the counter's store or the
    // sequence.
    let number = match backend {
        Backend::Sqlite => "(SELECT order_seq FROM tenants WHERE id = $3)",
        Backend::Postgres => "nextval($3::text)",
    };
    let insert_order = format!(
        "INSERT INTO orders (tenant_id, id, number, token, status, delivery_status, currency, subtotal,
         discount, tax, total, email, name, locale, payment_method, payment_reference, coupon_code,
         custom, test_mode, return_url, offer_expires_at, coupon_held_until, created_at, updated_at)
         VALUES ($1, $2, {number}, $4, 'not_paid', 'not_delivered', $5, $6, $7, $8, $9, $10, $11,
         $12, $13, $14, $15, $16, $17, $18, $19, $21, $20, $20)"
    );
    const ORDER_ARGS: usize = 21;
    let insert_lines = format!(
        "INSERT INTO order_lines (tenant_id, order_id, line_no, product_id, name, quantity,
         unit_amount, subtotal, discount, total, delivery, pool_id, delivery_status, licenses)
         VALUES {}",
        values_rows(ORDER_ARGS + 1, lines, 12, "'pending', '[]'")
    );
    let insert_consents = (consents > 0).then(|| {
        format!(
            "INSERT INTO order_consents (tenant_id, order_id, kind, text_version, accepted_at, ip, user_agent)
             VALUES {}",
            values_rows(ORDER_ARGS + 12 * lines + 1, consents, 7, "")
        )
    });
    let first_event = ORDER_ARGS + 12 * lines + 7 * consents + 1;
    let mut next = first_event;
    let mut writes_events = Vec::new();
    for _ in 0..events {
        writes_events.push(event_sql(backend, next, |payload| match backend {
            Backend::Sqlite => format!(
                "json_set({payload}, '$.data.order.number', (SELECT number FROM orders WHERE tenant_id = $1 AND id = $2))"
            ),
            Backend::Postgres => format!(
                "jsonb_set({payload}, '{{data,order,number}}', to_jsonb((SELECT number FROM o)))"
            ),
        }));
        next += EVENT_ARGS;
    }
    let mut writes_emails = Vec::new();
    for _ in 0..emails {
        writes_emails.push(email_sql(next));
        next += EMAIL_ARGS;
    }
    match backend {
        Backend::Sqlite => {
            // The deliveries written, found by their endpoints' unique key.
            let counted = (0..events)
                .map(|i| {
                    format!(
                        "(SELECT count(*) FROM webhook_deliveries WHERE tenant_id = $1 AND event_id = ${}
                         AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE tenant_id = $1))",
                        first_event + i * EVENT_ARGS + 1
                    )
                })
                .chain(std::iter::once("0".to_owned()))
                .collect::<Vec<_>>()
                .join(" + ");
            [
                Some("UPDATE tenants SET order_seq = order_seq + 1 WHERE id = $1".to_owned()),
                Some(insert_order),
                Some(insert_lines),
                insert_consents,
            ]
            .into_iter()
            .flatten()
            .chain(writes_events.into_iter().flat_map(|(e, d)| [e, d]))
            .chain(writes_emails)
            .chain(std::iter::once(format!(
                "SELECT number, {counted} FROM orders WHERE tenant_id = $1 AND id = $2"
            )))
            .collect::<Vec<_>>()
            .join(";\n")
        }
        Backend::Postgres => {
            let mut ctes = vec![
                format!("o AS ({insert_order} RETURNING number)"),
                format!("l AS ({insert_lines})"),
            ];
            ctes.extend(insert_consents.map(|c| format!("c AS ({c})")));
            for (i, (event, deliveries)) in writes_events.into_iter().enumerate() {
                ctes.push(format!("e{i} AS ({event})"));
                ctes.push(format!("d{i} AS ({deliveries} RETURNING 1)"));
            }
            for (i, email) in writes_emails.into_iter().enumerate() {
                ctes.push(format!("m{i} AS ({email})"));
            }
            let counted = (0..events)
                .map(|i| format!("(SELECT count(*) FROM d{i})"))
                .chain(std::iter::once("0".to_owned()))
                .collect::<Vec<_>>()
                .join(" + ");
            format!("WITH {} SELECT number, {counted} FROM o", ctes.join(",\n"))
        }
    }
}
