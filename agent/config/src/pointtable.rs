//! Point tables: a Modbus device's `[[device.point]]` blocks as CSV, the register map an
//! integrator keeps in a spreadsheet. [`import`] turns a table into blocks, [`export`]
//! writes a configured device's points as a table; `import(export(x))` gives x's points.
//!
//! Import does not judge points itself. It writes the rows as the point blocks of a
//! synthetic Modbus TCP device, parses that with [`crate::parse`], the reader `fieldlink
//! check` uses, and maps each error back to its CSV line (and column) through the line
//! each key was written on: what import accepts, check accepts. Only the table's own rules
//! are checked here: the header, the required cells, one name per point (an error naming
//! both lines, which the config reader cannot do in CSV terms).
//!
//! Encodings: valid UTF-8 (with or without a byte order mark) is UTF-8; anything else is
//! read as GBK, what Excel and WPS write for "CSV" on a Chinese Windows. A GBK file is
//! seldom valid UTF-8 by chance, since its Chinese characters are pairs of bytes from 0x81
//! up, which UTF-8 almost never allows in that order.

use crate::model::{AgentConfig, DeviceKind, PointInfo};
use crate::units::format_duration;
use fieldlink_collector_api::DataType;
use fieldlink_collector_api::plugin::toml_string;
use fieldlink_modbus::PointSpec;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// The name of the synthetic device that holds the imported points while they are checked.
const DEVICE: &str = "point-table";

/// A column of a point table; declared in the order blocks and exported tables list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Column {
    Name,
    Area,
    Address,
    Type,
    Order,
    Scale,
    Offset,
    Unit,
    Deadband,
    Bit,
    Length,
    DeadbandPercent,
    Heartbeat,
    Role,
}

impl Column {
    /// Every column, in declaration order.
    const ALL: [Column; 14] = [
        Column::Name,
        Column::Area,
        Column::Address,
        Column::Type,
        Column::Order,
        Column::Scale,
        Column::Offset,
        Column::Unit,
        Column::Deadband,
        Column::Bit,
        Column::Length,
        Column::DeadbandPercent,
        Column::Heartbeat,
        Column::Role,
    ];

