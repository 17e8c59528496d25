//! COPY data formats: the incremental decoders COPY FROM feeds with CopyData payloads
//! ([`TextDecoder`] for text and CSV, [`BinaryDecoder`] for binary) and the [`CopyEncoder`]
//! COPY TO writes rows with, plus PostgreSQL-style error context for COPY errors.
//!
//! Invariants:
//! - Chunk boundaries never matter: feeding the same bytes split anywhere yields the same rows
//!   and errors. A decoder holds only the unparsed tail of its input (at most the row being
//!   read plus the rest of the last chunk); a row larger than its limit (1 GiB by default) is
//!   54000, so a COPY of any size streams through.
//! - Malformed input is an error, never a panic: bad layout 22P04, invalid UTF-8 or NUL 22021.
//!   After an error a decoder returns that same error forever.
//! - Text and CSV fields are valid UTF-8 `String`s; `None` is SQL NULL. Binary fields are the
//!   raw bytes of each value, sliced from one allocation per row.
//! - Line numbers count physical lines from 1, header included; a row's `line` is the line it
//!   ends on, which is the number PostgreSQL reports in "COPY t, line N".
//! - What the encoder writes, the decoder reads back to the same values with the same options.

use bytes::{BufMut, Bytes};
use memchr::{memchr, memchr2, memchr3};

use super::options::{CopyFormat, CopyOptions};
use crate::error::{KuraError, Result, sqlstate};

/// The largest row a decoder accepts by default (PostgreSQL's largest allocation).
pub const MAX_ROW_BYTES: usize = (1 << 30) - 1;

/// The first 11 bytes of binary COPY data.
pub const BINARY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Longest value quoted in an error context before it is cut, as PostgreSQL does.
const MAX_CONTEXT_VALUE_BYTES: usize = 100;

/// One decoded row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row<F> {
    /// The physical line the row ends on (for binary: the tuple's number), as PostgreSQL
    /// reports it in error contexts.
    pub line: u64,
    /// The physical line the row starts on; differs from `line` when a CSV quoted field or a
    /// backslash-escaped line break spans lines.
    pub first_line: u64,
    /// The fields in input order; `None` is SQL NULL. The count is whatever the input had.
    pub fields: Vec<Option<F>>,
}

/// A row of text or CSV COPY data.
pub type TextRow = Row<String>;
/// A row of binary COPY data.
pub type BinaryRow = Row<Bytes>;

/// A streaming COPY FROM decoder. Usage: after each [`feed`](Self::feed), call
/// [`next_row`](Self::next_row) until it returns `Ok(None)`; at the end of the input call
/// [`finish`](Self::finish) and drain again.
pub trait RowDecoder {
    type Field;

    /// Appends input. Data after the end of the COPY data (`\.` or the binary trailer) is
    /// discarded in text/CSV and an error in binary, as in PostgreSQL.
    fn feed(&mut self, chunk: &[u8]);

    /// Marks the end of the input: a last line without a line break becomes a row, and
    /// incomplete data becomes an error.
    fn finish(&mut self);

    /// The next complete row; `Ok(None)` when more input is needed or the data has ended
    /// ([`is_done`](Self::is_done) tells which).
    fn next_row(&mut self) -> Result<Option<Row<Self::Field>>>;

    /// The line of the last row returned, or of the row that failed after an error.
    fn line(&self) -> u64;

    /// True once the end of the data was reached; no further rows will come.
    fn is_done(&self) -> bool;
}

fn bad_format(message: impl Into<String>) -> KuraError {
    KuraError::new(sqlstate::BAD_COPY_FILE_FORMAT, message)
}

fn row_too_large(max: usize) -> KuraError {
    KuraError::new(
        sqlstate::PROGRAM_LIMIT_EXCEEDED,
        format!("COPY row exceeds the maximum size of {max} bytes"),
    )
}

/// PostgreSQL's message for bytes that are not UTF-8: the offending sequence in hex.
fn invalid_utf8(bytes: &[u8]) -> KuraError {
    let width = match bytes.first() {
        Some(0xc0..=0xdf) => 2,
        Some(0xe0..=0xef) => 3,
        Some(0xf0..=0xf7) => 4,
        _ => 1,
    };
    let shown: Vec<String> = bytes
        .iter()
        .take(width)
        .map(|b| format!("0x{b:02x}"))
        .collect();
    KuraError::new(
        sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
        format!(
            "invalid byte sequence for encoding \"UTF8\": {}",
            shown.join(" ")
        ),
    )
}

/// A field's bytes as a `String`: valid UTF-8 without NUL.
fn field_string(bytes: &[u8]) -> Result<String> {
    match std::str::from_utf8(bytes) {
        Ok(s) => match memchr(0, bytes) {
            None => Ok(s.to_owned()),
            Some(_) => Err(invalid_utf8(&[0])),
        },
        Err(e) => Err(invalid_utf8(&bytes[e.valid_up_to()..])),
    }
}

/// The 22P04 error for a row with more fields than the COPY has columns.
pub fn extra_data_error() -> KuraError {
    bad_format("extra data after last expected column")
}

/// The 22P04 error for a row that ends before `column`.
pub fn missing_data_error(column: &str) -> KuraError {
    bad_format(format!("missing data for column \"{column}\""))
}

/// The 22P04 error for a binary tuple with the wrong number of fields.
pub fn binary_field_count_error(got: usize, expected: usize) -> KuraError {
    bad_format(format!("row field count is {got}, expected {expected}"))
}

/// What an error context says about the value being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextValue<'a> {
    /// Nothing (binary data, or no value at hand).
    Unknown,
    /// The field was NULL.
    Null,
    /// The field's text, or without a column the raw line.
    Text(&'a str),
}

/// PostgreSQL's CONTEXT line for an error in COPY FROM: `COPY t, line 3`,
/// `COPY t, line 3: "raw line"`, `COPY t, line 3, column c`, `COPY t, line 3, column c: "v"`
/// or `COPY t, line 3, column c: null input`. Values longer than 100 bytes are cut and end
/// in `...`.
pub fn copy_context(table: &str, line: u64, column: Option<&str>, value: ContextValue) -> String {
    let mut out = format!("COPY {table}, line {line}");
    if let Some(column) = column {
        out.push_str(", column ");
        out.push_str(column);
    }
    match value {
        ContextValue::Unknown => {}
        ContextValue::Null if column.is_some() => out.push_str(": null input"),
        ContextValue::Null => {}
        ContextValue::Text(text) => {
            out.push_str(": \"");
            if text.len() > MAX_CONTEXT_VALUE_BYTES {
                let mut cut = MAX_CONTEXT_VALUE_BYTES;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.push_str(&text[..cut]);
                out.push_str("...");
            } else {
                out.push_str(text);
            }
            out.push('"');
        }
    }
    out
}

/// Unconsumed input: `data[start..]` is not yet parsed. Consumed bytes are dropped when
/// more input arrives, so the buffer never holds more than the pending row and one chunk.
#[derive(Debug, Default)]
struct Input {
    data: Vec<u8>,
    start: usize,
}

impl Input {
    /// Appends `chunk`, first dropping the consumed prefix; returns how far indexes moved.
    fn push(&mut self, chunk: &[u8]) -> usize {
        let moved = self.start;
        if moved > 0 {
            self.data.drain(..moved);
            self.start = 0;
        }
        self.data.extend_from_slice(chunk);
        moved
    }

    fn pending(&self) -> usize {
        self.data.len() - self.start
    }

    fn clear(&mut self) {
        self.data = Vec::new();
        self.start = 0;
    }
}

/// The line-break style, fixed by the first line as in PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eol {
    Unknown,
    Nl,
    CrNl,
    Cr,
}

/// Progress of the search for the end of the current record, kept across chunks so that a
/// long record is scanned once.
#[derive(Debug, Default, Clone, Copy)]
struct Scan {
    /// Absolute index in `Input::data` to resume scanning from.
    pos: usize,
    in_quote: bool,
    last_was_esc: bool,
    /// Line breaks inside the record so far (quoted in CSV, backslash-escaped in text).
    newlines: u64,
}

enum Found {
    /// `data[start..end]` is a record; the next one starts at `next`.
    Record {
        end: usize,
        next: usize,
    },
    EndMarker,
    NeedMore,
    Eof,
}

enum Marker {
    Yes,
    No,
    NeedMore,
}

/// Field-level settings of a text or CSV decoder.
#[derive(Debug, Clone)]
struct TextConfig {
    csv: bool,
    delimiter: u8,
    null: Vec<u8>,
    quote: u8,
    escape: u8,
    force_not_null: Vec<bool>,
    force_null: Vec<bool>,
}

/// Decoder for text and CSV COPY data.
#[derive(Debug)]
pub struct TextDecoder {
    config: TextConfig,
    header_pending: bool,
    max_row_bytes: usize,
    input: Input,
    scan: Scan,
    eol: Eol,
    /// Lines of all records returned or skipped so far.
    lines_done: u64,
    line: u64,
    finished: bool,
    done: bool,
    error: Option<KuraError>,
    /// Reused buffer for fields that need unescaping.
    scratch: Vec<u8>,
    /// Fields of the last row, to size the next row's vector.
    last_width: usize,
}

