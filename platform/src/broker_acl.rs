//! Who may publish and subscribe to which topics: the one rule table behind both the
//! mosquitto ACL file the platform writes ([`crate::mosquitto`]) and the broker hook's
//! answers for EMQX ([`crate::broker_hook`]), so the two brokers cannot disagree.
//!
//! A gateway (its MQTT username is its gateway id) may publish its `data`, `status` and
//! `meta`, and read its own `ack` and `config`, written by the platform only. The
//! platform's ingest user reads every gateway's topics and writes every gateway's `ack` and
//! `config`. Anything else is denied: no gateway reads another's config.

use fieldlink_wire::topic::PREFIX;

/// Who a rule is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// The gateway named by the topic's gateway level, and it alone.
    OwnGateway,
    /// The platform's ingest user, for every gateway.
    Ingest,
}

/// What a rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Subscribe.
    Read,
    /// Publish.
    Write,
}

/// One rule: `who` may `access` the topic `fieldlink/v1/{gateway}/{topic}` (`#`: every
/// topic of the gateway).
#[derive(Debug, Clone, Copy)]
struct Rule {
    who: Who,
    access: Access,
    topic: &'static str,
}

/// The rules, in the order the ACL file lists them.
const RULES: [Rule; 8] = [
    Rule {
        who: Who::OwnGateway,
        access: Access::Write,
        topic: "data",
    },
    Rule {
        who: Who::OwnGateway,
        access: Access::Write,
        topic: "status",
    },
    Rule {
        who: Who::OwnGateway,
        access: Access::Write,
        topic: "meta",
    },
    Rule {
        who: Who::OwnGateway,
        access: Access::Read,
        topic: "ack",
    },
    Rule {
        who: Who::OwnGateway,
        access: Access::Read,
        topic: "config",
    },
    Rule {
        who: Who::Ingest,
        access: Access::Read,
        topic: "#",
    },
    Rule {
        who: Who::Ingest,
        access: Access::Write,
        topic: "ack",
    },
    Rule {
        who: Who::Ingest,
        access: Access::Write,
        topic: "config",
    },
];

/// mosquitto's ACL file for these rules (`%u` is the client's username).
pub fn mosquitto_acl(ingest_username: &str) -> String {
    let keyword = |access| match access {
        Access::Read => "read",
        Access::Write => "write",
    };
    let mut text = String::from(
        "# Written by fieldlink-platform on every enrollment; edits are overwritten.\n\
         # A gateway (username = its gateway id) publishes its data, status and meta, and\n\
         # reads its own ack and config, which only the platform writes.\n",
    );
    for rule in RULES.iter().filter(|r| r.who == Who::OwnGateway) {
        text.push_str(&format!(
            "pattern {} {PREFIX}/%u/{}\n",
            keyword(rule.access),
            rule.topic
        ));
    }
    text.push_str(&format!(
        "\n# The platform's ingest reads every gateway's topics and writes their acks and configs.\nuser {ingest_username}\n"
    ));
    for rule in RULES.iter().filter(|r| r.who == Who::Ingest) {
        let topic = if rule.topic == "#" {
            format!("{PREFIX}/#")
        } else {
            format!("{PREFIX}/+/{}", rule.topic)
        };
        text.push_str(&format!("topic {} {topic}\n", keyword(rule.access)));
    }
    text
}

