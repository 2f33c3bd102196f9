//! The dnf backend against real dnf 4 and rpm, on a confined root in a temp dir: tiny
//! packages built here with rpmbuild, a createrepo_c repository, `--installroot`. Skips
//! loudly ("skipped: …") where rpmbuild, createrepo_c, dnf or a static busybox are absent
//! (Debian: `apt-get install rpm dnf createrepo-c busybox-static`) or not run as root.
//! Every test checks that the host's rpmdb, dnf state and dnf logs are unchanged.

#[path = "agent_dnf_repo.rs"]
mod repo;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ringmaster::agent::linux::backend::{Backend, BackendError, Pin, RebootNeed};
use ringmaster::agent::linux::dnf::{Dnf, DnfConfig, DnfTimeouts};
use ringmaster::agent::linux::runner::SystemRunner;

use repo::{HostSnapshot, Package, Repo, TempDir};

const DEMO: &str = "ringmaster-demo";

fn demo(release: &'static str, pre: &'static str, post: &'static str) -> Package<'static> {
    Package {
        name: DEMO,
        version: "1.0",
        release,
        pre,
        post,
    }
}

/// 1.0-1 and 1.0-2 are sound; 1.0-3's `%pre` refuses (a failing `%pre` fails the
/// transaction); 1.0-4's `%post` fails (rpm and dnf only warn: it installs).
fn demo_packages() -> Vec<Package<'static>> {
    vec![
        demo("1", "true", "true"),
        demo("2", "true", "true"),
        demo(
            "3",
            "echo 'ringmaster-demo 1.0-3 refuses to install' >&2; exit 1",
            "true",
        ),
        demo(
            "4",
            "true",
            "echo 'ringmaster-demo 1.0-4 post step broke' >&2; exit 1",
        ),
    ]
}

fn backend(root: &Path, timeouts: DnfTimeouts, setopts: &[&str]) -> Dnf<SystemRunner> {
    Dnf::new(
        SystemRunner,
        DnfConfig {
            root: Some(root.to_path_buf()),
            releasever: Some("9".into()),
            setopts: setopts.iter().map(|s| s.to_string()).collect(),
            timeouts,
            running_kernel: Some("5.14.0-362.8.1.el9_3.x86_64".into()),
            ..DnfConfig::default()
        },
    )
}

fn short_timeouts() -> DnfTimeouts {
    DnfTimeouts {
        query: Duration::from_secs(30),
        metadata: Duration::from_secs(60),
        transaction: Duration::from_secs(60),
    }
}

fn pin(package: &str, version: &str) -> Pin {
    Pin {
        package: package.into(),
        version: version.into(),
    }
}

/// The installed versions of a package, from the backend's own inventory.
fn installed(dnf: &Dnf<SystemRunner>, name: &str) -> Vec<String> {
    dnf.inventory()
        .expect("inventory")
        .packages
        .into_iter()
        .filter(|p| p.name == name)
        .map(|p| p.version)
        .collect()
}

fn skip() -> bool {
    match repo::missing_prerequisite() {
        Some(why) => {
            eprintln!("skipped: {why}");
            true
        }
        None => false,
    }
}