impl TextDecoder {
    /// A decoder for `options` (text or CSV). `columns` are the names of the columns the COPY
    /// fills, in order; they resolve FORCE_NOT_NULL and FORCE_NULL (42P10 for a name not
    /// among them).
    pub fn new<S: AsRef<str>>(options: &CopyOptions, columns: &[S]) -> Result<Self> {
        if !matches!(options.format, CopyFormat::Text | CopyFormat::Csv) {
            return Err(KuraError::internal(
                "TextDecoder reads only text and CSV COPY data",
            ));
        }
        let config = TextConfig {
            csv: options.is_csv(),
            delimiter: options.delimiter,
            null: options.null.as_bytes().to_vec(),
            quote: options.quote,
            escape: options.escape,
            force_not_null: options.force_not_null.mask("FORCE_NOT_NULL", columns)?,
            force_null: options.force_null.mask("FORCE_NULL", columns)?,
        };
        Ok(Self {
            config,
            header_pending: options.header,
            max_row_bytes: MAX_ROW_BYTES,
            input: Input::default(),
            scan: Scan::default(),
            eol: Eol::Unknown,
            lines_done: 0,
            line: 0,
            finished: false,
            done: false,
            error: None,
            scratch: Vec::new(),
            last_width: 0,
        })
    }

    /// Lowers the largest accepted row (tests, or a tighter server limit).
    pub fn with_max_row_bytes(mut self, max: usize) -> Self {
        self.max_row_bytes = max;
        self
    }

    fn fail(&mut self, error: KuraError) -> KuraError {
        self.error = Some(error.clone());
        error
    }

    fn next_row_inner(&mut self) -> Result<Option<TextRow>> {
        loop {
            if self.done {
                return Ok(None);
            }
            let found = match self.find_record() {
                Ok(found) => found,
                Err(e) => {
                    self.line = self.lines_done + 1 + self.scan.newlines;
                    return Err(e);
                }
            };
            let (end, next) = match found {
                Found::Record { end, next } => (end, next),
                Found::NeedMore => {
                    if self.input.pending() > self.max_row_bytes {
                        self.line = self.lines_done + 1 + self.scan.newlines;
                        return Err(row_too_large(self.max_row_bytes));
                    }
                    return Ok(None);
                }
                Found::Eof => {
                    self.done = true;
                    self.input.clear();
                    return Ok(None);
                }
                Found::EndMarker => {
                    self.done = true;
                    self.input.clear();
                    return Ok(None);
                }
            };
            let first_line = self.lines_done + 1;
            let line = first_line + self.scan.newlines;
            self.line = line;
            self.lines_done = line;
            let record_start = self.input.start;
            self.input.start = next;
            self.scan = Scan {
                pos: next,
                ..Scan::default()
            };
            if end - record_start > self.max_row_bytes {
                return Err(row_too_large(self.max_row_bytes));
            }
            if self.header_pending {
                self.header_pending = false;
                continue;
            }
            let record = &self.input.data[record_start..end];
            let mut fields = Vec::with_capacity(self.last_width);
            if self.config.csv {
                parse_csv(record, &self.config, &mut self.scratch, &mut fields)?;
            } else {
                parse_text(record, &self.config, &mut self.scratch, &mut fields)?;
            }
            self.last_width = fields.len();
            return Ok(Some(Row {
                line,
                first_line,
                fields,
            }));
        }
    }

    /// Finds the end of the record starting at `input.start`, resuming at `scan.pos`.
    fn find_record(&mut self) -> Result<Found> {
        let start = self.input.start;
        let len = self.input.data.len();
        if start >= len {
            return Ok(if self.finished {
                Found::Eof
            } else {
                Found::NeedMore
            });
        }
        if self.scan.pos == start && self.input.data[start] == b'\\' {
            match self.end_marker(start)? {
                Marker::Yes => return Ok(Found::EndMarker),
                Marker::NeedMore => return Ok(Found::NeedMore),
                Marker::No => {}
            }
        }
        if self.config.csv {
            self.scan_csv()
        } else {
            self.scan_text()
        }
    }

    /// Whether the record at `start` (which begins with a backslash) is the end-of-data
    /// marker `\.` alone on its line.
    fn end_marker(&self, start: usize) -> Result<Marker> {
        let data = &self.input.data;
        let Some(&second) = data.get(start + 1) else {
            return Ok(if self.finished {
                Marker::No
            } else {
                Marker::NeedMore
            });
        };
        if second != b'.' {
            return Ok(Marker::No);
        }
        let style = match data.get(start + 2) {
            None if self.finished => return Ok(Marker::Yes),
            None => return Ok(Marker::NeedMore),
            Some(b'\n') => Eol::Nl,
            Some(b'\r') => match data.get(start + 3) {
                Some(b'\n') => Eol::CrNl,
                Some(_) => Eol::Cr,
                None if self.finished => Eol::Cr,
                None => return Ok(Marker::NeedMore),
            },
            Some(_) if self.config.csv => return Ok(Marker::No),
            Some(_) => return Err(bad_format("end-of-copy marker corrupt")),
        };
        if self.eol != Eol::Unknown && self.eol != style {
            return Err(bad_format(
                "end-of-copy marker does not match previous newline style",
            ));
        }
        Ok(Marker::Yes)
    }

    /// The record runs to the end of the input if the input is complete.
    fn at_end_of_input(&mut self) -> Found {
        let len = self.input.data.len();
        self.scan.pos = len;
        if self.finished {
            Found::Record {
                end: len,
                next: len,
            }
        } else {
            Found::NeedMore
        }
    }

    fn scan_text(&mut self) -> Result<Found> {
        let mut pos = self.scan.pos;
        loop {
            let data = &self.input.data;
            let Some(offset) = memchr3(b'\n', b'\r', b'\\', &data[pos..]) else {
                return Ok(self.at_end_of_input());
            };
            let i = pos + offset;
            if data[i] != b'\\' {
                self.scan.pos = i;
                return self.line_break(i);
            }
            // A backslash escapes the next byte, a line break included.
            match data.get(i + 1) {
                None if self.finished => {
                    return Err(bad_format("unexpected end of data after backslash"));
                }
                None => {
                    self.scan.pos = i;
                    return Ok(Found::NeedMore);
                }
                Some(b'.') => {
                    return Err(bad_format("end-of-copy marker is not alone on its line")
                        .with_hint("Use \"\\\\.\" to represent a backslash and a period."));
                }
                Some(b'\n') => self.scan.newlines += 1,
                Some(b'\r') if self.eol == Eol::Cr => self.scan.newlines += 1,
                Some(_) => {}
            }
            pos = i + 2;
        }
    }

    fn scan_csv(&mut self) -> Result<Found> {
        let (quote, escape) = (self.config.quote, self.config.escape);
        let newline = if self.eol == Eol::Cr { b'\r' } else { b'\n' };
        let mut pos = self.scan.pos;
        loop {
            let data = &self.input.data;
            if !self.scan.in_quote {
                let Some(offset) = memchr3(b'\n', b'\r', quote, &data[pos..]) else {
                    return Ok(self.at_end_of_input());
                };
                let i = pos + offset;
                if data[i] == quote {
                    self.scan.in_quote = true;
                    self.scan.last_was_esc = false;
                    pos = i + 1;
                    continue;
                }
                self.scan.pos = i;
                return self.line_break(i);
            }
            let hit = if quote == escape {
                memchr2(quote, newline, &data[pos..])
            } else {
                memchr3(quote, escape, newline, &data[pos..])
            };
            let Some(offset) = hit else {
                if data.len() > pos {
                    self.scan.last_was_esc = false;
                }
                self.scan.pos = data.len();
                if self.finished {
                    return Err(bad_format("unterminated CSV quoted field"));
                }
                return Ok(Found::NeedMore);
            };
            let i = pos + offset;
            let c = data[i];
            pos = i + 1;
            // PostgreSQL's rule: an escape inside quotes toggles "escaped"; a quote that is
            // not escaped toggles quoting; any other byte clears "escaped".
            if offset > 0 {
                self.scan.last_was_esc = false;
            }
            if c == quote && quote == escape {
                self.scan.in_quote = false;
            } else if c == escape {
                self.scan.last_was_esc = !self.scan.last_was_esc;
            } else if c == quote {
                if !self.scan.last_was_esc {
                    self.scan.in_quote = false;
                }
                self.scan.last_was_esc = false;
            } else {
                self.scan.newlines += 1;
                self.scan.last_was_esc = false;
            }
        }
    }

