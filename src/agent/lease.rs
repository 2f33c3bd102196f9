//! A device's check-in: its Lease, renewed at every heartbeat instead of a status write
//! (docs/agent-contract.md, "Liveness"). The Lease is in the device's namespace, named as
//! the device and labelled [`CHECK_IN_LABEL`] with the device's name; `holderIdentity` is
//! the agent, `renewTime` the check-in, `leaseDurationSeconds` the heartbeat times
//! [`LEASE_HEARTBEATS`].
//!
//! A renewal is one merge patch of `spec.renewTime` (and the rest of the spec, which does
//! not change): no read first, and no `resourceVersion`, so two renewals never conflict
//! and none is ever retried for a 409. Only a Lease that is not there yet is created;
//! when another writer created it in between (409), the patch is sent again.
//!
//! `ringmaster enroll` creates the Lease and gives the agent no right to create Leases
//! (RBAC cannot limit a create to a name). An enrolled agent whose Lease is missing
//! (deleted by someone) is refused the create: that is [`RenewError::CreateForbidden`],
//! and the agent checks in by `status.lastSeen` instead, as for any refused renewal.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch as KubePatch, PatchParams, PostParams};
use serde_json::json;

use super::FIELD_MANAGER;
use crate::contract::{CHECK_IN_LABEL, LEASE_HEARTBEATS};

/// How long one renewal may take before it is given up (it is tried again at the next
/// heartbeat): a renewal never holds an agent up.
pub const RENEW_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a renewal failed.
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    /// The API server refused it.
    #[error("renewing the check-in Lease: {0}")]
    Kube(#[source] Box<kube::Error>),
    /// The API server did not answer in time.
    #[error("renewing the check-in Lease: no answer within {}s", RENEW_TIMEOUT.as_secs())]
    TimedOut,
    /// The namespace (or the device) is gone.
    #[error("renewing the check-in Lease: not found")]
    NotFound,
    /// The Lease is missing and the agent may not create it (`ringmaster enroll` creates
    /// it and grants no create on Leases).
    #[error(
        "check-in Lease {device} is missing and this agent may not create it: enroll the device again (ringmaster enroll) to recreate it"
    )]
    CreateForbidden {
        /// The device (the Lease's name).
        device: String,
    },
}

/// One device's check-in Lease.
#[derive(Clone)]
pub struct CheckIn {
    api: Api<Lease>,
    device: String,
    holder: String,
    duration_seconds: i32,
}

impl CheckIn {
    /// The check-in of `device` on `api` (its namespace's Leases), held by `holder` (the
    /// agent's identity), for an agent renewing every `heartbeat`.
    pub fn new(api: Api<Lease>, device: &str, holder: &str, heartbeat: Duration) -> Self {
        let seconds = heartbeat
            .as_secs()
            .max(1)
            .saturating_mul(LEASE_HEARTBEATS as u64);
        Self {
            api,
            device: device.to_string(),
            holder: holder.to_string(),
            duration_seconds: i32::try_from(seconds).unwrap_or(i32::MAX),
        }
    }

    /// The Lease as first created at `now`.
    pub fn lease(&self, now: Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.device.clone()),
                labels: Some([(CHECK_IN_LABEL.to_string(), self.device.clone())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.holder.clone()),
                lease_duration_seconds: Some(self.duration_seconds),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                ..LeaseSpec::default()
            }),
        }
    }

    /// The merge patch renewing it at `now` (the label too, in case someone else created
    /// the Lease without it).
    pub fn renewal(&self, now: Timestamp) -> serde_json::Value {
        json!({
            "metadata": {"labels": {CHECK_IN_LABEL: self.device}},
            "spec": {
                "holderIdentity": self.holder,
                "leaseDurationSeconds": self.duration_seconds,
                "renewTime": MicroTime(now),
            }
        })
    }

    /// Renews the Lease at `now`, creating it if it is not there (an agent that may not
    /// create it gets [`RenewError::CreateForbidden`]).
    pub async fn renew(&self, now: Timestamp) -> Result<(), RenewError> {
        match within(self.patch(now)).await? {
            Err(kube::Error::Api(e)) if e.code == 404 => self.create(now).await,
            other => other.map_err(|e| RenewError::Kube(Box::new(e))),
        }
    }

    /// Creates the missing Lease at `now`.
    async fn create(&self, now: Timestamp) -> Result<(), RenewError> {
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        match within(self.api.create(&params, &self.lease(now))).await? {
            Ok(_) => Ok(()),
            // Created in between by another writer: renewed by the patch after all.
            Err(kube::Error::Api(e)) if e.code == 409 => within(self.patch(now))
                .await?
                .map_err(|e| RenewError::Kube(Box::new(e))),
            Err(kube::Error::Api(e)) if e.code == 404 => Err(RenewError::NotFound),
            Err(kube::Error::Api(e)) if e.code == 403 => Err(RenewError::CreateForbidden {
                device: self.device.clone(),
            }),
            Err(e) => Err(RenewError::Kube(Box::new(e))),
        }
    }

    async fn patch(&self, now: Timestamp) -> Result<(), kube::Error> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let body = self.renewal(now);
        self.api
            .patch(&self.device, &params, &KubePatch::Merge(&body))
            .await
            .map(|_| ())
    }
}

/// A request that must answer within [`RENEW_TIMEOUT`].
async fn within<T>(f: impl Future<Output = T>) -> Result<T, RenewError> {
    tokio::time::timeout(RENEW_TIMEOUT, f)
        .await
        .map_err(|_| RenewError::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract;

    fn check_in() -> CheckIn {
        let client = kube::Client::try_from(kube::Config::new(
            "http://127.0.0.1:1".parse().expect("url"),
        ))
        .expect("client");
        CheckIn::new(
            Api::namespaced(client, "fleet"),
            "ws-1",
            "system:serviceaccount:agents:ws-1",
            Duration::from_secs(300),
        )
    }

    #[tokio::test]
    async fn the_lease_is_the_devices_check_in() {
        let now: Timestamp = "2026-11-24T21:00:00.5Z".parse().expect("ts");
        let c = check_in();
        let lease = c.lease(now);
        assert_eq!(contract::check_in(&lease), Some(("ws-1", now)));
        let spec = lease.spec.expect("spec");
        assert_eq!(spec.lease_duration_seconds, Some(900), "3 heartbeats");
        let body = c.renewal(now);
        assert_eq!(body["spec"]["renewTime"], "2026-11-24T21:00:00.500000Z");
        assert_eq!(body["metadata"]["labels"][CHECK_IN_LABEL], "ws-1");
        assert!(
            body["metadata"].get("resourceVersion").is_none(),
            "never conflicts"
        );
    }
}
