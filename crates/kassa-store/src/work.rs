//! Writing the order workflow: a [`Work`] is the one write transaction of one command.
//!
//! The use case (`kassa-orders`) reads the order's states through it (held against
//! concurrent changes until the commit), asks the domain what happens, writes the change
//! with `Work`'s methods (in `orders.rs`, `fulfillment.rs`, `pools.rs`, `unpaid.rs`),
//! then what must follow with [`Work::follow`], and commits. Nothing here decides: which
//! events, emails and deliveries follow comes from `kassa_domain::workflow`.

use kassa_domain::email::Recipient;
use kassa_domain::ids::{OrderId, TenantId};
use kassa_domain::mode::Mode;
use kassa_domain::workflow::{self, Followups, Subject};

use crate::db::{Backend, Tx, db_run};
use crate::emails::{NewEmail, email_owners, order_mode, queue_email};
use crate::error::StoreError;
use crate::error::{corrupt, named};
use crate::events::{NewEvent, insert_event};
use crate::queues::{Queue, notify_due};
use crate::store::Store;
use crate::time::Timestamp;
use crate::view::{OrderRecord, load_order};

/// One command's write transaction, for one store.
pub struct Work {
    pub(crate) tx: Tx,
    pub(crate) tenant: TenantId,
    pub(crate) backend: Backend,
    /// The transaction's time, the same on every row it writes.
    pub(crate) now: Timestamp,
    /// The order as [`Work::follow`] read it for its events and emails (or as
    /// [`Work::insert_order`] wrote it).
    followed: Option<OrderRecord>,
}

impl Store {
    /// Begins a command's write transaction in `tenant`.
    pub async fn work(&self, tenant: &TenantId) -> Result<Work, StoreError> {
        Ok(Work {
            tx: self.begin_write().await?,
            tenant: tenant.clone(),
            backend: self.backend,
            now: Timestamp::now(),
            followed: None,
        })
    }
}

impl Work {
    /// A `Work` in `tenant` on a transaction already open (one that records for
    /// several stores), given back by [`Work::into_tx`].
    pub(crate) fn around(tx: Tx, tenant: &TenantId, backend: Backend, now: Timestamp) -> Self {
        Work {
            tx,
            tenant: tenant.clone(),
            backend,
            now,
            followed: None,
        }
    }

