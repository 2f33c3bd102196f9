//! `kubectl-ringmaster`: the same commands as `ringmaster`, as a kubectl plugin
//! (`kubectl ringmaster status`, `kubectl ringmaster approve …`).

fn main() -> std::process::ExitCode {
    ringmaster::cli::main(ringmaster::cli::Binary::KubectlPlugin)
}
