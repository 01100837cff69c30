//! The platform's command, built in this package so that the end-to-end tests can run the
//! real platform as a process and SIGKILL it (tests/e2e/ack.rs): Cargo names only a
//! package's own binaries to its tests. Nothing here but the call `fieldlink-platform` makes.

fn main() -> std::process::ExitCode {
    fieldlink_platform::cli::main()
}
