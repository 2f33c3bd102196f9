//! Reading manifest files and directories into YAML documents, each with the place it
//! came from.
//!
//! Loading is all-or-nothing: when any file cannot be read or parsed, no document is
//! returned, only the errors, so a caller never acts on half-read input.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where a document came from: its file, its position in the file and its first line.
///
/// Ordered by file, then document, so sorting sources sorts by position in the input.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Source {
    /// The file, as the caller named it (or as found under a directory the caller named).
    pub file: PathBuf,
    /// The document's position in the file, counted from 1. Empty documents count, so the
    /// numbers match what a YAML tool (`yq`, `kubectl`) would call the document.
    pub document: usize,
    /// The 1-based line of the document's first content (its first line that is not blank,
    /// a comment or a bare `---`).
    pub line: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One non-empty YAML document, as raw JSON, with its source.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Where it came from.
    pub source: Source,
    /// Its content, converted from YAML to JSON (mapping keys become strings).
    pub value: serde_json::Value,
}

/// Why a file or directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or directory could not be read (missing, unreadable, not UTF-8, …).
    #[error("{}: cannot read: {source}", .path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A file is not valid YAML.
    #[error("{}: invalid YAML: {message}", position(.file, *.line, *.column))]
    Syntax {
        /// The file.
        file: PathBuf,
        /// The 1-based line of the error.
        line: usize,
        /// The 1-based column of the error, when the parser gives one.
        column: Option<usize>,
        /// The parser's message (without the position, which is in `line` and `column`).
        message: String,
    },
    /// A document is valid YAML but has no JSON equivalent (a non-scalar mapping key,
    /// `.nan`, two keys that are equal once written as strings, …).
    #[error("{}:{line}: document {document}: {message}", .file.display())]
    NotJson {
        /// The file.
        file: PathBuf,
        /// The document's position in the file, counted from 1.
        document: usize,
        /// The line where the document starts.
        line: usize,
        /// What cannot be represented.
        message: String,
    },
}

fn position(file: &Path, line: usize, column: Option<usize>) -> String {
    match column {
        Some(column) => format!("{}:{line}:{column}", file.display()),
        None => format!("{}:{line}", file.display()),
    }
}

/// Every error met while loading, in input order (never empty when returned as an error).
#[derive(Debug)]
pub struct LoadErrors(Vec<LoadError>);

impl LoadErrors {
    /// The errors, in the order the files were read.
    pub fn errors(&self) -> &[LoadError] {
        &self.0
    }

    /// The errors, owned.
    pub fn into_vec(self) -> Vec<LoadError> {
        self.0
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

impl From<LoadError> for LoadErrors {
    fn from(e: LoadError) -> Self {
        Self(vec![e])
    }
}

impl IntoIterator for LoadErrors {
    type Item = LoadError;
    type IntoIter = std::vec::IntoIter<LoadError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Reads every document of the given files and directories.
///
/// A file is read whatever its name; a directory contributes every `*.yaml` and `*.yml`
/// file below it, recursively (following symbolic links, each directory once), in sorted
/// path order. Paths are read in the order given; a file named twice is read once.
/// Multi-document files are split at `---`; empty documents are skipped.
///
/// All-or-nothing: if any file or directory cannot be read, or any file is not valid
/// YAML, the result is every such error (the first syntax error of each file) and no
/// document at all.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Document>, LoadErrors> {
    // Files to read and directory errors, in the order they are met.
    let mut entries: Vec<Result<PathBuf, LoadError>> = Vec::new();
    let mut visited = HashSet::new();
    for path in paths {
        match fs::metadata(path) {
            Err(source) => entries.push(Err(LoadError::Read {
                path: path.clone(),
                source,
            })),
            Ok(meta) if meta.is_dir() => {
                let mut found = Vec::new();
                walk_dir(path, &mut found, &mut visited);
                found.sort_by(|a, b| entry_path(a).cmp(entry_path(b)));
                entries.extend(found);
            }
            Ok(_) => entries.push(Ok(path.clone())),
        }
    }

    let mut errors = Vec::new();
    let mut docs = Vec::new();
    let mut seen = HashSet::new();
    for entry in entries {
        let file = match entry {
            Ok(file) => file,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if !seen.insert(file.clone()) {
            continue;
        }
        match fs::read_to_string(&file) {
            Err(source) => errors.push(LoadError::Read { path: file, source }),
            Ok(text) => match parse_yaml(&file, &text) {
                Ok(found) => docs.extend(found),
                Err(e) => errors.push(e),
            },
        }
    }
    if errors.is_empty() {
        Ok(docs)
    } else {
        Err(LoadErrors(errors))
    }
}

fn entry_path(entry: &Result<PathBuf, LoadError>) -> &Path {
    match entry {
        Ok(path) => path,
        Err(LoadError::Read { path, .. }) => path,
        Err(LoadError::Syntax { file, .. } | LoadError::NotJson { file, .. }) => file,
    }
}

fn is_yaml_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// Collects the YAML files below `dir`, and the errors met reading it.
fn walk_dir(
    dir: &Path,
    found: &mut Vec<Result<PathBuf, LoadError>>,
    visited: &mut HashSet<PathBuf>,
) {
    // Each directory once, so a symbolic link back up the tree does not loop.
    let key = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if !visited.insert(key) {
        return;
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(source) => {
            found.push(Err(LoadError::Read {
                path: dir.to_path_buf(),
                source,
            }));
            return;
        }
    };
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(source) => {
                found.push(Err(LoadError::Read {
                    path: dir.to_path_buf(),
                    source,
                }));
                continue;
            }
        };
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk_dir(&path, found, visited),
            Ok(_) if is_yaml_file(&path) => found.push(Ok(path)),
            Ok(_) => {}
            // A dangling link or an unreadable entry: only an error if it would have
            // been read.
            Err(source) if is_yaml_file(&path) => found.push(Err(LoadError::Read { path, source })),
            Err(_) => {}
        }
    }
}

