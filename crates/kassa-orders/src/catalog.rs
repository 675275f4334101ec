//! The rules of a product that need the store: its delivery must name a pool or a
//! plugin of the same store.

use kassa_domain::Invalid;
use kassa_domain::catalog::{Delivery, KeysPer, parse_outgoing_url};
use kassa_domain::ids::{LicensePoolId, PluginId, TenantId};
use kassa_store::{Store, StoreError};

/// A delivery method as chosen on a form or in a request, not yet checked.
#[derive(Debug, Clone, Copy)]
pub enum DeliveryChoice<'a> {
    LicensePool { pool_id: &'a str, keys_per: KeysPer },
    WebService { url: &'a str },
    Plugin { plugin_id: &'a str },
}

/// The delivery, when what it names exists in this store; field errors name
/// `delivery.pool_id`, `delivery.url` or `delivery.plugin_id`.
pub async fn delivery(
    store: &Store,
    tenant: &TenantId,
    choice: DeliveryChoice<'_>,
) -> Result<Result<Delivery, Invalid>, StoreError> {
    Ok(match choice {
        DeliveryChoice::LicensePool { pool_id, keys_per } => {
            let no_pool = || Invalid::field("delivery.pool_id", "no such license pool");
            match LicensePoolId::parse(pool_id) {
                Err(_) => Err(no_pool()),
                Ok(pool_id) => match store.license_pool(tenant, &pool_id).await {
                    Ok(_) => Ok(Delivery::LicensePool { pool_id, keys_per }),
                    Err(StoreError::NotFound) => Err(no_pool()),
                    Err(e) => return Err(e),
                },
            }
        }
        DeliveryChoice::WebService { url } => {
            parse_outgoing_url("delivery.url", url).map(|url| Delivery::WebService { url })
        }
        DeliveryChoice::Plugin { plugin_id } => {
            let no_plugin = || Invalid::field("delivery.plugin_id", "no such plugin");
            match PluginId::parse(plugin_id) {
                Err(_) => Err(no_plugin()),
                Ok(plugin_id) => match store.plugin(tenant, &plugin_id).await {
                    Ok(_) => Ok(Delivery::Plugin { plugin_id }),
                    Err(StoreError::NotFound) => Err(no_plugin()),
                    Err(e) => return Err(e),
                },
            }
        }
    })
}