/// May `username` publish (`subscribe` false) or subscribe to `topic`? A subscription may
/// be shared (`$share/GROUP/filter`); only the ingest user may use wildcards.
pub fn allowed(ingest_user: Option<&str>, username: &str, topic: &str, subscribe: bool) -> bool {
    let access = if subscribe {
        Access::Read
    } else {
        Access::Write
    };
    let is_ingest = ingest_user == Some(username);
    let topic = match topic.strip_prefix("$share/") {
        Some(shared) if subscribe => shared.split_once('/').map_or("", |(_, filter)| filter),
        _ => topic,
    };
    let Some((gateway, rest)) = topic
        .strip_prefix(PREFIX)
        .and_then(|t| t.strip_prefix('/'))
        .map(|t| t.split_once('/').unwrap_or((t, "")))
    else {
        return false;
    };
    RULES
        .iter()
        .filter(|r| r.access == access)
        .any(|rule| match rule.who {
            Who::OwnGateway => !is_ingest && gateway == username && rest == rule.topic,
            Who::Ingest if rule.topic == "#" => is_ingest && !gateway.is_empty(),
            Who::Ingest => {
                is_ingest
                    && !gateway.is_empty()
                    && !gateway.contains(['#', '+'])
                    && rest == rule.topic
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INGEST: Option<&str> = Some("fieldlink-ingest");
    const GW: &str = "91350100M000100Y43-line-1";

    fn publish(user: &str, topic: &str) -> bool {
        allowed(INGEST, user, topic, false)
    }

    fn subscribe(user: &str, topic: &str) -> bool {
        allowed(INGEST, user, topic, true)
    }

    #[test]
    fn a_gateway_publishes_its_own_topics_and_reads_its_own_ack_and_config() {
        for topic in ["data", "status", "meta"] {
            assert!(
                publish(GW, &format!("fieldlink/v1/{GW}/{topic}")),
                "{topic}"
            );
        }
        // mosquitto checks a shared subscription's filter without `$share/GROUP/`; the
        // table answers the same, so the two brokers agree.
        for filter in [
            format!("fieldlink/v1/{GW}/ack"),
            format!("$share/g/fieldlink/v1/{GW}/ack"),
            format!("fieldlink/v1/{GW}/config"),
        ] {
            assert!(subscribe(GW, &filter), "{filter}");
        }
        for topic in [
            format!("fieldlink/v1/{GW}/ack"),
            format!("fieldlink/v1/{GW}/config"),
            "fieldlink/v1/91350100M000100Y43-line-2/data".to_owned(),
            format!("fieldlink/v1/{GW}-x/data"),
            format!("fieldlink/v1/{GW}"),
            format!("fieldlink/v1/{GW}/other"),
            "fieldlink/v1/#".to_owned(),
        ] {
            assert!(!publish(GW, &topic), "{topic}");
        }
        for topic in [
            "fieldlink/v1/91350100M000100Y43-line-2/ack".to_owned(),
            "fieldlink/v1/91350100M000100Y43-line-2/config".to_owned(),
            "fieldlink/v1/+/ack".to_owned(),
            "fieldlink/v1/+/config".to_owned(),
            format!("fieldlink/v1/{GW}/#"),
            format!("fieldlink/v1/{GW}/data"),
            "fieldlink/v1/#".to_owned(),
            "$share/g/fieldlink/v1/91350100M000100Y43-line-2/ack".to_owned(),
        ] {
            assert!(!subscribe(GW, &topic), "{topic}");
        }
    }

    #[test]
    fn the_ingest_reads_everything_and_writes_only_acks_and_configs() {
        let ingest = "fieldlink-ingest";
        for filter in [
            "fieldlink/v1/+/data",
            "$share/fieldlink-ingest/fieldlink/v1/+/data",
            "fieldlink/v1/#",
            "fieldlink/v1/+/status",
        ] {
            assert!(subscribe(ingest, filter), "{filter}");
        }
        for filter in ["#", "$share/g/#", "other/fieldlink/v1/#"] {
            assert!(!subscribe(ingest, filter), "{filter}");
        }
        assert!(publish(ingest, &format!("fieldlink/v1/{GW}/ack")));
        assert!(publish(ingest, &format!("fieldlink/v1/{GW}/config")));
        for topic in [
            format!("fieldlink/v1/{GW}/data"),
            "fieldlink/v1/fieldlink-ingest/data".to_owned(),
            "fieldlink/v1/#/ack".to_owned(),
            "fieldlink/v1/+/ack".to_owned(),
            "fieldlink/v1/+/config".to_owned(),
        ] {
            assert!(!publish(ingest, &topic), "{topic}");
        }
        // Without a configured ingest user nobody is the ingest.
        assert!(!allowed(None, ingest, "fieldlink/v1/#", true));
    }

    #[test]
    fn the_acl_file_states_the_same_rules() {
        let acl = mosquitto_acl("fieldlink-ingest");
        for line in [
            "pattern write fieldlink/v1/%u/data",
            "pattern write fieldlink/v1/%u/status",
            "pattern write fieldlink/v1/%u/meta",
            "pattern read fieldlink/v1/%u/ack",
            "pattern read fieldlink/v1/%u/config",
            "user fieldlink-ingest",
            "topic read fieldlink/v1/#",
            "topic write fieldlink/v1/+/ack",
            "topic write fieldlink/v1/+/config",
        ] {
            assert!(
                acl.lines().any(|l| l == line),
                "{line} missing from:\n{acl}"
            );
        }
    }
}