    /// The English header, which is also the point's TOML key.
    fn key(self) -> &'static str {
        match self {
            Column::Name => "name",
            Column::Area => "area",
            Column::Address => "address",
            Column::Type => "type",
            Column::Order => "order",
            Column::Scale => "scale",
            Column::Offset => "offset",
            Column::Unit => "unit",
            Column::Deadband => "deadband",
            Column::Bit => "bit",
            Column::Length => "length",
            Column::DeadbandPercent => "deadband_percent",
            Column::Heartbeat => "heartbeat",
            Column::Role => "role",
        }
    }

    /// The header Chinese point tables use.
    fn chinese(self) -> &'static str {
        match self {
            Column::Name => "名称",
            Column::Area => "区域",
            Column::Address => "地址",
            Column::Type => "类型",
            Column::Order => "字节序",
            Column::Scale => "倍率",
            Column::Offset => "偏移",
            Column::Unit => "单位",
            Column::Deadband => "死区",
            Column::Bit => "位",
            Column::Length => "长度",
            Column::DeadbandPercent => "死区百分比",
            Column::Heartbeat => "心跳",
            Column::Role => "角色",
        }
    }

    /// Every row must fill it. The config reader would default `area` and `type`, but a
    /// register map without them is ambiguous, so the table asks for them.
    fn required(self) -> bool {
        matches!(
            self,
            Column::Name | Column::Area | Column::Address | Column::Type
        )
    }

    /// An exported table always has it (DESIGN.md's header); the others only when a point
    /// uses them.
    fn documented(self) -> bool {
        !matches!(
            self,
            Column::Bit
                | Column::Length
                | Column::DeadbandPercent
                | Column::Heartbeat
                | Column::Role
        )
    }

    /// The column a header names: English or Chinese, any case, spaces around ignored.
    fn from_header(header: &str) -> Option<Column> {
        let header = header.trim().to_ascii_lowercase();
        Column::ALL
            .into_iter()
            .find(|c| header == c.key() || header == c.chinese())
    }

    /// A cell as a TOML value. Spreadsheet spellings are normalised (`F32`, `cdab`, the
    /// Chinese area names); a number column's cell that is not a number stays a string,
    /// so that the config reader reports it as it would in a config file.
    fn toml_value(self, cell: &str) -> String {
        match self {
            Column::Area => toml_string(&area_name(cell)),
            Column::Type => toml_string(&cell.to_ascii_lowercase()),
            Column::Order => toml_string(&cell.to_ascii_uppercase()),
            Column::Address | Column::Bit | Column::Length => {
                integer(cell).unwrap_or_else(|| toml_string(cell))
            }
            Column::Scale | Column::Offset | Column::Deadband | Column::DeadbandPercent => {
                number(cell).unwrap_or_else(|| toml_string(cell))
            }
            Column::Name | Column::Unit | Column::Heartbeat => toml_string(cell),
            Column::Role => toml_string(&cell.to_ascii_lowercase()),
        }
    }

    /// The point's cell in this column, `None` where the config's default applies.
    fn export(self, spec: &PointSpec, info: &PointInfo) -> Option<String> {
        match self {
            Column::Name => Some(info.name.to_string()),
            Column::Area => Some(spec.area.as_str().to_owned()),
            Column::Address => Some(spec.address.to_string()),
            Column::Type => Some(spec.data_type.as_str().to_owned()),
            // Written for every register point, default or not: the word order is what
            // register maps most often get wrong, so the table shows it.
            Column::Order => (!spec.area.is_bits()).then(|| spec.order.as_str().to_owned()),
            Column::Scale => (spec.scale != 1.0).then(|| spec.scale.to_string()),
            Column::Offset => (spec.offset != 0.0).then(|| spec.offset.to_string()),
            Column::Unit => info.unit.clone(),
            Column::Deadband => info.deadband.map(|d| d.to_string()),
            Column::Bit => spec.bit.map(|b| b.to_string()),
            Column::Length => match spec.data_type {
                DataType::String { len } => Some(len.to_string()),
                _ => None,
            },
            Column::DeadbandPercent => info.deadband_percent.map(|d| d.to_string()),
            Column::Heartbeat => info.heartbeat.map(format_duration),
            Column::Role => info.role.map(|r| r.as_str().to_owned()),
        }
    }
}

/// An area as the config names it; the Chinese names of the four Modbus areas accepted.
fn area_name(cell: &str) -> String {
    match cell {
        "保持寄存器" => "holding".to_owned(),
        "输入寄存器" => "input".to_owned(),
        "线圈" => "coil".to_owned(),
        "离散输入" => "discrete".to_owned(),
        other => other.to_ascii_lowercase(),
    }
}

/// A decimal or `0x` hexadecimal integer (register maps often give addresses in hex).
fn integer(cell: &str) -> Option<String> {
    let n = match cell.strip_prefix("0x").or_else(|| cell.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16).ok()?,
        None => cell.parse::<i64>().ok()?,
    };
    Some(n.to_string())
}

/// A number in TOML's syntax, which is stricter than a spreadsheet's (`.5`, `1.`).
fn number(cell: &str) -> Option<String> {
    if let Ok(n) = cell.parse::<i64>() {
        return Some(n.to_string());
    }
    let f = cell.parse::<f64>().ok()?;
    // Not finite: TOML's own spellings, so that the reader says "must be a finite number".
    Some(if f.is_nan() {
        "nan".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        // Debug prints the shortest exact form, with a `.0` or an exponent: valid TOML.
        format!("{f:?}")
    })
}

/// One problem in a point table, at its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError {
    /// The file, as the user named it.
    pub file: String,
    /// 1-based line in the CSV file.
    pub line: u64,
    /// The column's header as the table writes it, when the problem is one cell's.
    pub column: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(column) => write!(
                f,
                "{}:{}: column {column:?}: {}",
                self.file, self.line, self.message
            ),
            None => write!(f, "{}:{}: {}", self.file, self.line, self.message),
        }
    }
}

/// Every problem found in a point table, in line order; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableErrors(pub Vec<TableError>);

impl fmt::Display for TableErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::error::write_lines(f, &self.0)
    }
}

