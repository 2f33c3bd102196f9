//! Every integration test but the end-to-end suite, in one test binary.
//!
//! Each file in `tests/` is a crate of its own, compiled and linked against ringmaster
//! and every dependency (a few hundred MB of debug info each), so one binary per file
//! made a cold `cargo test` mostly linking. Here each former file is a module, run as
//! before: `cargo test --test it` runs them all, `cargo test --test it cli::` one module.
//! `tests/e2e.rs` stays a binary of its own: it needs a cluster and is run alone.

#[path = "../agent_sh/mod.rs"]
mod agent_sh;
mod common;
mod fake_api;

mod agent_applicability;
mod agent_apt;
mod agent_apt_fixture;
mod agent_dnf;
mod agent_inventory;
mod agent_linux;
mod agent_node;
mod agent_script;
mod agent_versions;
mod api_cel;
mod catalog_epss;
mod catalog_kev;
mod catalog_msrc;
mod catalog_osv;
mod chart_admission;
mod chart_crds;
mod cli;
mod crds_in_sync;
mod engine_history;
mod engine_levers;
mod engine_props;
mod engine_rollout;
mod enroll;
mod lever_pull;
mod lever_views;
mod manifest;
mod operator_apply;
mod operator_reports;
mod operator_run;
mod report_build;
mod report_html;
mod report_packet;
mod report_store;
mod report_text;
mod sim_example;
mod sim_from_cluster;
mod sim_preview;
