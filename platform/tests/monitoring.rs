//! Industry monitoring end to end: gateways publish their catalogue (with point roles) and
//! batches through the in-process broker, the ingest keeps the figures, and
//! `GET /api/v1/stats/monitoring` answers them per industry or district and local day:
//! a hand-computed running rate split at midnight with a backlog sent after live data,
//! withholding below 3 enterprises unless they all share, and a district's scope.

use crate::support::{TestPlatform, bounded, code, connect, publish_batches};
use fieldlink_platform::api::{IntegratorInput, UserInput};
use fieldlink_platform::clock::{DAY_MS, date_string, day_of, now_ms};
use fieldlink_testkit::PlatformClient;
use fieldlink_wire::{Batch, DeviceMeta, Meta, PointMeta, PointRole, Sample, Topics, Value};
use reqwest::StatusCode;
use serde_json::Value as Json;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(30);
const MINUTE: i64 = 60_000;
/// The platform's default zone (Beijing time), minutes east of UTC.
const OFFSET: i32 = 480;
const DEVICE: &str = "press-1";

/// An enterprise with one enrolled gateway.
struct Site {
    code: String,
    gateway: String,
    password: String,
}

/// Registers enterprise `serial` in `industry` and `district` and enrolls a gateway.
async fn site(p: &TestPlatform, serial: u32, industry: &str, district: &str) -> Site {
    let code = code(serial);
    p.register(&code, industry, district, false).await;
    let (gateway, password) = p.enroll(&p.token(&code, 1).await, "line-1").await;
    Site {
        code,
        gateway,
        password,
    }
}

/// The press's catalogue: `run` (running), `kwh` (energy_kwh), `parts` (output_count).
fn press_catalogue() -> Meta {
    let point = |name: &str, data_type: &str, role| PointMeta {
        name: name.to_owned(),
        data_type: data_type.to_owned(),
        unit: None,
        role: Some(role),
    };
    Meta {
        devices: vec![DeviceMeta {
            name: DEVICE.to_owned(),
            protocol: "modbus-tcp".to_owned(),
            points: vec![
                point("run", "bool", PointRole::Running),
                point("kwh", "f32", PointRole::EnergyKwh),
                point("parts", "u32", PointRole::OutputCount),
            ],
        }],
    }
}

/// Publishes every site's catalogue (retained, as the agent does) and waits until the
/// platform has stored them all.
async fn publish_catalogues(p: &TestPlatform, sites: &[&Site]) {
    let before = p.ingest_stats().await["meta_updates"].as_u64().unwrap();
    let payload = serde_json::to_vec(&press_catalogue()).unwrap();
    for s in sites {
        let mut client = connect(&p.mqtt, &s.gateway, Some((&s.gateway, &s.password)))
            .await
            .unwrap();
        client
            .publish(&Topics::new(&s.gateway).meta, payload.clone(), true)
            .await;
        client.disconnect().await;
    }
    let expected = before + sites.len() as u64;
    p.wait_ingest(WAIT, |s| s["meta_updates"].as_u64() >= Some(expected))
        .await;
}

/// Publishes `batches` of `(seq, samples)` as `site`'s gateway and waits until stored.
async fn publish(p: &TestPlatform, site: &Site, batches: Vec<(u64, Vec<Sample>)>) {
    let before = p.ingest_stats().await["batches_stored"].as_u64().unwrap();
    let batches: Vec<Batch> = batches
        .into_iter()
        .map(|(seq, samples)| Batch {
            gateway: site.gateway.clone(),
            seq,
            samples,
        })
        .collect();
    publish_batches(&p.mqtt, &site.gateway, Some(&site.password), &batches).await;
    let expected = before + batches.len() as u64;
    p.wait_ingest(WAIT, |s| s["batches_stored"].as_u64() >= Some(expected))
        .await;
}

fn sample(point: &str, ts: i64, value: Value) -> Sample {
    Sample::good(DEVICE.into(), point.into(), ts, value)
}

/// Today's local day number and the local midnight that starts day `today - days_ago`.
fn midnight(days_ago: i64) -> (i64, i64) {
    let today = day_of(now_ms(), OFFSET);
    let day = today - days_ago;
    (today, day * DAY_MS - i64::from(OFFSET) * MINUTE)
}

/// The group named `name` of a monitoring answer.
fn group<'a>(answer: &'a Json, name: &str) -> &'a Json {
    answer["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == name)
        .unwrap_or_else(|| panic!("no group {name} in {answer}"))
}

