//! The agent's command, built in this package so that the end-to-end tests can run the
//! real agent as a process: Cargo names only a package's own binaries to its tests
//! (`CARGO_BIN_EXE_*`). Nothing here but the call the agent's `fieldlink` binary makes.

fn main() -> std::process::ExitCode {
    fieldlink::cli::main()
}
