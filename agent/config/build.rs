//! Embeds the repository's `templates/` library: one `(name, text)` entry per `*.toml`
//! file, so the agent and the platform ship exactly the same templates and need no files
//! installed beside them.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut out = String::from("&[\n");
    for path in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_else(|| panic!("template file name is not UTF-8: {}", path.display()));
        let absolute = path
            .canonicalize()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let _ = writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            absolute.display().to_string()
        );
    }
    out.push(']');
    let target =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("templates.rs");
    std::fs::write(&target, out).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
}
