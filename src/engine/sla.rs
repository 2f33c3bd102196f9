//! The SLA clock of one device–patch pair, and the per tier × severity aggregates.

use jiff::{SignedDuration, Timestamp};

use crate::api::{Duration, Severity, SlaCell};

/// Where a device–patch pair stands against its deadline.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub enum ClockState {
    /// Not installed, deadline more than the margin away.
    NotDue,
    /// Not installed, deadline within the margin.
    DueSoon,
    /// Not installed, deadline passed.
    Overdue,
    /// Installed by its deadline.
    InstalledOnTime,
    /// Installed after its deadline.
    InstalledLate,
    /// An active exception covers it; the clock is stopped.
    Exempt,
}

impl ClockState {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ClockState::NotDue => "NotDue",
            ClockState::DueSoon => "DueSoon",
            ClockState::Overdue => "Overdue",
            ClockState::InstalledOnTime => "InstalledOnTime",
            ClockState::InstalledLate => "InstalledLate",
            ClockState::Exempt => "Exempt",
        }
    }
}

/// The clock of one pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// The state at `now`.
    pub state: ClockState,
    /// The deadline: release + install-within (or the cap, if earlier) + time spent
    /// exempt. None without an SLA or a cap.
    pub deadline: Option<Timestamp>,
    /// The next instant the state changes by time alone (DueSoon, then Overdue).
    pub next_change: Option<Timestamp>,
}

/// What the clock needs to know about a pair.
#[derive(Clone, Copy, Debug)]
pub struct PairFacts<'a> {
    /// The patch's first release time.
    pub released: Timestamp,
    /// Install-within for the device's tier and the patch's severity (None: no SLA).
    pub within: Option<Duration>,
    /// The latest the deadline may be (a KEV due date, under a policy that caps at it).
    pub cap: Option<Timestamp>,
    /// The DueSoon margin.
    pub margin: Duration,
    /// When it was installed, if it is.
    pub installed_at: Option<Timestamp>,
    /// An active exception covers it now.
    pub exempt_now: bool,
    /// Intervals during which exceptions covered it (may overlap, any order).
    pub exempt_intervals: &'a [(Timestamp, Timestamp)],
}

/// Runs the clock of one pair at `now`.
pub fn clock(f: PairFacts<'_>, now: Timestamp) -> Clock {
    let end = f.installed_at.map_or(now, |i| i.min(now));
    let exempt = exempt_time(f.exempt_intervals, f.released, end);
    let by_sla = f.within.and_then(|w| f.released.checked_add(w.span()).ok());
    let deadline = match (by_sla, f.cap) {
        (Some(d), Some(cap)) => Some(d.min(cap)),
        (d, cap) => d.or(cap),
    }
    .and_then(|d| d.checked_add(exempt).ok());
    if let Some(installed) = f.installed_at {
        let on_time = deadline.is_none_or(|d| installed <= d);
        let state = if on_time {
            ClockState::InstalledOnTime
        } else {
            ClockState::InstalledLate
        };
        return Clock {
            state,
            deadline,
            next_change: None,
        };
    }
    if f.exempt_now {
        return Clock {
            state: ClockState::Exempt,
            deadline,
            next_change: None,
        };
    }
    let Some(d) = deadline else {
        return Clock {
            state: ClockState::NotDue,
            deadline: None,
            next_change: None,
        };
    };
    let soon = d.checked_sub(f.margin.span()).unwrap_or(d);
    if now >= d {
        Clock {
            state: ClockState::Overdue,
            deadline,
            next_change: None,
        }
    } else if now >= soon {
        Clock {
            state: ClockState::DueSoon,
            deadline,
            next_change: Some(d),
        }
    } else {
        Clock {
            state: ClockState::NotDue,
            deadline,
            next_change: Some(soon),
        }
    }
}

