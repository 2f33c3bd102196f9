//! The apt backend against the real apt-get, dpkg and dpkg-query, on confined roots built
//! in temp dirs (`agent_apt_fixture`): installs, an upgrade pinned to a version, a
//! failing maintainer script and the rollback after it, a rollback from the archive
//! cache, a held lock and a hung maintainer script. The host's dpkg database and
//! `/etc/apt` are checked to be untouched after each test.
//!
//! Needs root and the tools `agent_apt_fixture::missing_tools` lists; without them each
//! test prints `skipped: …` and returns.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringmaster::agent::linux::backend::{Backend, BackendError, Pin, RebootNeed};
use ringmaster::agent::linux::inventory::{Ecosystem, Flavour};

use crate::agent_apt_fixture::{
    DEMO, Fixture, HANG, HostState, POSTINST_FAILS_WITH, missing_tools,
};

fn pin(package: &str, version: &str) -> Pin {
    Pin {
        package: package.into(),
        version: version.into(),
    }
}

/// Prints why the test cannot run here, and says so.
fn skipped(test: &str) -> bool {
    match missing_tools() {
        Some(why) => {
            eprintln!("skipped: {test}: {why}");
            true
        }
        None => false,
    }
}

/// The installed version of a package as the backend's inventory reads it.
fn installed(apt: &impl Backend, package: &str) -> Option<String> {
    let inventory = apt.inventory().expect("the inventory");
    assert_eq!(inventory.flavour, Some(Flavour::Deb));
    inventory
        .packages
        .into_iter()
        .find(|p| p.name == package)
        .map(|p| p.version)
}

#[test]
fn install_upgrade_a_failing_postinst_and_the_rollback_after_it() {
    if skipped("install_upgrade_a_failing_postinst_and_the_rollback_after_it") {
        return;
    }
    let host = HostState::read();
    let fixture = Fixture::new("flow");
    let apt = fixture.apt(fixture.config());

    let offered = apt.available(&[DEMO.into()], true).expect("offered");
    assert_eq!(versions(&offered[DEMO]), ["1.0-3", "1.0-2", "1.0-1"]);
    assert_eq!(
        apt.ecosystem().expect("os-release"),
        Ecosystem("Debian:12".into())
    );
    assert_eq!(installed(&apt, DEMO), None);

    let tail = apt.install(&[pin(DEMO, "1.0-1")]).expect("installs 1.0-1");
    assert!(tail.contains("ringmaster-demo configured"), "{tail}");
    assert_eq!(installed(&apt, DEMO).as_deref(), Some("1.0-1"));
    assert_eq!(fixture.payload(DEMO), "1.0-1");
    assert!(
        fixture.root.join("tmp/root-apt-conf-read").exists(),
        "apt did not read the root's apt.conf.d"
    );

    apt.install(&[pin(DEMO, "1.0-2")])
        .expect("upgrades to 1.0-2");
    assert_eq!(installed(&apt, DEMO).as_deref(), Some("1.0-2"));
    assert_eq!(fixture.dpkg_status(DEMO), ("1.0-2".into(), "ii".into()));

    // 1.0-3's postinst fails: apt-get exits 100, the postinst's words in the tail.
    let err = apt
        .install(&[pin(DEMO, "1.0-3")])
        .expect_err("the postinst fails");
    let BackendError::Failed { code, tail, .. } = &err else {
        panic!("not a failure: {err:?}");
    };
    assert_eq!(*code, Some(100));
    assert!(tail.contains(POSTINST_FAILS_WITH), "{tail}");
    // dpkg unpacked 1.0-3 and left it half-configured (`iF`): not an interrupted run,
    // so the next operation is not refused.
    assert_eq!(fixture.dpkg_status(DEMO), ("1.0-3".into(), "iF".into()));
    assert_eq!(fixture.payload(DEMO), "1.0-3");
    // The inventory counts only configured packages: a half-configured one fixes nothing.
    assert_eq!(installed(&apt, DEMO), None);

    // The rollback replaces the half-configured 1.0-3 with a configured 1.0-2.
    let tail = apt
        .downgrade(&[pin(DEMO, "1.0-2")])
        .expect("rolls back to 1.0-2");
    assert!(
        tail.contains("Setting up ringmaster-demo (1.0-2)"),
        "{tail}"
    );
    assert_eq!(fixture.dpkg_status(DEMO), ("1.0-2".into(), "ii".into()));
    assert_eq!(fixture.payload(DEMO), "1.0-2");

    assert_eq!(
        HostState::read(),
        host,
        "the host's dpkg database or /etc/apt changed"
    );
}

