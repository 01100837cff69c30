//! The `fieldlink-platform` command. Its code is the library's [`fieldlink_platform::cli`],
//! so that the workspace's end-to-end tests can build the same command into a binary of
//! their own.

fn main() -> std::process::ExitCode {
    fieldlink_platform::cli::main()
}
