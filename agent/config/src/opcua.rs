//! `protocol = "opcua"` devices: their keys, read into a validated
//! [`OpcuaDevice`](fieldlink_opcua::OpcuaDevice).

use super::error::Diagnostics;
use super::reader::TableReader;
use super::{DeviceKind, DeviceParts, GatewayConfig, PointInfo, read_point_common};
use fieldlink_opcua::{
    Deadband, Identity, Mode, NodeAddress, OpcuaDevice, OpcuaPoint, Pki, Policy, PolicyChoice,
    Security, SecurityMode, ServerTrust,
};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::de::DeTable;

/// The default publishing interval of a subscription.
const PUBLISHING_INTERVAL: Duration = Duration::from_secs(1);
/// The default request timeout: OPC UA servers answer slower than Modbus devices, and the
/// first request of a secure session carries RSA work on both sides.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the keys of an OPC UA device and its points. The PKI's location and owner are
/// set afterwards by [`attach_pki`], once `[gateway]` is known.
pub(super) fn read_opcua(
    dx: &mut Diagnostics<'_>,
    t: &mut TableReader<'_, '_>,
    name: Option<Arc<str>>,
    poll: Duration,
    points: &[(&DeTable<'_>, std::ops::Range<usize>)],
) -> Option<DeviceParts> {
    let section = t.section().to_owned();
    let endpoint = t
        .required_string(dx, "endpoint", "the server's URL, e.g. \"opc.tcp://192.168.1.20:4840\"")
        .and_then(|e| match check_endpoint(e.value) {
            Ok(()) => Some(e.value.trim_end().to_owned()),
            Err(why) => {
                dx.error(e.range(), format!("{section}: `endpoint` {why}, found {:?} (expected opc.tcp://HOST:PORT, e.g. \"opc.tcp://192.168.1.20:4840\")", e.value));
                None
            }
        });

    let subscription = match t.string(dx, "mode") {
        None => true,
        Some(m) if m.value == "subscription" => true,
        Some(m) if m.value == "poll" => false,
        Some(m) => {
            dx.error(
                m.range(),
                format!(
                    "{section}: `mode` must be one of subscription, poll, found {:?}",
                    m.value
                ),
            );
            true
        }
    };
    let only_in =
        |dx: &mut Diagnostics<'_>, t: &mut TableReader<'_, '_>, key: &'static str, wanted: bool| {
            if t.has(key) && subscription != wanted {
                let mode = if wanted {
                    "subscription (the default)"
                } else {
                    "poll"
                };
                dx.error(
                    t.span(),
                    format!("{section}: `{key}` applies to mode = {mode} only"),
                );
            }
        };
    only_in(dx, t, "poll", false);
    only_in(dx, t, "publishing_interval", true);
    only_in(dx, t, "sampling_interval", true);
    only_in(dx, t, "queue_size", true);
    let publishing_interval = t.positive_duration(dx, "publishing_interval", PUBLISHING_INTERVAL);
    let sampling_interval = t
        .duration(dx, "sampling_interval")
        .map_or(publishing_interval, |d| d.value);
    let queue_size = t
        .integer(dx, "queue_size", 1, 10_000)
        .map(|q| q.value as u32);
    let timeout = t.positive_duration(dx, "timeout", TIMEOUT);

    let mode = t
        .choice(dx, "security", SecurityMode::NAMES, |s| s.parse().ok())
        .map_or(SecurityMode::None, |m| m.value);
    let policy = t.choice(dx, "policy", Policy::NAMES, |s| {
        s.parse::<PolicyChoice>().ok()
    });
    if let Some(p) = &policy
        && mode == SecurityMode::None
        && p.value != PolicyChoice::Auto
    {
        dx.error(p.range(), format!("{section}: `policy` applies to security = \"sign\" or \"sign-and-encrypt\"; with security = \"none\" there is no policy to choose"));
    }
    let security = Security {
        mode,
        policy: policy.map_or(PolicyChoice::Auto, |p| p.value),
    };
    let trust = t
        .choice(dx, "trust_server_certificate", ServerTrust::NAMES, |s| {
            s.parse().ok()
        })
        .map_or(ServerTrust::TrustedOnly, |v| v.value);
    let identity = read_identity(dx, t, &section);

    let mut opcua_points = Vec::new();
    let mut infos = Vec::new();
    for (table, span) in points {
        let mut p = TableReader::new(table, span.clone(), format!("{section} [[device.point]]"));
        let sampling = if subscription {
            Some(sampling_interval)
        } else {
            None
        };
        if let Some((point, info)) =
            read_point(dx, &mut p, sampling, publishing_interval, queue_size)
        {
            opcua_points.push(point);
            infos.push(info);
        }
        p.finish(dx);
    }
    if points.is_empty() {
        dx.error(
            t.span(),
            format!("{section}: a device needs at least one [[device.point]]"),
        );
    }
    let device = OpcuaDevice {
        name: name?,
        endpoint: endpoint?,
        mode: if subscription {
            Mode::Subscription {
                publishing_interval,
            }
        } else {
            Mode::Poll { period: poll }
        },
        timeout,
        security,
        identity: identity?,
        trust,
        // Replaced by `attach_pki` once `[gateway]` is known.
        pki: Pki::new(Path::new(""), None, ""),
        points: opcua_points,
    };
    Some((DeviceKind::Opcua(device), infos))
}

/// Sets every OPC UA device's PKI: `state_dir/pki`, owned by the gateway id; `file` is the
/// config file, for the trust command the logs suggest.
pub(super) fn attach_pki(devices: &mut [super::DeviceConfig], gateway: &GatewayConfig, file: &str) {
    for device in devices {
        if let DeviceKind::Opcua(opcua) = &mut device.kind {
            opcua.pki = Pki::new(&gateway.state_dir, gateway.id.clone(), file);
        }
    }
}

/// Why an endpoint URL is not `opc.tcp://HOST:PORT[/PATH]`.
fn check_endpoint(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("opc.tcp://")
        .ok_or("must start with opc.tcp://")?;
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, _)) if !host.ends_with(']') && host.contains(':') => (authority, None),
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if host.is_empty() || host.contains([' ', '@']) {
        return Err("lacks a host");
    }
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err("has a bad port");
    }
    Ok(())
}