#[test]
fn install_upgrade_fail_and_roll_back_on_a_confined_root() {
    if skip() {
        return;
    }
    let host = HostSnapshot::take();
    let repo = Repo::build(&demo_packages());
    let root = repo::root(&repo);
    let dnf = backend(&root.0, short_timeouts(), &[]);

    assert_eq!(dnf.ecosystem().expect("os-release").0, "AlmaLinux:9");
    let offered = dnf.available(&[DEMO.into()], true).expect("repoquery");
    let versions: Vec<&str> = offered[DEMO].iter().map(|c| c.version.as_str()).collect();
    assert_eq!(versions, ["1.0-4", "1.0-3", "1.0-2", "1.0-1"]);

    dnf.install(&[pin(DEMO, "1.0-1")]).expect("installs 1.0-1");
    let inventory = dnf.inventory().expect("inventory");
    let package = inventory
        .packages
        .iter()
        .find(|p| p.name == DEMO)
        .expect("installed");
    assert_eq!(
        (package.version.as_str(), package.arch.as_str()),
        ("1.0-1", "noarch")
    );
    assert_eq!(
        (package.source.as_str(), package.source_version.as_str()),
        (DEMO, "1.0-1")
    );

    // A locally changed %config(noreplace) file stays; rpm puts the new one beside it.
    let conf = root.0.join("etc/ringmaster-demo/ringmaster-demo.conf");
    std::fs::write(&conf, "changed on this host\n").expect("local change");
    dnf.install(&[pin(DEMO, "1.0-2")])
        .expect("upgrades to 1.0-2");
    assert_eq!(installed(&dnf, DEMO), ["1.0-2"]);
    assert_eq!(
        std::fs::read_to_string(&conf).expect("conf"),
        "changed on this host\n"
    );
    let rpmnew = std::fs::read_to_string(conf.with_extension("conf.rpmnew")).expect("rpmnew");
    assert_eq!(rpmnew, "shipped by 1.0-2\n");

    let err = dnf
        .install(&[pin(DEMO, "1.0-3")])
        .expect_err("%pre refuses");
    let BackendError::Failed { code, tail, .. } = &err else {
        panic!("not Failed: {err:?}");
    };
    assert_eq!(*code, Some(1));
    assert!(
        tail.contains("ringmaster-demo 1.0-3 refuses to install"),
        "{tail}"
    );
    assert!(
        tail.contains("%prein(ringmaster-demo-1.0-3.noarch) scriptlet failed"),
        "{tail}"
    );
    assert_eq!(installed(&dnf, DEMO), ["1.0-2"]);

    let message = dnf
        .install(&[pin(DEMO, "1.0-4")])
        .expect("a failing %post only warns");
    assert!(
        message.contains("%post(ringmaster-demo-1.0-4.noarch) scriptlet failed"),
        "{message}"
    );
    assert_eq!(installed(&dnf, DEMO), ["1.0-4"]);

    dnf.downgrade(&[pin(DEMO, "1.0-2")])
        .expect("rolls back to 1.0-2");
    assert_eq!(installed(&dnf, DEMO), ["1.0-2"]);

    let err = dnf
        .downgrade(&[pin(DEMO, "0.9-1")])
        .expect_err("never offered");
    assert!(
        matches!(&err, BackendError::CannotRollBack { reason, .. } if reason.contains("0.9-1")),
        "{err:?}"
    );
    let err = dnf
        .install(&[pin(DEMO, "9.9-9")])
        .expect_err("never offered");
    assert!(
        matches!(&err, BackendError::Unavailable { package, .. } if package == DEMO),
        "{err:?}"
    );
    assert_eq!(installed(&dnf, DEMO), ["1.0-2"]);

    drop(root);
    drop(repo);
    assert_eq!(
        HostSnapshot::take(),
        host,
        "the host's package state changed"
    );
}

#[test]
fn a_newer_kernel_in_the_root_asks_for_a_reboot_and_is_never_downgraded() {
    if skip() {
        return;
    }
    let host = HostSnapshot::take();
    let kernel = Package {
        name: "kernel-core",
        version: "5.14.0",
        release: "427.13.1.el9_4",
        pre: "true",
        post: "true",
    };
    let repo = Repo::build(&[kernel]);
    let root = repo::root(&repo);
    let dnf = backend(&root.0, short_timeouts(), &[]);
    assert_eq!(dnf.reboot_required().expect("judged"), RebootNeed::None);

    dnf.install(&[pin("kernel-core", "5.14.0-427.13.1.el9_4")])
        .expect("installs");
    let RebootNeed::Required(reasons) = dnf.reboot_required().expect("judged") else {
        panic!("no reboot asked");
    };
    assert_eq!(
        reasons,
        [
            "kernel-core 5.14.0-427.13.1.el9_4 is installed but 5.14.0-362.8.1.el9_3.x86_64 is running"
        ]
    );
    let err = dnf
        .downgrade(&[pin("kernel-core", "5.14.0-362.8.1.el9_3")])
        .expect_err("refused");
    assert!(
        matches!(err, BackendError::CannotRollBack { .. }),
        "{err:?}"
    );

    drop(root);
    drop(repo);
    assert_eq!(
        HostSnapshot::take(),
        host,
        "the host's package state changed"
    );
}

/// Kills the lock holder's whole process group (rpm and its sleeping scriptlet).
struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.0.wait();
    }
}