    /// An unescaped, unquoted CR or LF at `i`: the end of the record, checked against the
    /// line-break style of the first line.
    fn line_break(&mut self, i: usize) -> Result<Found> {
        let data = &self.input.data;
        let csv = self.config.csv;
        let stray_cr = || {
            if csv {
                bad_format("unquoted carriage return found in data")
                    .with_hint("Use quoted CSV field to represent carriage return.")
            } else {
                bad_format("literal carriage return found in data")
                    .with_hint("Use \"\\r\" to represent carriage return.")
            }
        };
        if data[i] == b'\n' {
            if matches!(self.eol, Eol::Cr | Eol::CrNl) {
                return Err(if csv {
                    bad_format("unquoted newline found in data")
                        .with_hint("Use quoted CSV field to represent newline.")
                } else {
                    bad_format("literal newline found in data")
                        .with_hint("Use \"\\n\" to represent newline.")
                });
            }
            self.eol = Eol::Nl;
            return Ok(Found::Record {
                end: i,
                next: i + 1,
            });
        }
        match self.eol {
            Eol::Nl => Err(stray_cr()),
            Eol::Cr => Ok(Found::Record {
                end: i,
                next: i + 1,
            }),
            Eol::Unknown | Eol::CrNl => match data.get(i + 1) {
                Some(b'\n') => {
                    self.eol = Eol::CrNl;
                    Ok(Found::Record {
                        end: i,
                        next: i + 2,
                    })
                }
                None if !self.finished => Ok(Found::NeedMore),
                _ if self.eol == Eol::CrNl => Err(stray_cr()),
                _ => {
                    self.eol = Eol::Cr;
                    Ok(Found::Record {
                        end: i,
                        next: i + 1,
                    })
                }
            },
        }
    }
}

impl RowDecoder for TextDecoder {
    type Field = String;

    fn feed(&mut self, chunk: &[u8]) {
        if self.done || self.error.is_some() || chunk.is_empty() {
            return;
        }
        if self.finished {
            self.error = Some(KuraError::internal("COPY data fed after the end of input"));
            return;
        }
        let moved = self.input.push(chunk);
        self.scan.pos = self.scan.pos.saturating_sub(moved);
    }

    fn finish(&mut self) {
        self.finished = true;
    }

