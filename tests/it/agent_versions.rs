//! The agent's version orderings against the package managers themselves: every pair of
//! tests/fixtures/agent/versions/{deb,rpm}.tsv and a few thousand proptest-generated
//! pairs are compared by `dpkg --compare-versions` and by rpm's `rpm.vercmp` (one batch
//! per tool), and must come out the same as `version::compare` says, errors included.
//!
//! A tool that is not installed is skipped with a printed reason (`skipped: rpm not
//! installed`); CI installs both. The generator's seed is random, printed on failure, and
//! can be fixed with `RINGMASTER_VERSION_SEED=<u64>`.

use std::cmp::Ordering;
use std::path::PathBuf;
use std::process::Command;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use ringmaster::agent::linux::inventory::Flavour;
use ringmaster::agent::linux::version;

/// How many generated pairs each tool judges.
const GENERATED: usize = 3000;

/// Version pairs.
type Pairs = [(String, String)];
/// A tool's order of each pair; `None` where it rejects a version.
type Orders = Vec<Option<Ordering>>;

/// A table of tests/fixtures/agent/versions: `A<TAB>B<TAB>Less|Equal|Greater|Error`
/// lines and `#` comments (the unit tests of `version` read them too).
fn table(name: &str) -> Vec<(String, String, Option<Ordering>)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/agent/versions")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("version table");
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| match line.split('\t').collect::<Vec<_>>()[..] {
            [a, b, want] => (a.to_string(), b.to_string(), order(want)),
            _ => panic!("not A<TAB>B<TAB>ORDER: {line:?}"),
        })
        .collect()
}

/// A scratch directory of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("ringmaster-versions-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Writes the pairs as `A<TAB>B` lines.
fn write_pairs(dir: &std::path::Path, pairs: &[(String, String)]) -> PathBuf {
    let path = dir.join("pairs.tsv");
    let text: String = pairs.iter().map(|(a, b)| format!("{a}\t{b}\n")).collect();
    std::fs::write(&path, text).expect("pairs written");
    path
}

fn order(word: &str) -> Option<Ordering> {
    match word {
        "Less" => Some(Ordering::Less),
        "Equal" => Some(Ordering::Equal),
        "Greater" => Some(Ordering::Greater),
        "Error" => None,
        other => panic!("the tool said {other:?}"),
    }
}

/// Whether `program` runs at all.
fn installed(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

/// How dpkg orders each pair (`None`: dpkg rejects a version), in one shell process.
fn dpkg_orders(pairs: &Pairs) -> Orders {
    let dir = scratch("dpkg");
    let file = write_pairs(&dir, pairs);
    let script = r#"
while IFS='	' read -r a b; do
  dpkg --compare-versions "$a" lt "$b" 2>/dev/null; lt=$?
  if [ $lt -eq 2 ]; then echo Error
  elif [ $lt -eq 0 ]; then echo Less
  elif dpkg --compare-versions "$a" eq "$b" 2>/dev/null; then echo Equal
  else echo Greater; fi
done < "$1"
"#;
    let out = Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(&file)
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(order)
        .collect()
}

/// How rpm's `rpm.vercmp` orders each pair (`None`: rpm rejects a version), in one
/// `rpm --eval` running a Lua script over the pairs.
fn rpm_orders(pairs: &Pairs) -> Orders {
    let dir = scratch("rpm");
    let file = write_pairs(&dir, pairs);
    let script = dir.join("vercmp.lua");
    let lua = format!(
        r#"local names = {{ [-1] = "Less", [0] = "Equal", [1] = "Greater" }}
for line in io.lines([==[{}]==]) do
  local a, b = line:match("^(.-)\t(.*)$")
  local ok, r = pcall(rpm.vercmp, a, b)
  io.write(ok and names[r] or "Error", "\n")
end
"#,
        file.display()
    );
    std::fs::write(&script, lua).expect("script written");
    // HOME in the scratch dir: Debian's rpm opens (and creates) `~/.rpmdb` even to
    // evaluate a macro, and the host's must stay untouched (agent_dnf checks it).
    let out = Command::new("rpm")
        .env("HOME", &dir)
        .arg("--eval")
        .arg(format!("%{{lua: dofile([==[{}]==])}}", script.display()))
        .output()
        .expect("rpm runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .filter(|l| !l.is_empty())
        .map(order)
        .collect()
}

/// Pieces versions are made of, each ordering's own (no blanks, tabs or newlines: the
/// pairs travel as lines of `A<TAB>B`).
const DEB_TOKENS: &[&str] = &[
    "0", "1", "2", "9", "10", "00", "01", "007", "99", "a", "b", "z", "A", "Z", "rc", "beta", "~",
    "~~", "+", ".", "-", ":", "dfsg", "ubuntu", "deb12u", "+b", "build", "esm", "p", "_",
];
const RPM_TOKENS: &[&str] = &[
    "0",
    "1",
    "2",
    "9",
    "10",
    "00",
    "01",
    "007",
    "99",
    "a",
    "b",
    "z",
    "A",
    "rc",
    "el",
    "el9_",
    "fc",
    "~",
    "^",
    "+",
    ".",
    "..",
    "_",
    "-",
    ":",
    "module",
    "module+el",
    "alma",
    "git",
    "%",
];

/// A version: a leading number most of the time, then tokens, sometimes an epoch,
/// sometimes a revision or release.
fn version(tokens: &'static [&'static str]) -> impl Strategy<Value = String> {
    let piece = || prop::sample::select(tokens);
    let head =
        prop_oneof![9 => "[0-9]{1,3}", 1 => prop::sample::select(tokens).prop_map(String::from)];
    let epoch = prop_oneof![4 => Just(String::new()), 1 => "(0|1|2|10|007|[a-z]|):"];
    let tail = prop::collection::vec(piece(), 0..7).prop_map(|v| v.concat());
    let release = prop_oneof![
        1 => Just(String::new()),
        1 => prop::collection::vec(piece(), 1..5).prop_map(|v| format!("-{}", v.concat())),
    ];
    (epoch, head, tail, release).prop_map(|(e, h, t, r)| format!("{e}{h}{t}{r}"))
}

/// Two versions: unrelated, sharing a prefix, one extending the other, the same, or one
/// with a `0` put in somewhere (often a leading zero: equal).
fn pair(tokens: &'static [&'static str]) -> impl Strategy<Value = (String, String)> {
    (
        version(tokens),
        version(tokens),
        0..5u8,
        any::<prop::sample::Index>(),
    )
        .prop_map(|(a, b, how, at)| {
            let cut = at.index(a.len() + 1);
            match how {
                0 => (a, b),
                1 => (a.clone(), format!("{}{}", &a[..cut], b)),
                2 => (a.clone(), format!("{a}{}", &b[..b.len().min(2)])),
                3 => (a.clone(), a),
                _ => (a.clone(), format!("{}0{}", &a[..cut], &a[cut..])),
            }
        })
}