/// Splits the YAML text of `file` into its non-empty documents.
///
/// The first syntax error ends the file: it is returned and nothing else.
pub fn parse_yaml(file: &Path, text: &str) -> Result<Vec<Document>, LoadError> {
    let starts = document_starts(text);
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let line = starts.get(i).copied().flatten();
        let mut value = match serde_yaml::Value::deserialize(de) {
            Ok(value) => value,
            Err(e) => return Err(syntax_error(file, line, &e)),
        };
        if value.is_null() {
            continue;
        }
        let line = line.unwrap_or(1);
        let not_json = |message: String| LoadError::NotJson {
            file: file.to_path_buf(),
            document,
            line,
            message,
        };
        value
            .apply_merge()
            .map_err(|e| not_json(format!("cannot apply merge keys: {e}")))?;
        let value = to_json(value).map_err(not_json)?;
        docs.push(Document {
            source: Source {
                file: file.to_path_buf(),
                document,
                line,
            },
            value,
        });
    }
    Ok(docs)
}

fn syntax_error(file: &Path, doc_line: Option<usize>, e: &serde_yaml::Error) -> LoadError {
    let mut message = e.to_string();
    let (line, column) = match e.location() {
        Some(loc) => {
            let at = format!(" at line {} column {}", loc.line(), loc.column());
            if let Some(i) = message.find(&at) {
                message.replace_range(i..i + at.len(), "");
            }
            (loc.line(), Some(loc.column()))
        }
        None => (doc_line.unwrap_or(1), None),
    };
    LoadError::Syntax {
        file: file.to_path_buf(),
        line,
        column,
        message,
    }
}

/// The line of the first content of each YAML document in `text`, in stream order, the
/// way a YAML parser counts documents: every `---` starts one (even an empty one), and
/// content outside an explicit document (at the start, or after `...`) starts a bare one.
///
/// This relies on the YAML rule that a line starting with `---` or `...` (followed by a
/// blank or the end of the line) is a document marker wherever it appears, even inside
/// a block or quoted scalar.
fn document_starts(text: &str) -> Vec<Option<usize>> {
    let mut docs: Vec<Option<usize>> = Vec::new();
    // Whether the lines being read belong to a document (explicit or bare).
    let mut in_document = false;
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = if n == 0 {
            raw.trim_start_matches('\u{feff}')
        } else {
            raw
        };
        if is_marker(line, "---") {
            let rest = line[3..].trim_start();
            let content = !rest.is_empty() && !rest.starts_with('#');
            docs.push(content.then_some(line_no));
            in_document = true;
            continue;
        }
        if is_marker(line, "...") {
            in_document = false;
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if !in_document {
            if line.starts_with('%') {
                // A directive for the next explicit document.
                continue;
            }
            docs.push(Some(line_no));
            in_document = true;
        } else if let Some(last) = docs.last_mut()
            && last.is_none()
        {
            *last = Some(line_no);
        }
    }
    docs
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// YAML to JSON as Kubernetes does it: scalar mapping keys become strings, tags are
/// dropped.
fn to_json(value: serde_yaml::Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    use serde_yaml::Value as Y;
    Ok(match value {
        Y::Null => J::Null,
        Y::Bool(b) => J::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                J::from(i)
            } else if let Some(u) = n.as_u64() {
                J::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                match serde_json::Number::from_f64(f) {
                    Some(n) => J::Number(n),
                    None => return Err(format!("the number {n} has no JSON form")),
                }
            }
        }
        Y::String(s) => J::String(s),
        Y::Sequence(items) => J::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?),
        Y::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key = key_string(k)?;
                if out.contains_key(&key) {
                    return Err(format!("mapping key {key:?} appears twice"));
                }
                out.insert(key, to_json(v)?);
            }
            J::Object(out)
        }
        Y::Tagged(tagged) => to_json(tagged.value)?,
    })
}

