//! The report controller: closes each tenant's months.
//!
//! For one namespace it reads the tenant's time zone (its Namespace's annotation), asks
//! [`schedule::plan`] what to do at the current instant, creates the `PatchReport` of the
//! month just ended, closes each report whose month has ended (builds and seals the
//! packet from the stores' objects, keeps it in the [`Store`], records it), marks the
//! others `Pending`, and asks to be woken at the next month boundary. A `Closed` report
//! is never written again.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{PostParams, Resource};
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use crate::api::{PatchReport, PatchReportSpec, PatchReportStatus, ReportPhase, ReportReason};
use crate::report::cluster::TIME_ZONE_ANNOTATION;
use crate::report::month::{Month, MonthError};
use crate::report::record::{self, Record};
use crate::report::schedule::{self, Existing, Step};
use crate::report::store::{Put, Store};

use super::Error;
use super::stores::{Objects, Stores};

/// Where the report controller takes the time from: the system clock, or (in tests) the
/// system clock moved by an offset, so that a month boundary can be crossed in seconds.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Timestamp + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(Arc::new(Timestamp::now))
    }

    /// The system clock moved by `offset`.
    pub fn offset(offset: SignedDuration) -> Self {
        Clock(Arc::new(move || {
            let now = Timestamp::now();
            now.checked_add(offset).unwrap_or(now)
        }))
    }

    /// The current instant.
    pub fn now(&self) -> Timestamp {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

/// How the operator closes months.
#[derive(Clone, Debug, Default)]
pub struct ReportConfig {
    /// Where packets are kept; None: months are not closed (their reports say so).
    pub store: Option<Store>,
    /// The key packets are signed with.
    pub sign_key: Option<SigningKey>,
    /// The clock months are closed by.
    pub clock: Clock,
}

/// The report controller.
pub struct Reports {
    client: Client,
    config: ReportConfig,
}

/// A report's status write failed, or its month could not be closed for now.
type Outcome = Result<(), Error>;

impl Reports {
    /// A controller on a client.
    pub fn new(client: Client, config: ReportConfig) -> Self {
        Self { client, config }
    }

    /// The current instant of the clock months are closed by.
    pub fn now(&self) -> Timestamp {
        self.config.clock.now()
    }

    /// Closes what is due in one namespace; returns when to look again.
    pub async fn reconcile(&self, stores: &Stores, ns: &str) -> Result<Timestamp, Error> {
        let now = self.now();
        let zone = self.time_zone(ns).await?;
        let reports = stores.reports.in_namespace(ns);
        let objects = stores.objects(ns);
        let plan = {
            let existing: Vec<Existing<'_>> = reports.iter().map(|r| existing(r)).collect();
            schedule::plan(now, &zone, oldest(&objects), &existing)
        };
        let mut first_error = None;
        if let Some(month) = &plan.create
            && let Err(e) = self.create(ns, month).await
        {
            // The reports already there are still closed.
            warn!(namespace = ns, error = %e, "the month's PatchReport could not be made");
            first_error = Some(e);
        }
        let by_name: BTreeMap<String, Arc<PatchReport>> =
            reports.into_iter().map(|r| (r.name_any(), r)).collect();
        for step in plan.steps {
            let result = match &step {
                Step::Close { name, month } => match by_name.get(name.as_str()) {
                    Some(r) => self.close(&objects, r, month, now).await,
                    None => Ok(()),
                },
                Step::Wait { name, month } => match by_name.get(name.as_str()) {
                    Some(r) => {
                        let status = record::pending(&old(r), r.metadata.generation, month, now);
                        self.write(r, status).await
                    }
                    None => Ok(()),
                },
                Step::Invalid { name, error } => match by_name.get(name.as_str()) {
                    Some(r) => {
                        let why = invalid_message(r, &zone, error);
                        let status = record::failed(
                            &old(r),
                            r.metadata.generation,
                            None,
                            ReportReason::InvalidMonth,
                            why,
                            true,
                            now,
                        );
                        self.write(r, status).await
                    }
                    None => Ok(()),
                },
            };
            if let Err(e) = result {
                warn!(namespace = ns, error = %e, "a PatchReport could not be handled");
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(plan.wake_at),
        }
    }

    /// The tenant's time zone: its Namespace's annotation, else UTC.
    async fn time_zone(&self, ns: &str) -> Result<String, Error> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let namespace = api
            .get_opt(ns)
            .await
            .map_err(|e| Error::kube(format!("reading Namespace {ns}"), e))?;
        Ok(namespace
            .and_then(|n| n.metadata.annotations)
            .and_then(|a| a.get(TIME_ZONE_ANNOTATION).cloned())
            .unwrap_or_else(|| "UTC".to_string()))
    }

    /// Creates the `PatchReport` of a month that just ended (one already there is fine).
    async fn create(&self, ns: &str, month: &Month) -> Outcome {
        let mut report = PatchReport::new(
            &month.label(),
            PatchReportSpec {
                month: month.label(),
                time_zone: Some(month.time_zone().to_string()),
            },
        );
        report.metadata.namespace = Some(ns.to_string());
        report.metadata.labels = Some(BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_string(),
            "ringmaster".to_string(),
        )]));
        let api: Api<PatchReport> = Api::namespaced(self.client.clone(), ns);
        let params = PostParams {
            field_manager: Some(super::FIELD_MANAGER.to_string()),
            ..PostParams::default()
        };
        match api.create(&params, &report).await {
            Ok(_) => {
                info!(namespace = ns, month = %month.label(), "the month ended: made its PatchReport");
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(Error::kube(
                format!("creating PatchReport {ns}/{}", month.label()),
                e,
            )),
        }
    }

    /// Closes one report's month: seals its packet, stores it (or adopts the one already
    /// stored), records it. What fails is recorded as `Failed` on the report.
    async fn close(
        &self,
        objects: &Objects,
        r: &PatchReport,
        month: &Month,
        now: Timestamp,
    ) -> Outcome {
        let ns = objects.namespace.as_str();
        let generation = r.metadata.generation;
        let Some(store) = &self.config.store else {
            let why = "the operator runs without a store for packets (--report-store), so it \
                       cannot close months; install the chart with reports enabled";
            return self
                .write(
                    r,
                    failed(r, month, now, ReportReason::NoStore, why.into(), true),
                )
                .await;
        };
        let (objects, m, key) = (objects.clone(), month.clone(), self.config.sign_key.clone());
        let sealed = tokio::task::spawn_blocking(move || {
            record::seal(&objects.snapshot(), &m, now, key.as_ref())
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?;
        let (report, sealed) = match sealed {
            Ok(done) => done,
            Err(e) => {
                let status = failed(
                    r,
                    month,
                    now,
                    ReportReason::PacketFailed,
                    e.to_string(),
                    true,
                );
                return self.write(r, status).await;
            }
        };
        let location = store.location(ns, &month.label());
        let stored = match store.put(ns, &month.label(), &sealed).await {
            Ok(put) => put,
            Err(e) => {
                let message = format!("storing the packet at {location}: {e}; retrying");
                self.write(
                    r,
                    failed(r, month, now, ReportReason::StoreFailed, message, false),
                )
                .await?;
                return Err(Error::Store {
                    location,
                    source: Box::new(e),
                });
            }
        };
        let record: Record = match stored {
            Put::Created | Put::Unchanged => record::of_sealed(&report, &sealed),
            Put::Existing(files) => match record::adopt(&files, ns, month) {
                Ok(record) => record,
                Err(e) => {
                    let status = failed(
                        r,
                        month,
                        now,
                        ReportReason::StoredPacketInvalid,
                        format!("{location}: {e}"),
                        true,
                    );
                    return self.write(r, status).await;
                }
            },
        };
        info!(namespace = ns, report = %r.name_any(), month = %month.label(), location = %location, digest = %record.digest, "closed the month");
        let status = record::closed(&old(r), generation, month, record, location, now);
        self.write(r, status).await
    }

    /// Replaces a report's status when it differs, guarded by its resourceVersion (so a
    /// status another writer changed meanwhile is not overwritten). A closed report is
    /// never written.
    async fn write(&self, r: &PatchReport, status: PatchReportStatus) -> Outcome {
        if record::is_closed(r.status.as_ref()) || r.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let ns = r.namespace().unwrap_or_default();
        let name = r.name_any();
        let mut updated = r.clone();
        updated.status = Some(status);
        let api: Api<PatchReport> = Api::namespaced(self.client.clone(), &ns);
        let params = PostParams {
            field_manager: Some(super::FIELD_MANAGER.to_string()),
            ..PostParams::default()
        };
        match api.replace_status(&name, &params, &updated).await {
            Ok(_) => Ok(()),
            // Changed meanwhile: its watch event brings the next look.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(Error::kube(
                format!("writing the status of PatchReport {ns}/{name}"),
                e,
            )),
        }
    }
}