#[test]
fn versions_no_repository_offers() {
    if skipped("versions_no_repository_offers") {
        return;
    }
    let host = HostState::read();
    let fixture = Fixture::new("gone");
    let apt = fixture.apt(fixture.config());
    apt.available(&[], true).expect("refreshes");

    let err = apt.install(&[pin(DEMO, "9.9-1")]).expect_err("not offered");
    let BackendError::Unavailable {
        package, wanted, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((package.as_str(), wanted.as_str()), (DEMO, "9.9-1"));
    let err = apt
        .install(&[pin("ringmaster-nosuch", "1.0")])
        .expect_err("unknown");
    assert!(matches!(err, BackendError::Unavailable { .. }), "{err:?}");

    apt.install(&[pin(DEMO, "1.0-2")]).expect("installs 1.0-2");
    let err = apt
        .install(&[pin(DEMO, "1.0-1")])
        .expect_err("an install never downgrades");
    assert!(matches!(err, BackendError::Failed { .. }), "{err:?}");
    let err = apt
        .downgrade(&[pin(DEMO, "0.9-1")])
        .expect_err("never offered");
    let BackendError::CannotRollBack { package, reason } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(package, DEMO);
    assert!(reason.contains("no longer offered"), "{reason}");

    // 1.0-1 leaves the repository but stays in the archive cache: the rollback installs
    // it from there.
    let cached = fixture
        .root
        .join("var/cache/apt/archives/ringmaster-demo_1.0-1_all.deb");
    std::fs::rename(fixture.deb(DEMO, "1.0-1"), &cached).expect("moving 1.0-1 to the cache");
    fixture.index();
    let offered = apt.available(&[DEMO.into()], true).expect("offered");
    assert_eq!(versions(&offered[DEMO]), ["1.0-3", "1.0-2"]);
    apt.downgrade(&[pin(DEMO, "1.0-1")])
        .expect("rolls back from the cache");
    assert_eq!(fixture.dpkg_status(DEMO), ("1.0-1".into(), "ii".into()));

    let err = apt.downgrade(&[pin("libc6", "2.36-9")]).expect_err("glibc");
    assert!(
        matches!(err, BackendError::CannotRollBack { .. }),
        "{err:?}"
    );
    assert_eq!(
        HostState::read(),
        host,
        "the host's dpkg database or /etc/apt changed"
    );
}

#[test]
fn reboot_flags_under_the_root() {
    if skipped("reboot_flags_under_the_root") {
        return;
    }
    let fixture = Fixture::new("reboot");
    let apt = fixture.apt(fixture.config());
    assert_eq!(apt.reboot_required().expect("reads"), RebootNeed::None);
    std::fs::write(fixture.root.join("run/reboot-required"), "").expect("flag");
    std::fs::write(fixture.root.join("run/reboot-required.pkgs"), "libc6\n").expect("pkgs");
    assert_eq!(
        apt.reboot_required().expect("reads"),
        RebootNeed::Required(vec![
            "libc6 asks for a reboot (reboot-required.pkgs)".into()
        ])
    );
}

/// An `apt-get` on the root that holds dpkg's frontend lock for 30 s: a `DPkg::Pre-Invoke`
/// hook runs while apt holds it, and marks the moment by creating `tmp/locked`.
///
/// Not `flock(1)`: it takes a BSD `flock(2)` lock, and apt and dpkg take POSIX `fcntl`
/// locks, which Linux keeps apart — apt would not notice it.
fn hold_the_lock(fixture: &Fixture) -> Child {
    let root = fixture.root.display().to_string();
    let marker = fixture.root.join("tmp/locked");
    let child = Command::new("apt-get")
        .env("LC_ALL", "C")
        .env("APT_CONFIG", format!("{root}/etc/apt/ringmaster-root.conf"))
        .args(["-o", &format!("Dir={root}/")])
        .args(["-o", &format!("DPkg::Options::=--root={root}")])
        .args([
            "-o",
            &format!("DPkg::Options::=--log={root}/var/log/dpkg.log"),
        ])
        .args(["-o", "Dpkg::Use-Pty=0"])
        .args([
            "-o",
            &format!("DPkg::Pre-Invoke::=touch {}; sleep 30", marker.display()),
        ])
        .args(["install", "-y", "--reinstall", DEMO])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("starting the apt-get that holds the lock");
    let until = Instant::now() + Duration::from_secs(20);
    while !marker.exists() {
        assert!(Instant::now() < until, "the lock holder never got the lock");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[test]
fn a_held_lock_is_locked_within_the_wait_not_a_hang() {
    if skipped("a_held_lock_is_locked_within_the_wait_not_a_hang") {
        return;
    }
    let host = HostState::read();
    let fixture = Fixture::new("lock");
    let apt = fixture.apt(fixture.config());
    apt.available(&[], true).expect("refreshes");
    apt.install(&[pin(DEMO, "1.0-1")]).expect("installs 1.0-1");

    let mut holder = hold_the_lock(&fixture);
    let began = Instant::now();
    let result = apt.install(&[pin(DEMO, "1.0-2")]);
    let waited = began.elapsed();
    let group = nix::unistd::Pid::from_raw(i32::try_from(holder.id()).expect("a pid"));
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let _ = holder.wait();

    let err = result.expect_err("locked");
    let BackendError::Locked { tail } = &err else {
        panic!("not a lock: {err:?}");
    };
    assert!(tail.contains("lock-frontend"), "{tail}");
    assert!(
        waited >= Duration::from_millis(1500),
        "it did not wait: {waited:?}"
    );
    assert!(waited < Duration::from_secs(15), "it hung: {waited:?}");
    // The holder never reached dpkg: nothing changed, and with the lock free the same
    // install goes through.
    assert_eq!(fixture.dpkg_status(DEMO), ("1.0-1".into(), "ii".into()));
    apt.install(&[pin(DEMO, "1.0-2")])
        .expect("installs once the lock is free");
    assert_eq!(fixture.dpkg_status(DEMO), ("1.0-2".into(), "ii".into()));
    assert_eq!(
        HostState::read(),
        host,
        "the host's dpkg database or /etc/apt changed"
    );
}

#[test]
fn a_hung_maintainer_script_is_killed_at_the_time_limit() {
    if skipped("a_hung_maintainer_script_is_killed_at_the_time_limit") {
        return;
    }
    let host = HostState::read();
    let fixture = Fixture::new("hang");
    let limit = Duration::from_secs(3);
    let apt = fixture.apt(ringmaster::agent::linux::apt::AptConfig {
        install_timeout: limit,
        ..fixture.config()
    });
    apt.available(&[], true).expect("refreshes");

    let began = Instant::now();
    let err = apt.install(&[pin(HANG, "1.0-1")]).expect_err("times out");
    let took = began.elapsed();
    let BackendError::TimedOut { after, tail, .. } = &err else {
        panic!("not a time-out: {err:?}");
    };
    assert_eq!(*after, limit);
    assert!(tail.contains("ringmaster-hang postinst: hanging"), "{tail}");
    assert!(took < Duration::from_secs(15), "took {took:?}");

    // The postinst (dpkg's grandchild, chrooted) went with apt-get's process group.
    let pid = std::fs::read_to_string(fixture.root.join("tmp/ringmaster-hang.pid"))
        .expect("the postinst wrote its pid");
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
    let gone = match &stat {
        Err(_) => true,
        Ok(stat) => stat.contains(") Z "),
    };
    assert!(gone, "the hung postinst {pid} survived");

    // dpkg was killed mid-configure: the package stays half-configured and dpkg's
    // journal is left, so the next operation is told to repair the database.
    assert_eq!(fixture.dpkg_status(HANG), ("1.0-1".into(), "iF".into()));
    let err = apt
        .install(&[pin(DEMO, "1.0-1")])
        .expect_err("the database needs repair");
    assert!(matches!(err, BackendError::Broken { .. }), "{err:?}");
    assert_eq!(
        HostState::read(),
        host,
        "the host's dpkg database or /etc/apt changed"
    );
}

/// The versions offered, in order.
fn versions(candidates: &[ringmaster::agent::linux::applicability::Candidate]) -> Vec<&str> {
    candidates.iter().map(|c| c.version.as_str()).collect()
}