fn read_identity(
    dx: &mut Diagnostics<'_>,
    t: &mut TableReader<'_, '_>,
    section: &str,
) -> Option<Identity> {
    let username = t.string(dx, "username");
    let password = t.string(dx, "password");
    let certificate = t.string(dx, "user_certificate");
    let key = t.string(dx, "user_private_key");
    match (username, password, certificate, key) {
        (None, None, None, None) => Some(Identity::Anonymous),
        (Some(user), Some(password), None, None) => Some(Identity::UserName {
            user: user.value.to_owned(),
            password: password.value.to_owned(),
        }),
        (None, None, Some(cert), Some(key)) => Some(Identity::X509 {
            certificate: PathBuf::from(cert.value),
            private_key: PathBuf::from(key.value),
        }),
        (user, password, cert, key) => {
            let message = if (user.is_some() || password.is_some())
                && (cert.is_some() || key.is_some())
            {
                "log in either with `username` and `password` or with `user_certificate` and `user_private_key`, not both"
            } else if user.is_some() != password.is_some() {
                "`username` and `password` go together: set both, or neither for anonymous login"
            } else {
                "`user_certificate` and `user_private_key` go together: set both for X.509 login"
            };
            dx.error(t.span(), format!("{section}: {message}"));
            None
        }
    }
}

