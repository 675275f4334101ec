//! API key authentication: `Authorization: Bearer kassa_sk_…` names one tenant and one
//! of its keys, whose scope says what the request may do. Handlers reach the tenant
//! only through [`ApiKey::allowed`], naming what they do, so none can forget to ask;
//! which scope an action needs is `kassa_domain::access`'s one rule.

use kassa_domain::access::ApiAction;
use kassa_domain::mode::Mode;
use kassa_domain::tenant::hash_api_key;
use kassa_store::{ApiKeyRecord, Store, StoreError, TenantRecord};
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::error::ApiError;

/// The tenant whose key signed the request, and the key.
#[derive(Debug, Clone)]
pub struct AuthedTenant {
    pub tenant: TenantRecord,
    pub key: ApiKeyRecord,
}

/// A merchant's API key.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_api_key")]
pub struct ApiKey(pub AuthedTenant);

async fn check_api_key(req: &Request, bearer: Bearer) -> poem::Result<AuthedTenant> {
    // The idempotency layer may have looked the key up already.
    if let Some(tenant) = req.extensions().get::<AuthedTenant>() {
        return Ok(tenant.clone());
    }
    let store = req
        .extensions()
        .get::<Store>()
        .ok_or_else(|| poem::Error::from_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR))?;
    authenticate(store, &bearer.token).await
}

pub(crate) async fn authenticate(store: &Store, token: &str) -> poem::Result<AuthedTenant> {
    match store.authenticate_api_key(&hash_api_key(token)).await {
        Ok((tenant, key)) => Ok(AuthedTenant { tenant, key }),
        Err(StoreError::NotFound) => Err(poem::Error::from_string(
            "the API key is missing, unknown or revoked",
            poem::http::StatusCode::UNAUTHORIZED,
        )),
        Err(e) => {
            tracing::error!(error = %e, "API key lookup failed");
            Err(poem::Error::from_status(
                poem::http::StatusCode::SERVICE_UNAVAILABLE,
            ))
        }
    }
}

impl ApiKey {
    /// The key's world: it makes and sees only that mode's orders, pools and events.
    pub fn mode(&self) -> Mode {
        Mode::from_livemode(self.0.key.livemode)
    }

    /// The key's tenant, when the key's scope and mode allow `action`; a 403 naming the
    /// scope needed, or saying a live key is, when they do not.
    pub fn allowed(&self, action: ApiAction) -> Result<&TenantRecord, ApiError> {
        let scope = self.0.key.scope;
        if !scope.allows(action) {
            Err(ApiError::forbidden(scope, action.minimal_scope()))
        } else if !action.allowed_in(self.mode()) {
            Err(ApiError::live_key_required())
        } else {
            Ok(&self.0.tenant)
        }
    }
}
