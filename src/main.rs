//! `ringmaster`: the operator, the simulator and the daily tools.

fn main() -> std::process::ExitCode {
    ringmaster::cli::main(ringmaster::cli::Binary::Ringmaster)
}