    fn next_row(&mut self) -> Result<Option<TextRow>> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        self.next_row_inner().map_err(|e| self.fail(e))
    }

    fn line(&self) -> u64 {
        self.line
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

/// Splits a text-format record into fields. The NULL string is compared with the raw field,
/// before backslash escapes are undone.
fn parse_text(
    record: &[u8],
    config: &TextConfig,
    scratch: &mut Vec<u8>,
    fields: &mut Vec<Option<String>>,
) -> Result<()> {
    let delimiter = config.delimiter;
    let mut pos = 0;
    loop {
        let field_start = pos;
        let mut escaped = false;
        let end = loop {
            match memchr2(delimiter, b'\\', &record[pos..]) {
                None => break record.len(),
                Some(offset) if record[pos + offset] == delimiter => break pos + offset,
                Some(offset) => {
                    escaped = true;
                    pos = (pos + offset + 2).min(record.len());
                }
            }
        };
        let raw = &record[field_start..end];
        let value = if raw == config.null.as_slice() {
            None
        } else if escaped {
            unescape_text(raw, scratch)?;
            Some(field_string(scratch)?)
        } else {
            Some(field_string(raw)?)
        };
        fields.push(value);
        if end >= record.len() {
            return Ok(());
        }
        pos = end + 1;
    }
}

fn hex_digit(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

/// Undoes text-format escapes: `\b \f \n \r \t \v`, `\NNN` octal, `\xH[H]` hex, and any
/// other `\c` as `c`.
fn unescape_text(raw: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    let mut i = 0;
    while let Some(offset) = memchr(b'\\', &raw[i..]) {
        out.extend_from_slice(&raw[i..i + offset]);
        let Some(&c) = raw.get(i + offset + 1) else {
            return Err(bad_format("unexpected end of data after backslash"));
        };
        i += offset + 2;
        let byte = match c {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            b'0'..=b'7' => {
                let mut value = u32::from(c - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                (value & 0xff) as u8
            }
            b'x' => match raw.get(i).copied().and_then(hex_digit) {
                Some(high) => {
                    i += 1;
                    match raw.get(i).copied().and_then(hex_digit) {
                        Some(low) => {
                            i += 1;
                            high * 16 + low
                        }
                        None => high,
                    }
                }
                None => b'x',
            },
            other => other,
        };
        if byte == 0 {
            return Err(invalid_utf8(&[0]));
        }
        out.push(byte);
    }
    out.extend_from_slice(&raw[i..]);
    Ok(())
}

/// Splits a CSV record into fields. Only an unquoted field can match the NULL string, unless
/// FORCE_NULL applies; FORCE_NOT_NULL turns an unquoted NULL string back into that string.
fn parse_csv(
    record: &[u8],
    config: &TextConfig,
    scratch: &mut Vec<u8>,
    fields: &mut Vec<Option<String>>,
) -> Result<()> {
    let (delimiter, quote, escape) = (config.delimiter, config.quote, config.escape);
    let len = record.len();
    let mut pos = 0;
    loop {
        let field_start = pos;
        let mut quoted = false;
        let mut last = false;
        scratch.clear();
        // The raw end of the field (exclusive).
        let end = loop {
            let Some(offset) = memchr2(delimiter, quote, &record[pos..]) else {
                if quoted {
                    scratch.extend_from_slice(&record[pos..]);
                }
                last = true;
                pos = len;
                break len;
            };
            let i = pos + offset;
            if quoted {
                scratch.extend_from_slice(&record[pos..i]);
            } else if record[i] == quote {
                scratch.extend_from_slice(&record[field_start..i]);
            }
            if record[i] == delimiter {
                pos = i + 1;
                break i;
            }
            quoted = true;
            pos = i + 1;
            loop {
                let hit = if quote == escape {
                    memchr(quote, &record[pos..])
                } else {
                    memchr2(quote, escape, &record[pos..])
                };
                let Some(offset) = hit else {
                    return Err(bad_format("unterminated CSV quoted field"));
                };
                let k = pos + offset;
                scratch.extend_from_slice(&record[pos..k]);
                let c = record[k];
                if c == escape
                    && let Some(&next) = record.get(k + 1)
                    && (next == escape || next == quote)
                {
                    scratch.push(next);
                    pos = k + 2;
                    continue;
                }
                pos = k + 1;
                if c == quote {
                    break;
                }
                scratch.push(c);
            }
        };
        let column = fields.len();
        let raw = &record[field_start..end];
        let is_null = if !quoted && raw == config.null.as_slice() {
            !config.force_not_null.get(column).copied().unwrap_or(false)
        } else {
            quoted
                && config.force_null.get(column).copied().unwrap_or(false)
                && scratch.as_slice() == config.null.as_slice()
        };
        let value = if is_null {
            None
        } else if quoted {
            Some(field_string(scratch)?)
        } else {
            Some(field_string(raw)?)
        };
        fields.push(value);
        if last {
            return Ok(());
        }
    }
}

/// Where a binary decoder is in its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinaryState {
    Header,
    /// Skipping this many more bytes of header extension.
    Extension(u64),
    Tuples,
    /// The trailer was read; any further byte is an error.
    Trailer,
    /// The input ended at a tuple boundary without a trailer (PostgreSQL accepts this).
    Ended,
}

/// A tuple being read: field `(offset, length)` pairs relative to the tuple start.
#[derive(Debug, Default)]
struct PartialTuple {
    count: usize,
    cursor: usize,
    fields: Vec<Option<(usize, usize)>>,
}

/// Decoder for binary COPY data.
#[derive(Debug)]
pub struct BinaryDecoder {
    input: Input,
    state: BinaryState,
    tuple: Option<PartialTuple>,
    max_row_bytes: usize,
    line: u64,
    finished: bool,
    error: Option<KuraError>,
}

impl Default for BinaryDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BinaryDecoder {
    pub fn new() -> Self {
        Self {
            input: Input::default(),
            state: BinaryState::Header,
            tuple: None,
            max_row_bytes: MAX_ROW_BYTES,
            line: 0,
            finished: false,
            error: None,
        }
    }

    /// Lowers the largest accepted tuple (tests, or a tighter server limit).
    pub fn with_max_row_bytes(mut self, max: usize) -> Self {
        self.max_row_bytes = max;
        self
    }

    fn read_header(&mut self) -> Result<bool> {
        const HEADER: usize = 19;
        let data = &self.input.data[self.input.start..];
        let n = data.len().min(BINARY_SIGNATURE.len());
        if data[..n] != BINARY_SIGNATURE[..n] {
            return Err(bad_format("COPY file signature not recognized"));
        }
        if data.len() < HEADER {
            if !self.finished {
                return Ok(false);
            }
            return Err(bad_format(if data.len() < 11 {
                "COPY file signature not recognized"
            } else if data.len() < 15 {
                "invalid COPY file header (missing flags)"
            } else {
                "invalid COPY file header (missing length)"
            }));
        }
        let flags = i32::from_be_bytes([data[11], data[12], data[13], data[14]]);
        if flags & (1 << 16) != 0 {
            return Err(bad_format("invalid COPY file header (WITH OIDS)"));
        }
        if (flags & !(1 << 16)) >> 16 != 0 {
            return Err(bad_format(
                "unrecognized critical flags in COPY file header",
            ));
        }
        let extension = i32::from_be_bytes([data[15], data[16], data[17], data[18]]);
        if extension < 0 {
            return Err(bad_format("invalid COPY file header (missing length)"));
        }
        self.input.start += HEADER;
        self.state = BinaryState::Extension(extension as u64);
        Ok(true)
    }

    /// Reads the tuple at `input.start`; `Ok(None)` when more input is needed.
    fn read_tuple(&mut self) -> Result<Option<BinaryRow>> {
        let data = &self.input.data[self.input.start..];
        let tuple = match &mut self.tuple {
            Some(tuple) => tuple,
            None => {
                if data.len() < 2 {
                    if !self.finished {
                        return Ok(None);
                    }
                    if data.is_empty() {
                        self.state = BinaryState::Ended;
                        return Ok(None);
                    }
                    return Err(bad_format("unexpected EOF in COPY data"));
                }
                let count = i16::from_be_bytes([data[0], data[1]]);
                if count == -1 {
                    self.input.start += 2;
                    self.state = BinaryState::Trailer;
                    return Ok(None);
                }
                let Ok(count) = usize::try_from(count) else {
                    return Err(bad_format(format!("invalid row field count {count}")));
                };
                self.line += 1;
                self.tuple.insert(PartialTuple {
                    count,
                    cursor: 2,
                    fields: Vec::with_capacity(count),
                })
            }
        };
        while tuple.fields.len() < tuple.count {
            let at = tuple.cursor;
            let Some(size) = data.get(at..at + 4) else {
                return self.need_more(at + 4);
            };
            let size = i32::from_be_bytes([size[0], size[1], size[2], size[3]]);
            if size == -1 {
                tuple.fields.push(None);
                tuple.cursor = at + 4;
                continue;
            }
            let Ok(size) = usize::try_from(size) else {
                return Err(bad_format("invalid field size"));
            };
            let end = at + 4 + size;
            if end > self.max_row_bytes {
                return Err(row_too_large(self.max_row_bytes));
            }
            if data.len() < end {
                return self.need_more(end);
            }
            tuple.fields.push(Some((at + 4, size)));
            tuple.cursor = end;
        }
        let bytes = Bytes::copy_from_slice(&data[..tuple.cursor]);
        let fields = tuple
            .fields
            .iter()
            .map(|f| f.map(|(offset, size)| bytes.slice(offset..offset + size)))
            .collect();
        self.input.start += tuple.cursor;
        self.tuple = None;
        Ok(Some(Row {
            line: self.line,
            first_line: self.line,
            fields,
        }))
    }

    /// The tuple needs `needed` bytes from its start: wait for them, or fail at the end.
    fn need_more(&self, needed: usize) -> Result<Option<BinaryRow>> {
        if needed > self.max_row_bytes {
            return Err(row_too_large(self.max_row_bytes));
        }
        if self.finished {
            return Err(bad_format("unexpected EOF in COPY data"));
        }
        Ok(None)
    }

    fn next_row_inner(&mut self) -> Result<Option<BinaryRow>> {
        loop {
            match self.state {
                BinaryState::Header => {
                    if !self.read_header()? {
                        return Ok(None);
                    }
                }
                BinaryState::Extension(remaining) => {
                    let available = self.input.pending() as u64;
                    let skip = remaining.min(available);
                    self.input.start += skip as usize;
                    if skip < remaining {
                        self.state = BinaryState::Extension(remaining - skip);
                        if self.finished {
                            return Err(bad_format("invalid COPY file header (wrong length)"));
                        }
                        return Ok(None);
                    }
                    self.state = BinaryState::Tuples;
                }
                BinaryState::Tuples => {
                    let row = self.read_tuple()?;
                    if row.is_some() || self.state == BinaryState::Tuples {
                        return Ok(row);
                    }
                }
                BinaryState::Trailer => {
                    if self.input.pending() > 0 {
                        return Err(bad_format("received copy data after EOF marker"));
                    }
                    return Ok(None);
                }
                BinaryState::Ended => return Ok(None),
            }
        }
    }
}

impl RowDecoder for BinaryDecoder {
    type Field = Bytes;

    fn feed(&mut self, chunk: &[u8]) {
        if self.error.is_some() || chunk.is_empty() {
            return;
        }
        if self.finished {
            self.error = Some(KuraError::internal("COPY data fed after the end of input"));
            return;
        }
        if self.state == BinaryState::Trailer {
            self.error = Some(bad_format("received copy data after EOF marker"));
            return;
        }
        self.input.push(chunk);
    }

    fn finish(&mut self) {
        self.finished = true;
    }

    fn next_row(&mut self) -> Result<Option<BinaryRow>> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        match self.next_row_inner() {
            Ok(row) => Ok(row),
            Err(e) => {
                self.error = Some(e.clone());
                Err(e)
            }
        }
    }

    fn line(&self) -> u64 {
        self.line
    }

    fn is_done(&self) -> bool {
        match self.state {
            BinaryState::Ended => true,
            BinaryState::Trailer => self.input.pending() == 0,
            _ => false,
        }
    }
}

/// Writes COPY TO data: [`write_start`](Self::write_start) once, then
/// [`write_row`](Self::write_row) per row, then [`write_end`](Self::write_end).
#[derive(Debug, Clone)]
pub struct CopyEncoder {
    format: CopyFormat,
    delimiter: u8,
    null: Vec<u8>,
    quote: u8,
    escape: u8,
    /// The column names when HEADER was asked for.
    header: Option<Vec<String>>,
    force_quote: Vec<bool>,
    /// Text format: the letter written after a backslash for each byte, 0 for none.
    text_escapes: [u8; 256],
    /// CSV: bytes that make a value need quotes.
    csv_special: [bool; 256],
}

impl CopyEncoder {
    /// An encoder for `options`; `columns` are the names of the columns written, in order
    /// (for HEADER and to resolve FORCE_QUOTE, 42P10 for a name not among them).
    pub fn new<S: AsRef<str>>(options: &CopyOptions, columns: &[S]) -> Result<Self> {
        if options.is_parquet() {
            return Err(KuraError::internal(
                "Parquet COPY data is written by copy::parquet",
            ));
        }
        let mut text_escapes = [0u8; 256];
        text_escapes[usize::from(options.delimiter)] = options.delimiter;
        text_escapes[usize::from(b'\\')] = b'\\';
        for (byte, letter) in [
            (0x08, b'b'),
            (0x0c, b'f'),
            (b'\n', b'n'),
            (b'\r', b'r'),
            (b'\t', b't'),
            (0x0b, b'v'),
        ] {
            text_escapes[usize::from(byte)] = letter;
        }
        let mut csv_special = [false; 256];
        for byte in [options.delimiter, options.quote, b'\n', b'\r'] {
            csv_special[usize::from(byte)] = true;
        }
        Ok(Self {
            format: options.format,
            delimiter: options.delimiter,
            null: options.null.as_bytes().to_vec(),
            quote: options.quote,
            escape: options.escape,
            header: options
                .header
                .then(|| columns.iter().map(|c| c.as_ref().to_string()).collect()),
            force_quote: options.force_quote.mask("FORCE_QUOTE", columns)?,
            text_escapes,
            csv_special,
        })
    }

    /// What precedes the rows: the binary signature and header, or the header line.
    pub fn write_start(&self, out: &mut impl BufMut) {
        match self.format {
            CopyFormat::Binary => {
                out.put_slice(BINARY_SIGNATURE);
                out.put_i32(0);
                out.put_i32(0);
            }
            // `new` refuses Parquet.
            CopyFormat::Parquet => {}
            CopyFormat::Text | CopyFormat::Csv => {
                if let Some(columns) = &self.header {
                    for (i, name) in columns.iter().enumerate() {
                        if i > 0 {
                            out.put_u8(self.delimiter);
                        }
                        self.put_text_value(out, name.as_bytes(), false);
                    }
                    out.put_u8(b'\n');
                }
            }
        }
    }

    /// One row. Text and CSV fields are the values' PostgreSQL text forms (UTF-8); binary
    /// fields are their binary send forms. `None` is NULL. Fails (54000) only for a binary
    /// row with more than 32767 fields or a field over 2 GiB.
    pub fn write_row<F: AsRef<[u8]>>(
        &self,
        out: &mut impl BufMut,
        fields: &[Option<F>],
    ) -> Result<()> {
        if self.format == CopyFormat::Binary {
            let count = i16::try_from(fields.len()).map_err(|_| {
                KuraError::new(
                    sqlstate::PROGRAM_LIMIT_EXCEEDED,
                    "too many fields for a binary COPY row",
                )
            })?;
            out.put_i16(count);
            for field in fields {
                match field {
                    None => out.put_i32(-1),
                    Some(value) => {
                        let value = value.as_ref();
                        let size = i32::try_from(value.len()).map_err(|_| {
                            KuraError::new(
                                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                                "field too large for binary COPY",
                            )
                        })?;
                        out.put_i32(size);
                        out.put_slice(value);
                    }
                }
            }
            return Ok(());
        }
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                out.put_u8(self.delimiter);
            }
            match field {
                None => out.put_slice(&self.null),
                Some(value) => {
                    let value = value.as_ref();
                    if self.format == CopyFormat::Text && value == self.null.as_slice() {
                        self.put_text_null_lookalike(out, value);
                    } else {
                        let force = self.force_quote.get(i).copied().unwrap_or(false);
                        self.put_text_value(out, value, force);
                    }
                }
            }
        }
        out.put_u8(b'\n');
        Ok(())
    }

    /// What follows the rows: the binary trailer; nothing for text and CSV (the protocol's
    /// CopyDone ends them).
    pub fn write_end(&self, out: &mut impl BufMut) {
        if self.format == CopyFormat::Binary {
            out.put_i16(-1);
        }
    }

    fn put_text_value(&self, out: &mut impl BufMut, value: &[u8], force_quote: bool) {
        if self.format == CopyFormat::Csv {
            self.put_csv(out, value, force_quote);
        } else {
            self.put_text(out, value);
        }
    }

    /// Text format: backslash, the delimiter and the control characters with letters are
    /// escaped; everything else is written as is.
    fn put_text(&self, out: &mut impl BufMut, value: &[u8]) {
        let mut run = 0;
        for (i, &byte) in value.iter().enumerate() {
            let letter = self.text_escapes[usize::from(byte)];
            if letter != 0 {
                out.put_slice(&value[run..i]);
                out.put_u8(b'\\');
                out.put_u8(letter);
                run = i + 1;
            }
        }
        out.put_slice(&value[run..]);
    }

    /// Text format, a value equal to a non-empty NULL string (which PostgreSQL writes as is,
    /// so that it reads back as NULL): the first byte goes out as an octal escape, so the raw
    /// field differs from the NULL string but unescapes to the value. An empty value with an
    /// empty NULL string cannot be told apart, as in PostgreSQL.
    fn put_text_null_lookalike(&self, out: &mut impl BufMut, value: &[u8]) {
        if let Some((&first, rest)) = value.split_first() {
            out.put_slice(&[
                b'\\',
                b'0' + (first >> 6),
                b'0' + ((first >> 3) & 7),
                b'0' + (first & 7),
            ]);
            self.put_text(out, rest);
        }
    }

    /// CSV: quoted when forced, when equal to the NULL string, when starting with `\.`, or
    /// when containing the delimiter, the quote, CR or LF; inside quotes the quote and the
    /// escape are preceded by the escape.
    fn put_csv(&self, out: &mut impl BufMut, value: &[u8], force_quote: bool) {
        let needs_quotes = force_quote
            || value == self.null.as_slice()
            || value.starts_with(b"\\.")
            || value.iter().any(|b| self.csv_special[usize::from(*b)]);
        if !needs_quotes {
            out.put_slice(value);
            return;
        }
        out.put_u8(self.quote);
        let mut run = 0;
        for (i, &byte) in value.iter().enumerate() {
            if byte == self.quote || byte == self.escape {
                out.put_slice(&value[run..i]);
                out.put_u8(self.escape);
                run = i;
            }
        }
        out.put_slice(&value[run..]);
        out.put_u8(self.quote);
    }
}

