//! Links the `fieldlink` binary small in memory: the code it runs placed together (below,
//! `place_hot_text_first`), and its relative relocations packed (`-z
//! pack-relative-relocs`, DT_RELR): a position-independent executable otherwise carries one
//! 24-byte record per pointer in its data to fix up at load time, 0.62 MB of the binary
//! (26,000 records), all of it read and resident from start-up on. Packed, they take a few
//! kilobytes.
//!
//! glibc loads DT_RELR from version 2.36 on (Debian 12, Ubuntu 24.04 LTS), and a packed binary
//! names that need (`GLIBC_ABI_DT_RELR`), so an older glibc refuses it with a clear error
//! instead of running it wrongly. The relocations are packed only when building natively
//! on a glibc that has it: the binary then runs where it was built, and the Debian package
//! (`packaging/build-deb`) already requires the build machine's glibc or newer.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let gnu_linux = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if gnu_linux && var("TARGET") == var("HOST") && host_glibc_at_least(2, 36) {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    if var("CARGO_CFG_TARGET_OS") == "linux" && var("PROFILE") == "release" {
        place_hot_text_first(&var("CARGO_MANIFEST_DIR"), &var("OUT_DIR"));
    }
}

/// Links the functions that `hot-text.txt` lists (the ones the agent runs, found by
/// `scripts/hot-text`) into one section before the rest of the code, most run first: the
/// kernel maps code in whole windows of 64 KiB or more, so the 1 MB the agent runs, spread
/// over its 6.4 MB of code, made nearly all of it resident (README, "Performance"). A name
/// the list has and the binary lacks matches nothing; a function the list lacks stays where
/// it was. Each listed name may be a plain or a cold (`.text.unlikely.`) section.
fn place_hot_text_first(manifest_dir: &str, out_dir: &str) {
    let list = format!("{manifest_dir}/hot-text.txt");
    println!("cargo::rerun-if-changed={list}");
    let Ok(text) = std::fs::read_to_string(&list) else {
        println!(
            "cargo::warning=no {list}: the release binary's code is left in the linker's order"
        );
        return;
    };
    let mut script = String::from("SECTIONS {\n  .text.hot : {\n");
    for pattern in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        script.push_str(&format!(
            "    *(.text.{pattern} .text.unlikely.{pattern})\n"
        ));
    }
    script.push_str("  }\n} INSERT BEFORE .text;\n");
    let path = format!("{out_dir}/hot-text.ld");
    if let Err(e) = std::fs::write(&path, script) {
        println!("cargo::warning=cannot write {path}: {e}; the code is left in the linker's order");
        return;
    }
    println!("cargo::rustc-link-arg-bins=-Wl,-T,{path}");
}

/// Whether the glibc this build script runs on is at least `major.minor`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn host_glibc_at_least(major: u32, minor: u32) -> bool {
    // SAFETY: gnu_get_libc_version returns a pointer to a static, NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    let mut parts = version
        .to_str()
        .unwrap_or_default()
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (major, minor)
}

/// Not on glibc: nothing to pack for.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn host_glibc_at_least(_major: u32, _minor: u32) -> bool {
    false
}
