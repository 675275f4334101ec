//! The dashboard's developer pages over HTTP, as a browser without JavaScript uses
//! them: an API key made there works against the API until it is revoked; a webhook
//! endpoint made there receives signed events and logs its attempts; a plugin is
//! uploaded, configured and test-run; only owners and developers of the store reach
//! these pages; bad input is answered next to the field. Both databases.

use std::time::Duration;

use kassa_testkit::{Backend, on_both_backends};
use serde_json::json;

use crate::dashboard::{
    error, link_in, merchant, merchant_without_store, offer_bank_transfer, path_of,
    pool_and_product,
};
use crate::emails::Sink;
use crate::harness::{Options, TestApp};
use crate::pages::{Browser, Page, details};
use crate::plugins::component;
use crate::webhooks::Receiver;

on_both_backends!(
    an_api_key_made_in_the_dashboard_works_until_revoked,
    a_webhook_endpoint_made_in_the_dashboard_gets_signed_events,
    a_plugin_is_uploaded_configured_and_test_run_in_the_dashboard,
    developer_pages_belong_to_owners_and_developers_of_the_store,
    bad_developer_input_is_answered_next_to_the_field,
    the_dashboard_shows_one_world_at_a_time,
    a_test_product_is_copied_to_live_mode_by_an_owner,
    the_dashboard_never_acts_on_the_other_worlds_orders_and_pools,
    an_open_order_list_does_not_hold_a_restart,
);

/// The value of the hidden form field `name`.
fn hidden(page: &Page, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name}: {}", page.html))
        + marker.len();
    page.html[start..].split('"').next().unwrap().to_owned()
}

/// The value of the read-only field `id` (a key or a secret shown once).
fn shown(page: &Page, id: &str) -> String {
    let marker = format!("id=\"{id}\" readonly value=\"");
    let start = page
        .html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {id}: {}", page.html))
        + marker.len();
    page.html[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&#x2f;", "/")
        .replace("&#x3d;", "=")
        .replace("&#x2b;", "+")
        .replace("&amp;", "&")
}

/// The first path in the page that starts with `prefix` (a link or a form action).
fn path_in(page: &Page, prefix: &str) -> String {
    let start = page
        .html
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {}", page.html));
    page.html[start..]
        .split(['"', '?', '#'])
        .next()
        .unwrap()
        .to_owned()
}

/// Where a form post sent the browser, without the notice.
fn redirected_to(page: &Page) -> String {
    let location = page
        .location
        .clone()
        .unwrap_or_else(|| panic!("{} {}", page.status, page.html));
    location.split('?').next().unwrap().to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wasm_form(csrf: &str, file_name: &str, bytes: Vec<u8>) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("csrf", csrf.to_owned())
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned()),
        )
}

/// A Kassa sending mail to a sink, and Ada signed up (the sink's first mail) with her
/// store `ada`.
async fn ada_signed_up(backend: Backend) -> (Sink, TestApp, Browser) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    let ada = merchant(&app, &sink, 1, "ada@shop.test", "ada").await;
    offer_bank_transfer(&ada).await;
    (sink, app, ada)
}

/// Creates an API key in the dashboard; returns the key and its revoke page's path.
async fn api_key(b: &Browser, name: &str) -> (String, String) {
    let keys = b.get("/dashboard/api-keys").await;
    let created = b
        .post(
            "/dashboard/api-keys",
            &[("csrf", &keys.csrf()), ("name", name)],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.html);
    let secret = shown(&created, "new-key");
    (secret, path_in(&created, "/dashboard/api-keys/key_"))
}

/// Adds a webhook endpoint in the dashboard; returns its page's path.
async fn endpoint(b: &Browser, url: &str, types: &[&str]) -> String {
    let list = b.get("/dashboard/webhooks").await;
    let csrf = list.csrf();
    let mut form = vec![("csrf", csrf.as_str()), ("url", url)];
    form.extend(types.iter().map(|t| ("event_types", *t)));
    let created = b.post("/dashboard/webhooks", &form).await;
    assert_eq!(created.status, 303, "{}", created.html);
    redirected_to(&created)
}

/// Uploads a plugin in the dashboard; returns its page's path.
async fn plugin(b: &Browser, name: &str, file: &str) -> String {
    let list = b.get("/dashboard/plugins").await;
    let form = wasm_form(&list.csrf(), &format!("{file}.wasm"), component(file))
        .text("name", name.to_owned());
    let created = b.post_multipart("/dashboard/plugins", form).await;
    assert_eq!(created.status, 303, "{}", created.html);
    redirected_to(&created)
}

/// `owner` invites `email` with `role`; they sign up and accept. The invitation is
/// the `nth` mail of the sink, the new member's verification the next one.
async fn teammate(
    app: &TestApp,
    sink: &Sink,
    owner: &Browser,
    email: &str,
    role: &str,
    nth: usize,
) -> Browser {
    let team = owner.get("/dashboard/team").await;
    let invited = owner
        .post(
            "/dashboard/team",
            &[("csrf", &team.csrf()), ("email", email), ("role", role)],
        )
        .await;
    assert_eq!(invited.status, 303, "{}", invited.html);
    let mails = sink.wait_for(nth).await;
    let link = path_of(
        app,
        &link_in(
            &mails[nth - 1],
            &format!("{}/dashboard/invitations?token=", app.base),
        ),
    );
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let member = merchant_without_store(app, sink, nth + 1, email).await;
    let page = member.get(&link).await;
    let joined = member
        .post(
            "/dashboard/invitations",
            &[("csrf", &page.csrf()), ("token", &token)],
        )
        .await;
    assert_eq!(joined.status, 303, "{}", joined.html);
    member
}

