//! API key authentication: `Authorization: Bearer kassa_sk_…` names one tenant.

use kassa_domain::ids::ApiKeyId;
use kassa_domain::tenant::hash_api_key;
use kassa_store::{Store, StoreError, TenantRecord};
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

/// The tenant whose key signed the request, and which of its keys it was.
#[derive(Debug, Clone)]
pub struct AuthedTenant {
    pub tenant: TenantRecord,
    pub key: ApiKeyId,
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
    pub fn tenant(&self) -> &TenantRecord {
        &self.0.tenant
    }
}
