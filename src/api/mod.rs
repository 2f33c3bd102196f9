//! The custom resources of `patching.ringmaster.dev/v1alpha1` and their value types.
//!
//! Every field carries a doc comment: they become the CRD descriptions `kubectl explain`
//! shows.

// kube-derive's `printcolumn(name = …, type_ = …)` repeats keys across columns, which
// clippy's duplicated_attributes lint mistakes for duplicate attributes.
#![allow(clippy::duplicated_attributes)]

pub mod common;
pub mod device;
pub mod exception;
pub mod history;
pub mod lever;
pub mod patch;
pub mod policy;
pub mod report;
pub mod ring;
pub mod rollout;

pub use common::*;
pub use device::*;
pub use exception::*;
pub use history::*;
pub use lever::*;
pub use patch::*;
pub use policy::*;
pub use report::*;
pub use ring::*;
pub use rollout::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every ringmaster kind.
pub const GROUP: &str = "patching.ringmaster.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";

/// Every CRD, in a stable order (the order `ringmaster crds` prints them in).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        PatchPolicy::crd(),
        DeploymentRing::crd(),
        PatchException::crd(),
        ManagedDevice::crd(),
        Patch::crd(),
        PatchRollout::crd(),
        PatchReport::crd(),
        PatchApproval::crd(),
        PatchFreeze::crd(),
    ]
}

/// Every object of a kind, in name order, read 500 at a time.
pub async fn list_all<K>(api: kube::Api<K>) -> Result<Vec<K>, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut all: std::collections::BTreeMap<String, K> = std::collections::BTreeMap::new();
    let mut params = kube::api::ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await?;
        for o in page.items {
            all.insert(o.meta().name.clone().unwrap_or_default(), o);
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(all.into_values().collect()),
        }
    }
}