async fn an_api_key_made_in_the_dashboard_works_until_revoked(backend: Backend) {
    let (_sink, app, ada) = ada_signed_up(backend).await;
    let keys = ada.get("/dashboard/api-keys").await;
    assert_eq!(keys.status, 200);
    assert!(keys.html.contains("No API keys yet"), "{}", keys.html);

    // The key is on the page answering the form, not behind a redirect.
    let created = ada
        .post(
            "/dashboard/api-keys",
            &[("csrf", &keys.csrf()), ("name", "Storefront")],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.html);
    assert!(created.location.is_none());
    assert!(created.html.contains("it will not be shown again"));
    assert!(created.html.contains(">Copy key</button>"));
    let secret = shown(&created, "new-key");
    assert!(secret.starts_with("kassa_sk_"), "{secret}");

    // It works against the API, in Ada's store.
    let pool = app
        .post_as(&secret, "/api/v1/license-pools", json!({"name": "By API"}))
        .await;
    pool.ok();
    assert!(
        ada.get("/dashboard/pools").await.html.contains("By API"),
        "the key belongs to Ada's store"
    );
    app.get_as(&secret, "/api/v1/products").await.ok();

    // Listed by its prefix; the whole key is never shown again.
    let listed = ada.get("/dashboard/api-keys").await;
    assert!(listed.html.contains("Storefront"));
    assert!(
        listed
            .html
            .contains(&format!("<code>{}…</code>", &secret[..20]))
    );
    assert!(!listed.html.contains(&secret));

    // Revoked after a confirmation, it stops working at once.
    let confirm_path = path_in(&listed, "/dashboard/api-keys/key_");
    let confirm = ada.get(&confirm_path).await;
    assert!(
        confirm.html.contains("Revoke the key “Storefront”?"),
        "{}",
        confirm.html
    );
    assert!(confirm.html.contains(">Revoke the key</button>"));
    let revoked = ada.post(&confirm_path, &[("csrf", &confirm.csrf())]).await;
    assert_eq!(revoked.status, 303, "{}", revoked.html);
    app.get_as(&secret, "/api/v1/products").await.problem(401);
    let listed = ada.open(&revoked.location.unwrap()).await;
    assert!(
        listed.html.contains("The key is revoked"),
        "{}",
        listed.html
    );
    assert!(listed.html.contains("badge bad\">revoked"));
    assert!(
        !listed.html.contains(&format!("{confirm_path}\"")),
        "no second revoke"
    );
}