/// Why a point table could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The bytes are neither UTF-8 nor GBK text; save the table as "CSV UTF-8".
    #[error("{file}: neither UTF-8 nor GBK text; save the table as CSV (\"CSV UTF-8\" in Excel)")]
    Encoding {
        /// The file, as the user named it.
        file: String,
    },
    /// The table has errors, each listed with its line; fix them all and import again.
    #[error("{0}")]
    Invalid(TableErrors),
}

/// Why a device's points could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The config has no device of that name; pick one of those listed.
    #[error("no device {device:?} in the config; its devices: {known}")]
    NoDevice {
        /// The name asked for.
        device: String,
        /// The config's device names, for the message.
        known: String,
    },
    /// The device is not a Modbus device: only those have register point tables.
    #[error(
        "device {device:?} speaks {protocol}; only Modbus devices (modbus-tcp, modbus-rtu, modbus-ascii, modbus-rtu-over-tcp) have register point tables"
    )]
    NotModbus {
        /// The device.
        device: String,
        /// Its protocol.
        protocol: &'static str,
    },
}

/// The `[[device.point]]` blocks of the CSV point table `bytes`; `file` names it in errors.
pub fn import(bytes: &[u8], file: &str) -> Result<String, ImportError> {
    let text = decode(bytes).ok_or_else(|| ImportError::Encoding {
        file: file.to_owned(),
    })?;
    let mut errors = Errors {
        file,
        list: Vec::new(),
    };
    let records = read_records(&text, &mut errors);
    let Some(((header_line, header_record), rows)) = records.split_first() else {
        errors.at(
            1,
            None,
            format!(
                "no header row: the first row names the columns, e.g. {}",
                documented_header()
            ),
        );
        return Err(errors.into_error());
    };
    let Some(header) = Header::read(*header_line, header_record, &mut errors) else {
        return Err(errors.into_error());
    };
    if rows.is_empty() {
        errors.at(*header_line, None, "the table has a header but no points");
    }
    let rows: Vec<Row<'_>> = rows
        .iter()
        .filter_map(|(line, record)| header.row(*line, record, &mut errors))
        .collect();
    let rows = drop_duplicates(rows, &header, &mut errors);
    let draft = Draft::new(&rows);
    // Without rows the reader would only repeat that the device has no points.
    if !rows.is_empty()
        && let Err(found) = crate::parse(&draft.text, file)
    {
        for e in found.0 {
            draft.locate(e, *header_line, &header, &mut errors);
        }
    }
    if errors.list.is_empty() {
        Ok(draft.blocks().to_owned())
    } else {
        Err(errors.into_error())
    }
}

