//! An outbox email rendered from `web/emails`: a subject, a plain-text body and an
//! HTML body. In each `web/emails/<kind>.txt` the first line is the subject.

use std::collections::HashMap;
use std::sync::LazyLock;

use kassa_domain::email::EmailKind;
use kassa_domain::ids::TenantId;
use kassa_domain::order::LineStatus;
use kassa_domain::tenant::TenantSettings;
use kassa_store::{EmailRecord, OrderRecord, Store, StoreError, TenantRecord};
use minijinja::Environment;

use crate::templates::environment;
use crate::texts::texts;
use crate::view::{brand, order_view};

/// `(name, source)` of templates under `web/emails`, compiled into the binary.
macro_rules! email_templates {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../../../web/emails/", $name)))),*]
    };
}

static EMAILS: LazyLock<Environment<'static>> = LazyLock::new(|| {
    environment(email_templates![
        "base.html",
        "lines.html",
        "lines.txt",
        "payment_succeeded.txt",
        "payment_succeeded.html",
        "payment_instructions.txt",
        "payment_instructions.html",
        "payment_failed.txt",
        "payment_failed.html",
        "unpaid_reminder.txt",
        "unpaid_reminder.html",
        "endpoint_disabled.txt",
        "endpoint_disabled.html",
        "licenses.txt",
        "licenses.html",
        "pool_empty.txt",
        "pool_empty.html",
        "pool_low.txt",
        "pool_low.html",
        "delivery_failed.txt",
        "delivery_failed.html",
        "refund.txt",
        "refund.html",
        "refund_failed.txt",
        "refund_failed.html",
        "paid_twice.txt",
        "paid_twice.html",
    ])
});

/// A rendered email, with who it is from.
#[derive(Debug, Clone)]
pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The store's name, shown as the sender.
    pub from_name: String,
    /// The store's support address, for replies.
    pub reply_to: Option<String>,
}

/// Why an email cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The order or its customer is gone (erased): nothing to send.
    #[error("{0}")]
    Gone(String),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
}

/// What a batch of emails is rendered from, read once for the whole batch: their
/// stores, and their orders (five queries per store, however many orders). An email
/// whose store or order is not in it reads its own.
#[derive(Debug, Default)]
pub struct Loaded {
    tenants: HashMap<String, TenantRecord>,
    orders: HashMap<(String, String), OrderRecord>,
}

impl Loaded {
    /// Reads the stores and orders `emails` are about.
    pub async fn load(store: &Store, emails: &[EmailRecord]) -> Result<Self, StoreError> {
        let mut loaded = Loaded::default();
        let mut by_tenant: HashMap<&str, Vec<&str>> = HashMap::new();
        for email in emails {
            let ids = by_tenant.entry(email.tenant_id.as_str()).or_default();
            if let Some(order) = email.order_id.as_deref()
                && !ids.contains(&order)
            {
                ids.push(order);
            }
        }
        for (tenant, orders) in by_tenant {
            let Ok(id) = TenantId::parse(tenant) else {
                continue;
            };
            let record = match store.tenant(&id).await {
                Ok(t) => t,
                Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e),
            };
            for order in store.orders(&id, &orders).await? {
                loaded
                    .orders
                    .insert((tenant.to_owned(), order.id.clone()), order);
            }
            loaded.tenants.insert(tenant.to_owned(), record);
        }
        Ok(loaded)
    }
}

/// Renders an outbox email from the order it is about.
pub async fn render(
    store: &Store,
    public_url: &str,
    email: &EmailRecord,
) -> Result<RenderedEmail, RenderError> {
    render_from(store, public_url, email, &Loaded::default()).await
}