#[test]
fn held_locks_are_locked_and_never_hang_past_the_limit() {
    if skip() {
        return;
    }
    let host = HostSnapshot::take();
    let slow = Package {
        name: "ringmaster-slow",
        version: "1",
        release: "1",
        pre: "busybox touch /ringmaster-slow-started; busybox sleep 60",
        post: "true",
    };
    let mut packages = demo_packages();
    packages.push(slow);
    let repo = Repo::build(&packages);
    let root = repo::root(&repo);
    let dnf = backend(&root.0, short_timeouts(), &[]);
    dnf.install(&[pin(DEMO, "1.0-1")]).expect("installs 1.0-1");

    // rpm's transaction lock, held by an rpm whose %pre sleeps.
    let holder = {
        use std::os::unix::process::CommandExt;
        Command::new("rpm")
            .arg("--root")
            .arg(&root.0)
            .arg("-i")
            .arg(repo.rpm("ringmaster-slow-1-1"))
            .env("LC_ALL", "C")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .expect("rpm starts")
    };
    let holder = Holder(holder);
    let started = Instant::now();
    while !root.0.join("ringmaster-slow-started").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the slow %pre never ran"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let began = Instant::now();
    let err = dnf
        .install(&[pin(DEMO, "1.0-2")])
        .expect_err("rpm holds the lock");
    assert!(
        matches!(&err, BackendError::Locked { tail } if tail.contains("transaction lock")),
        "{err:?}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "took {:?}",
        began.elapsed()
    );
    drop(holder);

    // dnf's own lock, held by a live process (this one): dnf 4 exits at once (200).
    let lock_dir = root.0.join("var/lib/dnf");
    std::fs::create_dir_all(&lock_dir).expect("lock dir");
    std::fs::write(
        lock_dir.join("rpmdb_lock.pid"),
        std::process::id().to_string(),
    )
    .expect("pid");
    let began = Instant::now();
    let err = dnf
        .install(&[pin(DEMO, "1.0-2")])
        .expect_err("dnf holds the lock");
    assert!(
        matches!(&err, BackendError::Locked { tail } if tail.contains("already locked by")),
        "{err:?}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "took {:?}",
        began.elapsed()
    );

    // Without exit_on_lock dnf 4 waits forever: the runner kills it at the limit, and what
    // it printed says why.
    let waiting = backend(
        &root.0,
        DnfTimeouts {
            transaction: Duration::from_secs(4),
            ..short_timeouts()
        },
        &["exit_on_lock=False"],
    );
    let began = Instant::now();
    let err = waiting
        .install(&[pin(DEMO, "1.0-2")])
        .expect_err("waits for the lock");
    assert!(
        matches!(&err, BackendError::Locked { tail } if tail.contains("Waiting for process with pid")),
        "{err:?}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "took {:?}",
        began.elapsed()
    );
    std::fs::remove_file(lock_dir.join("rpmdb_lock.pid")).expect("unlock");

    dnf.install(&[pin(DEMO, "1.0-2")])
        .expect("installs once the locks are gone");
    assert_eq!(installed(&dnf, DEMO), ["1.0-2"]);

    drop(root);
    drop(repo);
    assert_eq!(
        HostSnapshot::take(),
        host,
        "the host's package state changed"
    );
}

#[test]
fn a_broken_rpmdb_is_broken() {
    if skip() {
        return;
    }
    let host = HostSnapshot::take();
    let repo = Repo::build(&demo_packages()[..1]);
    let root = repo::root(&repo);
    let dnf = backend(&root.0, short_timeouts(), &[]);
    dnf.install(&[pin(DEMO, "1.0-1")]).expect("installs 1.0-1");
    let db = repo::rpmdb_file(&root.0).expect("dnf made an rpmdb in the root");
    std::fs::write(&db, vec![0x5a; 64 * 1024]).expect("corrupt it");

    let err = dnf.inventory().expect_err("broken");
    assert!(matches!(err, BackendError::Broken { .. }), "{err:?}");
    let err = dnf.install(&[pin(DEMO, "1.0-1")]).expect_err("broken");
    assert!(matches!(err, BackendError::Broken { .. }), "{err:?}");

    drop(root);
    drop(repo);
    assert_eq!(
        HostSnapshot::take(),
        host,
        "the host's package state changed"
    );
}

#[test]
fn an_absent_dnf_is_missing() {
    let dir = TempDir::new("absent");
    let dnf = Dnf::new(
        SystemRunner,
        DnfConfig {
            root: Some(dir.0.clone()),
            dnf_program: "/nonexistent/ringmaster-dnf".into(),
            rpm_program: "/nonexistent/ringmaster-rpm".into(),
            ..DnfConfig::default()
        },
    );
    let err = dnf.install(&[pin(DEMO, "1.0-1")]).expect_err("no dnf");
    assert!(matches!(err, BackendError::Missing(_)), "{err:?}");
    let err = dnf.inventory().expect_err("no rpm");
    assert!(matches!(err, BackendError::Missing(_)), "{err:?}");
}