/// Device `device`'s points as a CSV point table (UTF-8, no byte order mark): the header
/// of DESIGN.md, and `bit`, `length`, `deadband_percent`, `heartbeat`, `role` when a point
/// uses them.
pub fn export(config: &AgentConfig, device: &str) -> Result<String, ExportError> {
    let found = config
        .devices
        .iter()
        .find(|d| &*d.name == device)
        .ok_or_else(|| ExportError::NoDevice {
            device: device.to_owned(),
            known: config
                .devices
                .iter()
                .map(|d| format!("{:?}", &*d.name))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let specs = match &found.kind {
        DeviceKind::ModbusTcp(tcp) => &tcp.points,
        DeviceKind::ModbusRtu(rtu)
        | DeviceKind::ModbusAscii(rtu)
        | DeviceKind::ModbusRtuOverTcp(rtu) => &rtu.points,
        other => {
            return Err(ExportError::NotModbus {
                device: device.to_owned(),
                protocol: other.protocol(),
            });
        }
    };
    // The reader builds both lists from the same blocks, in file order.
    let rows: Vec<Vec<Option<String>>> = specs
        .iter()
        .zip(&found.points)
        .map(|(spec, info)| Column::ALL.iter().map(|c| c.export(spec, info)).collect())
        .collect();
    let used: Vec<usize> = (0..Column::ALL.len())
        .filter(|&i| Column::ALL[i].documented() || rows.iter().any(|r| r[i].is_some()))
        .collect();
    let mut out = String::new();
    let header: Vec<&str> = used.iter().map(|&i| Column::ALL[i].key()).collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for row in &rows {
        let cells: Vec<Cow<'_, str>> = used
            .iter()
            .map(|&i| row[i].as_deref().map_or(Cow::Borrowed(""), csv_field))
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    Ok(out)
}

/// DESIGN.md's header, for messages.
fn documented_header() -> String {
    let keys: Vec<&str> = Column::ALL
        .iter()
        .filter(|c| c.documented())
        .map(|c| c.key())
        .collect();
    keys.join(",")
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

/// The text of `bytes`: UTF-8 without its byte order mark, or else GBK; `None` if neither.
fn decode(bytes: &[u8]) -> Option<Cow<'_, str>> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Some(Cow::Borrowed(text.strip_prefix('\u{feff}').unwrap_or(text))),
        Err(_) => encoding_rs::GBK.decode_without_bom_handling_and_without_replacement(bytes),
    }
}

/// The non-empty records of the table, each with the line it starts on. A row of empty
/// cells counts as empty: spreadsheets write blank rows as a line of commas.
fn read_records(text: &str, errors: &mut Errors<'_>) -> Vec<(u64, csv::StringRecord)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = Vec::new();
    for record in reader.records() {
        match record {
            Ok(r) if r.iter().all(str::is_empty) => {}
            Ok(r) => records.push((start_line(text, r.position()), r)),
            Err(e) => errors.at(start_line(text, e.position()), None, format!("CSV: {e}")),
        }
    }
    records
}

/// The line a record starts on. csv's position is where the previous record ended, before
/// the blank lines it skips; those are counted here.
fn start_line(text: &str, position: Option<&csv::Position>) -> u64 {
    let Some(position) = position else {
        return 0;
    };
    let after = usize::try_from(position.byte())
        .ok()
        .and_then(|at| text.get(at..))
        .unwrap_or_default();
    let blank = after.len() - after.trim_start_matches(['\r', '\n']).len();
    let skipped = after.get(..blank).unwrap_or_default().matches('\n').count();
    position.line() + skipped as u64
}

/// The errors found so far.
struct Errors<'f> {
    file: &'f str,
    list: Vec<TableError>,
}

impl Errors<'_> {
    /// Records an error at `line`, in `column` if it is one cell's.
    fn at(&mut self, line: u64, column: Option<&str>, message: impl Into<String>) {
        self.list.push(TableError {
            file: self.file.to_owned(),
            line,
            column: column.map(str::to_owned),
            message: message.into(),
        });
    }

    /// The errors in line order (those of one line in the order found).
    fn into_error(mut self) -> ImportError {
        self.list.sort_by_key(|e| e.line);
        ImportError::Invalid(TableErrors(self.list))
    }
}

/// The header row: which column each field is, and its header as written.
struct Header {
    fields: Vec<Option<(Column, String)>>,
}

impl Header {
    /// Reads the header row; `None` (with the errors recorded) if it cannot be used.
    fn read(line: u64, record: &csv::StringRecord, errors: &mut Errors<'_>) -> Option<Header> {
        let before = errors.list.len();
        let mut fields = Vec::new();
        let mut seen: HashMap<Column, &str> = HashMap::new();
        for text in record {
            let text = text.trim_start_matches('\u{feff}');
            // An unnamed column is tolerated (spreadsheets export trailing empty ones);
            // a value under it is not.
            if text.is_empty() {
                fields.push(None);
                continue;
            }
            match Column::from_header(text) {
                Some(column) => {
                    if let Some(first) = seen.insert(column, text) {
                        errors.at(
                            line,
                            Some(text),
                            format!("`{}` is already the column {first:?}", column.key()),
                        );
                    }
                    fields.push(Some((column, text.to_owned())));
                }
                None => {
                    let known: Vec<String> = Column::ALL
                        .iter()
                        .map(|c| format!("{}/{}", c.key(), c.chinese()))
                        .collect();
                    errors.at(
                        line,
                        Some(text),
                        format!("unknown column; the columns are {}", known.join(", ")),
                    );
                    fields.push(None);
                }
            }
        }
        for column in Column::ALL.into_iter().filter(|c| c.required()) {
            if !seen.contains_key(&column) {
                errors.at(
                    line,
                    None,
                    format!(
                        "no `{}` ({}) column; every table needs name, area, address and type",
                        column.key(),
                        column.chinese()
                    ),
                );
            }
        }
        (errors.list.len() == before).then_some(Header { fields })
    }

