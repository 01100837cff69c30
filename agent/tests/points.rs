//! `fieldlink import` and `fieldlink export` as a user runs them: point tables in the
//! encodings spreadsheets write, their errors, and blocks that `fieldlink check` accepts.

use std::path::Path;
use std::process::{Command, Output};

/// The config that the imported blocks are pasted into.
const DEVICE: &str = "[gateway]\nid = \"gw-points\"\n\n[[device]]\nname = \"press-1\"\nprotocol = \"modbus-tcp\"\naddress = \"127.0.0.1:502\"\n\n";

/// A table as an integrator writes it: Chinese headers in their own order, a quoted unit
/// holding a comma and a doubled quote, hexadecimal and Chinese area names.
const CHINESE: &str = "类型,名称,地址,区域,单位,倍率,字节序\n\
    f32,温度,0x64,保持寄存器,\"°C, \"\"PT100\"\"\",0.1,cdab\n\
    \n\
    bool,运行,3,线圈,,,\n";

fn fieldlink(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fieldlink"))
        .args(args)
        .output()
        .expect("run fieldlink")
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8 output")
}

/// `fieldlink import FILE` on `bytes`, which must succeed: its stdout.
fn import(dir: &Path, file: &str, bytes: &[u8]) -> String {
    let path = dir.join(file);
    std::fs::write(&path, bytes).unwrap();
    let out = fieldlink(&["import", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).to_owned()
}

/// Writes the config holding `blocks` and runs `fieldlink check` on it, which must pass.
fn check(dir: &Path, blocks: &str) -> std::path::PathBuf {
    let config = dir.join("agent.toml");
    std::fs::write(&config, format!("{DEVICE}{blocks}")).unwrap();
    let out = fieldlink(&["check", "--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    config
}

#[test]
fn import_reads_utf8_with_and_without_bom_and_gbk_alike() {
    let dir = tempfile::tempdir().unwrap();
    let utf8 = import(dir.path(), "utf8.csv", CHINESE.as_bytes());
    assert!(
        utf8.contains(
            "name = \"温度\"\narea = \"holding\"\naddress = 100\ntype = \"f32\"\norder = \"CDAB\"\nscale = 0.1\nunit = \"°C, \\\"PT100\\\"\"\n"
        ),
        "{utf8}"
    );
    assert!(utf8.contains("name = \"运行\"\narea = \"coil\""), "{utf8}");
    let bom = [b"\xEF\xBB\xBF".as_slice(), CHINESE.as_bytes()].concat();
    assert_eq!(import(dir.path(), "bom.csv", &bom), utf8);
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(CHINESE);
    assert!(!unmappable && std::str::from_utf8(&gbk).is_err());
    assert_eq!(import(dir.path(), "gbk.csv", &gbk), utf8);
    check(dir.path(), &utf8);
}

#[test]
fn import_writes_to_out_and_accepts_english_columns_in_any_order() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("points.csv");
    std::fs::write(
        &table,
        "Address, Name ,TYPE,area,deadband,heartbeat\n200,pressure,u16,input,2,30s\n",
    )
    .unwrap();
    let blocks = dir.path().join("points.toml");
    let out = fieldlink(&[
        "import",
        table.to_str().unwrap(),
        "--out",
        blocks.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let blocks = std::fs::read_to_string(blocks).unwrap();
    assert_eq!(
        blocks,
        "[[device.point]]\nname = \"pressure\"\narea = \"input\"\naddress = 200\ntype = \"u16\"\ndeadband = 2\nheartbeat = \"30s\"\n"
    );
    check(dir.path(), &blocks);
}

#[test]
fn import_reports_every_bad_row_with_its_line_and_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("points.csv");
    std::fs::write(
        &table,
        "name,area,address,type\n\
         ok,holding,0,u16\n\
         \n\
         bad_type,holding,1,float\n\
         bad_area,register,2,u16\n\
         ok,input,3,u16\n",
    )
    .unwrap();
    let out = fieldlink(&["import", table.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let file = table.display();
    let expected = format!(
        "{file}:4: column \"type\": `type` must be one of bool, u16, i16, u32, i32, u64, i64, f32, f64, string, found \"float\"\n\
         {file}:5: column \"area\": `area` must be one of holding, input, coil, discrete, found \"register\"\n\
         {file}:6: column \"name\": duplicate point name \"ok\", first on line 2\n"
    );
    assert_eq!(text(&out.stderr), expected);
}

#[test]
fn export_then_import_gives_the_same_points() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = import(dir.path(), "points.csv", CHINESE.as_bytes());
    let config = check(dir.path(), &blocks);
    let config = config.to_str().unwrap();
    let out = fieldlink(&["export", "--config", config, "--device", "press-1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert_eq!(
        table,
        "name,area,address,type,order,scale,offset,unit,deadband\n\
         温度,holding,100,f32,CDAB,0.1,,\"°C, \"\"PT100\"\"\",\n\
         运行,coil,3,bool,,,,,\n"
    );
    assert_eq!(import(dir.path(), "exported.csv", table.as_bytes()), blocks);

    let with_bom = fieldlink(&["export", "--config", config, "--device", "press-1", "--bom"]);
    assert!(with_bom.status.success());
    assert_eq!(
        with_bom.stdout,
        [b"\xEF\xBB\xBF".as_slice(), table.as_bytes()].concat()
    );
}

#[test]
fn export_refuses_a_device_without_registers() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "[[device]]\nname = \"line-sim\"\nprotocol = \"simulator\"\n[[device.point]]\nname = \"wave\"\n",
    )
    .unwrap();
    let out = fieldlink(&["export", "-c", config.to_str().unwrap(), "-d", "line-sim"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        "error: device \"line-sim\" speaks simulator; only Modbus devices (modbus-tcp, modbus-rtu, modbus-ascii, modbus-rtu-over-tcp) have register point tables\n"
    );
}
