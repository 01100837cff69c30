//! Writes the samples the packed payloads' zstd dictionary is trained on
//! (`wire/dict/README.md`): the packed content of realistic batches, one file each.
//!
//! `cargo run -p fieldlink-wire --example dictionary_samples -- OUT_DIR`
//!
//! Names come from what ships: every device template (`templates/*.toml`, in their order),
//! the example configurations' devices (`config/*.toml`) and the simulator's generated
//! names (`point_000`, `sim-0000`/`point_0000`, as the benches configure them). Values are
//! drawn like readings of each point's type (decimals from scaled registers and f32s,
//! counters, booleans) from a fixed seed, so the files are the same on every run. Batches
//! are shaped as the agent cuts them at one-second polling: one device's read, several
//! devices' reads together, and ten reads of one device.

use fieldlink_wire::{Batch, Quality, Sample, Value, packed};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A device as the samples know it: its name and its points' names and types.
struct Device {
    name: Arc<str>,
    points: Vec<(Arc<str>, &'static str)>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: dictionary_samples OUT_DIR")?,
    );
    std::fs::create_dir_all(&out)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut devices = Vec::new();
    for path in toml_files(&root.join("templates"))? {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("device");
        let model = stem.rsplit('-').next().unwrap_or(stem);
        let table: toml::Table = std::fs::read_to_string(&path)?.parse()?;
        devices.push(Device {
            name: format!("{model}-1").into(),
            points: points(&table),
        });
    }
    for path in toml_files(&root.join("config"))? {
        let table: toml::Table = std::fs::read_to_string(&path)?.parse()?;
        for device in table
            .get("device")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(toml::Value::as_table)
        {
            let name = device.get("name").and_then(toml::Value::as_str);
            devices.push(Device {
                name: name.unwrap_or("device").into(),
                points: points(device),
            });
        }
    }
    for (device, width) in [("press-1", 3), ("sim-0000", 4)] {
        devices.push(Device {
            name: device.into(),
            points: (0..100)
                .map(|i| (format!("point_{i:0width$}").into(), SIMULATOR_TYPES[i % 5]))
                .collect(),
        });
    }

    let gateways = [
        "91330106MA2B1C2D3E-gw-01",
        "91440300MA5F8G9H0J-line-2",
        "gw-plant-a-01",
    ];
    let mut rng = fastrand::Rng::with_seed(20_260_101);
    let t0 = 1_767_225_600_000;
    let mut written = 0;
    let mut write = |batch: &Batch| -> std::io::Result<()> {
        written += 1;
        std::fs::write(
            out.join(format!("{written:04}.packed")),
            packed::content(batch),
        )
    };
    let mut seq = 1;
    for (d, device) in devices.iter().enumerate() {
        let gateway = gateways[d % gateways.len()];
        // One device's reads, a batch a second.
        for second in 0..60 {
            let ts = t0 + second * 1000 + d as i64 * 13;
            let samples = read(device, ts, &mut rng);
            write(&batch(gateway, &mut seq, samples))?;
        }
        // Ten reads of one device in a batch.
        for start in 0..6 {
            let samples = (start * 10..start * 10 + 10)
                .flat_map(|second| read(device, t0 + second * 1000, &mut rng))
                .collect();
            write(&batch(gateway, &mut seq, samples))?;
        }
    }
    // Several devices read in the same second, in one batch.
    for second in 0..120 {
        let group = &devices[second % 4 * 3..(second % 4 * 3 + 4).min(devices.len())];
        let samples = group
            .iter()
            .enumerate()
            .flat_map(|(i, device)| {
                read(device, t0 + second as i64 * 1000 + i as i64 * 7, &mut rng)
            })
            .collect();
        write(&batch(gateways[second % gateways.len()], &mut seq, samples))?;
    }
    println!("{written} samples in {}", out.display());
    Ok(())
}

/// The types of the simulator's signals as `realistic_samples` cycles them: sine, random
/// walk, counter, toggle, ramp.
const SIMULATOR_TYPES: [&str; 5] = ["f32", "f32", "u32", "bool", "f32"];

fn toml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// The points of a template (`[[point]]`) or a configured device (`[[device.point]]`).
fn points(table: &toml::Table) -> Vec<(Arc<str>, &'static str)> {
    table
        .get("point")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(toml::Value::as_table)
        .filter_map(|point| {
            let name = point.get("name")?.as_str()?;
            let scaled = point.contains_key("scale");
            let kind = match point.get("type").and_then(toml::Value::as_str) {
                _ if scaled => "f32",
                Some("bool") => "bool",
                Some("f32" | "f64") => "f32",
                Some("string") => "string",
                Some(_) => "u32",
                None if point.get("area").and_then(toml::Value::as_str) == Some("coil") => "bool",
                None => "u32",
            };
            Some((name.into(), kind))
        })
        .collect()
}

/// One read of every point of `device` at `ts`; one in fifty fails.
fn read(device: &Device, ts: i64, rng: &mut fastrand::Rng) -> Vec<Sample> {
    device
        .points
        .iter()
        .map(|(point, kind)| {
            if rng.u8(..50) == 0 {
                return Sample::bad(device.name.clone(), point.clone(), ts, "timeout");
            }
            let value = match *kind {
                "bool" => Value::Bool(rng.bool()),
                "string" => Value::Text(format!("AX-{}", rng.u16(100..999))),
                "u32" => Value::Int(rng.i64(0..100_000)),
                _ => {
                    let decimals = rng.u32(0..3);
                    let scale = 10f64.powi(decimals as i32);
                    Value::Float(rng.i64(-5_000..250_000) as f64 / scale)
                }
            };
            Sample {
                device: device.name.clone(),
                point: point.clone(),
                ts,
                value,
                quality: Quality::Good,
            }
        })
        .collect()
}

fn batch(gateway: &str, seq: &mut u64, samples: Vec<Sample>) -> Batch {
    *seq += 1;
    Batch {
        gateway: gateway.to_owned(),
        seq: 1_000 + *seq,
        samples,
    }
}