    /// The header of field `index`, as written.
    fn name(&self, index: usize) -> Option<&str> {
        self.fields
            .get(index)
            .and_then(|f| f.as_ref())
            .map(|(_, text)| text.as_str())
    }

    /// Reads a row; `None` (with the errors recorded) if it cannot be written as a point.
    fn row<'r>(
        &self,
        line: u64,
        record: &'r csv::StringRecord,
        errors: &mut Errors<'_>,
    ) -> Option<Row<'r>> {
        let before = errors.list.len();
        let mut cells = Vec::new();
        for (index, cell) in record.iter().enumerate() {
            match self.fields.get(index) {
                Some(Some((column, _))) if !cell.is_empty() => cells.push(Cell {
                    column: *column,
                    index,
                    text: cell,
                }),
                Some(_) => {}
                None if cell.is_empty() => {}
                None => {
                    errors.at(
                        line,
                        None,
                        format!(
                            "{} cells but the header has {} columns; a value holding a comma must be quoted",
                            record.len(),
                            self.fields.len()
                        ),
                    );
                    break;
                }
            }
        }
        // Values under an unnamed column: the row and the header are out of step.
        for (index, cell) in record.iter().enumerate() {
            if matches!(self.fields.get(index), Some(None)) && !cell.is_empty() {
                errors.at(
                    line,
                    None,
                    format!("value {cell:?} in column {} which has no header", index + 1),
                );
            }
        }
        for (index, field) in self.fields.iter().enumerate() {
            if let Some((column, text)) = field
                && column.required()
                && !cells.iter().any(|c| c.index == index)
            {
                errors.at(line, Some(text), "empty; every point needs it");
            }
        }
        cells.sort_by_key(|c| c.column);
        (errors.list.len() == before).then_some(Row { line, cells })
    }
}

/// A row that can be written as a point block: its non-empty cells in column order.
struct Row<'r> {
    line: u64,
    cells: Vec<Cell<'r>>,
}

impl Row<'_> {
    /// The point's name.
    fn name(&self) -> Option<&str> {
        self.cells
            .iter()
            .find(|c| c.column == Column::Name)
            .map(|c| c.text)
    }
}

/// A non-empty cell.
struct Cell<'r> {
    column: Column,
    /// Its field's position in the row, which names its header.
    index: usize,
    text: &'r str,
}

/// Reports a point name used again, naming both lines, and leaves the later row out: one
/// error for it rather than the config reader's second, which knows no CSV lines.
fn drop_duplicates<'r>(
    rows: Vec<Row<'r>>,
    header: &Header,
    errors: &mut Errors<'_>,
) -> Vec<Row<'r>> {
    let mut first: HashMap<String, u64> = HashMap::new();
    let mut kept = Vec::new();
    for row in rows {
        let Some(name) = row.name() else {
            kept.push(row);
            continue;
        };
        match first.get(name) {
            Some(line) => {
                let index = row
                    .cells
                    .iter()
                    .find(|c| c.column == Column::Name)
                    .map(|c| c.index);
                errors.at(
                    row.line,
                    index.and_then(|i| header.name(i)),
                    format!("duplicate point name {name:?}, first on line {line}"),
                );
            }
            None => {
                first.insert(name.to_owned(), row.line);
                kept.push(row);
            }
        }
    }
    kept
}

/// The config text written for the rows: a synthetic Modbus TCP device holding them as
/// its points, and where each of its lines comes from.
struct Draft {
    text: String,
    /// The origin of each line of `text`, by 0-based line.
    origins: Vec<Origin>,
    /// Where the point blocks start in `text`.
    blocks_at: usize,
}

/// What a line of the draft was written for.
#[derive(Clone, Copy)]
enum Origin {
    /// The synthetic device's own keys.
    Device,
    /// A row (its `[[device.point]]` line): the CSV line.
    Row(u64),
    /// A cell: the CSV line and the cell's field index.
    Cell(u64, usize),
}