/// Renders an outbox email from the order it is about, as `loaded` holds it (else
/// read now).
pub async fn render_from(
    store: &Store,
    public_url: &str,
    email: &EmailRecord,
    loaded: &Loaded,
) -> Result<RenderedEmail, RenderError> {
    let tenant_id =
        TenantId::parse(&email.tenant_id).map_err(|e| RenderError::Gone(e.to_string()))?;
    let tenant = match loaded.tenants.get(&email.tenant_id) {
        Some(t) => t.clone(),
        None => store.tenant(&tenant_id).await?,
    };
    let settings = TenantSettings::from_json(&tenant.settings);
    let kind = EmailKind::from_name(&email.kind)
        .ok_or_else(|| RenderError::Gone(format!("no email is called {}", email.kind)))?;
    if kind == EmailKind::EndpointDisabled {
        return render_endpoint_disabled(store, public_url, email, tenant, settings).await;
    }
    let order_id = email
        .order_id
        .as_deref()
        .ok_or_else(|| RenderError::Gone("the email names no order".into()))?;
    let preloaded = loaded
        .orders
        .get(&(email.tenant_id.clone(), order_id.to_owned()));
    let order = match preloaded {
        Some(o) => o.clone(),
        None => match store.order(&tenant.id, order_id).await {
            Ok(o) => o,
            Err(StoreError::NotFound) => {
                return Err(RenderError::Gone("the order is gone".into()));
            }
            Err(e) => return Err(e.into()),
        },
    };
    if order.customer.email.is_none() && !kind.to_merchant() {
        return Err(RenderError::Gone("the customer's data was erased".into()));
    }
    let t = texts(&email.locale);
    // A failure notice is about the payment named in its key, not the latest one.
    let failed_payment = email.dedupe_key.strip_prefix("failed:");
    let failure = order
        .payments
        .iter()
        .find(|p| Some(p.id.as_str()) == failed_payment)
        .map(|p| {
            let code = p.failure_code.clone().unwrap_or_default();
            t.get(&code)
                .cloned()
                .or(p.failure_message.clone())
                .unwrap_or_default()
        });
    let base = format!("{public_url}/{}/orders/{}", tenant.slug, order.token);
    let ctx = minijinja::context! {
        t => t,
        store => brand(&tenant, &settings),
        order => order_view(&order, t),
        bank => settings.bank.clone(),
        failure => failure,
        order_url => base.clone(),
        pay_url => format!("{base}/pay"),
        invoice_url => format!("{base}/invoice"),
        pool => low_pool(store, &tenant.id, email).await?,
        refund => refund_view(&order, email),
        paid_twice => paid_twice_view(&order, email),
        dashboard_url => format!("{public_url}/dashboard/orders/{}", order.id),
        lines_failed => order
            .lines
            .iter()
            .filter(|l| l.delivery_status == LineStatus::Failed)
            .map(|l| minijinja::context! { name => l.name.clone(), error => l.delivery_error.clone() })
            .collect::<Vec<_>>(),
    };
    compose(&email.kind, &ctx, tenant.name, settings.support_email)
}

/// Renders both templates of `kind`: the text template's first line is the subject,
/// the rest is the body.
fn compose(
    kind: &str,
    ctx: &minijinja::Value,
    from_name: String,
    reply_to: Option<String>,
) -> Result<RenderedEmail, RenderError> {
    let full = EMAILS.get_template(&format!("{kind}.txt"))?.render(ctx)?;
    let (subject, text) = full.split_once('\n').unwrap_or((full.as_str(), ""));
    Ok(RenderedEmail {
        subject: subject.trim().to_owned(),
        text: text.trim_start_matches('\n').to_owned(),
        html: EMAILS.get_template(&format!("{kind}.html"))?.render(ctx)?,
        from_name,
        reply_to,
    })
}

