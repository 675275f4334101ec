//! The dashboard's templates, compiled into the binary.

use std::sync::LazyLock;

use minijinja::Environment;

macro_rules! templates {
    ($dir:literal: $($name:literal),+ $(,)?) => {
        &[$(($name, include_str!(concat!("../../../web/", $dir, "/", $name)))),+]
    };
}

/// The pages, by name.
pub const ALL: &[(&str, &str)] = templates!("dashboard":
    "base.html", "public.html", "layout.html", "macros.html", "message.html",
    "signup.html", "login.html", "check_email.html", "verify.html", "forgot.html", "reset.html",
    "stores.html", "store_new.html", "settings.html", "home.html",
    "products.html", "product_new.html", "product.html",
    "pools.html", "pool.html", "orders.html", "order.html", "team.html", "invitation.html",
    "coupons.html", "checkout_links.html", "outbox.html",
    "api_keys.html", "api_key_revoke.html", "webhooks.html", "webhook.html", "refund_confirm.html",
    "plugins.html", "plugin.html",
);

const EMAILS: &[(&str, &str)] = templates!("dashboard/emails":
    "verify_email.txt", "verify_email.html", "reset_password.txt", "reset_password.html",
    "invitation.txt", "invitation.html",
);

/// The account emails' templates.
pub fn emails() -> &'static Environment<'static> {
    static ENV: LazyLock<Environment<'static>> =
        LazyLock::new(|| kassa_emails::environment(EMAILS.iter().copied()));
    &ENV
}
