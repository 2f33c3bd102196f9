//! CISA's Known Exploited Vulnerabilities catalog: a listing per CVE, added to every
//! Patch that fixes a listed CVE.
