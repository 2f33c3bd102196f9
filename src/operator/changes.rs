//! Which devices changed since a tenant's last pass: what the engine's incremental pass
//! ([`engine::decide_changed`](crate::engine::decide_changed)) is told.
//!
//! A store notes each device a watch event changes (its object or its check-in) under
//! the same lock as the change itself, and hands a tenant's notes over under the same
//! lock as the tenant's objects: a pass is told of exactly the changes its snapshot
//! holds, and any that land after it are kept for the next. A relist may have changed
//! anything: every tenant's next pass is then told so.

use std::collections::{BTreeSet, HashMap};

/// A tenant's changed devices since it last took them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    /// Anything may have changed (a relist, or the tenant's first pass).
    pub everything: bool,
    /// The devices (by name) whose object or check-in changed.
    pub devices: BTreeSet<String>,
}

impl Pending {
    /// Adds another store's notes.
    pub fn merge(&mut self, other: Pending) {
        self.everything |= other.everything;
        if !self.everything {
            self.devices.extend(other.devices);
        } else {
            self.devices.clear();
        }
    }
}

/// The notes of one store, by namespace.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Bumped by every relist.
    epoch: u64,
    /// Per namespace: the epoch it last took its notes in, and the devices changed since.
    by_namespace: HashMap<String, (u64, BTreeSet<String>)>,
}

impl Tracker {
    /// Notes a change to a device.
    pub fn note(&mut self, ns: &str, device: &str) {
        let epoch = self.epoch;
        let (seen, devices) = self
            .by_namespace
            .entry(ns.to_string())
            .or_insert_with(|| (epoch.wrapping_sub(1), BTreeSet::new()));
        if *seen == epoch && !devices.contains(device) {
            devices.insert(device.to_string());
        }
    }

    /// Forgets a namespace's notes (its tenant is no longer reconciled here): its next
    /// notes say everything changed, and until then none are kept for it.
    pub fn forget(&mut self, ns: &str) {
        self.by_namespace.remove(ns);
    }

    /// Notes a relist: every namespace's next notes say everything changed.
    pub fn relisted(&mut self) {
        self.epoch += 1;
        self.by_namespace.clear();
    }

    /// Takes a namespace's notes: everything, the first time or after a relist.
    pub fn take(&mut self, ns: &str) -> Pending {
        let epoch = self.epoch;
        match self.by_namespace.get_mut(ns) {
            Some((seen, devices)) if *seen == epoch => Pending {
                everything: false,
                devices: std::mem::take(devices),
            },
            Some((seen, devices)) => {
                *seen = epoch;
                devices.clear();
                Pending {
                    everything: true,
                    devices: BTreeSet::new(),
                }
            }
            None => {
                self.by_namespace
                    .insert(ns.to_string(), (epoch, BTreeSet::new()));
                Pending {
                    everything: true,
                    devices: BTreeSet::new(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &Pending) -> Vec<&str> {
        p.devices.iter().map(String::as_str).collect()
    }

    #[test]
    fn a_tenant_is_told_everything_first_then_what_changed_since() {
        let mut t = Tracker::default();
        t.note("a", "before-its-first-pass");
        assert!(t.take("a").everything, "a first pass reads everything");
        assert_eq!(t.take("a"), Pending::default(), "nothing since");
        t.note("a", "d1");
        t.note("a", "d2");
        t.note("a", "d1");
        t.note("b", "other-tenant");
        let p = t.take("a");
        assert!(!p.everything);
        assert_eq!(names(&p), ["d1", "d2"]);
        assert_eq!(t.take("a"), Pending::default(), "taken once");
    }

    #[test]
    fn after_a_relist_every_tenant_is_told_everything_once() {
        let mut t = Tracker::default();
        t.take("a");
        t.take("b");
        t.note("a", "d1");
        t.relisted();
        t.note("a", "d2");
        assert!(t.take("a").everything);
        assert!(t.take("b").everything);
        t.note("a", "d3");
        assert_eq!(names(&t.take("a")), ["d3"]);
    }

    #[test]
    fn a_forgotten_tenant_keeps_no_notes_and_is_told_everything_next() {
        let mut t = Tracker::default();
        t.take("a");
        t.note("a", "d1");
        t.forget("a");
        t.note("a", "d2");
        assert!(t.by_namespace.get("a").is_none_or(|(_, d)| d.is_empty()));
        assert!(t.take("a").everything);
        t.note("a", "d3");
        assert_eq!(names(&t.take("a")), ["d3"]);
    }

    #[test]
    fn merged_notes_keep_everything() {
        let mut p = Pending {
            everything: false,
            devices: ["d1".to_string()].into(),
        };
        p.merge(Pending {
            everything: false,
            devices: ["d2".to_string()].into(),
        });
        assert_eq!(names(&p), ["d1", "d2"]);
        p.merge(Pending {
            everything: true,
            devices: BTreeSet::new(),
        });
        assert!(p.everything);
    }
}
