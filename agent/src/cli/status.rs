//! `fieldlink status`: a readable summary of a running agent, from its `/status`.

use crate::status::StatusReport;
use anyhow::Context;
use std::path::Path;
use std::time::Duration;

/// Asks the agent and prints the summary (or the raw JSON).
pub fn show(config: &Path, url: Option<&str>, json: bool) -> anyhow::Result<()> {
    let base = match url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let config = crate::config::load(config)?;
            let listen = config.status.listen;
            let host = if listen.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                listen.ip().to_string()
            };
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            format!("http://{host}:{}", listen.port())
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = crate::http_client::Client::plain(Duration::from_secs(5));
    let unreachable =
        || format!("cannot reach the agent's status endpoint at {base} (is fieldlink running?)");
    let answer = runtime
        .block_on(client.get(&format!("{base}/status")))
        .with_context(unreachable)?;
    if !(200..300).contains(&answer.status) {
        anyhow::bail!("{}: it answered HTTP {}", unreachable(), answer.status);
    }
    let body = answer.body;
    if json {
        println!("{body}");
        return Ok(());
    }
    let report: StatusReport =
        serde_json::from_str(&body).context("the status endpoint answered something unexpected")?;
    print!(
        "{}",
        render(&report, fieldlink_collector_api::clock::now_ms())
    );
    Ok(())
}

fn ago(now_ms: i64, at_ms: i64) -> String {
    if at_ms <= 0 {
        return "never".to_owned();
    }
    format!(
        "{} ago",
        human_duration((now_ms - at_ms).max(0) as f64 / 1000.0)
    )
}

fn human_duration(seconds: f64) -> String {
    match seconds {
        s if s < 60.0 => format!("{s:.1} s"),
        s if s < 3600.0 => format!("{:.0} min", s / 60.0),
        s if s < 86400.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} days", s / 86400.0),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// The summary's text.
pub fn render(r: &StatusReport, now_ms: i64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let health = if r.healthy {
        "healthy".to_owned()
    } else {
        format!("UNHEALTHY: {}", r.problems.join("; "))
    };
    let _ = writeln!(
        out,
        "fieldlink {} (gateway {}), up {}, {health}",
        r.version,
        r.gateway,
        human_duration((now_ms - r.started_at_ms) as f64 / 1000.0)
    );
    let _ = writeln!(out, "\ndevices");
    for d in &r.devices {
        let state = if d.connected { "connected" } else { "DOWN" };
        let _ = writeln!(
            out,
            "  {:<20} {:<11} {:<9} last good read {:<12} cycles {:<7} errors {:<5} missed ticks {:<4} cycle {:.1} ms",
            d.name,
            d.protocol,
            state,
            ago(now_ms, d.last_good_read_ms),
            d.cycles,
            d.read_errors,
            d.missed_ticks,
            d.last_cycle_ms
        );
    }
    let o = &r.outbox;
    let _ = writeln!(out, "\nbuffer (outbox)");
    let oldest = o
        .oldest_age_s
        .map(|s| format!(", oldest {} old", human_duration(s)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  {} batches waiting ({} samples, {}){oldest}; file {} of a {} cap",
        o.batches,
        o.samples,
        mib(o.payload_bytes),
        mib(o.file_bytes),
        mib(o.cap_bytes)
    );
    if let Some(hours) = o.retention_hours {
        let _ = writeln!(
            out,
            "  collecting {:.1} batches/s ({:.1} KiB/s): the cap holds about {hours:.1} h of outage",
            o.append_batches_per_s,
            o.append_bytes_per_s / 1024.0
        );
    }
    let m = &r.mqtt;
    if o.batches > 0 && m.connected && m.backlog_at_connect > 0 {
        let shrunk = m.backlog_at_connect.saturating_sub(o.batches);
        let done = shrunk as f64 / m.backlog_at_connect as f64;
        let bar: String = (0..20)
            .map(|i| if (i as f64) < done * 20.0 { '#' } else { '-' })
            .collect();
        // The net drain rate over this session, not the 30 s average rates: those still
        // remember the outage for half a minute after the broker is back.
        let session_s = (now_ms - m.connected_at_ms).max(0) as f64 / 1000.0;
        let net = if session_s >= 1.0 {
            shrunk as f64 / session_s
        } else {
            0.0
        };
        let eta = if net > 0.0 {
            format!("empty in about {}", human_duration(o.batches as f64 / net))
        } else {
            "not shrinking yet".to_owned()
        };
        let _ = writeln!(
            out,
            "  draining backlog [{bar}] {:.0}%: sending {:.1} batches/s, net {net:.1}/s, {eta}",
            done * 100.0,
            m.publish_batches_per_s
        );
    }
    let _ = writeln!(
        out,
        "  evicted {} batches ({} samples) at the cap; {} samples lost to write errors",
        o.evicted_batches, o.evicted_samples, o.lost_samples
    );
    if let Some(e) = &o.write_error {
        let _ = writeln!(out, "  WRITE ERROR: {e}");
    }
    let _ = writeln!(out, "\nmqtt");
    let state = if m.connected {
        "connected".to_owned()
    } else {
        format!(
            "DISCONNECTED ({})",
            m.last_error.as_deref().unwrap_or("connecting")
        )
    };
    let _ = writeln!(
        out,
        "  {state}; last ack {}; {} in flight; {} reconnects; published {} batches ({} samples)",
        ago(now_ms, m.last_ack_ms),
        m.in_flight,
        m.reconnects,
        m.published_batches,
        m.published_samples
    );
    out
}

#[cfg(test)]
mod tests {
    use super::render;
    use crate::status::StatusReport;

    /// Ten seconds after reconnecting, 600 of 1,000 batches are gone while the 30 s average
    /// send rate still remembers the outage: the ETA follows the session's net drain.
    #[test]
    fn a_draining_backlog_shows_progress_and_an_eta_from_the_session() {
        let now_ms = 1_800_000_000_000;
        let report: StatusReport = serde_json::from_value(serde_json::json!({
            "gateway": "gw-1", "version": "0.1.0", "started_at_ms": now_ms - 120_000,
            "healthy": true, "problems": [], "devices": [],
            "outbox": {
                "batches": 400, "samples": 400_000, "payload_bytes": 36_000_000,
                "file_bytes": 80_000_000, "cap_bytes": 1_073_741_824, "oldest_age_s": 70.0,
                "evicted_batches": 0, "evicted_samples": 0, "lost_samples": 0,
                "write_error": null, "append_bytes_per_s": 90_000.0,
                "append_batches_per_s": 1.0, "retention_hours": 3.3
            },
            "mqtt": {
                "connected": true, "last_ack_ms": now_ms, "in_flight": 32, "reconnects": 1,
                "published_batches": 700, "published_samples": 700_000,
                "publish_batches_per_s": 2.0, "backlog_at_connect": 1000,
                "connected_at_ms": now_ms - 10_000, "last_error": null
            }
        }))
        .expect("a status report");
        let text = render(&report, now_ms);
        assert!(
            text.contains("draining backlog [############--------] 60%"),
            "{text}"
        );
        assert!(text.contains("net 60.0/s, empty in about 6.7 s"), "{text}");
    }
}