fn seed() -> u64 {
    match std::env::var("RINGMASTER_VERSION_SEED") {
        Ok(s) => s.parse().expect("RINGMASTER_VERSION_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

/// `n` pairs from the strategy, reproducibly from `seed`. Pairs a tool cannot be handed
/// (a version starting with `-` reads as a dpkg option; an empty one is not an argument
/// rpm's Lua gets) are left out.
fn generate(
    strategy: impl Strategy<Value = (String, String)>,
    n: usize,
    seed: u64,
) -> Vec<(String, String)> {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let usable = |v: &str| !v.is_empty() && !v.starts_with('-');
    let mut pairs = Vec::with_capacity(n);
    while pairs.len() < n {
        let (a, b) = strategy.new_tree(&mut runner).expect("a value").current();
        if usable(&a) && usable(&b) {
            pairs.push((a, b));
        }
    }
    pairs
}

/// Compares ours with the tool's on the table and the generated pairs; returns how many
/// pairs were checked.
fn agree(
    flavour: Flavour,
    table: Vec<(String, String, Option<Ordering>)>,
    generated: Vec<(String, String)>,
    tool: fn(&Pairs) -> Orders,
    seed: u64,
) -> usize {
    let mut pairs: Vec<(String, String)> = table
        .iter()
        .map(|(a, b, _)| (a.clone(), b.clone()))
        .collect();
    pairs.extend(generated);
    let said = tool(&pairs);
    assert_eq!(said.len(), pairs.len(), "one answer per pair");
    let mut wrong = Vec::new();
    for (i, ((a, b), theirs)) in pairs.iter().zip(&said).enumerate() {
        let ours = version::compare(flavour, a, b).ok();
        if ours != *theirs {
            wrong.push(format!("{a:?} vs {b:?}: tool {theirs:?}, ours {ours:?}"));
        }
        if let Some((_, _, written)) = table.get(i)
            && written != theirs
        {
            wrong.push(format!(
                "table row {a:?} vs {b:?} says {written:?}, tool {theirs:?}"
            ));
        }
    }
    let shown: Vec<&String> = wrong.iter().take(25).collect();
    assert!(
        wrong.is_empty(),
        "{flavour:?}: {} of {} pairs disagree (seed {seed}):\n{shown:#?}",
        wrong.len(),
        pairs.len()
    );
    pairs.len()
}

#[test]
fn dpkg_orders_the_table_and_generated_pairs_as_we_do() {
    if !installed("dpkg") {
        eprintln!("skipped: dpkg not installed");
        return;
    }
    let seed = seed();
    let generated = generate(pair(DEB_TOKENS), GENERATED, seed);
    let n = agree(Flavour::Deb, table("deb.tsv"), generated, dpkg_orders, seed);
    eprintln!("dpkg agreed on {n} pairs (seed {seed})");
}

#[test]
fn rpm_orders_the_table_and_generated_pairs_as_we_do() {
    if !installed("rpm") {
        eprintln!("skipped: rpm not installed");
        return;
    }
    let seed = seed();
    let generated = generate(pair(RPM_TOKENS), GENERATED, seed);
    let n = agree(Flavour::Rpm, table("rpm.tsv"), generated, rpm_orders, seed);
    eprintln!("rpm agreed on {n} pairs (seed {seed})");
}

/// The generator is worth its name: it makes every outcome, errors included, often.
#[test]
fn the_generated_pairs_cover_every_outcome() {
    for (flavour, tokens) in [(Flavour::Deb, DEB_TOKENS), (Flavour::Rpm, RPM_TOKENS)] {
        let pairs = generate(pair(tokens), 2000, 7);
        let count = |want: Option<Ordering>| {
            pairs
                .iter()
                .filter(|(a, b)| version::compare(flavour, a, b).ok() == want)
                .count()
        };
        for want in [
            Some(Ordering::Less),
            Some(Ordering::Equal),
            Some(Ordering::Greater),
        ] {
            assert!(
                count(want) >= 20,
                "{flavour:?}: {want:?} only {}",
                count(want)
            );
        }
        if flavour == Flavour::Deb {
            assert!(count(None) >= 100, "dpkg errors only {}", count(None));
        }
    }
}
