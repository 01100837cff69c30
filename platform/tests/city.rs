//! A city simulation: 4,000 enterprises spread over the 8 industries and 17 districts
//! enroll 1 to 3 gateways each through the HTTP API, every gateway publishes a batch
//! through the broker, and the bureau's counts equal the ground truth exactly. Also
//! enterprises that enrolled but stay silent, and ones that only registered.

use crate::support::{TestPlatform, batch, bounded, code, publish_batches};
use fieldlink_platform::catalog::{District, Industry};
use fieldlink_platform::registry::TokenInput;
use fieldlink_wire::EnrollRequest;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const ON_CLOUD: u32 = 4000;
const SILENT: u32 = 100;
const REGISTERED_ONLY: u32 = 150;
const CONCURRENCY: usize = 16;

struct Enterprise {
    code: String,
    industry: Industry,
    district: District,
    in_program: bool,
    gateways: u32,
    publishes: bool,
}

fn city() -> Vec<Enterprise> {
    let districts: Vec<District> = District::all().collect();
    (0..ON_CLOUD + SILENT + REGISTERED_ONLY)
        .map(|i| Enterprise {
            code: code(100_000 + i),
            industry: Industry::ALL[(i % 8) as usize],
            district: districts[((i * 7 + i / 8) % 17) as usize],
            in_program: i % 9 == 0,
            gateways: if i < ON_CLOUD {
                1 + i % 3
            } else if i < ON_CLOUD + SILENT {
                1
            } else {
                0
            },
            publishes: i < ON_CLOUD,
        })
        .collect()
}

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
struct Truth {
    registered: u64,
    enrolled: u64,
    on_cloud: u64,
    active: u64,
    silent: u64,
}

impl Truth {
    fn add(&mut self, e: &Enterprise) {
        self.registered += 1;
        self.enrolled += u64::from(e.gateways > 0);
        self.on_cloud += u64::from(e.publishes);
        self.active += u64::from(e.publishes);
        self.silent += u64::from(e.gateways > 0 && !e.publishes);
    }

