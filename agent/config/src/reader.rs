//! Typed reading of a spanned TOML table: every wrong type, bad value and unknown key is
//! recorded with its position, and reading goes on so that all errors are reported at once.

use super::error::Diagnostics;
use super::units;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The longest duration a config may give (a year): longer ones are typos, and timers
/// that far out would overflow the clock's arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// A value with the byte span it was read from.
#[derive(Debug, Clone, Copy)]
pub struct At<T> {
    /// The value.
    pub value: T,
    /// Where it stands in the source.
    pub span: (usize, usize),
}

impl<T> At<T> {
    fn new(value: T, span: Range<usize>) -> Self {
        At {
            value,
            span: (span.start, span.end),
        }
    }

    /// The span as a range.
    pub fn range(&self) -> Range<usize> {
        self.span.0..self.span.1
    }
}

/// Reads the keys of one table. Each getter marks its key as known; [`TableReader::finish`]
/// reports the keys nobody asked for.
pub struct TableReader<'t, 'i> {
    table: &'t DeTable<'i>,
    span: Range<usize>,
    section: String,
    known: Vec<&'static str>,
}

/// The TOML name of a value's type, for "found ..." messages.
fn found(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'t, 'i> TableReader<'t, 'i> {
    /// Reads `table`, named `section` in messages (`[publish]`, `[[device]] "press-1"`).
    pub fn new(table: &'t DeTable<'i>, span: Range<usize>, section: impl Into<String>) -> Self {
        TableReader {
            table,
            span,
            section: section.into(),
            known: Vec::new(),
        }
    }

    /// The section's name as used in messages.
    pub fn section(&self) -> &str {
        &self.section
    }

    /// Renames the section once more is known about it (a device's name).
    pub fn set_section(&mut self, section: impl Into<String>) {
        self.section = section.into();
    }

    /// The table's own span (for errors about a missing key).
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The raw value of `key`, marking it as known.
    pub fn raw(&mut self, key: &'static str) -> Option<&'t Spanned<DeValue<'i>>> {
        self.known.push(key);
        self.table.get(key)
    }

    /// True if `key` is present (and marks it known).
    pub fn has(&mut self, key: &'static str) -> bool {
        self.raw(key).is_some()
    }

    /// Reports a required key that is missing.
    pub fn missing(&self, dx: &mut Diagnostics<'_>, key: &str, expected: &str) {
        dx.error(
            self.span(),
            format!("{}: missing key `{key}` ({expected})", self.section),
        );
    }

    fn wrong_type(
        &self,
        dx: &mut Diagnostics<'_>,
        key: &str,
        value: &Spanned<DeValue<'_>>,
        expected: &str,
    ) {
        dx.error(
            value.span(),
            format!(
                "{}: `{key}` must be {expected}, found {}",
                self.section,
                found(value.get_ref())
            ),
        );
    }

    /// A string value.
    pub fn string(&mut self, dx: &mut Diagnostics<'_>, key: &'static str) -> Option<At<&'t str>> {
        let value = self.raw(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(At::new(s.as_ref(), value.span())),
            _ => {
                self.wrong_type(dx, key, value, "a string");
                None
            }
        }
    }

    /// A boolean value.
    pub fn boolean(&mut self, dx: &mut Diagnostics<'_>, key: &'static str) -> Option<At<bool>> {
        let value = self.raw(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(At::new(*b, value.span())),
            _ => {
                self.wrong_type(dx, key, value, "true or false");
                None
            }
        }
    }

    /// An array of strings.
    pub fn strings(
        &mut self,
        dx: &mut Diagnostics<'_>,
        key: &'static str,
    ) -> Option<At<Vec<&'t str>>> {
        let value = self.raw(key)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(dx, key, value, "an array of strings");
            return None;
        };
        let mut strings = Vec::with_capacity(items.len());
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => strings.push(s.as_ref()),
                _ => self.wrong_type(dx, key, item, "a string"),
            }
        }
        Some(At::new(strings, value.span()))
    }

    /// A required string value.
    pub fn required_string(
        &mut self,
        dx: &mut Diagnostics<'_>,
        key: &'static str,
        expected: &str,
    ) -> Option<At<&'t str>> {
        let present = self.table.get(key).is_some();
        let value = self.string(dx, key);
        if !present {
            self.missing(dx, key, expected);
        }
        value
    }

    /// An integer value within `min..=max`.
    pub fn integer(
        &mut self,
        dx: &mut Diagnostics<'_>,
        key: &'static str,
        min: i64,
        max: i64,
    ) -> Option<At<i64>> {
        let value = self.raw(key)?;
        let DeValue::Integer(i) = value.get_ref() else {
            self.wrong_type(dx, key, value, "an integer");
            return None;
        };
        match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) if (min..=max).contains(&n) => Some(At::new(n, value.span())),
            _ => {
                dx.error(
                    value.span(),
                    format!(
                        "{}: `{key}` must be an integer from {min} to {max}, found {}",
                        self.section,
                        i.as_str()
                    ),
                );
                None
            }
        }
    }

    /// A finite number (integers are accepted as floats).
    pub fn float(&mut self, dx: &mut Diagnostics<'_>, key: &'static str) -> Option<At<f64>> {
        let value = self.raw(key)?;
        let parsed = match value.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            _ => {
                self.wrong_type(dx, key, value, "a number");
                return None;
            }
        };
        match parsed {
            Some(f) if f.is_finite() => Some(At::new(f, value.span())),
            _ => {
                dx.error(
                    value.span(),
                    format!("{}: `{key}` must be a finite number", self.section),
                );
                None
            }
        }
    }

    /// A duration written as a string ("500ms", "1s", "5m"), at most [`MAX_DURATION`].
    pub fn duration(
        &mut self,
        dx: &mut Diagnostics<'_>,
        key: &'static str,
    ) -> Option<At<Duration>> {
        let text = self.string(dx, key)?;
        match units::parse_duration(text.value) {
            Some(d) if d > MAX_DURATION => {
                dx.error(
                    text.range(),
                    format!(
                        "{}: `{key}` must be at most {}, found {:?}",
                        self.section,
                        units::format_duration(MAX_DURATION),
                        text.value
                    ),
                );
                None
            }
            Some(d) => Some(At {
                value: d,
                span: text.span,
            }),
            None => {
                dx.error(
                    text.range(),
                    format!(
                        "{}: `{key}` must be a duration like \"500ms\", \"1s\", \"5m\" or \"1h\", found {:?}",
                        self.section, text.value
                    ),
                );
                None
            }
        }
    }

    /// A positive duration, or the default.
    pub fn positive_duration(
        &mut self,
        dx: &mut Diagnostics<'_>,
        key: &'static str,
        default: Duration,
    ) -> Duration {
        match self.duration(dx, key) {
            Some(d) if d.value.is_zero() => {
                dx.error(
                    d.range(),
                    format!("{}: `{key}` must be longer than 0", self.section),
                );
                default
            }
            Some(d) => d.value,
            None => default,
        }
    }

    /// A size written as a string ("512MiB", "1GiB").
    pub fn size(&mut self, dx: &mut Diagnostics<'_>, key: &'static str) -> Option<At<u64>> {
        let text = self.string(dx, key)?;
        match units::parse_size(text.value) {
            Some(n) => Some(At {
                value: n,
                span: text.span,
            }),
            None => {
                dx.error(
                    text.range(),
                    format!(
                        "{}: `{key}` must be a size like \"512MiB\" or \"1GiB\", found {:?}",
                        self.section, text.value
                    ),
                );
                None
            }
        }
    }

    /// A string that must be one of a fixed set of names, parsed with `parse`.
    pub fn choice<T>(
        &mut self,
        dx: &mut Diagnostics<'_>,
        key: &'static str,
        names: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<At<T>> {
        let text = self.string(dx, key)?;
        match parse(text.value) {
            Some(v) => Some(At {
                value: v,
                span: text.span,
            }),
            None => {
                dx.error(
                    text.range(),
                    format!(
                        "{}: `{key}` must be one of {names}, found {:?}",
                        self.section, text.value
                    ),
                );
                None
            }
        }
    }

    /// A sub-table (`[gateway]`), or `None` if absent.
    pub fn table(
        &mut self,
        dx: &mut Diagnostics<'_>,
        key: &'static str,
    ) -> Option<TableReader<'t, 'i>> {
        let value = self.raw(key)?;
        match value.get_ref() {
            DeValue::Table(t) => Some(TableReader::new(t, value.span(), format!("[{key}]"))),
            _ => {
                self.wrong_type(dx, key, value, "a table");
                None
            }
        }
    }

    /// An array of tables (`[[device]]`); each entry is returned with its span.
    pub fn tables(
        &mut self,
        dx: &mut Diagnostics<'_>,
        key: &'static str,
    ) -> Vec<(&'t DeTable<'i>, Range<usize>)> {
        let Some(value) = self.raw(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(dx, key, value, &format!("an array of tables (`[[{key}]]`)"));
            return Vec::new();
        };
        let mut tables = Vec::with_capacity(items.len());
        for item in items.iter() {
            match item.get_ref() {
                DeValue::Table(t) => tables.push((t, item.span())),
                _ => self.wrong_type(dx, key, item, "a table"),
            }
        }
        tables
    }

    /// Reports every key of the table that no getter asked for.
    pub fn finish(self, dx: &mut Diagnostics<'_>) {
        for (key, _) in self.table.iter() {
            if !self.known.contains(&key.get_ref().as_ref()) {
                let mut expected: Vec<&str> = self.known.clone();
                expected.sort_unstable();
                expected.dedup();
                dx.error(
                    key.span(),
                    format!(
                        "{}: unknown key `{}`; expected one of: {}",
                        self.section,
                        key.get_ref(),
                        expected.join(", ")
                    ),
                );
            }
        }
    }
}
