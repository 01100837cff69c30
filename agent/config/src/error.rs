//! Configuration errors: each names the file, line and column, and what was expected.

use std::fmt;
use std::ops::Range;
use toml::de::DeTable;

/// At most this many errors without a position are located (each costs a few parses of
/// the file); the rest are reported at the last one's line, since they come after it.
const MAX_PLACED: usize = 16;

/// One problem in a config file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as the user named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every problem found in a config file; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_lines(f, &self.0)
    }
}

/// Writes `items` one a line, without a newline after the last.
pub(crate) fn write_lines(f: &mut fmt::Formatter<'_>, items: &[impl fmt::Display]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            writeln!(f)?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

impl std::error::Error for ConfigErrors {}

/// Collects errors against one source text, turning byte spans into lines and columns.
#[derive(Debug)]
pub struct Diagnostics<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl<'a> Diagnostics<'a> {
    /// Starts collecting errors for `text`, read from `file`.
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Diagnostics {
            file,
            text,
            errors: Vec::new(),
        }
    }

    /// Records an error at `span`.
    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_column(self.text, span.start);
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
        });
    }

    /// Records toml's syntax errors, each where toml says it is. toml gives one kind no
    /// position (a key nested past its depth limit, such as a 100,000-deep table header):
    /// those are located by [`unplaced_starts`] instead of being put at 1:1.
    pub fn syntax_errors(&mut self, errors: &[toml::de::Error]) {
        let unplaced = errors.iter().filter(|e| e.span().is_none()).count();
        let mut starts = unplaced_starts(self.text, unplaced).into_iter();
        let mut last = 0;
        for e in errors {
            let at = match e.span() {
                Some(span) => span.start,
                None => {
                    last = starts.next().unwrap_or(last);
                    last
                }
            };
            self.error(at..at, format!("TOML syntax: {}", e.message().trim_end()));
        }
    }

    /// Adds errors found in another file (a template the config uses).
    pub fn extend(&mut self, errors: ConfigErrors) {
        self.errors.extend(errors.0);
    }

    /// The file's name, as the user gave it.
    pub fn file(&self) -> &str {
        self.file
    }

    /// True if no error was recorded.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors, in source order.
    pub fn into_errors(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|e| (e.line, e.column));
        ConfigErrors(self.errors)
    }
}

/// 1-based line and character column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// The byte offsets of the lines that hold the first `count` (at most [`MAX_PLACED`]) of
/// the errors toml reports without a position, each at its line's first non-blank
/// character.
///
/// toml reads a document front to back, so a prefix of the text that ends at a line's end
/// has the same errors without a position as the whole text has within that prefix (a
/// prefix adds errors only where it is cut off, and those have one): their number grows
/// with the prefix, and the line that holds the `k`-th is the first whose prefix has `k`.
/// A binary search over the line ends finds it in a few parses.
fn unplaced_starts(text: &str, count: usize) -> Vec<usize> {
    let mut line_ends: Vec<usize> = text.match_indices('\n').map(|(i, _)| i + 1).collect();
    if line_ends.last() != Some(&text.len()) {
        line_ends.push(text.len());
    }
    let unplaced_within = |end: usize| {
        let prefix = text.get(..end).unwrap_or(text);
        let (_, errors) = DeTable::parse_recoverable(prefix);
        errors.iter().filter(|e| e.span().is_none()).count()
    };
    let mut starts = Vec::new();
    let mut first = 0;
    for k in 1..=count.min(MAX_PLACED) {
        let (mut lo, mut hi) = (first, line_ends.len() - 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if unplaced_within(line_ends[mid]) >= k {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        first = lo;
        let start = if lo == 0 { 0 } else { line_ends[lo - 1] };
        let line = text.get(start..line_ends[lo]).unwrap_or_default();
        starts.push(start + (line.len() - line.trim_start_matches([' ', '\t']).len()));
    }
    starts
}