async fn a_webhook_endpoint_made_in_the_dashboard_gets_signed_events(backend: Backend) {
    let (_sink, app, ada) = ada_signed_up(backend).await;
    let (_, product) = pool_and_product(&ada, "ADA-1\nADA-2\n").await;
    let start = product.html.find("<code>prd_").unwrap() + 6;
    let product_id = product.html[start..].split('<').next().unwrap().to_owned();

    // The receiver needs the secret and the endpoint its URL: the URL's port is
    // chosen first, the receiver started on it once the secret is revealed.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hooks/kassa");
    let path = endpoint(&ada, &url, &["order.created", "payment.succeeded"]).await;
    assert!(path.starts_with("/dashboard/webhooks/ep_"), "{path}");
    let page = ada.get(&path).await;
    assert!(page.html.contains("order.created, payment.succeeded"));
    assert!(page.html.contains("Nothing sent to this endpoint yet"));
    assert!(
        !page.html.contains("whsec_"),
        "the secret is shown when asked for"
    );
    let listed = ada.get("/dashboard/webhooks").await;
    assert!(listed.html.contains(&format!("href=\"{path}\"")));

    let revealed = ada
        .post(&format!("{path}/secret"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(revealed.status, 200, "{}", revealed.html);
    let secret = shown(&revealed, "secret");
    assert!(secret.starts_with("whsec_"), "{secret}");
    let receiver = Receiver::start_with(&secret, "", 0.0, &["--port", &port.to_string()]);

    // A customer orders: the endpoint gets order.created, signed.
    let customer = Browser::new(&app);
    let checkout = customer.open(&format!("/ada/test/buy/{product_id}")).await;
    let placed = customer
        .submit(
            &checkout,
            "/ada/test/checkout",
            &details(&checkout.csrf(), "test_card"),
        )
        .await;
    assert_eq!(placed.status, 303, "{}", placed.html);
    let got = receiver.wait_for(1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["verified"], true, "{got:?}");
    assert_eq!(got[0]["type"], "order.created");
    let event_id = got[0]["event"]["id"].as_str().unwrap().to_owned();

    // Its attempt is in the endpoint's log.
    let mut log = ada.get(&path).await;
    for _ in 0..100 {
        if log.html.contains("HTTP 200") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        log = ada.get(&path).await;
    }
    assert!(log.html.contains("HTTP 200"), "{}", log.html);
    assert!(log.html.contains("answer 200 to request 0"));
    assert!(log.html.contains(&event_id));
    assert!(log.html.contains("badge good\">succeeded"));
    assert!(log.html.contains(" ms</td>"));

    // A rotated secret is shown at once; the old one keeps signing, so the receiver
    // still verifies the event sent again, now with two signatures.
    let rotation = [
        ("csrf", log.csrf()),
        ("secret_version", hidden(&log, "secret_version")),
    ];
    let rotation: Vec<(&str, &str)> = rotation.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let rotated = ada.post(&format!("{path}/rotate"), &rotation).await;
    assert_eq!(rotated.status, 200, "{}", rotated.html);
    let new_secret = shown(&rotated, "secret");
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    assert!(
        rotated
            .html
            .contains("The previous one keeps signing too until")
    );
    // The same form sent again (the browser's reload of that answer) rotates nothing
    // more: it once replaced the secret the receiver still used (found by a tester).
    let reloaded = ada.post(&format!("{path}/rotate"), &rotation).await;
    assert_eq!(reloaded.status, 200, "{}", reloaded.html);
    assert_eq!(shown(&reloaded, "secret"), new_secret);
    assert!(reloaded.html.contains("This secret was rotated already"));
    let again = ada
        .post(
            &format!("{path}/redeliver"),
            &[("csrf", &rotated.csrf()), ("event_id", &event_id)],
        )
        .await;
    assert_eq!(again.status, 303, "{}", again.html);
    let got = receiver.wait_for(2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["verified"], true);
    assert_eq!(got[1]["signatures"], 2);
    assert_eq!(got[1]["webhook_id"], got[0]["webhook_id"]);

    // Turned off, it says so.
    let off = ada
        .post(
            &format!("{path}/state"),
            &[("csrf", &rotated.csrf()), ("state", "disabled")],
        )
        .await;
    let page = ada.open(&off.location.unwrap()).await;
    assert!(page.html.contains("Endpoint turned off"), "{}", page.html);
    assert!(page.html.contains("Turn the endpoint on"));

    // Changed: a URL Kassa cannot send to is refused beside the field, what was typed
    // stays; a good change is saved, and the endpoint stays off.
    let bad = ada
        .post(
            &format!("{path}/edit"),
            &[
                ("csrf", &page.csrf()),
                ("url", "ftp://example.com/x"),
                ("description", "CRM"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.html);
    assert!(
        crate::dashboard::error(&bad, "url").is_some(),
        "{}",
        bad.html
    );
    assert!(bad.html.contains("value=\"CRM\""));
    let changed = ada
        .post(
            &format!("{path}/edit"),
            &[
                ("csrf", &page.csrf()),
                ("url", &url),
                ("description", "CRM"),
                ("event_types", "order.created"),
            ],
        )
        .await;
    assert_eq!(changed.status, 303, "{}", changed.html);
    let page = ada.open(&changed.location.unwrap()).await;
    assert!(page.html.contains("Endpoint changed"), "{}", page.html);
    assert!(page.html.contains("<dd>CRM</dd>"));
    assert!(
        page.html.contains("<dd>order.created</dd>"),
        "{}",
        page.html
    );
    assert!(page.html.contains("Turn the endpoint on"), "still off");

    // Deleted, it is gone from the list and its page.
    let deleted = ada
        .post(&format!("{path}/delete"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.html);
    let list = ada.open(&deleted.location.unwrap()).await;
    assert!(
        list.html.contains("deleted: no more events are sent to it"),
        "{}",
        list.html
    );
    assert!(!list.html.contains(&format!("href=\"{path}\"")));
    assert_eq!(ada.get(&path).await.status, 404);
}

async fn a_plugin_is_uploaded_configured_and_test_run_in_the_dashboard(backend: Backend) {
    let (_sink, _app, ada) = ada_signed_up(backend).await;
    let list = ada.get("/dashboard/plugins").await;
    assert!(list.html.contains("No plugins yet"), "{}", list.html);
    assert!(
        list.html
            .contains("enctype=\"multipart/form-data\" data-upload")
    );

    let path = plugin(&ada, "Keygen", "kassa_keygen").await;
    assert!(path.starts_with("/dashboard/plugins/plg_"), "{path}");
    let page = ada.get(&path).await;
    assert!(page.html.contains("version 1 is live"), "{}", page.html);
    assert!(page.html.contains("<h1>Keygen</h1>"));

    // Config and a secret: the secret's name is shown, never its value.
    let saved = ada
        .post(
            &format!("{path}/config"),
            &[
                ("csrf", &page.csrf()),
                ("config[0].key", "prefix"),
                ("config[0].value", "ACME"),
                ("config[1].key", ""),
                ("config[1].value", ""),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let secret = ada
        .post(
            &format!("{path}/secrets"),
            &[
                ("csrf", &page.csrf()),
                ("secret_name", "signing-key"),
                ("secret_value", "s3cret-value"),
            ],
        )
        .await;
    assert_eq!(secret.status, 303, "{}", secret.html);
    let page = ada.open(&secret.location.unwrap()).await;
    assert!(page.html.contains("Secret signing-key saved"));
    assert!(page.html.contains("<code>signing-key</code>"));
    assert!(page.html.contains("value=\"ACME\""));
    assert!(
        !page.html.contains("s3cret-value"),
        "secret values are never shown"
    );

    // A test run shows the keys, the logs, the time and no limit hit.
    let run = ada
        .post(
            &format!("{path}/test-run"),
            &[("csrf", &page.csrf()), ("quantity", "2")],
        )
        .await;
    assert_eq!(run.status, 200, "{}", run.html);
    assert!(run.html.contains("delivered 2 licenses"), "{}", run.html);
    assert_eq!(
        run.html.matches("<li><code>ACME-").count(),
        2,
        "{}",
        run.html
    );
    assert!(run.html.contains("<h3>Logs</h3>\n<ol><li><code>"));
    assert!(run.html.contains(" ms</dd>"));
    assert!(run.html.contains("<dt>Limit hit</dt><dd>none</dd>"));

    // A new version goes live; what was set carries over.
    let new = ada
        .post_multipart(
            &format!("{path}/versions"),
            wasm_form(&page.csrf(), "keygen.wasm", component("kassa_keygen")),
        )
        .await;
    assert_eq!(new.status, 303, "{}", new.html);
    let page = ada.open(&new.location.unwrap()).await;
    assert!(page.html.contains("Version 2 uploaded"), "{}", page.html);
    assert!(page.html.contains("version 2 is live"));
    assert_eq!(page.html.matches("badge good\">live").count(), 1);
    assert!(page.html.contains("value=\"ACME\""));
    // Version 1 delivered nothing yet, so version 2 has nothing to fall back to.
    assert!(
        !page.html.contains("Version 2 is on trial until"),
        "{}",
        page.html
    );
    assert!(page.html.contains("<td>on trial</td>"), "{}", page.html);

    // A rollback: version 1 made live again with its button.
    let back = ada
        .post(
            &format!("{path}/versions/1/live"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(back.status, 303, "{}", back.html);
    let page = ada.open(&back.location.unwrap()).await;
    assert!(
        page.html.contains("Version 1 runs from now on, on trial"),
        "{}",
        page.html
    );
    assert!(page.html.contains("version 1 is live"));
    assert!(page.html.contains("Make version 2 live</button>"));
    let nothing = ada
        .post(
            &format!("{path}/versions/7/live"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(nothing.status, 404);

    let hosts = ada
        .post(
            &format!("{path}/hosts"),
            &[
                ("csrf", &page.csrf()),
                (
                    "allowed_hosts",
                    "licenses.example.com\r\n API.Example.com \r\n",
                ),
            ],
        )
        .await;
    let page = ada.open(&hosts.location.unwrap()).await;
    assert!(
        page.html
            .contains("licenses.example.com\napi.example.com</textarea>"),
        "{}",
        page.html
    );
    let listed = ada.get("/dashboard/plugins").await;
    assert!(
        listed.html.contains(&format!(
            "<a href=\"{path}\">Keygen</a></td><td class=\"num\">1</td>"
        )),
        "{}",
        listed.html
    );

    // A plugin that computes without end: the run says which limit stopped it.
    let hostile = plugin(&ada, "Hostile", "kassa_hostile").await;
    let page = ada.get(&hostile).await;
    ada.post(
        &format!("{hostile}/config"),
        &[
            ("csrf", &page.csrf()),
            ("config[0].key", "mode"),
            ("config[0].value", "loop"),
        ],
    )
    .await;
    let run = ada
        .post(
            &format!("{hostile}/test-run"),
            &[("csrf", &page.csrf()), ("quantity", "1")],
        )
        .await;
    assert_eq!(run.status, 200, "{}", run.html);
    assert!(run.html.contains("badge bad\">failed"), "{}", run.html);
    assert!(
        run.html
            .contains("<dt>Limit hit</dt><dd><span class=\"badge bad\">fuel")
            || run
                .html
                .contains("<dt>Limit hit</dt><dd><span class=\"badge bad\">time"),
        "{}",
        run.html
    );
}

async fn developer_pages_belong_to_owners_and_developers_of_the_store(backend: Backend) {
    let (sink, app, ada) = ada_signed_up(backend).await;
    let (key, revoke_path) = api_key(&ada, "CI").await;
    let endpoint_path = endpoint(&ada, "https://hooks.example.com/kassa", &[]).await;
    let plugin_path = plugin(&ada, "Keygen", "kassa_keygen").await;
    let pages = [
        "/dashboard/api-keys".to_owned(),
        revoke_path.clone(),
        "/dashboard/webhooks".to_owned(),
        endpoint_path.clone(),
        "/dashboard/plugins".to_owned(),
        plugin_path.clone(),
    ];

    // A developer works with them.
    let dev = teammate(&app, &sink, &ada, "dev@shop.test", "developer", 2).await;
    for path in &pages {
        assert_eq!(dev.get(path).await.status, 200, "{path}");
    }
    let home = dev.get("/dashboard").await;
    assert!(home.html.contains(">Plugins</a>") && home.html.contains(">Webhooks</a>"));
    let revealed = dev
        .post(
            &format!("{endpoint_path}/secret"),
            &[("csrf", &home.csrf())],
        )
        .await;
    assert!(shown(&revealed, "secret").starts_with("whsec_"));

    // Support does not: neither the pages nor the forms, nor the menu entries.
    let sam = teammate(&app, &sink, &ada, "sam@shop.test", "support", 4).await;
    for path in &pages {
        let seen = sam.get(path).await;
        assert_eq!(seen.status, 403, "{path}");
        assert!(seen.html.contains("does not allow this"));
    }
    let home = sam.get("/dashboard").await;
    for entry in [">API keys</a>", ">Webhooks</a>", ">Plugins</a>"] {
        assert!(!home.html.contains(entry), "{entry}");
    }
    let csrf = home.csrf();
    for (path, form) in [
        ("/dashboard/api-keys".to_owned(), vec![("name", "Sneaky")]),
        (revoke_path.clone(), vec![]),
        (format!("{endpoint_path}/secret"), vec![]),
        (format!("{endpoint_path}/rotate"), vec![]),
        (
            "/dashboard/webhooks".to_owned(),
            vec![("url", "https://evil.example/hook")],
        ),
        (format!("{plugin_path}/test-run"), vec![("quantity", "1")]),
        (
            format!("{plugin_path}/secrets"),
            vec![("secret_name", "x"), ("secret_value", "y")],
        ),
    ] {
        let mut form = form;
        form.push(("csrf", csrf.as_str()));
        let refused = sam.post(&path, &form).await;
        assert_eq!(refused.status, 403, "{path}: {}", refused.html);
        assert!(!refused.html.contains("whsec_"));
    }
    let upload = sam
        .post_multipart(
            "/dashboard/plugins",
            wasm_form(&csrf, "k.wasm", component("kassa_keygen")),
        )
        .await;
    assert_eq!(upload.status, 403);

    // Another store's owner gets 404s, whatever the URL says.
    let mallory = merchant(&app, &sink, 6, "mallory@evil.test", "mallory").await;
    for path in [&revoke_path, &endpoint_path, &plugin_path] {
        let seen = mallory.get(path).await;
        assert_eq!(seen.status, 404, "{path}: {}", seen.html);
        assert!(!seen.html.contains("hooks.example.com") && !seen.html.contains("Keygen"));
    }
    let csrf = mallory.get("/dashboard").await.csrf();
    for (path, form) in [
        (revoke_path.clone(), vec![]),
        (format!("{endpoint_path}/secret"), vec![]),
        (format!("{endpoint_path}/rotate"), vec![]),
        (
            format!("{endpoint_path}/state"),
            vec![("state", "disabled")],
        ),
        (
            format!("{endpoint_path}/redeliver"),
            vec![("event_id", "evt_x")],
        ),
        (format!("{plugin_path}/test-run"), vec![("quantity", "1")]),
        (
            format!("{plugin_path}/config"),
            vec![("config[0].key", "prefix"), ("config[0].value", "EVIL")],
        ),
        (
            format!("{plugin_path}/hosts"),
            vec![("allowed_hosts", "evil.example")],
        ),
        (
            format!("{plugin_path}/secrets"),
            vec![("secret_name", "signing-key"), ("secret_value", "evil")],
        ),
    ] {
        let mut form = form;
        form.push(("csrf", csrf.as_str()));
        let refused = mallory.post(&path, &form).await;
        assert_eq!(refused.status, 404, "{path}: {}", refused.html);
        assert!(!refused.html.contains("whsec_"));
    }
    let rollback = mallory
        .post(
            &format!("{plugin_path}/versions/1/live"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(rollback.status, 404, "{}", rollback.html);
    let upload = mallory
        .post_multipart(
            &format!("{plugin_path}/versions"),
            wasm_form(&csrf, "k.wasm", component("kassa_keygen")),
        )
        .await;
    assert_eq!(upload.status, 404);
    // Ada's things are untouched.
    app.get_as(&key, "/api/v1/products").await.ok();
    let page = ada.get(&plugin_path).await;
    assert!(page.html.contains("version 1 is live") && !page.html.contains("EVIL"));
    assert!(!page.html.contains("evil.example"));
    assert!(
        ada.get(&endpoint_path)
            .await
            .html
            .contains("badge good\">on")
    );
}

async fn bad_developer_input_is_answered_next_to_the_field(backend: Backend) {
    let sink = Sink::start(None);
    // As in production: outgoing requests may not reach private addresses.
    let app = TestApp::spawn_with(
        backend,
        Options {
            smtp_url: Some(sink.url()),
            allow_private_network: false,
            // Small enough that the test sends a component over it.
            max_component_bytes: 2 * 1024 * 1024,
            ..Options::default()
        },
    )
    .await;
    let ada = merchant(&app, &sink, 1, "ada@shop.test", "ada").await;

    let keys = ada.get("/dashboard/api-keys").await;
    let unnamed = ada
        .post(
            "/dashboard/api-keys",
            &[("csrf", &keys.csrf()), ("name", " ")],
        )
        .await;
    assert_eq!(unnamed.status, 422);
    assert_eq!(
        error(&unnamed, "name").as_deref(),
        Some("must not be empty")
    );

    let hooks = ada.get("/dashboard/webhooks").await;
    let csrf = hooks.csrf();
    let add = |url: &'static str, event: &'static str| {
        let (ada, csrf) = (&ada, csrf.clone());
        async move {
            ada.post(
                "/dashboard/webhooks",
                &[
                    ("csrf", csrf.as_str()),
                    ("url", url),
                    ("description", "Typed by hand"),
                    ("event_types", event),
                ],
            )
            .await
        }
    };
    let bad_url = add("not a url", "order.created").await;
    assert_eq!(bad_url.status, 422);
    assert!(error(&bad_url, "url").unwrap().contains("not a valid URL"));
    assert!(
        bad_url.html.contains("value=\"Typed by hand\""),
        "what was typed is kept"
    );
    for private in [
        "http://127.0.0.1:8080/hook",
        "http://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "http://10.0.0.7/hook",
    ] {
        let refused = add(private, "order.created").await;
        assert_eq!(refused.status, 422, "{private}");
        assert!(
            error(&refused, "url").unwrap().contains("not allowed"),
            "{private}: {}",
            refused.html
        );
    }
    let bad_type = add("https://hooks.example.com/k", "order.paid").await;
    assert!(
        error(&bad_type, "event_types")
            .unwrap()
            .contains("not an event type")
    );
    assert!(
        ada.get("/dashboard/webhooks")
            .await
            .html
            .contains("No webhook endpoints yet"),
        "nothing was saved"
    );
    // The API refuses the same addresses.
    let api = app
        .post(
            "/api/v1/webhook-endpoints",
            json!({"url": "http://169.254.169.254/latest"}),
        )
        .await;
    assert_eq!(api.invalid_fields(), ["url"]);

    let plugins = ada.get("/dashboard/plugins").await;
    let csrf = plugins.csrf();
    let none = ada
        .post_multipart(
            "/dashboard/plugins",
            reqwest::multipart::Form::new()
                .text("csrf", csrf.clone())
                .text("name", "Empty"),
        )
        .await;
    assert_eq!(none.status, 422);
    assert!(
        error(&none, "file")
            .unwrap()
            .contains("Choose a plugin file")
    );
    assert!(none.html.contains("value=\"Empty\""));
    let text = ada
        .post_multipart(
            "/dashboard/plugins",
            wasm_form(
                &csrf,
                "notes.wasm",
                b"these are not WebAssembly bytes".to_vec(),
            ),
        )
        .await;
    assert_eq!(text.status, 422);
    assert!(
        error(&text, "file")
            .unwrap()
            .contains("not a plugin Kassa can run: not a WebAssembly file"),
        "{}",
        text.html
    );
    // Larger than the server reads: a page that says so, and the way back.
    let big = ada
        .post_multipart(
            "/dashboard/plugins",
            wasm_form(&csrf, "big.wasm", vec![0u8; 3 * 1024 * 1024]),
        )
        .await;
    assert_eq!(big.status, 413);
    assert!(big.html.contains("The file is too large"), "{}", big.html);
    assert!(big.html.contains("at most 2 MiB"));
    assert!(
        ada.get("/dashboard/plugins")
            .await
            .html
            .contains("No plugins yet"),
        "nothing was stored"
    );

    let path = plugin(&ada, "Keygen", "kassa_keygen").await;
    let page = ada.get(&path).await;
    let csrf = page.csrf();
    let hosts = ada
        .post(
            &format!("{path}/hosts"),
            &[
                ("csrf", &csrf),
                ("allowed_hosts", "ok.example.com\nhttps://x.example/"),
            ],
        )
        .await;
    assert_eq!(hosts.status, 422);
    assert!(
        error(&hosts, "allowed_hosts")
            .unwrap()
            .contains("must be a host name"),
        "{}",
        hosts.html
    );
    let config = ada
        .post(
            &format!("{path}/config"),
            &[
                ("csrf", &csrf),
                ("config[0].key", "two words"),
                ("config[0].value", "x"),
                ("config[1].key", ""),
                ("config[1].value", "orphan"),
            ],
        )
        .await;
    assert_eq!(config.status, 422);
    assert!(error(&config, "config[0].key").unwrap().contains("spaces"));
    assert!(error(&config, "config[1].key").unwrap().contains("name"));
    assert!(
        config.html.contains("value=\"orphan\""),
        "what was typed is kept"
    );
    let secret = ada
        .post(
            &format!("{path}/secrets"),
            &[
                ("csrf", &csrf),
                ("secret_name", "token"),
                ("secret_value", ""),
            ],
        )
        .await;
    assert_eq!(secret.status, 422);
    assert!(error(&secret, "secret_value").is_some());
    let run = ada
        .post(
            &format!("{path}/test-run"),
            &[("csrf", &csrf), ("quantity", "0")],
        )
        .await;
    assert_eq!(run.status, 422);
    assert!(error(&run, "quantity").unwrap().contains("between 1 and"));
    // A forged form changes nothing.
    let forged = ada
        .post(
            &format!("{path}/config"),
            &[
                ("csrf", "forged"),
                ("config[0].key", "prefix"),
                ("config[0].value", "FORGED"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(!ada.get(&path).await.html.contains("FORGED"));
}

/// The test/live switch: API keys, products and coupons are listed in their own mode
/// only, the product form offers only the pools of the dashboard's mode, and the home
/// page sums up the dashboard's mode only (sales, pools running low, endpoints failing).
async fn the_dashboard_shows_one_world_at_a_time(backend: Backend) {
    let (_sink, app, ada) = ada_signed_up(backend).await;
    let (test_secret, _) = api_key(&ada, "Test shop").await;
    assert!(
        test_secret.starts_with("kassa_sk_test_"),
        "a new session is in test mode"
    );
    let pools = ada.get("/dashboard/pools").await;
    ada.post(
        "/dashboard/pools",
        &[
            ("csrf", &pools.csrf()),
            ("name", "Test keys"),
            ("low_stock_threshold", "1"),
        ],
    )
    .await;

    let test_hook = endpoint(&ada, "https://hooks.example.com/test", &[]).await;

    let home = ada.get("/dashboard").await;
    let switched = ada
        .post(
            "/dashboard/mode",
            &[("csrf", &home.csrf()), ("mode", "live")],
        )
        .await;
    assert_eq!(switched.status, 303);
    // Webhook endpoints: the test mode one is not listed nor found in live mode, and
    // one made here is a live one.
    let hooks = ada.get("/dashboard/webhooks").await;
    assert!(!hooks.html.contains(&test_hook), "{}", hooks.html);
    assert_eq!(ada.get(&test_hook).await.status, 404);
    let live_hook = endpoint(&ada, "https://hooks.example.com/live", &[]).await;
    let keys = ada.get("/dashboard/api-keys").await;
    assert!(keys.html.contains("Live mode"), "{}", keys.html);
    assert!(
        !keys.html.contains("Test shop"),
        "a test key is not listed in live mode"
    );
    let (live_secret, _) = api_key(&ada, "Live shop").await;
    assert!(live_secret.starts_with("kassa_sk_live_"));
    let keys = ada.get("/dashboard/api-keys").await;
    assert!(keys.html.contains("Live shop") && !keys.html.contains("Test shop"));
    let pools = ada.get("/dashboard/pools").await;
    ada.post(
        "/dashboard/pools",
        &[
            ("csrf", &pools.csrf()),
            ("name", "Live keys"),
            ("low_stock_threshold", "1"),
        ],
    )
    .await;

    let form = ada.get("/dashboard/products/new").await;
    assert!(form.html.contains("Live keys (0 keys)"), "{}", form.html);
    assert!(
        !form.html.contains("Test keys"),
        "a live product takes live keys"
    );
    let made = ada
        .post(
            "/dashboard/products/new",
            &[
                ("csrf", &form.csrf()),
                ("name", "Live Pro"),
                ("prices[0].amount", "19.99"),
                ("prices[0].currency", "USD"),
                ("delivery.method", "web_service"),
                ("delivery.url", "https://keys.example.com/issue"),
            ],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.html);
    let live_product = redirected_to(&made);
    let product = ada.get(&live_product).await;
    let shown = crate::pages::unescape(&product.html);
    assert!(shown.contains("/ada/buy/prd_"), "a live buy link: {shown}");
    let coupons = ada.get("/dashboard/coupons").await;
    let coupon = ada
        .post(
            "/dashboard/coupons",
            &[
                ("csrf", &coupons.csrf()),
                ("code", "LIVEDASH"),
                ("kind", "percent"),
                ("percent_off", "10"),
            ],
        )
        .await;
    assert_eq!(coupon.status, 303, "{}", coupon.html);
    assert!(
        ada.get("/dashboard/coupons")
            .await
            .html
            .contains("LIVEDASH")
    );

    let home = ada.get("/dashboard").await;
    ada.post(
        "/dashboard/mode",
        &[("csrf", &home.csrf()), ("mode", "test")],
    )
    .await;
    let keys = ada.get("/dashboard/api-keys").await;
    assert!(keys.html.contains("Test shop") && !keys.html.contains("Live shop"));
    let hooks = ada.get("/dashboard/webhooks").await;
    assert!(hooks.html.contains(&format!("href=\"{test_hook}\"")));
    assert!(!hooks.html.contains(&live_hook), "{}", hooks.html);
    assert_eq!(ada.get(&live_hook).await.status, 404);
    // The live product and coupon are not the test world's.
    assert_eq!(ada.get(&live_product).await.status, 404);
    assert!(
        !ada.get("/dashboard/products")
            .await
            .html
            .contains("Live Pro")
    );
    assert!(
        !ada.get("/dashboard/coupons")
            .await
            .html
            .contains("LIVEDASH")
    );
    let links = ada.get("/dashboard/checkout-links").await;
    assert!(!links.html.contains("Live Pro"), "{}", links.html);

    // Home: a live sale, and the test endpoint disabled. Each mode's home shows its own.
    let product = app
        .post_as(
            &live_secret,
            "/api/v1/products",
            json!({"name": "Live thing", "prices": [{"currency": "USD", "amount": 4321}],
                   "delivery": {"method": "web_service", "url": "https://licenses.example.com/"}}),
        )
        .await;
    let product = product.ok()["id"].as_str().unwrap().to_owned();
    let order = app.transfer_order_as(&live_secret, &product).await;
    app.post_as(
        &live_secret,
        &format!("/api/v1/orders/{order}/payments"),
        json!({"method": "bank_transfer", "amount": 4321, "currency": "USD"}),
    )
    .await
    .ok();
    let test_hook_id = test_hook.rsplit('/').next().unwrap();
    app.patch_as(
        &test_secret,
        &format!("/api/v1/webhook-endpoints/{test_hook_id}"),
        json!({"disabled": true}),
    )
    .await
    .ok();
    let home = ada.get("/dashboard").await;
    assert!(
        home.html.contains("No paid orders yet today"),
        "{}",
        home.html
    );
    assert!(!home.html.contains("43.21 USD"));
    assert!(home.html.contains("Test keys</a> is running low"));
    assert!(!home.html.contains("Live keys"), "{}", home.html);
    assert!(
        home.html
            .contains("hooks.example.com&#x2f;test</code></a> is disabled")
    );
    ada.post(
        "/dashboard/mode",
        &[("csrf", &home.csrf()), ("mode", "live")],
    )
    .await;
    let home = ada.get("/dashboard").await;
    assert!(home.html.contains("43.21 USD"), "{}", home.html);
    assert!(home.html.contains("Live keys</a> is running low"));
    assert!(!home.html.contains("Test keys"), "{}", home.html);
    assert!(!home.html.contains("is disabled"), "{}", home.html);
}

/// A pool of the dashboard's mode, made on the pools page; its id.
async fn dashboard_pool(b: &Browser, name: &str) -> String {
    let pools = b.get("/dashboard/pools").await;
    let made = b
        .post(
            "/dashboard/pools",
            &[
                ("csrf", &pools.csrf()),
                ("name", name),
                ("low_stock_threshold", "1"),
            ],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.html);
    redirected_to(&made).rsplit('/').next().unwrap().to_owned()
}

/// The new-product form of "Pro" (19.99 USD, 1500 JPY) from `pool`.
fn pro_form<'a>(csrf: &'a str, pool: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("name", "Pro"),
        ("description", "A year of updates"),
        ("prices[0].amount", "19.99"),
        ("prices[0].currency", "USD"),
        ("prices[1].amount", "1500"),
        ("prices[1].currency", "JPY"),
        ("delivery.method", "license_pool"),
        ("delivery.pool_id", pool),
    ]
}

/// "Copy to live mode" on a test product opens live mode's new-product form with its
/// name, description and prices, offering only live pools; the owner picks one and
/// gets a live product, the test one unchanged. Forged or by a developer: refused.
async fn a_test_product_is_copied_to_live_mode_by_an_owner(backend: Backend) {
    let (sink, app, ada) = ada_signed_up(backend).await;
    let test_pool = dashboard_pool(&ada, "Test keys").await;
    let form = ada.get("/dashboard/products/new").await;
    let made = ada
        .post(
            "/dashboard/products/new",
            &pro_form(&form.csrf(), &test_pool),
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.html);
    let test_product = redirected_to(&made);
    let page = ada.get(&test_product).await;
    assert!(page.html.contains("Copy to live mode"), "{}", page.html);
    let copy = format!("{test_product}/copy-to-live");
    let forged = ada.post(&copy, &[("csrf", "forged")]).await;
    assert_eq!(forged.status, 403);

    let copied = ada.post(&copy, &[("csrf", &page.csrf())]).await;
    assert_eq!(copied.status, 200, "{}", copied.html);
    for shown in [
        "value=\"Pro\"",
        "A year of updates",
        "value=\"19.99\"",
        "value=\"USD\"",
        "value=\"1500\"",
        "value=\"JPY\"",
        "Copied from the test mode product",
    ] {
        assert!(copied.html.contains(shown), "{shown}: {}", copied.html);
    }
    assert!(
        !copied.html.contains("Test keys"),
        "no test pool is offered"
    );
    // The dashboard is in live mode now: a live pool, and the form sent with it.
    let live_pool = dashboard_pool(&ada, "Live keys").await;
    let made = ada
        .post(
            "/dashboard/products/new",
            &pro_form(&copied.csrf(), &live_pool),
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.html);
    let live_product = redirected_to(&made);
    assert_ne!(live_product, test_product);
    let live = crate::pages::unescape(&ada.get(&live_product).await.html);
    assert!(live.contains("/ada/buy/prd_"), "{live}");
    assert!(
        live.contains("19.99 USD") && live.contains("1500 JPY"),
        "{live}"
    );
    assert!(
        !live.contains("Copy to live mode"),
        "a live product has no copy"
    );
    assert_eq!(ada.get(&test_product).await.status, 404, "not in live mode");

    // A developer may edit the catalog but not copy to live mode.
    let dev = teammate(&app, &sink, &ada, "dev@shop.test", "developer", 2).await;
    let page = dev.get(&test_product).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(!page.html.contains("Copy to live mode"));
    let refused = dev.post(&copy, &[("csrf", &page.csrf())]).await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    let live_list = ada.get("/dashboard/products").await;
    assert_eq!(
        live_list.html.matches("/dashboard/products/prd_").count(),
        1
    );
}

/// The attack (a mistake as much as one): in test mode, the live order's and live
/// pool's pages opened from a pasted link, and their forms recorded a bank transfer on
/// the live order (which delivered a live key) or added keys to the live pool. Each
/// mode's dashboard acts on its own world's orders and pools only; the other's are not
/// found, as on the API.
async fn the_dashboard_never_acts_on_the_other_worlds_orders_and_pools(backend: Backend) {
    let (_sink, app, ada) = ada_signed_up(backend).await;
    let (test_secret, _) = api_key(&ada, "Test shop").await;
    let home = ada.get("/dashboard").await;
    ada.post(
        "/dashboard/mode",
        &[("csrf", &home.csrf()), ("mode", "live")],
    )
    .await;
    let (live_secret, _) = api_key(&ada, "Live shop").await;
    let (live_product, live_pool) = crate::modes::product_as(&app, &live_secret).await;
    let order = app.transfer_order_as(&live_secret, &live_product).await;
    let (_, test_pool) = crate::modes::product_as(&app, &test_secret).await;
    let order_path = format!("/dashboard/orders/{order}");
    let live_pool_path = format!("/dashboard/pools/{live_pool}");
    let test_pool_path = format!("/dashboard/pools/{test_pool}");
    assert_eq!(ada.get(&order_path).await.status, 200);
    assert_eq!(ada.get(&live_pool_path).await.status, 200);
    assert_eq!(ada.get(&test_pool_path).await.status, 404);

    let home = ada.get("/dashboard").await;
    ada.post(
        "/dashboard/mode",
        &[("csrf", &home.csrf()), ("mode", "test")],
    )
    .await;
    let csrf = ada.get("/dashboard/orders").await.csrf();
    assert_eq!(ada.get(&order_path).await.status, 404);
    for (action, fields) in [
        ("payments", vec![("amount", "19.99")]),
        ("refunds", vec![("amount", "19.99")]),
        ("resend", vec![]),
        ("lines/1/retry", vec![]),
    ] {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields);
        let answer = ada.post(&format!("{order_path}/{action}"), &form).await;
        assert_eq!(answer.status, 404, "{action}: {}", answer.html);
    }
    let live_order = app
        .get_as(&live_secret, &format!("/api/v1/orders/{order}"))
        .await;
    assert_eq!(live_order.ok()["status"], "not_paid", "{}", live_order.text);
    assert_eq!(live_order.body["payments"], json!([]));

    assert_eq!(ada.get(&live_pool_path).await.status, 404);
    let keys = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"TEST-1\n".to_vec()).file_name("k.txt"),
        );
    let added = ada
        .post_multipart(&format!("{live_pool_path}/keys"), keys)
        .await;
    assert_eq!(added.status, 404, "{}", added.html);
    let pool = app
        .get_as(&live_secret, &format!("/api/v1/license-pools/{live_pool}"))
        .await;
    assert_eq!(pool.ok()["available"], 3, "{}", pool.text);
    assert_eq!(ada.get(&test_pool_path).await.status, 200);
}

/// An order list left open in a browser (its live updates are a stream that never
/// ends) held a restart for the server's whole grace period, 20 s in which the node
/// took no new request. Now the stream ends as soon as the server starts to stop,
/// and the server stops at once. (The 10 s below only tells "at once" from "after the
/// grace period"; it measures nothing.)
async fn an_open_order_list_does_not_hold_a_restart(backend: Backend) {
    let (_sink, mut app, ada) = ada_signed_up(backend).await;
    let live = ada.stream("/dashboard/orders/live").await;
    assert_eq!(live.status(), 200);
    assert!(
        live.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let stopped = tokio::time::timeout(Duration::from_secs(10), async {
        app.stop_serving().await;
        live.bytes().await.ok();
    })
    .await;
    assert!(stopped.is_ok(), "the open stream held the server");
}
