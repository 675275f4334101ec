//! Traps before it can do anything: a constructor (run when the component starts)
//! that hits `unreachable`, as a plugin whose runtime fails to initialise would.

use kassa_plugin_sdk::{FulfillError, Plugin, Request, export};

extern "C" fn fail_to_start() {
    core::arch::wasm32::unreachable()
}

#[used]
#[unsafe(link_section = ".init_array")]
static START: extern "C" fn() = fail_to_start;

struct TrapsAtStart;

impl Plugin for TrapsAtStart {
    fn fulfill(request: Request) -> Result<Vec<String>, FulfillError> {
        Ok(vec![format!("NEVER-{}", request.idempotency_key)])
    }
}

export!(TrapsAtStart);
