//! Asks the merchant's license service for the line's keys: a POST of
//! `{"order_id", "line_no", "quantity", "email", "idempotency_key"}` to the config's
//! `url`, with the secret `api-token` as a bearer token, answered with
//! `{"licenses": ["…"]}`. A 5xx or a network failure is retryable; a 4xx is not.
//!
//! Written against `plugins/wit` with wit-bindgen alone, the way a merchant's
//! developer who does not use Rust's Kassa SDK would.

wit_bindgen::generate!({
    path: "../../wit",
    world: "fulfillment",
});

use kassa::plugin::host;
use kassa::plugin::types::HttpRequest;

struct LicenseClient;

impl Guest for LicenseClient {
    fn fulfill(request: Request) -> Result<Vec<String>, FulfillError> {
        let url = request
            .config
            .iter()
            .find(|(k, _)| k == "url")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                FulfillError::Permanent("set the config `url` of the license service".into())
            })?;
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Some(token) = host::secret("api-token") {
            headers.push(("authorization".to_owned(), format!("Bearer {token}")));
        }
        let body = serde_json::json!({
            "order_id": request.order_id,
            "line_no": request.line_no,
            "quantity": request.quantity,
            "email": request.customer.email,
            "idempotency_key": request.idempotency_key,
        });
        let response = host::http_fetch(&HttpRequest {
            method: "POST".into(),
            url,
            headers,
            body: body.to_string().into_bytes(),
        })
        .map_err(|e| FulfillError::Retryable(format!("the license service is unreachable: {e}")))?;
        host::log(&format!("license service answered {}", response.status));
        match response.status {
            200..=299 => {}
            500..=599 => {
                return Err(FulfillError::Retryable(format!(
                    "the license service answered {}",
                    response.status
                )));
            }
            other => {
                return Err(FulfillError::Permanent(format!(
                    "the license service answered {other}"
                )));
            }
        }
        let answer: serde_json::Value = serde_json::from_slice(&response.body)
            .map_err(|e| FulfillError::Permanent(format!("the answer is not JSON: {e}")))?;
        let licenses: Vec<String> = answer["licenses"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if licenses.is_empty() {
            return Err(FulfillError::Permanent("the answer has no licenses".into()));
        }
        Ok(licenses)
    }
}

export!(LicenseClient);
