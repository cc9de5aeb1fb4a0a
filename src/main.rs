//! The `keyclerk` binary.

fn main() -> std::process::ExitCode {
    keyclerk::cli::main()
}