/// A report as the schedule sees it.
fn existing(r: &PatchReport) -> Existing<'_> {
    Existing {
        name: r.metadata.name.as_deref().unwrap_or_default(),
        month: &r.spec.month,
        time_zone: r.spec.time_zone.as_deref(),
        phase: if record::is_closed(r.status.as_ref()) {
            Some(ReportPhase::Closed)
        } else {
            // A phase of Closed without Ready=True is not a closed month.
            r.status
                .as_ref()
                .and_then(|s| s.phase)
                .filter(|p| *p != ReportPhase::Closed)
        },
    }
}

/// The status of a report whose month could not be closed.
fn failed(
    r: &PatchReport,
    month: &Month,
    now: Timestamp,
    reason: ReportReason,
    message: String,
    stalled: bool,
) -> PatchReportStatus {
    let generation = r.metadata.generation;
    record::failed(
        &old(r),
        generation,
        Some(month),
        reason,
        message,
        stalled,
        now,
    )
}

/// A report's status so far.
fn old(r: &PatchReport) -> PatchReportStatus {
    r.status.clone().unwrap_or_default()
}

/// When the tenant's oldest object was created: from then on it has months to account
/// for.
fn oldest(o: &Objects) -> Option<Timestamp> {
    fn created<K: Resource>(k: &K) -> Option<Timestamp> {
        k.meta().creation_timestamp.as_ref().map(|t| t.0)
    }
    let policies = o.policies.iter().filter_map(|k| created(k.as_ref()));
    let rings = o.rings.iter().filter_map(|k| created(k.as_ref()));
    let exceptions = o.exceptions.iter().filter_map(|k| created(k.as_ref()));
    let devices = o.devices.iter().filter_map(|k| created(k.as_ref()));
    let rollouts = o.rollouts.iter().filter_map(|k| created(k.as_ref()));
    policies
        .chain(rings)
        .chain(exceptions)
        .chain(devices)
        .chain(rollouts)
        .min()
}

/// Why a report's month cannot be taken, naming the field it came from.
fn invalid_message(r: &PatchReport, zone: &str, error: &MonthError) -> String {
    let field = match (error, &r.spec.time_zone) {
        (MonthError::TimeZone(_), None) => {
            format!("the Namespace's annotation {TIME_ZONE_ANNOTATION} ({zone:?})")
        }
        (MonthError::TimeZone(_), Some(_)) => "spec.timeZone".to_string(),
        (MonthError::Month(_), _) => "spec.month".to_string(),
    };
    format!("{field}: {error}")
}