#[cfg(test)]
mod tests {
    use super::super::options::ColumnList;
    use super::*;

    const NO_COLUMNS: &[&str] = &[];

    fn text_opts() -> CopyOptions {
        CopyOptions::new(CopyFormat::Text)
    }

    fn csv_opts() -> CopyOptions {
        CopyOptions::new(CopyFormat::Csv)
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    /// Feeds `chunks`, finishes, and collects every row; stops at the first error.
    fn decode_chunks<D: RowDecoder>(
        mut decoder: D,
        chunks: &[&[u8]],
    ) -> (Vec<Row<D::Field>>, Option<KuraError>) {
        let mut rows = Vec::new();
        let drain = |decoder: &mut D, rows: &mut Vec<Row<D::Field>>| loop {
            match decoder.next_row() {
                Ok(Some(row)) => rows.push(row),
                Ok(None) => return None,
                Err(e) => return Some(e),
            }
        };
        for chunk in chunks {
            decoder.feed(chunk);
            if let Some(e) = drain(&mut decoder, &mut rows) {
                return (rows, Some(e));
            }
        }
        decoder.finish();
        let error = drain(&mut decoder, &mut rows);
        if error.is_none() {
            assert!(decoder.is_done(), "decoder not done after finish");
        }
        (rows, error)
    }

    fn text(options: &CopyOptions, input: &[u8]) -> Result<Vec<TextRow>> {
        let decoder = TextDecoder::new(options, NO_COLUMNS).unwrap();
        match decode_chunks(decoder, &[input]) {
            (rows, None) => Ok(rows),
            (_, Some(e)) => Err(e),
        }
    }

    fn fields(options: &CopyOptions, input: &str) -> Vec<Vec<Option<String>>> {
        text(options, input.as_bytes())
            .unwrap()
            .into_iter()
            .map(|r| r.fields)
            .collect()
    }

    fn error(options: &CopyOptions, input: &[u8]) -> KuraError {
        text(options, input).unwrap_err()
    }

    #[test]
    fn text_escapes() {
        let rows = fields(
            &text_opts(),
            "a\\bb\\fc\\nd\\re\\tf\\vg\\\\h\\q\\\tj\t\\101\\7\\1010\\x41\\x4a4\\xg\\N\\,\n",
        );
        assert_eq!(
            rows,
            vec![vec![
                s("a\x08b\x0cc\nd\re\tf\x0bg\\hq\tj"),
                s("A\x07A0AJ4xgN,")
            ]]
        );
        // Octal and hex escapes build UTF-8 byte by byte.
        assert_eq!(fields(&text_opts(), "\\303\\251\\xc3\\xa9\n"), [[s("éé")]]);
        // An escaped line break is data and the row spans two lines.
        let rows = text(&text_opts(), b"a\\\nb\tc\nd\n").unwrap();
        assert_eq!(rows[0].fields, [s("a\nb"), s("c")]);
        assert_eq!((rows[0].first_line, rows[0].line, rows[1].line), (1, 2, 3));
    }

    #[test]
    fn text_null_and_empty() {
        let rows = fields(&text_opts(), "\\N\t\t\\\\N\tx\\N\n\n");
        assert_eq!(rows, [vec![None, s(""), s("\\N"), s("xN")], vec![s("")]]);
        // A custom NULL string is compared before unescaping.
        let mut options = text_opts();
        options.null = "NULL".into();
        let rows = fields(&options, "NULL\t\\NULL\tnull\t\\N\n");
        assert_eq!(rows, [[None, s("NULL"), s("null"), s("N")]]);
        let mut options = text_opts();
        options.null = String::new();
        assert_eq!(fields(&options, "\ta\n"), [[None, s("a")]]);
    }

    #[test]
    fn text_line_endings() {
        let expected = vec![vec![s("a"), s("b")], vec![s("c"), s("d")]];
        assert_eq!(fields(&text_opts(), "a\tb\nc\td\n"), expected);
        assert_eq!(fields(&text_opts(), "a\tb\r\nc\td\r\n"), expected);
        assert_eq!(fields(&text_opts(), "a\tb\rc\td\r"), expected);
        assert_eq!(fields(&text_opts(), "a\tb\nc\td"), expected);
        assert_eq!(fields(&text_opts(), ""), Vec::<Vec<Option<String>>>::new());
        let e = error(&text_opts(), b"a\nb\rc\n");
        assert_eq!(e.code, sqlstate::BAD_COPY_FILE_FORMAT);
        assert_eq!(e.message, "literal carriage return found in data");
        let e = error(&text_opts(), b"a\r\nb\nc\n");
        assert_eq!(e.message, "literal newline found in data");
        let e = error(&text_opts(), b"a\r\nb\rc\r\n");
        assert_eq!(e.message, "literal carriage return found in data");
    }

    #[test]
    fn text_end_marker() {
        let mut decoder = TextDecoder::new(&text_opts(), NO_COLUMNS).unwrap();
        decoder.feed(b"a\n\\.\nignored\tdata\n");
        assert_eq!(decoder.next_row().unwrap().unwrap().fields, [s("a")]);
        assert_eq!(decoder.next_row().unwrap(), None);
        assert!(decoder.is_done());
        decoder.feed(b"more ignored\n");
        decoder.finish();
        assert_eq!(decoder.next_row().unwrap(), None);

        assert_eq!(fields(&text_opts(), "a\r\n\\.\r\n"), [[s("a")]]);
        assert_eq!(fields(&text_opts(), "a\n\\."), [[s("a")]]);
        assert_eq!(fields(&text_opts(), "\\.\n"), Vec::<Vec<_>>::new());
        let e = error(&text_opts(), b"a\n\\.x\n");
        assert_eq!(
            (e.code, e.message.as_str()),
            (sqlstate::BAD_COPY_FILE_FORMAT, "end-of-copy marker corrupt")
        );
        let e = error(&text_opts(), b"a\r\n\\.\n");
        assert_eq!(
            e.message,
            "end-of-copy marker does not match previous newline style"
        );
        let e = error(&text_opts(), b"a\\.\n");
        assert_eq!(e.message, "end-of-copy marker is not alone on its line");
        // An escaped backslash followed by a period is data.
        assert_eq!(fields(&text_opts(), "\\\\.\n"), [[s("\\.")]]);
    }

    #[test]
    fn text_invalid_input() {
        let e = error(&text_opts(), b"ok\t\xc3\x28\n");
        assert_eq!(e.code, sqlstate::CHARACTER_NOT_IN_REPERTOIRE);
        assert_eq!(
            e.message,
            "invalid byte sequence for encoding \"UTF8\": 0xc3 0x28"
        );
        // Escapes that produce invalid UTF-8 or NUL are rejected after unescaping.
        assert_eq!(
            error(&text_opts(), b"\\xff\n").code,
            sqlstate::CHARACTER_NOT_IN_REPERTOIRE
        );
        assert_eq!(
            error(&text_opts(), b"a\\000b\n").message,
            "invalid byte sequence for encoding \"UTF8\": 0x00"
        );
        assert_eq!(
            error(&text_opts(), b"a\0b\n").code,
            sqlstate::CHARACTER_NOT_IN_REPERTOIRE
        );
        assert_eq!(
            error(&text_opts(), b"abc\\").code,
            sqlstate::BAD_COPY_FILE_FORMAT
        );
    }

    #[test]
    fn errors_carry_the_line_and_stick() {
        let mut decoder = TextDecoder::new(&text_opts(), NO_COLUMNS).unwrap();
        decoder.feed(b"a\nb\n\xff\n");
        decoder.finish();
        assert_eq!(decoder.next_row().unwrap().unwrap().line, 1);
        assert_eq!(decoder.next_row().unwrap().unwrap().line, 2);
        let e = decoder.next_row().unwrap_err();
        assert_eq!(decoder.line(), 3);
        assert_eq!(decoder.next_row().unwrap_err(), e);

        let mut decoder = TextDecoder::new(&csv_opts(), NO_COLUMNS).unwrap();
        decoder.feed(b"a\n\"b\nc\nd");
        decoder.finish();
        assert_eq!(decoder.next_row().unwrap().unwrap().line, 1);
        let e = decoder.next_row().unwrap_err();
        assert_eq!(e.message, "unterminated CSV quoted field");
        assert_eq!(decoder.line(), 4);
    }

    #[test]
    fn csv_quoting_and_nulls() {
        let rows = fields(
            &csv_opts(),
            "a,\"b,c\",\"d\"\"e\",,\"\",x\"y\"z,\"\"\"\"\n  sp ,\\N,\"\\.\"\n",
        );
        assert_eq!(
            rows,
            [
                vec![s("a"), s("b,c"), s("d\"e"), None, s(""), s("xyz"), s("\"")],
                vec![s("  sp "), s("\\N"), s("\\.")],
            ]
        );
        // A different escape character only escapes the quote and itself.
        let mut options = csv_opts();
        options.escape = b'\\';
        let rows = fields(&options, "\"a\\\"b\",\"c\\\\d\",\"e\\f\",\"\\\"\"\n");
        assert_eq!(rows, [[s("a\"b"), s("c\\d"), s("e\\f"), s("\"")]]);
        // A custom NULL string matches unquoted fields only.
        let mut options = csv_opts();
        options.null = "NA".into();
        assert_eq!(
            fields(&options, "NA,\"NA\",,\"\"\n"),
            [[None, s("NA"), s(""), s("")]]
        );
        // An empty line is one empty (NULL) field.
        assert_eq!(fields(&csv_opts(), "\n"), [[None]]);
    }

    #[test]
    fn csv_force_null_and_not_null() {
        let mut options = csv_opts();
        options.force_not_null = ColumnList::Named(vec!["a".into()]);
        options.force_null = ColumnList::Named(vec!["b".into()]);
        let decoder = TextDecoder::new(&options, &["a", "b", "c"]).unwrap();
        let (rows, error) = decode_chunks(decoder, &[b",\"\",\"\"\n,,\n"]);
        assert!(error.is_none());
        assert_eq!(rows[0].fields, [s(""), None, s("")]);
        assert_eq!(rows[1].fields, [s(""), None, None]);
        options.force_null = ColumnList::Named(vec!["zz".into()]);
        let e = TextDecoder::new(&options, &["a", "b"]).unwrap_err();
        assert_eq!(e.code, sqlstate::INVALID_COLUMN_REFERENCE);
    }

    #[test]
    fn csv_multiline_fields_and_line_numbers() {
        let input = "h1,h2\n1,\"two\nlines\"\n2,\"three\r\nphysical\nlines\"\n3,x\n";
        let mut options = csv_opts();
        options.header = true;
        let rows = text(&options, input.as_bytes()).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].fields, [s("1"), s("two\nlines")]);
        assert_eq!((rows[0].first_line, rows[0].line), (2, 3));
        assert_eq!(rows[1].fields, [s("2"), s("three\r\nphysical\nlines")]);
        assert_eq!((rows[1].first_line, rows[1].line), (4, 6));
        assert_eq!(rows[2].fields, [s("3"), s("x")]);
        assert_eq!((rows[2].first_line, rows[2].line), (7, 7));
        // A quoted header spanning lines is skipped whole.
        let rows = text(&options, b"\"a\nb\",c\n1,2\n").unwrap();
        assert_eq!(rows[0].fields, [s("1"), s("2")]);
        assert_eq!(rows[0].line, 3);
    }

    #[test]
    fn csv_end_marker_and_errors() {
        assert_eq!(fields(&csv_opts(), "a\n\\.\nb\n"), [[s("a")]]);
        assert_eq!(fields(&csv_opts(), "a\n\\."), [[s("a")]]);
        // Not alone on its line, or quoted: data.
        assert_eq!(
            fields(&csv_opts(), "\\.x\n\"\\.\"\n\\.,1\n"),
            [vec![s("\\.x")], vec![s("\\.")], vec![s("\\."), s("1")]]
        );
        let e = error(&csv_opts(), b"a,\"b\n");
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                sqlstate::BAD_COPY_FILE_FORMAT,
                "unterminated CSV quoted field"
            )
        );
        let e = error(&csv_opts(), b"a\nb\rc\n");
        assert_eq!(e.message, "unquoted carriage return found in data");
        let e = error(&csv_opts(), b"a\r\nb\nc\n");
        assert_eq!(e.message, "unquoted newline found in data");
        assert_eq!(
            error(&csv_opts(), b"\"\xe9\"\n").code,
            sqlstate::CHARACTER_NOT_IN_REPERTOIRE
        );
    }

    #[test]
    fn header_skipping() {
        let mut options = text_opts();
        options.header = true;
        let rows = text(&options, b"a\tb\n1\t2\n").unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].line, rows[0].fields.clone()),
            (2, vec![s("1"), s("2")])
        );
        assert!(text(&options, b"a\tb\n").unwrap().is_empty());
        assert!(text(&options, b"\\.\n").unwrap().is_empty());
    }

    /// Splitting the input anywhere yields the same rows (and lines) as one chunk.
    fn assert_chunking_invariant(options: &CopyOptions, input: &[u8]) {
        let whole = decode_chunks(TextDecoder::new(options, NO_COLUMNS).unwrap(), &[input]);
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            let split = decode_chunks(TextDecoder::new(options, NO_COLUMNS).unwrap(), &[a, b]);
            assert_eq!(split, whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        let single = decode_chunks(TextDecoder::new(options, NO_COLUMNS).unwrap(), &bytes);
        assert_eq!(single, whole, "byte by byte");
    }

    #[test]
    fn chunk_boundaries_text() {
        let input = b"1\tone\t\\N\n2\t\\x41\\101\\\\x\t\\\nz\n3\t\xc3\xa9\t\n\\.\nlater\n";
        let (rows, error) = decode_chunks(
            TextDecoder::new(&text_opts(), NO_COLUMNS).unwrap(),
            &[input],
        );
        assert!(error.is_none());
        assert_eq!(rows.len(), 3);
        assert_chunking_invariant(&text_opts(), input);
        assert_chunking_invariant(&text_opts(), b"a\r\nb\tc\r\n\\.\r\n");
        assert_chunking_invariant(&text_opts(), b"a\rb\tc\r\\.\r");
        assert_chunking_invariant(&text_opts(), b"a\nb\rc\n");
        assert_chunking_invariant(&text_opts(), b"a\tb");
    }

    #[test]
    fn chunk_boundaries_csv() {
        let mut options = csv_opts();
        options.header = true;
        let input =
            b"x,y\r\n1,\"a,\"\"b\"\"\r\nc\"\r\n2,\r\n\"\",\"\xc3\xa9\"\r\n\\.\r\nignored\r\n";
        let (rows, error) =
            decode_chunks(TextDecoder::new(&options, NO_COLUMNS).unwrap(), &[input]);
        assert!(error.is_none());
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].fields, [s("1"), s("a,\"b\"\r\nc")]);
        assert_chunking_invariant(&options, input);
        let mut options = csv_opts();
        options.escape = b'\\';
        assert_chunking_invariant(&options, b"\"a\\\"b\\\\\",\"\\\\\"\nc,\"d\ne\"\n");
        assert_chunking_invariant(&csv_opts(), b"a,\"unterminated\nb\n");
    }

    #[test]
    fn row_size_limit() {
        let decoder = TextDecoder::new(&text_opts(), NO_COLUMNS)
            .unwrap()
            .with_max_row_bytes(8);
        let (rows, error) = decode_chunks(decoder, &[b"short\n", b"0123456", b"789abc", b"\n"]);
        assert_eq!(rows.len(), 1);
        assert_eq!(error.unwrap().code, sqlstate::PROGRAM_LIMIT_EXCEEDED);
        let decoder = BinaryDecoder::new().with_max_row_bytes(16);
        let mut input = binary_header();
        input.extend_from_slice(&1i16.to_be_bytes());
        input.extend_from_slice(&1000i32.to_be_bytes());
        let (_, error) = decode_chunks(decoder, &[&input]);
        assert_eq!(error.unwrap().code, sqlstate::PROGRAM_LIMIT_EXCEEDED);
    }

    #[test]
    fn memory_stays_bounded() {
        // Many rows streamed in small chunks: the buffer never grows past a row and a chunk.
        let mut decoder = TextDecoder::new(&text_opts(), NO_COLUMNS).unwrap();
        let row = b"12345\tsome text value\t\\N\n";
        let input: Vec<u8> = row
            .iter()
            .copied()
            .cycle()
            .take(row.len() * 10_000)
            .collect();
        let mut count = 0;
        for chunk in input.chunks(37) {
            decoder.feed(chunk);
            while let Some(r) = decoder.next_row().unwrap() {
                assert_eq!(r.fields.len(), 3);
                count += 1;
            }
            assert!(decoder.input.pending() < row.len() + 37);
            assert!(decoder.input.data.len() < 2 * (row.len() + 37));
        }
        decoder.finish();
        assert_eq!(decoder.next_row().unwrap(), None);
        assert_eq!((count, decoder.line()), (10_000, 10_000));
    }

    fn round_trip(options: &CopyOptions, rows: &[Vec<Option<&str>>]) {
        let encoder = CopyEncoder::new(options, &["c1", "c2", "c3"]).unwrap();
        let mut out = Vec::new();
        encoder.write_start(&mut out);
        for row in rows {
            encoder.write_row(&mut out, row).unwrap();
        }
        encoder.write_end(&mut out);
        let decoded = text(options, &out).unwrap();
        let decoded: Vec<Vec<Option<&str>>> = decoded
            .iter()
            .map(|r| r.fields.iter().map(|f| f.as_deref()).collect())
            .collect();
        assert_eq!(
            decoded,
            rows,
            "encoded: {:?}",
            String::from_utf8_lossy(&out)
        );
        assert_chunking_invariant(options, &out);
    }

    fn awkward_rows() -> Vec<Vec<Option<&'static str>>> {
        vec![
            vec![Some(""), None, Some("\\N")],
            vec![
                Some("a\tb,c;d"),
                Some("\"quoted\" 'x'"),
                Some("back\\slash"),
            ],
            vec![Some("line\nbreak"), Some("cr\rlf\r\n"), Some("\\.")],
            vec![Some("\\."), Some("NA"), Some("\x08\x0c\x0b\x01é漢字")],
            vec![Some("  spaces  "), Some(","), Some("\"")],
            vec![Some("\\"), Some("\\\\."), Some("\\x41\\101")],
        ]
    }

    #[test]
    fn encode_decode_round_trips() {
        let rows = awkward_rows();
        round_trip(&text_opts(), &rows);
        round_trip(&csv_opts(), &rows);
        let mut options = text_opts();
        options.header = true;
        options.delimiter = b'|';
        options.null = "NA".into();
        round_trip(&options, &rows);
        let mut options = csv_opts();
        options.header = true;
        options.delimiter = b';';
        options.quote = b'\'';
        options.escape = b'\\';
        options.null = "\\N".into();
        round_trip(&options, &rows);
        let mut options = csv_opts();
        options.force_quote = ColumnList::All;
        round_trip(&options, &rows);
        // A lone "\." in a single-column CSV row must not read as the end marker.
        let encoder = CopyEncoder::new(&csv_opts(), &["c"]).unwrap();
        let mut out = Vec::new();
        encoder.write_row(&mut out, &[Some("\\.")]).unwrap();
        encoder.write_row(&mut out, &[Some("after")]).unwrap();
        assert_eq!(
            fields(&csv_opts(), std::str::from_utf8(&out).unwrap()).len(),
            2
        );
    }

    #[test]
    fn text_encoding_matches_postgres() {
        let encoder = CopyEncoder::new(&text_opts(), NO_COLUMNS).unwrap();
        let mut out = Vec::new();
        encoder
            .write_row(
                &mut out,
                &[Some("a\tb\nc\\d\r\x08\x0c\x0b\x01"), None, Some("")],
            )
            .unwrap();
        assert_eq!(out, b"a\\tb\\nc\\\\d\\r\\b\\f\\v\x01\t\\N\t\n");
        let mut options = text_opts();
        options.delimiter = b',';
        let encoder = CopyEncoder::new(&options, NO_COLUMNS).unwrap();
        let mut out = Vec::new();
        encoder
            .write_row(&mut out, &[Some("a,b"), Some("c")])
            .unwrap();
        assert_eq!(out, b"a\\,b,c\n");
    }

    #[test]
    fn csv_encoding_matches_postgres() {
        let mut options = csv_opts();
        options.header = true;
        options.force_quote = ColumnList::Named(vec!["b".into()]);
        let encoder = CopyEncoder::new(&options, &["a", "b", "c,d"]).unwrap();
        let mut out = Vec::new();
        encoder.write_start(&mut out);
        encoder
            .write_row(&mut out, &[Some("x"), Some("y"), Some("")])
            .unwrap();
        encoder
            .write_row(&mut out, &[None, None, Some("say \"hi\"")])
            .unwrap();
        encoder
            .write_row(&mut out, &[Some("\\.x"), Some("a\nb"), Some("p q")])
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a,b,\"c,d\"\nx,\"y\",\"\"\n,,\"say \"\"hi\"\"\"\n\"\\.x\",\"a\nb\",p q\n"
        );
        let mut options = csv_opts();
        options.escape = b'\\';
        let encoder = CopyEncoder::new(&options, NO_COLUMNS).unwrap();
        let mut out = Vec::new();
        encoder
            .write_row(&mut out, &[Some("a\"b\\c"), Some("plain\\")])
            .unwrap();
        assert_eq!(out, b"\"a\\\"b\\\\c\",plain\\\n");
        options.force_quote = ColumnList::Named(vec!["nope".into()]);
        assert_eq!(
            CopyEncoder::new(&options, &["a"]).unwrap_err().code,
            sqlstate::INVALID_COLUMN_REFERENCE
        );
    }

    fn binary_header() -> Vec<u8> {
        let mut out = Vec::new();
        let encoder = CopyEncoder::new(&CopyOptions::new(CopyFormat::Binary), NO_COLUMNS).unwrap();
        encoder.write_start(&mut out);
        out
    }

    type RawRows = Vec<Vec<Option<Vec<u8>>>>;

    fn binary_sample() -> (Vec<u8>, RawRows) {
        let rows: RawRows = vec![
            vec![Some(vec![0, 0, 0, 42]), None, Some(b"hello".to_vec())],
            vec![Some(vec![]), Some(vec![0xff; 300]), None],
            vec![],
        ];
        let encoder = CopyEncoder::new(&CopyOptions::new(CopyFormat::Binary), NO_COLUMNS).unwrap();
        let mut out = Vec::new();
        encoder.write_start(&mut out);
        for row in &rows {
            encoder.write_row(&mut out, row).unwrap();
        }
        encoder.write_end(&mut out);
        (out, rows)
    }

    fn binary(chunks: &[&[u8]]) -> (Vec<BinaryRow>, Option<KuraError>) {
        decode_chunks(BinaryDecoder::new(), chunks)
    }

    #[test]
    fn binary_round_trip_at_every_split() {
        let (out, rows) = binary_sample();
        assert_eq!(&out[..11], BINARY_SIGNATURE);
        assert_eq!(&out[out.len() - 2..], &[0xff, 0xff]);
        let (decoded, error) = binary(&[&out]);
        assert!(error.is_none(), "{error:?}");
        let decoded_fields: RawRows = decoded
            .iter()
            .map(|r| {
                r.fields
                    .iter()
                    .map(|f| f.as_ref().map(|b| b.to_vec()))
                    .collect()
            })
            .collect();
        assert_eq!(decoded_fields, rows);
        assert_eq!(
            decoded.iter().map(|r| r.line).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        for cut in 0..=out.len() {
            let (a, b) = out.split_at(cut);
            assert_eq!(binary(&[a, b]), (decoded.clone(), None), "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = out.chunks(1).collect();
        assert_eq!(binary(&bytes), (decoded, None));
    }

    #[test]
    fn binary_header_extension_and_missing_trailer() {
        let mut input = BINARY_SIGNATURE.to_vec();
        input.extend_from_slice(&0i32.to_be_bytes());
        input.extend_from_slice(&5i32.to_be_bytes());
        input.extend_from_slice(b"xxxxx");
        input.extend_from_slice(&1i16.to_be_bytes());
        input.extend_from_slice(&2i32.to_be_bytes());
        input.extend_from_slice(b"ab");
        let (rows, error) = binary(&[&input[..14], &input[14..21], &input[21..]]);
        assert!(error.is_none());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].fields, [Some(Bytes::from_static(b"ab"))]);
    }

    #[test]
    fn malformed_binary() {
        let (good, _) = binary_sample();
        let check = |input: &[u8], message: &str| {
            let (_, error) = binary(&[input]);
            let error = error.unwrap_or_else(|| panic!("accepted: {input:?}"));
            assert_eq!(error.code, sqlstate::BAD_COPY_FILE_FORMAT);
            assert_eq!(error.message, message);
        };
        check(b"PGCOPY\nXXX", "COPY file signature not recognized");
        check(b"PGCO", "COPY file signature not recognized");
        check(b"", "COPY file signature not recognized");
        check(&good[..13], "invalid COPY file header (missing flags)");
        check(&good[..17], "invalid COPY file header (missing length)");
        let mut oids = good.clone();
        oids[12] = 1;
        check(&oids, "invalid COPY file header (WITH OIDS)");
        let mut critical = good.clone();
        critical[11] = 1;
        check(&critical, "unrecognized critical flags in COPY file header");
        let mut long_extension = good[..19].to_vec();
        long_extension[18] = 10;
        long_extension.extend_from_slice(b"abc");
        check(&long_extension, "invalid COPY file header (wrong length)");
        // Truncated anywhere inside a tuple.
        for cut in 20..good.len() - 2 {
            let (_, error) = binary(&[&good[..cut]]);
            let error = error.unwrap_or_else(|| {
                // Cuts at tuple boundaries are a complete input without a trailer.
                assert!([42, 356].contains(&cut), "cut at {cut} accepted");
                KuraError::new(
                    sqlstate::BAD_COPY_FILE_FORMAT,
                    "unexpected EOF in COPY data",
                )
            });
            assert_eq!(error.message, "unexpected EOF in COPY data", "cut at {cut}");
        }
        let mut extra = good.clone();
        extra.push(0);
        check(&extra, "received copy data after EOF marker");
        let (_, error) = binary(&[&good, b"x"]);
        assert_eq!(
            error.unwrap().message,
            "received copy data after EOF marker"
        );
        let mut bad_size = good[..19].to_vec();
        bad_size.extend_from_slice(&1i16.to_be_bytes());
        bad_size.extend_from_slice(&(-2i32).to_be_bytes());
        check(&bad_size, "invalid field size");
        let mut bad_count = good[..19].to_vec();
        bad_count.extend_from_slice(&(-3i16).to_be_bytes());
        check(&bad_count, "invalid row field count -3");
    }

    /// A small deterministic generator (xorshift) for the randomized tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn random_text_and_csv_inputs_never_panic_and_ignore_chunking() {
        let alphabet: &[u8] = b"a,;\t\\\"'\n\r.N07xf\xc3\xa9\xff\0 ";
        let mut options_list = vec![text_opts(), csv_opts()];
        let mut with_header = csv_opts();
        with_header.header = true;
        with_header.escape = b'\\';
        options_list.push(with_header);
        let mut custom = text_opts();
        custom.delimiter = b';';
        custom.null = "N".into();
        custom.header = true;
        options_list.push(custom);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let len = rng.below(24);
            let input: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect();
            let options = &options_list[rng.below(options_list.len())];
            let whole = decode_chunks(TextDecoder::new(options, NO_COLUMNS).unwrap(), &[&input]);
            let cut = rng.below(len + 1);
            let cut2 = cut + rng.below(len - cut + 1);
            let split = decode_chunks(
                TextDecoder::new(options, NO_COLUMNS).unwrap(),
                &[&input[..cut], &input[cut..cut2], &input[cut2..]],
            );
            assert_eq!(split, whole, "{options:?} {input:?} cut at {cut}, {cut2}");
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            let single = decode_chunks(TextDecoder::new(options, NO_COLUMNS).unwrap(), &bytes);
            assert_eq!(single, whole, "{options:?} {input:?} byte by byte");
        }
    }

    #[test]
    fn random_encode_decode_round_trips() {
        let alphabet = [
            "a", ",", ";", "\t", "\\", "\"", "'", "\n", "\r", ".", "N", "NA", "é", "\\.", " ", "",
        ];
        let mut rng = Rng(42);
        let mut options_list = vec![text_opts(), csv_opts()];
        let mut custom_text = text_opts();
        custom_text.null = "NA".into();
        custom_text.delimiter = b';';
        options_list.push(custom_text);
        let mut custom_csv = csv_opts();
        custom_csv.null = "NA".into();
        custom_csv.quote = b'\'';
        custom_csv.escape = b'\\';
        custom_csv.header = true;
        options_list.push(custom_csv);
        for _ in 0..500 {
            let rows: Vec<Vec<Option<String>>> = (0..rng.below(4))
                .map(|_| {
                    (0..3)
                        .map(|_| {
                            (rng.below(5) > 0).then(|| {
                                (0..rng.below(4))
                                    .map(|_| alphabet[rng.below(alphabet.len())])
                                    .collect::<String>()
                            })
                        })
                        .collect()
                })
                .collect();
            for options in &options_list {
                // Text cannot tell an empty value from an empty NULL string; skip that case.
                let ambiguous = !options.is_csv()
                    && options.null.is_empty()
                    && rows.iter().flatten().any(|f| f.as_deref() == Some(""));
                if ambiguous {
                    continue;
                }
                let borrowed: Vec<Vec<Option<&str>>> = rows
                    .iter()
                    .map(|r| r.iter().map(|f| f.as_deref()).collect())
                    .collect();
                round_trip(options, &borrowed);
            }
        }
    }

    #[test]
    fn random_binary_corruption_never_panics() {
        let (good, _) = binary_sample();
        let mut rng = Rng(7);
        for _ in 0..2000 {
            let mut input = good.clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(input.len());
                input[at] = rng.next() as u8;
            }
            input.truncate(rng.below(input.len() + 1).max(input.len() - rng.below(4)));
            let whole = binary(&[&input]);
            let cut = rng.below(input.len() + 1);
            assert_eq!(
                binary(&[&input[..cut], &input[cut..]]),
                whole,
                "{input:?} cut at {cut}"
            );
        }
    }

    #[test]
    fn text_null_lookalike_is_escaped() {
        let mut options = text_opts();
        options.null = "NA".into();
        let encoder = CopyEncoder::new(&options, NO_COLUMNS).unwrap();
        let mut out = Vec::new();
        encoder
            .write_row(&mut out, &[Some("NA"), None, Some("NAB")])
            .unwrap();
        assert_eq!(out, b"\\116A\tNA\tNAB\n");
        assert_eq!(
            fields(&options, std::str::from_utf8(&out).unwrap()),
            [[s("NA"), None, s("NAB")]]
        );
    }

    #[test]
    fn options_from_sql_drive_the_decoder() {
        let statements = crate::sql::dialect::parse_sql(
            "COPY t (a, b) FROM STDIN WITH CSV HEADER FORCE NOT NULL b",
        )
        .unwrap();
        let datafusion::sql::sqlparser::ast::Statement::Copy {
            options,
            legacy_options,
            ..
        } = &statements[0]
        else {
            panic!("not a COPY");
        };
        let options = CopyOptions::from_ast(options, legacy_options, true).unwrap();
        let decoder = TextDecoder::new(&options, &["a", "b"]).unwrap();
        let (rows, error) = decode_chunks(decoder, &[b"a,b\n,\n"]);
        assert!(error.is_none());
        assert_eq!(rows[0].fields, [None, s("")]);
        assert_eq!(rows[0].line, 2);
    }

    #[test]
    fn text_decoder_rejects_binary_options() {
        let binary = CopyOptions::new(CopyFormat::Binary);
        assert!(TextDecoder::new(&binary, NO_COLUMNS).is_err());
    }

    #[test]
    fn error_helpers_and_context() {
        assert_eq!(extra_data_error().code, sqlstate::BAD_COPY_FILE_FORMAT);
        assert_eq!(
            missing_data_error("b").message,
            "missing data for column \"b\""
        );
        assert_eq!(
            binary_field_count_error(2, 3).message,
            "row field count is 2, expected 3"
        );
        assert_eq!(
            copy_context("t", 3, None, ContextValue::Unknown),
            "COPY t, line 3"
        );
        assert_eq!(
            copy_context("t", 3, None, ContextValue::Text("1\t2")),
            "COPY t, line 3: \"1\t2\""
        );
        assert_eq!(
            copy_context("t", 3, Some("a"), ContextValue::Unknown),
            "COPY t, line 3, column a"
        );
        assert_eq!(
            copy_context("t", 3, Some("a"), ContextValue::Null),
            "COPY t, line 3, column a: null input"
        );
        assert_eq!(
            copy_context("t", 1, Some("a"), ContextValue::Text("xyz")),
            "COPY t, line 1, column a: \"xyz\""
        );
        let long = "é".repeat(80);
        let context = copy_context("t", 1, Some("a"), ContextValue::Text(&long));
        assert!(context.ends_with("...\""));
        assert_eq!(
            context.len(),
            "COPY t, line 1, column a: \"".len() + 100 + 4
        );
    }
}
