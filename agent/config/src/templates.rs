//! Device templates: a device model's register map, reused by `[[device]] template = "NAME"`.
//!
//! A template is a TOML file: a `[template]` table that names the model and its source (the
//! manufacturer's manual and its version, or `example = true` for a map that is not a real
//! device's), and `[[point]]` tables with exactly the keys of a Modbus device's
//! `[[device.point]]`. The library is the repository's `templates/`, embedded at build time,
//! plus, on a gateway, the `*.toml` files of `<state_dir>/templates/` (one there replaces a
//! shipped one of the same name). A template is checked when it is loaded, with errors at
//! its own file's lines; a device that uses it gets its points, the device's own points
//! added or, by name, replacing the template's.

use crate::error::{ConfigError, ConfigErrors, Diagnostics};
use crate::reader::TableReader;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The shipped templates: `(name, text)`, from the repository's `templates/`.
const SHIPPED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/templates.rs"));

/// The categories a template may name.
pub const CATEGORIES: [&str; 4] = ["energy-meter", "temperature-controller", "inverter", "plc"];

/// The protocols a template may be for: its points are Modbus registers and bits.
pub const PROTOCOLS: [&str; 4] = [
    "modbus-tcp",
    "modbus-rtu",
    "modbus-ascii",
    "modbus-rtu-over-tcp",
];

/// One device model's register map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Its name: the file's name without `.toml`.
    pub name: String,
    /// What the device is, in Chinese and English.
    pub title: String,
    /// One of [`CATEGORIES`].
    pub category: String,
    /// The device's maker.
    pub manufacturer: String,
    /// The model (and firmware or protocol version) the map is for.
    pub model: String,
    /// The Modbus transports the device offers (any of [`PROTOCOLS`]).
    pub protocols: Vec<String>,
    /// Where the map comes from: the manual and its version.
    pub source: String,
    /// True if the map is an example, not taken from a real device's manual.
    pub example: bool,
    /// Where it was loaded from.
    pub origin: Origin,
    /// Its points' names, in file order.
    pub points: Vec<String>,
    /// The file's text, read again for a device that uses it.
    text: Arc<str>,
}

/// Where a template comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Shipped with fieldlink.
    Shipped,
    /// A file in the gateway's state directory.
    File(PathBuf),
}

/// A library of templates, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Templates {
    list: Vec<Template>,
}

impl Templates {
    /// The templates shipped with fieldlink.
    pub fn shipped() -> &'static Templates {
        static LIBRARY: OnceLock<Templates> = OnceLock::new();
        LIBRARY.get_or_init(|| {
            let list = SHIPPED
                .iter()
                .map(|(name, text)| {
                    let file = format!("templates/{name}.toml");
                    Template::parse(name, &file, text, Origin::Shipped).unwrap_or_else(|e| {
                        // Embedded at build time and checked by this crate's tests.
                        panic!("shipped template {name} is invalid:\n{e}")
                    })
                })
                .collect();
            Templates { list }
        })
    }

    /// These templates and the `*.toml` files of `dir` (none if it does not exist); a file
    /// there replaces a template of the same name. Every problem of every file is reported.
    pub fn with_dir(&self, dir: &Path) -> Result<Templates, ConfigErrors> {
        let mut library = self.clone();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(library),
            Err(e) => return Err(unreadable(dir, &e)),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        let mut errors = Vec::new();
        for path in paths {
            let file = path.display().to_string();
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => {
                    errors.extend(unreadable(&path, &e).0);
                    continue;
                }
            };
            match Template::parse(name, &file, &text, Origin::File(path.clone())) {
                Ok(template) => {
                    library.list.retain(|t| t.name != template.name);
                    library.list.push(template);
                }
                Err(e) => errors.extend(e.0),
            }
        }
        library.list.sort_by(|a, b| a.name.cmp(&b.name));
        if errors.is_empty() {
            Ok(library)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The template `name`.
    pub fn get(&self, name: &str) -> Option<&Template> {
        self.list.iter().find(|t| t.name == name)
    }

    /// Every template, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Template> {
        self.list.iter()
    }

    /// The names, for messages.
    fn names(&self) -> String {
        let names: Vec<&str> = self.list.iter().map(|t| t.name.as_str()).collect();
        names.join(", ")
    }
}

/// An error for a file or folder that cannot be read.
fn unreadable(path: &Path, error: &std::io::Error) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        file: path.display().to_string(),
        line: 1,
        column: 1,
        message: format!("cannot read template: {error}"),
    }])
}

