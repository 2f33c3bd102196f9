//! FIRST's EPSS scores (CSV, plain or gzipped): a score and percentile per CVE, added to
//! the Patches that fix them.
