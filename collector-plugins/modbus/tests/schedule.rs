//! The poll schedule: a slow cycle skips ticks, it never bunches reads to catch up.

use crate::support::*;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test]
async fn slow_read_skips_ticks_instead_of_bunching() {
    bounded(async {
        let mut device = TestDevice::new();
        device.set_holding(0, &[1]);
        // The first answer takes ten poll periods.
        device.slow_first = Duration::from_millis(500);
        let server = RunningServer::start(Arc::new(device), any_port())
            .await
            .expect("server");
        let mut tcp = tcp_device(server.addr, vec![holding_u16("a", 0)]);
        tcp.poll = Duration::from_millis(50);
        tcp.timeout = Duration::from_secs(2);
        let mut collecting = Collecting::start(tcp, 64);

        collecting.batch().await; // the slow cycle
        let mut arrivals = vec![Instant::now()];
        for _ in 0..6 {
            collecting.batch().await;
            arrivals.push(Instant::now());
        }
        let quick: Vec<_> = arrivals
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|gap| *gap < Duration::from_millis(25))
            .collect();
        // The tick that was due during the slow read runs at once; the schedule then
        // returns to its grid instead of firing every overdue tick.
        assert!(
            quick.len() <= 1,
            "reads bunched after a slow cycle: {arrivals:?}"
        );
        let missed = collecting.stats.missed_ticks.load(Ordering::Relaxed);
        assert!(
            (5..=10).contains(&missed),
            "{missed} missed ticks over a 500 ms read"
        );
        assert_eq!(collecting.stats.cycles.load(Ordering::Relaxed), 7);
        collecting.stop().await;
        server.stop().await;
    })
    .await;
}