/// True if `name` can be a template's name: lowercase letters, digits and '-'.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Template {
    /// The template file's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Reads and checks the template `name` from `text` (read from `file`).
    fn parse(name: &str, file: &str, text: &str, origin: Origin) -> Result<Template, ConfigErrors> {
        let mut dx = Diagnostics::new(file, text);
        let (document, syntax_errors) = DeTable::parse_recoverable(text);
        if !syntax_errors.is_empty() {
            dx.syntax_errors(&syntax_errors);
            return Err(dx.into_errors());
        }
        if !is_valid_name(name) {
            dx.error(
                0..0,
                format!("template file name {name:?} must be lowercase letters, digits and '-' (it is the name devices use)"),
            );
        }
        let mut root = TableReader::new(document.get_ref(), document.span(), "template file");
        let header = root.table(&mut dx, "template");
        let points = root.tables(&mut dx, "point");
        let template = match header {
            Some(mut h) => {
                let template = read_header(&mut dx, &mut h, name, origin, text);
                h.finish(&mut dx);
                template
            }
            None => {
                root.missing(&mut dx, "template", "a [template] table: title, category, manufacturer, model, protocols, source, example");
                None
            }
        };
        let section = format!("template {name:?}");
        let names = crate::check_template_points(&mut dx, &root, &section, &points);
        root.finish(&mut dx);
        match template {
            Some(template) if dx.is_empty() => Ok(Template {
                points: names,
                ..template
            }),
            _ => Err(dx.into_errors()),
        }
    }

    /// The template's `[[point]]` tables, every span moved to `at` (the `template` key of
    /// the device that uses it), so that a problem found there points at that key.
    pub(crate) fn points_at(&self, at: &Range<usize>) -> Vec<DeTable<'_>> {
        let (document, _) = DeTable::parse_recoverable(&self.text);
        let Some(DeValue::Array(points)) = document.get_ref().get("point").map(|p| p.get_ref())
        else {
            return Vec::new();
        };
        points
            .iter()
            .filter_map(|p| match p.get_ref() {
                DeValue::Table(table) => Some(respan_table(table, at)),
                _ => None,
            })
            .collect()
    }
}

fn read_header(
    dx: &mut Diagnostics<'_>,
    h: &mut TableReader<'_, '_>,
    name: &str,
    origin: Origin,
    text: &str,
) -> Option<Template> {
    let section = h.section().to_owned();
    let mut required = |dx: &mut Diagnostics<'_>, key, expected| {
        h.required_string(dx, key, expected)
            .map(|s| s.value.to_owned())
    };
    let title = required(dx, "title", "what the device is, in Chinese and English");
    let manufacturer = required(dx, "manufacturer", "the device's maker");
    let model = required(dx, "model", "the model the map is for");
    let source = required(dx, "source", "the manufacturer's manual and its version");
    let category = h.choice(dx, "category", &CATEGORIES.join(", "), |s| {
        CATEGORIES.contains(&s).then(|| s.to_owned())
    });
    if category.is_none() && !h.has("category") {
        h.missing(dx, "category", &CATEGORIES.join(", "));
    }
    let protocols = h.strings(dx, "protocols");
    if let Some(p) = &protocols {
        for protocol in &p.value {
            if !PROTOCOLS.contains(protocol) {
                dx.error(
                    p.range(),
                    format!(
                        "{section}: `protocols` must name some of {}, found {protocol:?}",
                        PROTOCOLS.join(", ")
                    ),
                );
            }
        }
    } else {
        h.missing(dx, "protocols", "the Modbus transports the device offers");
    }
    let example = h.boolean(dx, "example");
    if example.is_none() {
        h.missing(
            dx,
            "example",
            "true if the map is not taken from the device's manual",
        );
    }
    Some(Template {
        name: name.to_owned(),
        title: title?,
        category: category?.value,
        manufacturer: manufacturer?,
        model: model?,
        protocols: protocols?.value.into_iter().map(str::to_owned).collect(),
        source: source?,
        example: example?.value,
        origin,
        points: Vec::new(),
        text: Arc::from(text),
    })
}

/// The template a device names, or an error at its `template` key.
pub(crate) fn template_of<'l>(
    dx: &mut Diagnostics<'_>,
    t: &mut TableReader<'_, '_>,
    library: &'l Templates,
    protocol: Option<&str>,
) -> Option<(&'l Template, Range<usize>)> {
    let name = t.string(dx, "template")?;
    let Some(template) = library.get(name.value) else {
        dx.error(
            name.range(),
            format!(
                "{}: no template {:?}; `fieldlink templates` lists them: {}",
                t.section(),
                name.value,
                library.names()
            ),
        );
        return None;
    };
    if let Some(protocol) = protocol
        && !PROTOCOLS.contains(&protocol)
    {
        dx.error(
            name.range(),
            format!(
                "{}: templates are Modbus register maps; protocol {protocol:?} cannot use one",
                t.section()
            ),
        );
        return None;
    }
    Some((template, name.range()))
}