/// The refund a `refund` or `refund_failed` email is about (`refund:<refund id>`,
/// `refund_failed:<refund id>:<owner>`): its amount, why it failed, and the licenses
/// of the lines it refunded in full, revoked once it succeeded (for a refund that
/// failed after it succeeded: those not reinstated).
fn refund_view(order: &kassa_store::OrderRecord, email: &EmailRecord) -> Option<minijinja::Value> {
    let about = (email.dedupe_key.strip_prefix("refund:"))
        .or_else(|| email.dedupe_key.strip_prefix("refund_failed:"))?;
    // An owners' email's key ends with the owner's address.
    let id = about.split(':').next()?;
    let refund = order.refunds.iter().find(|r| r.id == id)?;
    let revoked: Vec<minijinja::Value> = order
        .lines
        .iter()
        .filter(|l| refund.lines.contains(&l.line_no))
        .flat_map(|l| {
            l.revoked_licenses
                .iter()
                .map(|k| minijinja::context! { name => l.name.clone(), key => k.clone() })
        })
        .collect();
    Some(minijinja::context! {
        amount => crate::view::money(refund.amount, &refund.currency),
        reason => refund.reason.clone(),
        reference => refund.reference.clone(),
        failure_reason => refund.failure_reason.clone(),
        revoked => revoked,
        full => order.status == kassa_domain::order::OrderStatus::Refunded,
    })
}

/// The provider's payment a `paid_twice` email is about (`paid_twice:<reference>:…`):
/// its amount, its PaymentIntent, and what became of the money.
fn paid_twice_view(
    order: &kassa_store::OrderRecord,
    email: &EmailRecord,
) -> Option<minijinja::Value> {
    let reference = email
        .dedupe_key
        .strip_prefix("paid_twice:")?
        .split(':')
        .next()?;
    let payment = order
        .payments
        .iter()
        .find(|p| p.reference.as_deref() == Some(reference))?;
    Some(minijinja::context! {
        amount => crate::view::money(payment.amount, &payment.currency),
        reference => reference,
        message => payment.failure_message.clone(),
    })
}

/// The pool a `pool_low` email is about (`pool_low:<pool id>:…`), with its stock.
async fn low_pool(
    store: &Store,
    tenant: &TenantId,
    email: &EmailRecord,
) -> Result<Option<minijinja::Value>, RenderError> {
    let Some(id) = email
        .dedupe_key
        .strip_prefix("pool_low:")
        .and_then(|k| k.split(':').next())
    else {
        return Ok(None);
    };
    let Ok(id) = kassa_domain::ids::LicensePoolId::parse(id) else {
        return Ok(None);
    };
    let pool = store.license_pool(tenant, &id).await?;
    Ok(Some(minijinja::context! {
        id => pool.id.to_string(),
        mode => if pool.livemode { "live" } else { "test" },
        name => pool.name,
        available => pool.available,
        threshold => pool.low_stock_threshold,
    }))
}

/// The merchant's notice that Kassa stopped sending to one of their endpoints.
async fn render_endpoint_disabled(
    store: &Store,
    public_url: &str,
    email: &EmailRecord,
    tenant: kassa_store::TenantRecord,
    settings: TenantSettings,
) -> Result<RenderedEmail, RenderError> {
    let endpoint_id = email
        .dedupe_key
        .split(':')
        .nth(1)
        .and_then(|id| kassa_domain::ids::WebhookEndpointId::parse(id).ok())
        .ok_or_else(|| RenderError::Gone("the email names no endpoint".into()))?;
    let endpoint = match store.webhook_endpoint(&tenant.id, &endpoint_id).await {
        Ok(e) => e,
        Err(StoreError::NotFound) => return Err(RenderError::Gone("the endpoint is gone".into())),
        Err(e) => return Err(e.into()),
    };
    let t = texts(&email.locale);
    let ctx = minijinja::context! {
        t => t,
        store => brand(&tenant, &settings),
        endpoint_id => endpoint.id.to_string(),
        endpoint_url => endpoint.fields.url,
        mode => if endpoint.livemode { "live" } else { "test" },
        api_url => format!("{public_url}/api/v1/webhook-endpoints/{}", endpoint.id),
    };
    compose("endpoint_disabled", &ctx, "Kassa".to_owned(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_both_templates() {
        for kind in EmailKind::ALL {
            for ext in ["txt", "html"] {
                assert!(
                    EMAILS.get_template(&format!("{kind}.{ext}")).is_ok(),
                    "web/emails/{kind}.{ext} is not registered"
                );
            }
        }
    }
}