/// A client acting as a new user with `role` and `scope`.
async fn user(p: &TestPlatform, name: &str, role: &str, scope: Option<&str>) -> PlatformClient {
    let input = UserInput {
        username: name.to_owned(),
        password: format!("{name}-password-1"),
        role: role.to_owned(),
        scope: scope.map(str::to_owned),
    };
    p.client.create_user(&input).await.unwrap();
    let token = p
        .client
        .create_token(name, &Default::default())
        .await
        .unwrap()
        .token;
    p.client.clone().with_token(token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_rate_is_time_weighted_split_at_midnight_and_a_backlog_counts_in_full() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let p = TestPlatform::start(dir.path()).await;
        let press = site(&p, 801, "auto-parts", "洪山区").await;
        // One enterprise: shown only because it shares its data.
        let owner = p.client.enterprise_client(&press.code).await.unwrap();
        owner.set_sharing(&press.code, true).await.unwrap();
        publish_catalogues(&p, &[&press]).await;

        // From 23:30 two days ago to 00:30 yesterday: running true 0–10 min, false
        // 10–40, true 40–60, read every 5 min; the meter read every 10 min, swapped at
        // midnight (it starts again from 0); the parts counter every 30 min.
        let (today, start) = midnight(1);
        let start = start - 30 * MINUTE;
        let at = |minute: i64| start + minute * MINUTE;
        let readings = |minutes: std::ops::RangeInclusive<i64>| -> Vec<Sample> {
            let mut samples = Vec::new();
            for m in minutes.step_by(5) {
                samples.push(sample("run", at(m), Value::Bool(!(10..40).contains(&m))));
                if m % 10 == 0 {
                    let kwh = [10.0, 12.0, 14.0, 1.0, 3.0, 5.0, 7.0][(m / 10) as usize];
                    samples.push(sample("kwh", at(m), Value::Float(kwh)));
                }
                if m % 30 == 0 {
                    samples.push(sample("parts", at(m), Value::Int(1000 + m)));
                }
            }
            samples
        };
        // Live data first, then the backlog of the first half hour.
        publish(&p, &press, vec![(2, readings(35..=60))]).await;
        publish(&p, &press, vec![(1, readings(0..=30))]).await;

        let answer = p.get("/api/v1/stats/monitoring?by=industry&days=3").await;
        assert_eq!(answer["by"], "industry");
        assert_eq!(answer["district"], Json::Null);
        let dates: Vec<String> = (today - 2..=today).map(date_string).collect();
        assert_eq!(answer["dates"], serde_json::json!(dates));
        let parts = group(&answer, "auto-parts");
        assert_eq!(parts["label"], "汽车零部件");
        let days = parts["days"].as_array().unwrap();
        assert_eq!(days.len(), 3);
        // Two days ago: 23:30–24:00 observed, running 23:30–23:40.
        let rate = |d: &Json| d["running_rate"].as_f64().unwrap();
        assert_eq!(days[0]["date"], dates[0]);
        assert_eq!(
            (
                days[0]["enterprises"].as_u64(),
                days[0]["machines"].as_u64()
            ),
            (Some(1), Some(1))
        );
        assert_eq!(days[0]["withheld"], false);
        assert!((rate(&days[0]) - 1.0 / 3.0).abs() < 1e-9, "{}", days[0]);
        assert_eq!(days[0]["energy_kwh"].as_f64(), Some(2.0 + 2.0));
        assert_eq!(days[0]["output"].as_f64(), Some(0.0));
        // Yesterday: 00:00–00:30 observed, running 00:10–00:30; the swapped meter counts
        // from 0.
        assert!((rate(&days[1]) - 2.0 / 3.0).abs() < 1e-9, "{}", days[1]);
        assert_eq!(days[1]["energy_kwh"].as_f64(), Some(1.0 + 2.0 + 2.0 + 2.0));
        assert_eq!(days[1]["output"].as_f64(), Some(60.0));
        // Today: nothing reported.
        assert_eq!(days[2]["enterprises"], 0);
        assert_eq!(days[2]["running_rate"], Json::Null);
        // Over both days the machine ran half the time observed.
        let total = &answer["total"]["days"];
        assert_eq!(total[0]["enterprises"], 1);
        assert!((rate(&total[1]) - 2.0 / 3.0).abs() < 1e-9);
        // Other industries reported nothing.
        assert_eq!(group(&answer, "biomedicine")["days"][0]["enterprises"], 0);

        let csv = p
            .bureau(
                reqwest::Method::GET,
                "/api/v1/stats/monitoring?by=district&days=3&format=csv",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(csv.status(), StatusCode::OK);
        let text = csv.text().await.unwrap();
        // With a byte-order mark, for spreadsheet programs.
        let csv = text.trim_start_matches('\u{feff}');
        assert!(
            csv.starts_with(
                "group,label,date,enterprises,machines,withheld,running_rate,energy_kwh,output\n"
            ),
            "{csv}"
        );
        let line = format!("洪山区,洪山区,{},1,1,false,", dates[1]);
        assert!(
            csv.lines()
                .any(|l| l.starts_with(&line) && l.ends_with(",7,60")),
            "{csv}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_than_three_enterprises_are_withheld_unless_all_share_and_districts_see_their_own() {
    bounded(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let p = TestPlatform::start(dir.path()).await;
        let mut sites = vec![
            site(&p, 811, "auto-parts", "洪山区").await,
            site(&p, 812, "auto-parts", "洪山区").await,
        ];
        for serial in 813..=815 {
            sites.push(site(&p, serial, "biomedicine", "江岸区").await);
        }
        // The second auto-parts enterprise shares its data, the first does not (yet).
        let owner = p.client.enterprise_client(&sites[1].code).await.unwrap();
        owner.set_sharing(&sites[1].code, true).await.unwrap();
        publish_catalogues(&p, &sites.iter().collect::<Vec<_>>()).await;
        // Yesterday 08:00–08:10: running all along, 5 kWh and 20 parts each.
        let (_, start) = midnight(1);
        let at = |minute: i64| start + (8 * 60 + minute) * MINUTE;
        for s in &sites {
            let samples = vec![
                sample("run", at(0), Value::Bool(true)),
                sample("run", at(10), Value::Bool(true)),
                sample("kwh", at(0), Value::Float(100.0)),
                sample("kwh", at(10), Value::Float(105.0)),
                sample("parts", at(0), Value::Int(40)),
                sample("parts", at(10), Value::Int(60)),
            ];
            publish(&p, s, vec![(1, samples)]).await;
        }

        let path = "/api/v1/stats/monitoring?by=industry&days=2";
        let answer = p.get(path).await;
        let withheld = &group(&answer, "auto-parts")["days"][0];
        assert_eq!(withheld["enterprises"], 2);
        assert_eq!(withheld["machines"], 2);
        assert_eq!(withheld["withheld"], true);
        for figure in ["running_rate", "energy_kwh", "output"] {
            assert_eq!(withheld[figure], Json::Null, "{figure}");
        }
        let shown = &group(&answer, "biomedicine")["days"][0];
        assert_eq!(
            (shown["enterprises"].as_u64(), shown["withheld"].as_bool()),
            (Some(3), Some(false))
        );
        assert_eq!(shown["running_rate"].as_f64(), Some(1.0));
        assert_eq!(shown["energy_kwh"].as_f64(), Some(15.0));
        assert_eq!(shown["output"].as_f64(), Some(60.0));
        let total = &answer["total"]["days"][0];
        assert_eq!(
            (total["enterprises"].as_u64(), total["withheld"].as_bool()),
            (Some(5), Some(false))
        );
        assert_eq!(total["energy_kwh"].as_f64(), Some(25.0));

        // Once both share, their aggregate of two is shown.
        let owner = p.client.enterprise_client(&sites[0].code).await.unwrap();
        owner.set_sharing(&sites[0].code, true).await.unwrap();
        let answer = p.get(path).await;
        let shared = &group(&answer, "auto-parts")["days"][0];
        assert_eq!(shared["withheld"], false);
        assert_eq!(shared["energy_kwh"].as_f64(), Some(10.0));

        // A district user sees its district alone.
        let district = user(&p, "dist-hs", "district", Some("洪山区")).await;
        let mine = district
            .get_json("/api/v1/stats/monitoring?by=district&days=2")
            .await
            .unwrap();
        assert_eq!(mine["district"], "洪山区");
        assert_eq!(mine["groups"].as_array().unwrap().len(), 1);
        assert_eq!(mine["groups"][0]["group"], "洪山区");
        assert_eq!(mine["total"]["days"][0]["enterprises"], 2);
        let by_industry = district.get_json(path).await.unwrap();
        assert_eq!(
            group(&by_industry, "biomedicine")["days"][0]["enterprises"],
            0
        );
        assert_eq!(
            group(&by_industry, "auto-parts")["days"][0]["enterprises"],
            2
        );

        // Other roles may not ask; bad queries are refused.
        let integrator = IntegratorInput {
            credit_code: code(899),
            name: "集成商".to_owned(),
            contact: None,
        };
        p.client.register_integrator(&integrator).await.unwrap();
        for client in [
            owner,
            user(&p, "int-x", "integrator", Some(&code(899))).await,
        ] {
            let status = client
                .request(reqwest::Method::GET, path)
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, StatusCode::FORBIDDEN);
        }
        for query in [
            "days=7",
            "by=city",
            "by=industry&days=0",
            "by=industry&days=91",
            "by=industry&format=xml",
        ] {
            let status = p
                .bureau(
                    reqwest::Method::GET,
                    &format!("/api/v1/stats/monitoring?{query}"),
                )
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        }
    })
    .await;
}
