//! The shell agent of `docs/agent-contract.md`, exactly as the doc shows it, for the tests
//! that run it (`tests/agent_script.rs` against a stand-in for kubectl, `tests/e2e.rs`
//! against a real API server).

use std::path::{Path, PathBuf};

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/agent-contract.md");
const BEGIN: &str = "<!-- agent.sh begin -->";
const END: &str = "<!-- agent.sh end -->";

/// The script between the doc's markers: the one fenced `sh` block there, and the only
/// copy in the doc.
pub fn script() -> String {
    let doc = std::fs::read_to_string(DOC).unwrap_or_else(|e| panic!("reading {DOC}: {e}"));
    assert_eq!(doc.matches(BEGIN).count(), 1, "one {BEGIN} in {DOC}");
    assert_eq!(doc.matches(END).count(), 1, "one {END} in {DOC}");
    let (_, rest) = doc.split_once(BEGIN).expect("the begin marker");
    let (block, _) = rest
        .split_once(END)
        .expect("the end marker after the begin marker");
    let body = block
        .trim()
        .strip_prefix("```sh\n")
        .and_then(|b| b.strip_suffix("```"))
        .unwrap_or_else(|| panic!("one ```sh fenced block between the markers in {DOC}"));
    assert!(
        !body.contains("```"),
        "one fenced block between the markers in {DOC}"
    );
    body.to_string()
}

/// Writes the script to `dir/ringmaster-agent.sh` and returns its path.
pub fn write_to(dir: &Path) -> PathBuf {
    let path = dir.join("ringmaster-agent.sh");
    std::fs::write(&path, script()).unwrap_or_else(|e| panic!("writing {path:?}: {e}"));
    path
}

/// A fresh directory of its own under the system's temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "ringmaster-{what}-{}-{nanos:x}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {dir:?}: {e}"));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
