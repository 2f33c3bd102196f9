//! The `ringmaster` command: the operator, the simulator and the daily tools.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Risk-based patch management, run declaratively.
#[derive(Parser)]
#[command(name = "ringmaster", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every CustomResourceDefinition as multi-document YAML.
    Crds,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => match ringmaster::crds::render_all() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