    fn of(json: &Json) -> Truth {
        let n = |k: &str| json[k].as_u64().unwrap_or(u64::MAX);
        Truth {
            registered: n("registered"),
            enrolled: n("enrolled"),
            on_cloud: n("on_cloud"),
            active: n("active"),
            silent: n("silent"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_city_of_4000_enterprises_is_counted_exactly() {
    bounded(Duration::from_secs(240), async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = TestPlatform::start(dir.path()).await;
        let enterprises = city();
        let started = Instant::now();

        // Registration: one CSV import.
        let mut csv = String::from("credit_code,name,industry,district,in_program\n");
        for e in &enterprises {
            csv.push_str(&format!(
                "{},企业{},{},{},{}\n",
                e.code,
                e.code,
                e.industry.code(),
                e.district.name(),
                e.in_program
            ));
        }
        p.client.import_enterprises(&csv).await.unwrap();
        let imported = started.elapsed();

        // Enrollment: a token per enterprise, then each of its gateways.
        let limit = Arc::new(Semaphore::new(CONCURRENCY));
        let mut tasks = JoinSet::new();
        for e in enterprises.iter().filter(|e| e.gateways > 0) {
            let (client, code, n, publishes) =
                (p.client.clone(), e.code.clone(), e.gateways, e.publishes);
            let permit = limit.clone().acquire_owned().await.unwrap();
            tasks.spawn(async move {
                let input = TokenInput {
                    expires_in_days: None,
                    max_gateways: Some(n),
                };
                let token = client.issue_token(&code, &input).await.unwrap().token;
                let mut gateways = Vec::new();
                for g in 0..n {
                    let request = EnrollRequest {
                        token: token.clone(),
                        gateway_name: format!("line-{g}"),
                        hostname: None,
                        agent_version: None,
                    };
                    let enrollment = client.enroll(&request).await.unwrap();
                    gateways.push((enrollment.gateway_id, enrollment.mqtt.password));
                }
                drop(permit);
                (gateways, publishes)
            });
        }
        let mut publishing = Vec::new();
        let mut enrolled_gateways = 0;
        while let Some(result) = tasks.join_next().await {
            let (gateways, publishes) = result.unwrap();
            enrolled_gateways += gateways.len();
            if publishes {
                publishing.extend(gateways);
            }
        }
        let enrolled = started.elapsed();

        // Every gateway of the on-cloud enterprises publishes one batch, each over its
        // own connection.
        let mut tasks = JoinSet::new();
        for (id, password) in publishing.clone() {
            let url = p.mqtt.clone();
            let permit = limit.clone().acquire_owned().await.unwrap();
            tasks.spawn(async move {
                publish_batches(&url, &id, Some(&password), &[batch(&id, 1, 10)]).await;
                drop(permit);
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
        let published = started.elapsed();
        let expected_batches = publishing.len() as u64;
        let stats = p
            .wait_ingest(Duration::from_secs(60), |s| {
                s["batches_stored"].as_u64() == Some(expected_batches)
            })
            .await;
        assert_eq!(stats["unknown_gateway"], 0);
        let stored = started.elapsed();

        // Ground truth.
        let mut total = Truth::default();
        let mut in_program = Truth::default();
        let mut by_industry: BTreeMap<&str, Truth> = BTreeMap::new();
        let mut by_district: BTreeMap<&str, Truth> = BTreeMap::new();
        for e in &enterprises {
            total.add(e);
            if e.in_program {
                in_program.add(e);
            }
            by_industry.entry(e.industry.code()).or_default().add(e);
            by_district.entry(e.district.name()).or_default().add(e);
        }

        let counts = p.get("/api/v1/stats/onboarding").await;
        let counted = started.elapsed();
        assert_eq!(Truth::of(&counts["total"]), total);
        assert_eq!(Truth::of(&counts["in_program"]), in_program);
        assert_eq!(counts["targets"]["in_program_on_cloud"], 480);
        assert_eq!(counts["targets"]["key_industries_on_cloud"], 4000);
        assert_eq!(counts["by_industry"].as_array().unwrap().len(), 8);
        for row in counts["by_industry"].as_array().unwrap() {
            let industry = row["industry"].as_str().unwrap();
            assert_eq!(Truth::of(row), by_industry[industry], "{industry}");
            assert_eq!(row["pilot"], Industry::from_code(industry).unwrap().pilot());
            assert_eq!(row["target"], 1000);
        }
        assert_eq!(counts["by_district"].as_array().unwrap().len(), 17);
        for row in counts["by_district"].as_array().unwrap() {
            let district = row["district"].as_str().unwrap();
            assert_eq!(Truth::of(row), by_district[district], "{district}");
        }

        // The same counts as CSV, the daily series, the silent list.
        let csv = p
            .bureau(reqwest::Method::GET, "/api/v1/stats/onboarding?format=csv")
            .send()
            .await
            .unwrap();
        assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        let csv = csv.text().await.unwrap();
        assert!(
            csv.contains(&format!(
                "total,all,,{},{},{},{},{},4000",
                total.registered, total.enrolled, total.on_cloud, total.active, total.silent
            )),
            "{csv}"
        );
        assert_eq!(csv.lines().count(), 1 + 2 + 8 + 2 + 17);
        let daily = p.get("/api/v1/stats/onboarding/daily?days=3").await;
        assert_eq!(daily.as_array().unwrap().len(), 3);
        assert_eq!(daily[2]["on_cloud"], total.on_cloud);
        assert_eq!(daily[2]["active"], total.active);
        assert_eq!(daily[2]["in_program_on_cloud"], in_program.on_cloud);
        let silent = p.get("/api/v1/stats/onboarding/silent").await;
        assert_eq!(silent.as_array().unwrap().len() as u64, total.silent);

        println!(
            "city simulation: {} enterprises, {enrolled_gateways} gateways enrolled, {} batches; \
             CSV import {:.2} s, enrollment {:.2} s ({:.0} gateways/s), publishing {:.2} s \
             ({:.0} connections/s), ingest caught up {:.2} s later, counts query {:.0} ms; total {:.2} s",
            enterprises.len(),
            expected_batches,
            imported.as_secs_f64(),
            (enrolled - imported).as_secs_f64(),
            enrolled_gateways as f64 / (enrolled - imported).as_secs_f64(),
            (published - enrolled).as_secs_f64(),
            expected_batches as f64 / (published - enrolled).as_secs_f64(),
            (stored - published).as_secs_f64(),
            (counted - stored).as_secs_f64() * 1000.0,
            counted.as_secs_f64(),
        );
        p.stop().await;
    })
    .await;
}
