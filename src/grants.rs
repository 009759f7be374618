//! The grants watcher: keeps the live BreakGlassGrants of driftgate's namespace in an
//! [`ArcSwap`] the handlers read, with kube-runtime's watcher and reflector (a list, then a
//! watch; re-lists after a lost watch, reconnects with backoff).
//!
//! Each change rebuilds the whole set from the reflector's store, reading every grant with the
//! same checks as admission ([`Grant::from_object`]): a grant that does not pass them (made while
//! the webhook was not registered, or under a longer cap) is left out and logged. Expiry is not
//! this module's business: the decision core matches at the request's time, so an expired grant
//! never matches even while it is still stored. It must not decide requests.

use std::sync::Arc;

use arc_swap::ArcSwap;
use futures_util::StreamExt as _;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use time::OffsetDateTime;
use tokio::task::JoinHandle;

use crate::policy::grant::{self, Grant, GrantLimits, Grants};

/// The API resource of grants.
pub fn api_resource() -> ApiResource {
    ApiResource {
        group: grant::GROUP.to_owned(),
        version: grant::VERSION.to_owned(),
        api_version: grant::API_VERSION.to_owned(),
        kind: grant::KIND.to_owned(),
        plural: grant::PLURAL.to_owned(),
    }
}

/// Watches the grants in `namespace` into `live` until the task is aborted.
pub fn start(client: Client, namespace: &str, limits: GrantLimits, live: Arc<ArcSwap<Grants>>) -> JoinHandle<()> {
    let resource = api_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client, namespace, &resource);
    let namespace = namespace.to_owned();
    tokio::spawn(async move {
        let writer = reflector::store::Writer::new(resource);
        let store = writer.as_reader();
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut failing = false;
        // Each invalid grant is logged once a version, not at every change of the set.
        let mut warned = std::collections::BTreeSet::new();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Ok(event) => {
                    if failing {
                        tracing::info!(%namespace, "watching break-glass grants again");
                        failing = false;
                    }
                    if let watcher::Event::Apply(object) = &event {
                        tracing::info!(
                            grant = object.metadata.name.as_deref().unwrap_or_default(),
                            "break-glass grant seen"
                        );
                    }
                    let grants = read(&store, limits, OffsetDateTime::now_utc(), &mut warned);
                    live.store(Arc::new(grants));
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(
                        %namespace,
                        error = %crate::error_chain(&e),
                        "cannot watch break-glass grants (is the BreakGlassGrant CRD installed, may driftgate list and watch them?); \
                         the grants seen last stay in force and expire on time; retrying"
                    );
                }
                Err(e) => tracing::debug!(error = %crate::error_chain(&e), "break-glass grants: still failing"),
            }
        }
    })
}

/// The valid grants in `store`; an invalid one is logged unless `warned` has its version.
fn read(
    store: &Store<DynamicObject>,
    limits: GrantLimits,
    now: OffsetDateTime,
    warned: &mut std::collections::BTreeSet<(String, String)>,
) -> Grants {
    let mut items = Vec::new();
    for object in store.state() {
        let name = object.metadata.name.clone().unwrap_or_default();
        let version = object.metadata.resource_version.clone().unwrap_or_default();
        let checked = serde_json::to_value(&*object)
            .map_err(|e| grant::GrantError::Malformed(e.to_string()))
            .and_then(|value| Grant::from_object(&value, limits, now));
        match checked {
            Ok(g) => items.push(g),
            Err(e) => {
                if warned.insert((name.clone(), version)) {
                    tracing::warn!(grant = %name, reason = %e, "a break-glass grant is not valid and is ignored");
                }
            }
        }
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Grants { items, limits }
}
