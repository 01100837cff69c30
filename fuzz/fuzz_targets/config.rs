//! The agent's config loader on hostile text: `fieldlink::config::parse` returns the
//! validated config or a non-empty list of errors, each naming the file, never panics; a
//! config it accepts is one the components accept.

#![no_main]

use libfuzzer_sys::fuzz_target;

const FILE: &str = "fuzz/agent.toml";

fuzz_target!(|data: &[u8]| {
    // Arbitrary bytes as a user's editor might save them: invalid UTF-8 becomes U+FFFD.
    let text = String::from_utf8_lossy(data);
    match fieldlink::config::parse(&text, FILE) {
        Ok(config) => {
            // What the components take on trust: MQTT's 16-bit keep-alive of whole seconds.
            let keep_alive = config.platform.keep_alive.as_secs();
            assert!(
                (1..=u64::from(u16::MAX)).contains(&keep_alive),
                "{keep_alive}"
            );
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an Err with no error in it");
            for e in &errors.0 {
                assert_eq!(e.file, FILE, "{e}");
                assert!(e.to_string().starts_with(FILE), "{e}");
                assert!(e.line >= 1 && e.column >= 1, "{e}");
            }
        }
    }
});