/// A device's points: its template's (`template`), each replaced by the device's own point
/// of the same name, then the device's other points.
pub(crate) fn merge<'a, 'i>(
    template: &'a [DeTable<'i>],
    at: &Range<usize>,
    own: Vec<(&'a DeTable<'i>, Range<usize>)>,
) -> Vec<(&'a DeTable<'i>, Range<usize>)> {
    let mut own: Vec<Option<(&'a DeTable<'i>, Range<usize>)>> = own.into_iter().map(Some).collect();
    let mut points = Vec::with_capacity(template.len() + own.len());
    for table in template {
        let replacement = own
            .iter_mut()
            .find(|p| {
                p.as_ref()
                    .is_some_and(|(t, _)| point_name(t) == point_name(table))
            })
            .and_then(Option::take);
        points.push(replacement.unwrap_or((table, at.clone())));
    }
    points.extend(own.into_iter().flatten());
    points
}

/// A point table's `name`, if it is a string.
fn point_name<'t>(table: &'t DeTable<'_>) -> Option<&'t str> {
    match table.get("name").map(|n| n.get_ref()) {
        Some(DeValue::String(s)) => Some(s.as_ref()),
        _ => None,
    }
}

fn respan_table<'i>(table: &DeTable<'i>, at: &Range<usize>) -> DeTable<'i> {
    let mut out = DeTable::new();
    for (key, value) in table.iter() {
        out.insert(
            Spanned::new(at.clone(), key.get_ref().clone()),
            respan_value(value, at),
        );
    }
    out
}

fn respan_value<'i>(value: &Spanned<DeValue<'i>>, at: &Range<usize>) -> Spanned<DeValue<'i>> {
    let inner = match value.get_ref() {
        DeValue::Table(table) => DeValue::Table(respan_table(table, at)),
        DeValue::Array(items) => {
            let mut array = toml::de::DeArray::new();
            for item in items.iter() {
                array.push(respan_value(item, at));
            }
            DeValue::Array(array)
        }
        other => other.clone(),
    };
    Spanned::new(at.clone(), inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_template_is_valid_and_names_its_source() {
        let library = Templates::shipped();
        assert!(library.iter().count() >= 8);
        for template in library.iter() {
            assert!(!template.points.is_empty(), "{}", template.name);
            assert!(template.source.len() > 20, "{}: source", template.name);
        }
    }

    #[test]
    fn a_bad_template_is_reported_at_its_own_lines() {
        let text = "[template]\ntitle = \"t\"\ncategory = \"meter\"\nmanufacturer = \"m\"\nmodel = \"x\"\nprotocols = [\"modbus-tcp\"]\nsource = \"s\"\nexample = true\n\n[[point]]\nname = \"a\"\narea = \"holding\"\naddress = 1\ntype = \"float\"\n";
        let errors = Template::parse("t", "t.toml", text, Origin::Shipped).unwrap_err();
        let at: Vec<(usize, &str)> = errors
            .0
            .iter()
            .map(|e| (e.line, e.message.as_str()))
            .collect();
        assert_eq!(at.len(), 2, "{errors}");
        assert_eq!(at[0].0, 3, "{errors}");
        assert!(at[0].1.contains("`category`"), "{errors}");
        assert_eq!(at[1].0, 14, "{errors}");
        assert!(at[1].1.contains("`type`"), "{errors}");
    }

    #[test]
    fn a_file_in_the_state_directory_replaces_a_shipped_template() {
        let dir = std::env::temp_dir().join(format!("fl-templates-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let shipped = Templates::shipped();
        let name = &shipped.iter().next().unwrap().name;
        let text = "[template]\ntitle = \"mine\"\ncategory = \"plc\"\nmanufacturer = \"m\"\nmodel = \"x\"\nprotocols = [\"modbus-tcp\"]\nsource = \"s\"\nexample = true\n\n[[point]]\nname = \"a\"\narea = \"holding\"\naddress = 1\ntype = \"u16\"\n";
        std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
        let library = shipped.with_dir(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(library.iter().count(), shipped.iter().count());
        let mine = library.get(name).unwrap();
        assert_eq!(mine.title, "mine");
        assert!(matches!(mine.origin, Origin::File(_)));
        assert_eq!(
            shipped.with_dir(Path::new("/nonexistent/x")).unwrap(),
            *shipped
        );
    }
}
