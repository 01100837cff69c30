//! The registry of protocol plugins: a protocol crate that implements [`Plugin`] is listed
//! in [`PLUGINS`] and nowhere else; configuration, `check`, `probe` and the collectors find
//! it here by its name.

use fieldlink_collector_api::plugin::Plugin;

/// The protocol plugins.
pub static PLUGINS: &[&dyn Plugin] = &[
    &fieldlink_s7::PLUGIN,
    &fieldlink_mc::PLUGIN,
    &fieldlink_dlt645::PLUGIN,
];

/// The plugin of `protocol`, if one handles it.
pub fn plugin(protocol: &str) -> Option<&'static dyn Plugin> {
    PLUGINS.iter().copied().find(|p| p.protocol() == protocol)
}