fn key_string(key: serde_yaml::Value) -> Result<String, String> {
    use serde_yaml::Value as Y;
    match key {
        Y::String(s) => Ok(s),
        Y::Bool(b) => Ok(b.to_string()),
        Y::Number(n) => Ok(n.to_string()),
        Y::Null => Ok("null".to_string()),
        Y::Tagged(tagged) => key_string(tagged.value),
        Y::Sequence(_) | Y::Mapping(_) => {
            Err("a mapping key must be a scalar, not a list or a mapping".to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<Option<usize>> {
        document_starts(text)
    }

    /// The splitter and the YAML parser agree on how many documents there are.
    fn count(text: &str) -> usize {
        // After a syntax error the parser yields the error forever: bound the walk.
        let mut n = 0;
        for de in serde_yaml::Deserializer::from_str(text).take(20) {
            if let Err(e) = serde_yaml::Value::deserialize(de) {
                panic!("{text:?} is not valid YAML: {e}");
            }
            n += 1;
        }
        n
    }

    #[test]
    fn document_starts_follow_markers_comments_and_bare_documents() {
        let cases: &[(&str, Vec<Option<usize>>)] = &[
            ("a: 1\n", vec![Some(1)]),
            ("# c\n\na: 1\n", vec![Some(3)]),
            ("---\na: 1\n", vec![Some(2)]),
            ("# c\n---\n# d\na: 1\n---\nb: 2\n", vec![Some(4), Some(6)]),
            ("a: 1\n---\n", vec![Some(1), None]),
            ("---\n---\nb: 1\n", vec![None, Some(3)]),
            ("--- {a: 1}\n--- # c\nb: 2\n", vec![Some(1), Some(3)]),
            ("a: 1\n...\n# trailing\n", vec![Some(1)]),
            ("%YAML 1.2\n---\na: 1\n", vec![Some(3)]),
            ("k: |\n  ---x\n  text\n---\nb: 1\n", vec![Some(1), Some(5)]),
            ("---\r\na: 1\r\n---\r\nb: 2\r\n", vec![Some(2), Some(4)]),
            ("\u{feff}# c\n---\na: 1\n", vec![Some(3)]),
        ];
        for (text, want) in cases {
            assert_eq!(&lines(text), want, "{text:?}");
            assert_eq!(count(text), want.len(), "parser count for {text:?}");
        }
        // An empty or comment-only stream holds no document (the parser reports one
        // null document, which is skipped).
        assert_eq!(lines(""), vec![]);
        assert_eq!(lines("# only\n"), vec![]);
        // libyaml wants `---` before a document that follows `...`.
        assert!(parse_yaml(Path::new("e.yaml"), "a: 1\n...\nb: 2\n").is_err());
    }

    #[test]
    fn documents_carry_file_number_and_line() {
        let text = "# header\napiVersion: v1\nkind: A\n---\n\n---\n# b\nkind: B\n";
        let docs = parse_yaml(Path::new("m.yaml"), text).expect("valid");
        let got: Vec<(usize, usize, serde_json::Value)> = docs
            .into_iter()
            .map(|d| (d.source.document, d.source.line, d.value))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 2, serde_json::json!({"apiVersion": "v1", "kind": "A"})),
                (3, 8, serde_json::json!({"kind": "B"})),
            ]
        );
    }

    #[test]
    fn syntax_errors_name_file_line_and_column() {
        let text = "a: 1\n---\nkind: X\nspec:\n  rings: [a, b\n  other: 1\n";
        let err = parse_yaml(Path::new("dir/bad.yaml"), text).expect_err("invalid");
        match &err {
            LoadError::Syntax { line, .. } => assert_eq!(*line, 6),
            other => panic!("unexpected {other:?}"),
        }
        let shown = err.to_string();
        assert!(shown.starts_with("dir/bad.yaml:6:"), "{shown}");
        assert!(shown.contains("invalid YAML: "), "{shown}");
        assert!(!shown.contains(" at line 6 column"), "{shown}");
    }

    #[test]
    fn duplicate_keys_are_syntax_errors() {
        let text = "kind: A\nspec: {}\nspec: {}\n";
        let err = parse_yaml(Path::new("d.yaml"), text).expect_err("duplicate key");
        let shown = err.to_string();
        // The parser places the error at the start of the mapping holding the key.
        assert_eq!(
            shown,
            "d.yaml:1:1: invalid YAML: duplicate entry with key \"spec\""
        );
    }

    #[test]
    fn yaml_becomes_json_like_kubernetes_does() {
        let text =
            "base: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n1: one\ntrue: yes\nt: !custom v\nf: 1.5\n";
        let docs = parse_yaml(Path::new("y.yaml"), text).expect("valid");
        assert_eq!(
            docs[0].value,
            serde_json::json!({
                "base": {"x": 1}, "m": {"x": 1, "y": 2}, "1": "one", "true": "yes",
                "t": "v", "f": 1.5
            })
        );
        let err = parse_yaml(Path::new("n.yaml"), "a: .nan\n").expect_err("nan");
        assert_eq!(
            err.to_string(),
            "n.yaml:1: document 1: the number .nan has no JSON form"
        );
        let err = parse_yaml(Path::new("k.yaml"), "---\n1: a\n'1': b\n").expect_err("keys");
        assert_eq!(
            err.to_string(),
            "k.yaml:2: document 1: mapping key \"1\" appears twice"
        );
    }
}
