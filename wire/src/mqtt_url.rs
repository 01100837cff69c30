//! The broker URL as both ends write it: `mqtt://host[:port]` (plain TCP) or
//! `mqtts://host[:port]` (TLS). The platform hands it to a gateway at enrollment and the
//! agent connects to it, so both parse it here, the same way.

use std::fmt;

/// An MQTT broker's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttUrl {
    /// TLS (`mqtts://`), the broker verified against the system's roots or a CA file.
    pub tls: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port (1883, or 8883 with TLS, if the URL names none).
    pub port: u16,
}

/// Why a broker URL was refused; the message says what to correct.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MqttUrlError {
    /// Another scheme than `mqtt://` or `mqtts://` (or their aliases `tcp://`, `ssl://`).
    #[error("must start with mqtt:// or mqtts://")]
    Scheme,
    /// The port is not a number from 1 to 65535.
    #[error("bad port {0:?}")]
    Port(String),
    /// The host is empty or holds a path, user info, query or fragment.
    #[error("bad host {0:?}")]
    Host(String),
    /// An IPv6 address without its closing `]`.
    #[error("IPv6 address lacks its closing ']'")]
    Bracket,
    /// Something after a bracketed IPv6 address other than `:port`.
    #[error("unexpected {0:?} after the host")]
    AfterHost(String),
}

impl MqttUrl {
    /// Parses `mqtt://host[:port]` or `mqtts://host[:port]` (`tcp://` and `ssl://` are
    /// accepted too); one trailing `/` is ignored.
    pub fn parse(url: &str) -> Result<MqttUrl, MqttUrlError> {
        let (tls, rest) = if let Some(rest) = strip_scheme(url, &["mqtts://", "ssl://"]) {
            (true, rest)
        } else if let Some(rest) = strip_scheme(url, &["mqtt://", "tcp://"]) {
            (false, rest)
        } else {
            return Err(MqttUrlError::Scheme);
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let default_port = if tls { 8883 } else { 1883 };
        let port = |text: &str| match text.parse::<u16>() {
            Ok(port) if port > 0 => Ok(port),
            _ => Err(MqttUrlError::Port(text.to_owned())),
        };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or(MqttUrlError::Bracket)?;
            match after.strip_prefix(':') {
                Some(text) => (host, port(text)?),
                None if after.is_empty() => (host, default_port),
                None => return Err(MqttUrlError::AfterHost(after.to_owned())),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((host, text)) => (host, port(text)?),
                None => (rest, default_port),
            }
        };
        if host.is_empty() || host.contains(['/', '@', '?', '#']) {
            return Err(MqttUrlError::Host(host.to_owned()));
        }
        Ok(MqttUrl {
            tls,
            host: host.to_owned(),
            port,
        })
    }
}

fn strip_scheme<'a>(url: &'a str, schemes: &[&str]) -> Option<&'a str> {
    schemes.iter().find_map(|s| url.strip_prefix(s))
}

impl fmt::Display for MqttUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_urls() {
        let url = MqttUrl::parse("mqtt://broker.local:1884").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("broker.local", 1884));
        assert_eq!(MqttUrl::parse("mqtt://h").unwrap().port, 1883);
        assert_eq!(MqttUrl::parse("mqtt://h/").unwrap().port, 1883);
        assert_eq!(MqttUrl::parse("mqtt://[::1]:9").unwrap().host, "::1");
        assert_eq!(
            MqttUrl::parse("mqtt://[::1]:9").unwrap().to_string(),
            "mqtt://[::1]:9"
        );
        assert!(!MqttUrl::parse("mqtt://h").unwrap().tls);
        let tls = MqttUrl::parse("mqtts://broker.local").unwrap();
        assert_eq!((tls.tls, tls.port), (true, 8883));
        assert_eq!(tls.to_string(), "mqtts://broker.local:8883");
        assert_eq!(MqttUrl::parse("ssl://h:9883").unwrap().port, 9883);
        assert_eq!(MqttUrl::parse("tcp://h").unwrap().port, 1883);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert_eq!(MqttUrl::parse("http://h"), Err(MqttUrlError::Scheme));
        assert_eq!(
            MqttUrl::parse("mqtts://"),
            Err(MqttUrlError::Host(String::new()))
        );
        assert_eq!(
            MqttUrl::parse("mqtt://user:pw@h"),
            Err(MqttUrlError::Port("pw@h".into()))
        );
        assert_eq!(
            MqttUrl::parse("mqtt://user@h"),
            Err(MqttUrlError::Host("user@h".into()))
        );
        assert_eq!(
            MqttUrl::parse("mqtt://h:0"),
            Err(MqttUrlError::Port("0".into()))
        );
        assert_eq!(MqttUrl::parse("mqtt://[::1"), Err(MqttUrlError::Bracket));
        assert_eq!(
            MqttUrl::parse("mqtt://[::1]x"),
            Err(MqttUrlError::AfterHost("x".into()))
        );
        assert_eq!(
            MqttUrl::parse("mqtt://h/x"),
            Err(MqttUrlError::Host("h/x".into()))
        );
    }
}