/// Total time inside the union of `intervals`, clipped to `[from, to)`.
pub fn exempt_time(
    intervals: &[(Timestamp, Timestamp)],
    from: Timestamp,
    to: Timestamp,
) -> SignedDuration {
    if intervals.is_empty() || to <= from {
        return SignedDuration::ZERO;
    }
    let mut clipped: Vec<(Timestamp, Timestamp)> = intervals
        .iter()
        .map(|&(a, b)| (a.max(from), b.min(to)))
        .filter(|(a, b)| a < b)
        .collect();
    clipped.sort();
    let mut total = SignedDuration::ZERO;
    let mut current: Option<(Timestamp, Timestamp)> = None;
    for (a, b) in clipped {
        current = match current {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total = total.saturating_add(cb.duration_since(ca));
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some((ca, cb)) = current {
        total = total.saturating_add(cb.duration_since(ca));
    }
    total
}

/// Accumulates pair clocks into per tier × severity figures.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// A handful of tiers × four severities: a short list searched without allocating.
    cells: Vec<((String, Severity), CellTally)>,
}

#[derive(Clone, Debug, Default)]
struct CellTally {
    on_time: u32,
    late: u32,
    overdue: u32,
    open: u32,
    due_soon: u32,
    exempt: u32,
    tti_secs: Vec<i64>,
    /// `tti_secs` is in ascending order (after [`Tally::settle`], kept so by
    /// [`Tally::insert_at`] and [`Tally::remove_at`]).
    sorted: bool,
}

impl CellTally {
    /// Its samples, put in order if they are not.
    fn ordered(&mut self) -> &mut Vec<i64> {
        if !self.sorted {
            self.tti_secs.sort_unstable();
            self.sorted = true;
        }
        &mut self.tti_secs
    }

    /// No pair counts here (a cell a kept tally emptied; a pass never makes one).
    fn is_empty(&self) -> bool {
        self.on_time + self.late + self.overdue + self.open + self.exempt == 0
    }

    /// The count a clock state adds to, and the due-soon count when it is DueSoon.
    fn step(&mut self, state: ClockState, by: i64) {
        let bump = |n: &mut u32| *n = n.saturating_add_signed(by as i32);
        match state {
            ClockState::InstalledOnTime => bump(&mut self.on_time),
            ClockState::InstalledLate => bump(&mut self.late),
            ClockState::Overdue => bump(&mut self.overdue),
            ClockState::NotDue => bump(&mut self.open),
            ClockState::DueSoon => {
                bump(&mut self.open);
                bump(&mut self.due_soon);
            }
            ClockState::Exempt => bump(&mut self.exempt),
        }
    }
}

impl Tally {
    /// Adds one pair. `time_to_install` is the time from release to install, for
    /// installed pairs.
    pub fn add(
        &mut self,
        tier: &str,
        severity: Severity,
        state: ClockState,
        time_to_install: Option<SignedDuration>,
    ) {
        let cell = self.cell(tier, severity);
        self.add_at(cell, state, time_to_install);
    }

    /// The position of the cell for a tier and severity, added if new: a caller adding
    /// many pairs finds each cell once and adds with [`Tally::add_at`].
    pub fn cell(&mut self, tier: &str, severity: Severity) -> usize {
        match self
            .cells
            .iter()
            .position(|((t, s), _)| *s == severity && t == tier)
        {
            Some(i) => i,
            None => {
                self.cells
                    .push(((tier.to_string(), severity), CellTally::default()));
                self.cells.len() - 1
            }
        }
    }

    /// Adds one pair to the cell at `cell` (from [`Tally::cell`]; any other position is
    /// ignored).
    pub fn add_at(
        &mut self,
        cell: usize,
        state: ClockState,
        time_to_install: Option<SignedDuration>,
    ) {
        let Some((_, cell)) = self.cells.get_mut(cell) else {
            return;
        };
        cell.step(state, 1);
        if let Some(t) = time_to_install {
            cell.tti_secs.push(t.as_secs().max(0));
            cell.sorted = false;
        }
    }

    /// Puts every cell's samples in order, so that [`Tally::insert_at`] and
    /// [`Tally::remove_at`] can keep them so and a median is read, not computed.
    pub fn settle(&mut self) {
        for (_, c) in &mut self.cells {
            c.ordered();
        }
    }

    /// Adds one pair to the cell at `cell`, keeping its samples in order (they are, after
    /// [`Tally::settle`]): for a tally kept from one pass to the next.
    pub fn insert_at(
        &mut self,
        cell: usize,
        state: ClockState,
        time_to_install: Option<SignedDuration>,
    ) {
        if let Some((samples, t, _)) = self.kept_step(cell, state, time_to_install, 1) {
            samples.insert(t.0, t.1);
        }
    }

    /// Takes away one pair that [`Tally::add_at`] or [`Tally::insert_at`] added with the
    /// same state and time to install.
    pub fn remove_at(
        &mut self,
        cell: usize,
        state: ClockState,
        time_to_install: Option<SignedDuration>,
    ) {
        if let Some((samples, (at, _), true)) = self.kept_step(cell, state, time_to_install, -1) {
            samples.remove(at);
        }
    }

    /// Counts one pair in (`by` 1) or out (-1) of the cell at `cell`; with a time to
    /// install, the cell's samples (in order), where that time goes in them and the time
    /// itself, and whether it is there already.
    fn kept_step(
        &mut self,
        cell: usize,
        state: ClockState,
        time_to_install: Option<SignedDuration>,
        by: i64,
    ) -> Option<(&mut Vec<i64>, (usize, i64), bool)> {
        let (_, c) = self.cells.get_mut(cell)?;
        c.step(state, by);
        let t = time_to_install?.as_secs().max(0);
        let samples = c.ordered();
        let at = samples.partition_point(|s| *s < t);
        let there = samples.get(at) == Some(&t);
        Some((samples, (at, t), there))
    }

    /// Pairs counted as compliant (installed on time, open and not yet due, or exempt)
    /// and all pairs.
    pub fn totals(&self) -> (u32, u32) {
        self.cells
            .iter()
            .map(|(_, c)| c)
            .fold((0, 0), |(ok, all), c| {
                (
                    ok + c.on_time + c.open + c.exempt,
                    all + c.on_time + c.late + c.overdue + c.open + c.exempt,
                )
            })
    }

    /// Pairs past their deadline and not installed.
    pub fn overdue(&self) -> u32 {
        self.cells.iter().map(|(_, c)| c.overdue).sum()
    }

    /// Per tier and severity, the pairs due within the margin (DueSoon, counted in `open`
    /// too), in the order of [`Tally::cells`].
    pub fn due_soon(&self) -> Vec<(String, Severity, u32)> {
        let mut out: Vec<(String, Severity, u32)> = self
            .cells
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|((tier, severity), c)| (tier.clone(), *severity, c.due_soon))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        out
    }

    /// The per-cell figures, sorted by tier then severity (most severe first).
    pub fn cells(&self) -> Vec<SlaCell> {
        let mut out: Vec<SlaCell> = self
            .cells
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|((tier, severity), c)| {
                let total = c.on_time + c.late + c.overdue + c.open + c.exempt;
                SlaCell {
                    tier: tier.clone(),
                    severity: *severity,
                    installed_on_time: c.on_time,
                    installed_late: c.late,
                    overdue: c.overdue,
                    open: c.open,
                    exempt: c.exempt,
                    compliance_percent: percent(c.on_time + c.open + c.exempt, total),
                    median_time_to_install: if c.sorted {
                        sorted_median(&c.tti_secs)
                    } else {
                        median(&c.tti_secs)
                    }
                    .map(Duration::from_secs),
                }
            })
            .collect();
        out.sort_by(|a, b| a.tier.cmp(&b.tier).then(b.severity.cmp(&a.severity)));
        out
    }

    /// Every time-to-install sample, in seconds, for one tier and severity.
    pub fn samples(&self, tier: &str, severity: Severity) -> &[i64] {
        self.cells
            .iter()
            .find(|((t, s), _)| *s == severity && t == tier)
            .map_or(&[], |(_, c)| &c.tti_secs)
    }
}

