//! Asks for `wasi:http` (outgoing requests of its own, past Kassa's `http-fetch`),
//! which Kassa does not give: refused at upload, naming the import.

use kassa_plugin_sdk::{FulfillError, Plugin, Request, export};

struct WantsHttp;

impl Plugin for WantsHttp {
    fn fulfill(request: Request) -> Result<Vec<String>, FulfillError> {
        let headers = wasi::http::types::Fields::new();
        let outgoing = wasi::http::types::OutgoingRequest::new(headers);
        match wasi::http::outgoing_handler::handle(outgoing, None) {
            Ok(_) => Ok(vec![format!("SENT-{}", request.idempotency_key)]),
            Err(e) => Err(FulfillError::Permanent(format!("{e:?}"))),
        }
    }
}

export!(WantsHttp);
