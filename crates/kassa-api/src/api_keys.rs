//! `/api-keys`: the store's API keys. A key is shown once, when created, and has a
//! scope (`kassa_domain::access`); only `full` keys make and revoke keys.

use kassa_domain::Invalid;
use kassa_domain::access::{ApiAction, KeyScope};
use kassa_domain::error::parse_text;
use kassa_domain::ids::ApiKeyId;
use kassa_domain::tenant::NewApiKey;
use kassa_store::ApiKeyRecord;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::auth::ApiKey;
use crate::context::{ApiContext, Deleted};
use crate::error::ApiError;

pub struct ApiKeysApi(pub ApiContext);

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ApiKeyIn {
    /// What the key is for, e.g. `CI` or `Storefront`.
    pub name: String,
    /// What the key may do: `read_only` (read everything but secrets), `orders` (read,
    /// place orders, record payments, resend licenses) or `full` (everything: keys,
    /// secrets, webhooks, plugins, catalog, settings). Default `full`.
    pub scope: Option<String>,
}

#[derive(Debug, Object)]
pub struct ApiKeyOut {
    /// `key_…`
    pub id: String,
    pub name: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    /// `read_only`, `orders` or `full`.
    pub scope: String,
    /// A live key (`kassa_sk_live_…`) or a test key (`kassa_sk_test_…`): the world of
    /// every order, pool and event it makes and sees.
    pub livemode: bool,
    pub revoked: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A new key with its secret, shown once.
// Not `Debug`: it holds the secret.
#[derive(Object)]
pub struct ApiKeyCreated {
    #[oai(flatten)]
    pub key: ApiKeyOut,
    /// Use as `Authorization: Bearer <api_key>`; it is not shown again.
    pub api_key: String,
}

#[derive(Debug, Object)]
pub struct ApiKeyList {
    pub data: Vec<ApiKeyOut>,
}

fn out(k: ApiKeyRecord) -> ApiKeyOut {
    ApiKeyOut {
        id: k.id.to_string(),
        name: k.name,
        prefix: k.prefix,
        scope: k.scope.as_str().to_owned(),
        livemode: k.livemode,
        revoked: k.revoked_at.is_some(),
        created_at: k.created_at.0,
    }
}

#[OpenApi(prefix_path = "/api-keys", tag = "crate::context::Tag::ApiKeys")]
impl ApiKeysApi {
    /// Create an API key
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        auth: ApiKey,
        body: Json<ApiKeyIn>,
    ) -> Result<Json<ApiKeyCreated>, ApiError> {
        let tenant = auth.allowed(ApiAction::ManageKeys)?;
        let mut invalid = Invalid::default();
        let name = invalid.check(parse_text("name", &body.name, 100));
        let scope = invalid.check(KeyScope::parse("scope", body.scope.as_deref()));
        let (Some(name), Some(scope)) = (name, scope) else {
            return Err(invalid.into());
        };
        // A key makes keys of its own world, as the dashboard does in its mode.
        let key = NewApiKey::generate(auth.mode());
        let record = self
            .0
            .store
            .create_api_key(&tenant.id, &name, &key, scope)
            .await
            .map_err(ApiError::from_store("API key"))?;
        Ok(Json(ApiKeyCreated {
            key: out(record),
            api_key: key.secret.expose_secret().to_owned(),
        }))
    }

    /// List API keys
    #[oai(path = "/", method = "get")]
    async fn list(&self, auth: ApiKey) -> Result<Json<ApiKeyList>, ApiError> {
        let keys = self
            .0
            .store
            .list_api_keys(&auth.allowed(ApiAction::Read)?.id, auth.mode())
            .await
            .map_err(ApiError::from_store("API key"))?;
        Ok(Json(ApiKeyList {
            data: keys.into_iter().map(out).collect(),
        }))
    }

    /// Revoke an API key
    ///
    /// It stops working at once, including for the request that revokes it.
    #[oai(path = "/:id", method = "delete")]
    async fn revoke(&self, auth: ApiKey, id: Path<String>) -> Result<Deleted, ApiError> {
        let id = ApiKeyId::parse(&id).map_err(|_| ApiError::not_found("API key"))?;
        self.0
            .store
            .revoke_api_key(&auth.allowed(ApiAction::ManageKeys)?.id, auth.mode(), &id)
            .await
            .map_err(ApiError::from_store("API key"))?;
        Ok(Deleted::Deleted)
    }
}