impl Draft {
    fn new(rows: &[Row<'_>]) -> Draft {
        let mut draft = Draft {
            text: String::new(),
            origins: Vec::new(),
            blocks_at: 0,
        };
        draft.line("[[device]]".to_owned(), Origin::Device);
        draft.line(format!("name = {}", toml_string(DEVICE)), Origin::Device);
        draft.line("protocol = \"modbus-tcp\"".to_owned(), Origin::Device);
        draft.line("address = \"127.0.0.1:502\"".to_owned(), Origin::Device);
        draft.line(String::new(), Origin::Device);
        draft.blocks_at = draft.text.len();
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                draft.line(String::new(), Origin::Row(row.line));
            }
            draft.line("[[device.point]]".to_owned(), Origin::Row(row.line));
            for cell in &row.cells {
                let key = cell.column.key();
                let value = cell.column.toml_value(cell.text);
                draft.line(
                    format!("{key} = {value}"),
                    Origin::Cell(row.line, cell.index),
                );
            }
        }
        draft
    }

    fn line(&mut self, line: String, origin: Origin) {
        self.text.push_str(&line);
        self.text.push('\n');
        self.origins.push(origin);
    }

    /// The point blocks, as import prints them.
    fn blocks(&self) -> &str {
        self.text.get(self.blocks_at..).unwrap_or_default()
    }

    /// Records the config reader's error `e` at the row (and column) it belongs to; an
    /// error of the synthetic device itself goes to the header's line.
    fn locate(
        &self,
        e: crate::ConfigError,
        header_line: u64,
        header: &Header,
        errors: &mut Errors<'_>,
    ) {
        let point_section = format!("[[device]] {DEVICE:?} [[device.point]]: ");
        let message = e.message.strip_prefix(&point_section).unwrap_or(&e.message);
        match self.origins.get(e.line.saturating_sub(1)) {
            Some(Origin::Cell(line, index)) => errors.at(*line, header.name(*index), message),
            Some(Origin::Row(line)) => errors.at(*line, None, message),
            Some(Origin::Device) | None => errors.at(header_line, None, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_collector_api::{Area, WordOrder};

    /// The points of a device holding `blocks`, as the config reader builds them.
    fn points(blocks: &str) -> (Vec<PointSpec>, Vec<PointInfo>) {
        let text = format!(
            "[[device]]\nname = \"d\"\nprotocol = \"modbus-tcp\"\naddress = \"10.0.0.1:502\"\n\n{blocks}"
        );
        let mut config =
            crate::parse(&text, "agent.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let device = config.devices.remove(0);
        match device.kind {
            DeviceKind::ModbusTcp(tcp) => (tcp.points, device.points),
            other => panic!("{other:?}"),
        }
    }

    fn import_ok(csv: &[u8]) -> String {
        import(csv, "points.csv").unwrap_or_else(|e| panic!("{e}"))
    }

    /// The errors import reports, as printed.
    fn import_errors(csv: &[u8]) -> Vec<String> {
        match import(csv, "points.csv") {
            Ok(blocks) => panic!("accepted:\n{blocks}"),
            Err(ImportError::Invalid(errors)) => errors.0.iter().map(ToString::to_string).collect(),
            Err(e) => panic!("{e}"),
        }
    }

    const TABLE: &str = "name,area,address,type,order,scale,offset,unit,deadband\n\
        temperature,holding,100,f32,CDAB,0.1,-40,°C,0.5\n\
        running,coil,3,bool,,,,,\n";

    #[test]
    fn a_table_becomes_point_blocks_the_config_reader_accepts() {
        let blocks = import_ok(TABLE.as_bytes());
        assert_eq!(
            blocks,
            "[[device.point]]\nname = \"temperature\"\narea = \"holding\"\naddress = 100\ntype = \"f32\"\norder = \"CDAB\"\nscale = 0.1\noffset = -40\nunit = \"°C\"\ndeadband = 0.5\n\n\
             [[device.point]]\nname = \"running\"\narea = \"coil\"\naddress = 3\ntype = \"bool\"\n"
        );
        let (specs, infos) = points(&blocks);
        assert_eq!(specs[0].order, WordOrder::Cdab);
        assert_eq!((specs[0].scale, specs[0].offset), (0.1, -40.0));
        assert_eq!(infos[0].deadband, Some(0.5));
        assert_eq!(specs[1].area, Area::Coil);
    }

    #[test]
    fn utf8_with_a_byte_order_mark_and_gbk_read_the_same() {
        let chinese = "名称,区域,地址,类型,单位\n温度,保持寄存器,100,f32,°C\n运行,线圈,3,bool,\n";
        let plain = import_ok(chinese.as_bytes());
        assert!(
            plain.contains("name = \"温度\"\narea = \"holding\""),
            "{plain}"
        );
        assert!(plain.contains("area = \"coil\""), "{plain}");
        let bom = [b"\xEF\xBB\xBF".as_slice(), chinese.as_bytes()].concat();
        assert_eq!(import_ok(&bom), plain);
        let (gbk, _, unmappable) = encoding_rs::GBK.encode(chinese);
        assert!(!unmappable);
        assert!(
            std::str::from_utf8(&gbk).is_err(),
            "the test needs GBK bytes"
        );
        assert_eq!(import_ok(&gbk), plain);
    }

    #[test]
    fn bytes_neither_utf8_nor_gbk_are_refused() {
        // UTF-16 (Excel's "Unicode text"): 0xFF is no GBK lead byte.
        let utf16 = b"\xFF\xFEn\0a\0m\0e\0";
        assert!(matches!(
            import(utf16, "points.csv"),
            Err(ImportError::Encoding { .. })
        ));
    }

    #[test]
    fn columns_in_any_order_and_spelling_give_the_same_blocks() {
        let shuffled =
            " Type ,ADDRESS,unit,Name,area , Scale\nF32,100,°C,temperature,Holding,0.1\n";
        let blocks = import_ok(shuffled.as_bytes());
        assert_eq!(
            blocks,
            "[[device.point]]\nname = \"temperature\"\narea = \"holding\"\naddress = 100\ntype = \"f32\"\nscale = 0.1\nunit = \"°C\"\n"
        );
    }

    #[test]
    fn quoted_fields_keep_commas_and_doubled_quotes() {
        let csv =
            "name,area,address,type,unit\n\"flow, \"\"net\"\"\",input,0x10,u16,\"m³/h, 20 °C\"\n";
        let (specs, infos) = points(&import_ok(csv.as_bytes()));
        assert_eq!(&*infos[0].name, "flow, \"net\"");
        assert_eq!(infos[0].unit.as_deref(), Some("m³/h, 20 °C"));
        assert_eq!((specs[0].area, specs[0].address), (Area::Input, 16));
    }

    #[test]
    fn empty_lines_are_skipped_and_lines_still_counted() {
        let csv = "name,area,address,type\n\n,,,\na,holding,0,u16\n\nb,holding,1,float\n";
        let crlf = csv.replace('\n', "\r\n");
        assert_eq!(
            import_errors(crlf.as_bytes()),
            import_errors(csv.as_bytes())
        );
        assert_eq!(
            import_errors(csv.as_bytes()),
            [
                "points.csv:6: column \"type\": `type` must be one of bool, u16, i16, u32, i32, u64, i64, f32, f64, string, found \"float\""
            ]
        );
    }

    #[test]
    fn every_bad_row_is_reported_at_once_with_its_line_and_column() {
        let csv = "名称,区域,地址,类型,倍率,死区\n\
            ok,holding,0,u16,,\n\
            t1,holding,70000,u16,,\n\
            t2,coil,1,f32,,\n\
            t3,holding,2,u16,much,\n\
            ,holding,3,u16,,\n\
            t4,holding,4,bool,,-1\n";
        let errors = import_errors(csv.as_bytes());
        assert_eq!(
            errors,
            [
                "points.csv:3: column \"地址\": `address` must be an integer from 0 to 65535, found 70000",
                "points.csv:4: column \"类型\": type \"f32\" does not fit area \"coil\": coils and discrete inputs are single bits; use type = \"bool\"",
                "points.csv:5: column \"倍率\": `scale` must be a number, found a string",
                "points.csv:6: column \"名称\": empty; every point needs it",
                "points.csv:7: column \"死区\": `deadband` must not be negative",
            ],
            "{errors:#?}"
        );
    }

    #[test]
    fn a_duplicate_name_names_both_lines() {
        let csv = "name,area,address,type\nspeed,holding,0,u16\nother,holding,1,u16\nspeed,holding,2,u16\n";
        assert_eq!(
            import_errors(csv.as_bytes()),
            ["points.csv:4: column \"name\": duplicate point name \"speed\", first on line 2"]
        );
    }

    #[test]
    fn header_problems_are_reported_before_any_row() {
        let csv = "name,register,address,name\nx,1,2,y\n";
        let errors = import_errors(csv.as_bytes());
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(errors[0].starts_with("points.csv:1: column \"register\": unknown column; the columns are name/名称, area/区域"), "{errors:#?}");
        assert_eq!(
            errors[1],
            "points.csv:1: column \"name\": `name` is already the column \"name\""
        );
        assert!(
            errors[2].starts_with("points.csv:1: no `area` (区域) column"),
            "{errors:#?}"
        );
        assert!(
            errors[3].starts_with("points.csv:1: no `type` (类型) column"),
            "{errors:#?}"
        );
        assert_eq!(
            import_errors(b""),
            [
                "points.csv:1: no header row: the first row names the columns, e.g. name,area,address,type,order,scale,offset,unit,deadband"
            ]
        );
        assert_eq!(
            import_errors(b"name,area,address,type\n"),
            ["points.csv:1: the table has a header but no points"]
        );
    }

    #[test]
    fn a_row_longer_than_the_header_is_refused() {
        let csv = "name,area,address,type,unit\nflow,input,0,u16,m³/h, net\n";
        assert_eq!(
            import_errors(csv.as_bytes()),
            [
                "points.csv:2: 6 cells but the header has 5 columns; a value holding a comma must be quoted"
            ]
        );
    }

    const DEVICE_BLOCKS: &str = r#"
[[device.point]]
name = "temperature"
address = 100
type = "f32"
order = "DCBA"
scale = 0.1
offset = -40.5
unit = "°C"
deadband = 0.25
heartbeat = "60s"

[[device.point]]
name = "alarm, \"high\""
area = "input"
address = 7
type = "u32"
bit = 17

[[device.point]]
name = "serial"
address = 200
type = "string"
length = 8

[[device.point]]
name = "door"
area = "discrete"
address = 0
type = "bool"

[[device.point]]
name = "energy"
address = 300
type = "f64"
deadband_percent = 1.5
role = "energy_kwh"
"#;

    fn config_with(blocks: &str) -> AgentConfig {
        let text = format!(
            "[[device]]\nname = \"press\"\nprotocol = \"modbus-rtu\"\nserial = \"/dev/ttyUSB0\"\nunit = 3\n{blocks}\n\
             [[device]]\nname = \"sim\"\nprotocol = \"simulator\"\n[[device.point]]\nname = \"wave\"\n"
        );
        crate::parse(&text, "agent.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn import_of_an_export_gives_the_same_points() {
        let config = config_with(DEVICE_BLOCKS);
        let table = export(&config, "press").unwrap();
        assert!(
            table.starts_with("name,area,address,type,order,scale,offset,unit,deadband,bit,length,deadband_percent,heartbeat,role\n"),
            "{table}"
        );
        assert!(
            table.contains("\"alarm, \"\"high\"\"\",input,7,u32,ABCD,"),
            "{table}"
        );
        let DeviceKind::ModbusRtu(rtu) = &config.devices[0].kind else {
            panic!("not RTU");
        };
        let again = points(&import_ok(table.as_bytes()));
        assert_eq!(
            again,
            (rtu.points.clone(), config.devices[0].points.clone())
        );
    }

    #[test]
    fn an_export_without_optional_values_has_the_documented_header() {
        let config = config_with("[[device.point]]\nname = \"p\"\naddress = 1\n");
        assert_eq!(
            export(&config, "press").unwrap(),
            "name,area,address,type,order,scale,offset,unit,deadband\np,holding,1,u16,ABCD,,,,\n"
        );
    }

    #[test]
    fn export_names_a_device_it_cannot_write() {
        let config = config_with(DEVICE_BLOCKS);
        assert_eq!(
            export(&config, "sim").unwrap_err().to_string(),
            "device \"sim\" speaks simulator; only Modbus devices (modbus-tcp, modbus-rtu, modbus-ascii, modbus-rtu-over-tcp) have register point tables"
        );
        assert_eq!(
            export(&config, "nope").unwrap_err().to_string(),
            "no device \"nope\" in the config; its devices: \"press\", \"sim\""
        );
    }
}