fn read_point(
    dx: &mut Diagnostics<'_>,
    p: &mut TableReader<'_, '_>,
    subscription_sampling: Option<Duration>,
    publishing_interval: Duration,
    device_queue: Option<u32>,
) -> Option<(OpcuaPoint, PointInfo)> {
    let section = p.section().to_owned();
    let node = p
        .required_string(
            dx,
            "node",
            "the variable's NodeId, e.g. \"ns=2;s=Machine.Speed\"",
        )
        .and_then(|n| match n.value.parse::<NodeAddress>() {
            Ok(node) => Some(node),
            Err(e) => {
                dx.error(
                    n.range(),
                    format!(
                        "{section}: `node` is not a NodeId: {e}; found {:?}",
                        n.value
                    ),
                );
                None
            }
        });
    let subscription_only =
        |dx: &mut Diagnostics<'_>, p: &mut TableReader<'_, '_>, key: &'static str| {
            if subscription_sampling.is_none() && p.has(key) {
                dx.error(
                    p.span(),
                    format!("{section}: `{key}` applies to mode = subscription (the default) only"),
                );
            }
        };
    subscription_only(dx, p, "sampling_interval");
    subscription_only(dx, p, "queue_size");
    subscription_only(dx, p, "deadband_percent");
    let sampling_interval = p
        .duration(dx, "sampling_interval")
        .map(|d| d.value)
        .or(subscription_sampling)
        .unwrap_or(publishing_interval);
    let queue_size = p
        .integer(dx, "queue_size", 1, 10_000)
        .map(|q| q.value as u32)
        .or(device_queue)
        .unwrap_or_else(|| default_queue_size(sampling_interval, publishing_interval));
    let percent = p.float(dx, "deadband_percent").and_then(|d| {
        if (0.0..=100.0).contains(&d.value) {
            Some(d)
        } else {
            dx.error(d.range(), format!("{section}: `deadband_percent` must be from 0 to 100 (percent of the variable's EURange)"));
            None
        }
    });
    let (name, rules) = read_point_common(dx, p, true)?;
    let deadband = rules.deadband;
    if let (Some(pct), Some(_)) = (&percent, deadband) {
        dx.error(pct.range(), format!("{section}: set `deadband` (absolute, in the variable's units) or `deadband_percent` (of its EURange), not both"));
    }
    // In subscriptions the deadband is the server's data-change filter as well, so small
    // changes do not even cross the network; the agent applies `deadband` in any case.
    let filter = match (subscription_sampling, percent, deadband) {
        (None, _, _) => None,
        (Some(_), Some(p), _) => Some(Deadband::Percent(p.value)),
        (Some(_), None, Some(d)) if d > 0.0 => Some(Deadband::Absolute(d)),
        _ => None,
    };
    let point = OpcuaPoint {
        name: name.clone(),
        node: node?,
        sampling_interval,
        queue_size: NonZeroU32::new(queue_size).unwrap_or(NonZeroU32::MIN),
        deadband: filter,
    };
    // The server decides the type, and the catalogue says so; here `deadband_percent` is
    // of the EURange and the server applies it.
    let info = rules.into_info(name, "opcua", None);
    Some((point, info))
}

/// Enough queue for every sample taken within one publishing interval (at most 100).
fn default_queue_size(sampling: Duration, publishing: Duration) -> u32 {
    if sampling.is_zero() {
        return 10;
    }
    let per = publishing.as_micros().div_ceil(sampling.as_micros().max(1));
    u32::try_from(per).unwrap_or(100).clamp(1, 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_need_the_opc_tcp_scheme_and_a_host() {
        assert_eq!(check_endpoint("opc.tcp://192.168.1.20:4840"), Ok(()));
        assert_eq!(check_endpoint("opc.tcp://plc/UA/Server"), Ok(()));
        assert_eq!(check_endpoint("opc.tcp://[fe80::1]:4840/"), Ok(()));
        assert!(check_endpoint("http://plc:4840").is_err());
        assert!(check_endpoint("opc.tcp://:4840").is_err());
        assert!(check_endpoint("opc.tcp://plc:port").is_err());
    }

    #[test]
    fn the_default_queue_holds_one_publishing_interval() {
        let ms = Duration::from_millis;
        assert_eq!(default_queue_size(ms(1000), ms(1000)), 1);
        assert_eq!(default_queue_size(ms(100), ms(1000)), 10);
        assert_eq!(default_queue_size(ms(1), ms(1000)), 100);
    }
}