/// `part` of `whole` as a percentage rounded to one decimal; None when `whole` is 0.
pub fn percent(part: u32, whole: u32) -> Option<f64> {
    (whole > 0).then(|| (f64::from(part) * 1000.0 / f64::from(whole)).round() / 10.0)
}

/// The median of a sample in ascending order, as [`median`] has it.
fn sorted_median(samples: &[i64]) -> Option<i64> {
    let m = samples.get(samples.len().checked_sub(1)? / 2)?;
    Some(*m - *m % 60)
}

/// The median of a sample (the lower middle for even counts), rounded down to a minute.
pub fn median(samples: &[i64]) -> Option<i64> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    let middle = (v.len() - 1) / 2;
    let (_, m, _) = v.select_nth_unstable(middle);
    Some(*m - *m % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn facts<'a>(
        installed: Option<&str>,
        exempt_now: bool,
        intervals: &'a [(Timestamp, Timestamp)],
    ) -> PairFacts<'a> {
        PairFacts {
            released: ts("2026-11-10T18:00:00Z"),
            within: Some(Duration::days(7)),
            cap: None,
            margin: Duration::hours(24),
            installed_at: installed.map(ts),
            exempt_now,
            exempt_intervals: intervals,
        }
    }

    #[test]
    fn states_follow_the_deadline_and_the_margin() {
        let c = clock(facts(None, false, &[]), ts("2026-11-12T00:00:00Z"));
        assert_eq!(c.state, ClockState::NotDue);
        assert_eq!(c.deadline, Some(ts("2026-11-17T18:00:00Z")));
        assert_eq!(c.next_change, Some(ts("2026-11-16T18:00:00Z")));
        let c = clock(facts(None, false, &[]), ts("2026-11-16T18:00:00Z"));
        assert_eq!(c.state, ClockState::DueSoon);
        assert_eq!(c.next_change, Some(ts("2026-11-17T18:00:00Z")));
        assert_eq!(
            clock(facts(None, false, &[]), ts("2026-11-17T18:00:00Z")).state,
            ClockState::Overdue
        );
        let on_time = clock(
            facts(Some("2026-11-17T18:00:00Z"), false, &[]),
            ts("2026-11-20T00:00:00Z"),
        );
        assert_eq!(on_time.state, ClockState::InstalledOnTime);
        let late = clock(
            facts(Some("2026-11-17T18:00:01Z"), false, &[]),
            ts("2026-11-20T00:00:00Z"),
        );
        assert_eq!(late.state, ClockState::InstalledLate);
    }

    #[test]
    fn a_cap_before_the_sla_deadline_is_the_deadline_and_exemption_still_adds() {
        let capped = |cap: &str, intervals: &[(Timestamp, Timestamp)]| {
            let mut f = facts(None, false, intervals);
            f.cap = Some(ts(cap));
            clock(f, ts("2026-11-12T00:00:00Z")).deadline
        };
        // The SLA gives 2026-11-17T18:00; a KEV due date earlier wins, a later one not.
        assert_eq!(
            capped("2026-11-14T00:00:00Z", &[]),
            Some(ts("2026-11-14T00:00:00Z"))
        );
        assert_eq!(
            capped("2026-11-30T00:00:00Z", &[]),
            Some(ts("2026-11-17T18:00:00Z"))
        );
        let paused = [(ts("2026-11-11T00:00:00Z"), ts("2026-11-11T12:00:00Z"))];
        assert_eq!(
            capped("2026-11-14T00:00:00Z", &paused),
            Some(ts("2026-11-14T12:00:00Z"))
        );
        // Without an SLA row, the cap alone is the deadline.
        let mut f = facts(None, false, &[]);
        f.within = None;
        f.cap = Some(ts("2026-11-14T00:00:00Z"));
        assert_eq!(
            clock(f, ts("2026-11-12T00:00:00Z")).state,
            ClockState::NotDue
        );
        assert_eq!(
            clock(f, ts("2026-11-14T00:00:00Z")).state,
            ClockState::Overdue
        );
    }

    #[test]
    fn an_exception_pauses_the_clock_and_it_resumes_where_it_stood() {
        // Exempt for three days starting two days after release; now one day after expiry.
        let iv = [(ts("2026-11-12T18:00:00Z"), ts("2026-11-15T18:00:00Z"))];
        let during = clock(facts(None, true, &iv), ts("2026-11-14T00:00:00Z"));
        assert_eq!(during.state, ClockState::Exempt);
        let after = clock(facts(None, false, &iv), ts("2026-11-16T18:00:00Z"));
        assert_eq!(
            after.deadline,
            Some(ts("2026-11-20T18:00:00Z")),
            "7d + 3d exempt"
        );
        assert_eq!(after.state, ClockState::NotDue);
        // Granted after the pair was already overdue: still overdue by the same amount once it ends.
        let late_iv = [(ts("2026-11-19T18:00:00Z"), ts("2026-11-22T18:00:00Z"))];
        let c = clock(facts(None, false, &late_iv), ts("2026-11-23T18:00:00Z"));
        assert_eq!(c.deadline, Some(ts("2026-11-20T18:00:00Z")));
        assert_eq!(c.state, ClockState::Overdue);
    }

    #[test]
    fn overlapping_exemptions_count_once() {
        let iv = [
            (ts("2026-11-11T00:00:00Z"), ts("2026-11-13T00:00:00Z")),
            (ts("2026-11-12T00:00:00Z"), ts("2026-11-14T00:00:00Z")),
            (ts("2026-11-01T00:00:00Z"), ts("2026-11-02T00:00:00Z")),
        ];
        let t = exempt_time(&iv, ts("2026-11-10T18:00:00Z"), ts("2026-11-30T00:00:00Z"));
        assert_eq!(t, SignedDuration::from_hours(72));
    }

    #[test]
    fn tally_computes_compliance_and_median() {
        let mut t = Tally::default();
        t.add(
            "tier-1",
            Severity::Critical,
            ClockState::InstalledOnTime,
            Some(SignedDuration::from_hours(10)),
        );
        t.add(
            "tier-1",
            Severity::Critical,
            ClockState::InstalledLate,
            Some(SignedDuration::from_hours(70)),
        );
        t.add(
            "tier-1",
            Severity::Critical,
            ClockState::InstalledOnTime,
            Some(SignedDuration::from_hours(20)),
        );
        t.add("tier-1", Severity::Critical, ClockState::Overdue, None);
        let cells = t.cells();
        assert_eq!(cells.len(), 1);
        assert_eq!(cells[0].compliance_percent, Some(50.0));
        assert_eq!(cells[0].median_time_to_install, Some(Duration::hours(20)));
        assert_eq!(t.totals(), (2, 4));
        assert_eq!(t.overdue(), 1);
    }

    #[test]
    fn due_soon_pairs_are_open_and_counted_apart() {
        let mut t = Tally::default();
        t.add("tier-1", Severity::High, ClockState::DueSoon, None);
        t.add("tier-1", Severity::High, ClockState::NotDue, None);
        t.add("default", Severity::Low, ClockState::Overdue, None);
        assert_eq!(t.cells()[1].open, 2, "DueSoon is still open");
        assert_eq!(
            t.due_soon(),
            vec![
                ("default".to_string(), Severity::Low, 0),
                ("tier-1".to_string(), Severity::High, 1),
            ]
        );
    }
}
