//! The Stripe card form on the payment page: what Stripe.js needs (the publishable
//! key and the PaymentIntent's client secret), the decline messages in the page's
//! language, and the page's Content-Security-Policy, which lets in exactly the
//! configured Stripe.js, its frames and the API it talks to, and Kassa's one inline
//! script by its nonce.

use kassa_orders::{Providers, StripeCardForm};
use poem::Response;
use serde::Serialize;

use crate::page::Texts;

/// The card form as the template shows it.
#[derive(Serialize)]
pub struct StripeView {
    pub publishable_key: String,
    /// Only in the page's body (a data attribute read by the page's script): never in
    /// a URL, never logged.
    pub client_secret: String,
    pub js_url: String,
    pub nonce: String,
    /// `{code: message}` as JSON: Stripe's decline codes Kassa has a text for, in the
    /// page's language, and `failed` for the rest (then Stripe's own message is shown).
    pub messages: String,
}

/// The decline codes the page says in its own language; any other shows Stripe's
/// message, which Stripe.js gives in the browser's language.
const DECLINES: [&str; 3] = ["card_declined", "insufficient_funds", "stripe_failed"];

/// A fresh nonce for the page's inline script.
pub fn nonce() -> String {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

pub fn view(providers: &Providers, form: StripeCardForm, nonce: &str, t: &Texts) -> StripeView {
    let messages: serde_json::Map<String, serde_json::Value> = DECLINES
        .iter()
        .filter_map(|code| {
            let key = if *code == "stripe_failed" {
                "failed"
            } else {
                code
            };
            t.get(*code)
                .map(|text| (key.to_owned(), serde_json::Value::from(text.as_str())))
        })
        .collect();
    StripeView {
        publishable_key: form.publishable_key,
        client_secret: form.client_secret.expose_secret().to_owned(),
        js_url: providers.stripe_js_url.clone(),
        nonce: nonce.to_owned(),
        messages: serde_json::Value::Object(messages).to_string(),
    }
}

/// The payment page's Content-Security-Policy: scripts only from the configured
/// Stripe.js and the page's own inline script (by `nonce`); frames from Stripe.js's
/// origin (and, for Stripe's own, `hooks.stripe.com`, where 3-D Secure runs); requests
/// to Kassa, Stripe's API and Stripe.js's origin (a stand-in's script talks to its own).
pub fn policy(providers: &Providers, nonce: &str) -> String {
    let js = origin(&providers.stripe_js_url);
    let api = origin(&providers.stripe_api_base);
    let mut frames = js.clone();
    if js == "https://js.stripe.com" {
        frames.push_str(" https://hooks.stripe.com");
    }
    let connect = if api == js {
        api
    } else {
        format!("{api} {js}")
    };
    format!(
        "default-src 'self'; img-src 'self' https: data:; style-src 'self' 'unsafe-inline'; \
         script-src 'nonce-{nonce}' {js}; frame-src {frames}; connect-src 'self' {connect}; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// `response` with the payment page's policy.
pub fn with_policy(mut response: Response, providers: &Providers, nonce: &str) -> Response {
    if let Ok(value) = policy(providers, nonce).parse() {
        response
            .headers_mut()
            .insert("content-security-policy", value);
    }
    response
}

/// A URL's origin (`scheme://host[:port]`); an unparsable one (refused by the
/// operator's config before it gets here) allows nothing.
fn origin(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if u.has_host() => u.origin().ascii_serialization(),
        _ => "'none'".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn providers(api: &str, js: &str) -> Providers {
        Providers {
            stripe_api_base: api.into(),
            stripe_js_url: js.into(),
            ..Providers::default()
        }
    }

    #[test]
    fn the_policy_lets_in_exactly_stripe_and_the_pages_own_script() {
        let p = policy(&Providers::default(), "n0nce");
        assert!(
            p.contains("script-src 'nonce-n0nce' https://js.stripe.com;"),
            "{p}"
        );
        assert!(
            p.contains("frame-src https://js.stripe.com https://hooks.stripe.com;"),
            "{p}"
        );
        assert!(
            p.contains("connect-src 'self' https://api.stripe.com https://js.stripe.com;"),
            "{p}"
        );
        // A stand-in serving both the API and the script on one origin.
        let p = policy(
            &providers(
                "http://127.0.0.1:8420",
                "http://127.0.0.1:8420/js.stripe.com/v3/",
            ),
            "n",
        );
        assert!(
            p.contains("script-src 'nonce-n' http://127.0.0.1:8420;"),
            "{p}"
        );
        assert!(p.contains("frame-src http://127.0.0.1:8420;"), "{p}");
        assert!(
            p.contains("connect-src 'self' http://127.0.0.1:8420;"),
            "{p}"
        );
        assert!(!p.contains("unsafe-eval") && !p.contains("script-src 'self' 'unsafe-inline'"));
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce(), nonce());
        assert_eq!(nonce().len(), 24);
    }
}