    /// The transaction, to go on with it.
    pub(crate) fn into_tx(self) -> Tx {
        self.tx
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The transaction's time.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// An order's states, for the workflow to decide on. On PostgreSQL the order's row
    /// is locked until the commit, so two commands on one order run one after the
    /// other (SQLite's write transaction already holds the one write lock).
    pub async fn order(&mut self, id: &str) -> Result<workflow::Order, StoreError> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let row: Option<OrderStateRow> = db_run!(&mut self.tx, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT status, delivery_status, payment_method, currency, total, amount_refunded, email,
                 reminded_at, offer_expires_at, test_mode, coupon_code, coupon_held_until
                 FROM orders WHERE tenant_id = $1 AND id = $2{lock}"
        )))
        .bind(self.tenant.as_str())
        .bind(id)
        .fetch_optional(c).await?);
        let (
            status,
            delivery,
            method,
            currency,
            total,
            amount_refunded,
            email,
            reminded_at,
            offer_expires_at,
            test_mode,
            coupon_code,
            coupon_held_until,
        ) = row.ok_or(StoreError::NotFound)?;
        let lines: Vec<(i64, String, i64, Option<Timestamp>)> = db_run!(&mut self.tx, c => sqlx::query_as(
            "SELECT line_no, delivery_status, total, refunded_at FROM order_lines
             WHERE tenant_id = $1 AND order_id = $2 ORDER BY line_no",
        )
        .bind(self.tenant.as_str())
        .bind(id)
        .fetch_all(c).await?);
        Ok(workflow::Order {
            id: OrderId::parse(id).map_err(corrupt)?,
            status: named(&status)?,
            delivery_status: named(&delivery)?,
            payment_method: named(&method)?,
            mode: Mode::from_livemode(!test_mode),
            currency,
            total,
            amount_refunded,
            has_customer_email: email.is_some(),
            reminded: reminded_at.is_some(),
            offer_expires_at: offer_expires_at.map(|t: Timestamp| t.0),
            coupon: coupon_code.map(|code| workflow::CouponUse {
                code,
                held_until: coupon_held_until.map(|t: Timestamp| t.0),
            }),
            lines: lines
                .into_iter()
                .map(|(line_no, status, total, refunded_at)| {
                    Ok(workflow::Line {
                        line_no,
                        status: named(&status)?,
                        total,
                        refunded: refunded_at.is_some(),
                    })
                })
                .collect::<Result<_, StoreError>>()?,
        })
    }

    /// An order as merchants see it, as this transaction has written it so far.
    pub async fn view(&mut self, id: &str) -> Result<OrderRecord, StoreError> {
        load_order(&mut self.tx, &self.tenant, id).await
    }

    /// Writes what follows a transition of the order `order` (`None` for a store-wide
    /// one): its events with their deliveries, its emails, and the deliveries of the
    /// lines it makes due, each with its job.
    pub async fn follow(
        &mut self,
        order: Option<&str>,
        followups: &Followups,
    ) -> Result<(), StoreError> {
        let about_order = followups
            .events
            .iter()
            .any(|e| !matches!(e.subject, Subject::Pool { .. }))
            || followups.emails.iter().any(|e| e.to == Recipient::Customer);
        let view = match (order, about_order) {
            (Some(id), true) => Some(self.view(id).await?),
            _ => None,
        };
        self.follow_with(order, view, followups).await
    }

    /// What follows a placement besides what [`Work::insert_order`] wrote in its
    /// statement, for the order `placed` as it was written (instead of reading it back).
    pub(crate) async fn follow_rest(
        &mut self,
        placed: OrderRecord,
        rest: &Followups,
    ) -> Result<(), StoreError> {
        let id = placed.id.clone();
        self.follow_with(Some(&id), Some(placed), rest).await
    }

    async fn follow_with(
        &mut self,
        order: Option<&str>,
        view: Option<OrderRecord>,
        followups: &Followups,
    ) -> Result<(), StoreError> {
        let tenant = self.tenant.clone();
        for event in &followups.events {
            let (order_id, mode, data) = match (&event.subject, &view) {
                (
                    Subject::Pool {
                        id,
                        available,
                        threshold,
                    },
                    _,
                ) => {
                    let (name, livemode): (String, bool) = db_run!(&mut self.tx, c => sqlx::query_as(
                        "SELECT name, livemode FROM license_pools WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .fetch_one(c).await?);
                    let pool = serde_json::json!({
                        "id": id, "name": name, "available": available, "low_stock_threshold": threshold,
                    });
                    let data = serde_json::json!({ "license_pool": pool });
                    (None, Mode::from_livemode(livemode), data)
                }
                (subject, Some(o)) => (
                    Some(o.id.as_str()),
                    Mode::from_livemode(o.livemode),
                    order_event_data(subject, o)
                        .ok_or_else(|| corrupt("a pool's event as an order's"))?,
                ),
                (_, None) => return Err(corrupt("an order event without its order")),
            };
            let event = NewEvent::new(event.kind.as_str(), order_id, mode, data, self.now);
            insert_event(&mut self.tx, &tenant, &event).await?;
        }
        for email in &followups.emails {
            match email.to {
                Recipient::Owners => {
                    let mode = match (email.mode, &view, order) {
                        (Some(mode), _, _) => mode,
                        (None, Some(o), _) => Mode::from_livemode(o.livemode),
                        (None, None, Some(id)) => order_mode(&mut self.tx, &tenant, id).await?,
                        (None, None, None) => return Err(corrupt("an owners' email of no world")),
                    };
                    email_owners(
                        &mut self.tx,
                        &tenant,
                        email.kind.as_str(),
                        order,
                        &email.key,
                        mode,
                    )
                    .await?
                }
                Recipient::Customer => {
                    // Nobody to write to once the customer's data was erased.
                    let Some(email) = view
                        .as_ref()
                        .and_then(|o| customer_email(email, o, self.now))
                    else {
                        continue;
                    };
                    queue_email(&mut self.tx, &tenant, &email).await?;
                }
            }
        }
        if let (Some(order), false) = (order, followups.deliver.is_empty()) {
            // The lines are their own queue: due from `next_delivery_at`, claimed afresh.
            let request = crate::RequestId::current();
            for wake in &followups.deliver {
                let at = wake.at.map_or(self.now, Timestamp::from);
                db_run!(&mut self.tx, c => sqlx::query(
                    "UPDATE order_lines SET next_delivery_at = $4, request_id = $5,
                     claimed_by = NULL, claimed_until = NULL
                     WHERE tenant_id = $1 AND order_id = $2 AND line_no = $3",
                )
                .bind(tenant.as_str())
                .bind(order)
                .bind(wake.line_no)
                .bind(at)
                .bind(request.as_ref().map(crate::RequestId::as_str))
                .execute(c).await?.rows_affected());
            }
            notify_due(&mut self.tx, Queue::Lines).await?;
        }
        self.followed = view;
        Ok(())
    }

    /// The order as merchants see it once [`Work::follow`] wrote what follows: the view
    /// `follow` read (what it writes, events, emails and jobs, is not part of the view),
    /// else read now. For the answer of a command whose last write was `follow`.
    pub async fn view_after_follow(&mut self, id: &str) -> Result<OrderRecord, StoreError> {
        match self.followed.take() {
            Some(view) if view.id == id => Ok(view),
            _ => self.view(id).await,
        }
    }
}

/// An order's states as stored: status, delivery status, payment method, currency,
/// total, amount refunded, email, reminded at, when its signed offers expire, whether it
/// is a test order, its coupon and until when it holds the coupon's use.
type OrderStateRow = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<Timestamp>,
    Option<Timestamp>,
    bool,
    Option<String>,
    Option<Timestamp>,
);

/// The data of an event about the order `o` (with its payment, refund or line when the
/// subject names one); none for a pool's, which is not about an order.
pub(crate) fn order_event_data(subject: &Subject, o: &OrderRecord) -> Option<serde_json::Value> {
    Some(match subject {
        Subject::Order => serde_json::json!({ "order": o }),
        Subject::Payment(p) => {
            let payment = o.payments.iter().find(|x| x.id == p.as_str());
            serde_json::json!({ "order": o, "payment": payment })
        }
        Subject::Refund(r) => {
            let refund = o.refunds.iter().find(|x| x.id == r.as_str());
            serde_json::json!({ "order": o, "refund": refund })
        }
        Subject::Line(n) => {
            let line = o.lines.iter().find(|l| l.line_no == *n);
            serde_json::json!({ "order": o, "line": line })
        }
        Subject::Pool { .. } => return None,
    })
}

/// The customer's copy of `email` about the order `o`, none once the customer's data
/// was erased.
pub(crate) fn customer_email(
    email: &workflow::Email,
    o: &OrderRecord,
    at: Timestamp,
) -> Option<NewEmail> {
    let to = o.customer.email.as_deref()?;
    Some(NewEmail::new(
        email.kind.as_str(),
        Some(&o.id),
        &email.key,
        to,
        &o.locale,
        at,
        Mode::from_livemode(o.livemode),
    ))
}
