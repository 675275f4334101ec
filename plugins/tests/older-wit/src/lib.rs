//! Built against an older, smaller copy of Kassa's WIT (`wit/`: the host gives only
//! `log`), as a plugin a merchant built before the WIT grew: today's Kassa links it,
//! because a component names only what it imports.

wit_bindgen::generate!({
    path: "wit",
    world: "fulfillment",
});

struct OlderWit;

impl Guest for OlderWit {
    fn fulfill(request: Request) -> Result<Vec<String>, FulfillError> {
        kassa::plugin::host::log("built against an older WIT");
        Ok(vec![format!("OLD-{}", request.idempotency_key)])
    }
}

export!(OlderWit);
