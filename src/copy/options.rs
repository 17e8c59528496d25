//! COPY options: turns the option lists sqlparser produces for `COPY ... WITH (...)` and the
//! pre-9.0 legacy syntax (`WITH CSV HEADER`, `BINARY`, `DELIMITER AS ...`) into one validated
//! [`CopyOptions`].
//!
//! Invariants: a `CopyOptions` returned by [`CopyOptions::from_ast`] obeys every rule
//! PostgreSQL's `ProcessCopyOptions` enforces (one-byte ASCII delimiter, quote and escape; the
//! delimiter differs from the quote and does not occur in the NULL string; CSV-only options only
//! in CSV mode; direction-only options only in their direction), with defaults filled in. Each
//! option may be given once across both syntaxes (42601 otherwise). Column names in the FORCE_*
//! options are folded like identifiers and kept as names; [`ColumnList::mask`] resolves them
//! against the columns a COPY names.

use datafusion::sql::sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption, Ident};

use crate::error::{KuraError, Result, sqlstate};
use crate::sql::names::normalize;

/// The data format of a COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
    Binary,
    /// A Parquet file (Kura's extension, spelled as DuckDB spells it).
    Parquet,
}

/// The columns a FORCE_QUOTE, FORCE_NOT_NULL or FORCE_NULL option applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ColumnList {
    /// The option was not given.
    #[default]
    None,
    /// `*`: every column (sqlparser cannot parse it yet; callers may set it).
    All,
    /// The named columns, folded like identifiers.
    Named(Vec<String>),
}

impl ColumnList {
    pub fn is_none(&self) -> bool {
        matches!(self, ColumnList::None)
    }

    /// One flag per entry of `columns` (the columns the COPY transfers, in order): true where
    /// the option applies. A name not among `columns` is 42P10, as PostgreSQL reports it;
    /// `option` names the option in that message (e.g. `FORCE_QUOTE`).
    pub fn mask<S: AsRef<str>>(&self, option: &str, columns: &[S]) -> Result<Vec<bool>> {
        match self {
            ColumnList::None => Ok(vec![false; columns.len()]),
            ColumnList::All => Ok(vec![true; columns.len()]),
            ColumnList::Named(names) => {
                let mut mask = vec![false; columns.len()];
                for name in names {
                    let index =
                        columns
                            .iter()
                            .position(|c| c.as_ref() == name)
                            .ok_or_else(|| {
                                KuraError::new(
                                    sqlstate::INVALID_COLUMN_REFERENCE,
                                    format!("{option} column \"{name}\" not referenced by COPY"),
                                )
                            })?;
                    mask[index] = true;
                }
                Ok(mask)
            }
        }
    }
}

/// Validated COPY options with PostgreSQL's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    pub format: CopyFormat,
    /// Field separator: tab for text, comma for CSV (unused in binary).
    pub delimiter: u8,
    /// The string that represents SQL NULL: `\N` for text, empty for CSV.
    pub null: String,
    /// COPY FROM skips the first line; COPY TO writes the column names first.
    pub header: bool,
    /// CSV quote character (default `"`).
    pub quote: u8,
    /// CSV escape character inside quotes (default: the quote).
    pub escape: u8,
    /// CSV, COPY TO: columns whose non-NULL values are always quoted.
    pub force_quote: ColumnList,
    /// CSV, COPY FROM: columns whose unquoted NULL string is read as that string.
    pub force_not_null: ColumnList,
    /// CSV, COPY FROM: columns whose quoted NULL string is read as NULL too.
    pub force_null: ColumnList,
    /// FREEZE was requested (accepted and ignored: rows are always visible after commit).
    pub freeze: bool,
}

impl CopyOptions {
    /// The defaults of a format, as if only `FORMAT` had been given.
    pub fn new(format: CopyFormat) -> Self {
        let csv = format == CopyFormat::Csv;
        Self {
            format,
            delimiter: if csv { b',' } else { b'\t' },
            null: if csv {
                String::new()
            } else {
                "\\N".to_string()
            },
            header: false,
            quote: b'"',
            escape: b'"',
            force_quote: ColumnList::None,
            force_not_null: ColumnList::None,
            force_null: ColumnList::None,
            freeze: false,
        }
    }

    pub fn is_csv(&self) -> bool {
        self.format == CopyFormat::Csv
    }

    pub fn is_binary(&self) -> bool {
        self.format == CopyFormat::Binary
    }

    pub fn is_parquet(&self) -> bool {
        self.format == CopyFormat::Parquet
    }

    /// The format code CopyInResponse / CopyOutResponse announce: 1 for binary data.
    pub fn wire_format(&self) -> i8 {
        i8::from(matches!(
            self.format,
            CopyFormat::Binary | CopyFormat::Parquet
        ))
    }

    /// Options of `Statement::Copy`: `options` is the parenthesized list, `legacy` the old
    /// syntax; `is_from` is true for COPY FROM.
    pub fn from_ast(
        options: &[CopyOption],
        legacy: &[CopyLegacyOption],
        is_from: bool,
    ) -> Result<Self> {
        let mut spec = Spec::default();
        for option in options {
            spec.apply_option(option)?;
        }
        for option in legacy {
            spec.apply_legacy(option)?;
        }
        spec.finish(is_from)
    }
}

/// The options as given, before defaults; `Some` means "specified".
#[derive(Default)]
struct Spec {
    format: Option<CopyFormat>,
    freeze: Option<bool>,
    delimiter: Option<char>,
    null: Option<String>,
    header: Option<bool>,
    quote: Option<char>,
    escape: Option<char>,
    force_quote: Option<ColumnList>,
    force_not_null: Option<ColumnList>,
    force_null: Option<ColumnList>,
    encoding: Option<String>,
}

fn set<T>(slot: &mut Option<T>, value: T) -> Result<()> {
    if slot.is_some() {
        return Err(KuraError::syntax("conflicting or redundant options"));
    }
    *slot = Some(value);
    Ok(())
}

fn names(columns: &[Ident]) -> ColumnList {
    ColumnList::Named(columns.iter().map(normalize).collect())
}

fn feature(message: impl Into<String>) -> KuraError {
    KuraError::unsupported(message)
}

fn invalid(message: impl Into<String>) -> KuraError {
    KuraError::new(sqlstate::INVALID_PARAMETER_VALUE, message)
}

impl Spec {
    fn apply_option(&mut self, option: &CopyOption) -> Result<()> {
        match option {
            CopyOption::Format(name) => {
                let name = normalize(name);
                let format = match name.as_str() {
                    "text" => CopyFormat::Text,
                    "csv" => CopyFormat::Csv,
                    "binary" => CopyFormat::Binary,
                    "parquet" => CopyFormat::Parquet,
                    _ => return Err(invalid(format!("COPY format \"{name}\" not recognized"))),
                };
                set(&mut self.format, format)
            }
            CopyOption::Freeze(on) => set(&mut self.freeze, *on),
            CopyOption::Delimiter(c) => set(&mut self.delimiter, *c),
            CopyOption::Null(s) => set(&mut self.null, s.clone()),
            CopyOption::Header(on) => set(&mut self.header, *on),
            CopyOption::Quote(c) => set(&mut self.quote, *c),
            CopyOption::Escape(c) => set(&mut self.escape, *c),
            CopyOption::ForceQuote(cols) => set(&mut self.force_quote, names(cols)),
            CopyOption::ForceNotNull(cols) => set(&mut self.force_not_null, names(cols)),
            CopyOption::ForceNull(cols) => set(&mut self.force_null, names(cols)),
            CopyOption::Encoding(e) => set(&mut self.encoding, e.clone()),
        }
    }

    fn apply_legacy(&mut self, option: &CopyLegacyOption) -> Result<()> {
        match option {
            CopyLegacyOption::Binary => set(&mut self.format, CopyFormat::Binary),
            CopyLegacyOption::Delimiter(c) => set(&mut self.delimiter, *c),
            CopyLegacyOption::Null(s) => set(&mut self.null, s.clone()),
            CopyLegacyOption::Header => set(&mut self.header, true),
            CopyLegacyOption::Csv(csv_options) => {
                set(&mut self.format, CopyFormat::Csv)?;
                for o in csv_options {
                    match o {
                        CopyLegacyCsvOption::Header => set(&mut self.header, true)?,
                        CopyLegacyCsvOption::Quote(c) => set(&mut self.quote, *c)?,
                        CopyLegacyCsvOption::Escape(c) => set(&mut self.escape, *c)?,
                        CopyLegacyCsvOption::ForceQuote(cols) => {
                            set(&mut self.force_quote, names(cols))?
                        }
                        CopyLegacyCsvOption::ForceNotNull(cols) => {
                            set(&mut self.force_not_null, names(cols))?
                        }
                    }
                }
                Ok(())
            }
            // Redshift's options (and its argument-less ESCAPE) are not PostgreSQL syntax.
            other => {
                let text = other.to_string();
                let keyword = text.split_whitespace().next().unwrap_or("");
                Err(KuraError::syntax(format!(
                    "syntax error at or near \"{keyword}\""
                )))
            }
        }
    }

    /// Defaults and cross-option checks, in the order PostgreSQL makes them.
    fn finish(self, is_from: bool) -> Result<CopyOptions> {
        let format = self.format.unwrap_or(CopyFormat::Text);
        let csv = format == CopyFormat::Csv;
        // Binary and Parquet data carry their own framing and NULLs.
        let binary = matches!(format, CopyFormat::Binary | CopyFormat::Parquet);
        let mode = if format == CopyFormat::Parquet {
            "PARQUET"
        } else {
            "BINARY"
        };

        if binary && self.delimiter.is_some() {
            return Err(KuraError::syntax(format!(
                "cannot specify DELIMITER in {mode} mode"
            )));
        }
        if binary && self.null.is_some() {
            return Err(KuraError::syntax(format!(
                "cannot specify NULL in {mode} mode"
            )));
        }
        if let Some(encoding) = &self.encoding {
            let folded: String = encoding
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .collect();
            if folded != "utf8" && folded != "unicode" {
                return Err(
                    feature(format!("COPY encoding \"{encoding}\" is not supported"))
                        .with_hint("Only UTF8 is supported."),
                );
            }
        }

        let delimiter = self.delimiter.unwrap_or(if csv { ',' } else { '\t' });
        let null = self
            .null
            .unwrap_or_else(|| if csv { String::new() } else { "\\N".into() });
        if !delimiter.is_ascii() || delimiter == '\0' {
            return Err(feature(
                "COPY delimiter must be a single one-byte character",
            ));
        }
        let delimiter = delimiter as u8;
        if delimiter == b'\r' || delimiter == b'\n' {
            return Err(invalid(
                "COPY delimiter cannot be newline or carriage return",
            ));
        }
        if null.contains(['\r', '\n']) {
            return Err(invalid(
                "COPY null representation cannot use newline or carriage return",
            ));
        }
        if !csv && b"\\.abcdefghijklmnopqrstuvwxyz0123456789".contains(&delimiter) {
            return Err(invalid(format!(
                "COPY delimiter cannot be \"{}\"",
                delimiter as char
            )));
        }

        if binary && self.header == Some(true) {
            return Err(feature(format!("cannot specify HEADER in {mode} mode")));
        }

        if !csv && self.quote.is_some() {
            return Err(feature("COPY quote available only in CSV mode"));
        }
        let quote = self.quote.unwrap_or('"');
        if !quote.is_ascii() || quote == '\0' {
            return Err(feature("COPY quote must be a single one-byte character"));
        }
        let quote = quote as u8;
        if csv && delimiter == quote {
            return Err(invalid("COPY delimiter and quote must be different"));
        }
        if !csv && self.escape.is_some() {
            return Err(feature("COPY escape available only in CSV mode"));
        }
        let escape = self.escape.unwrap_or(quote as char);
        if !escape.is_ascii() || escape == '\0' {
            return Err(feature("COPY escape must be a single one-byte character"));
        }
        let escape = escape as u8;
        // PostgreSQL does not check this, but a line break as quote or escape makes the end of
        // a CSV line ambiguous.
        if csv && [quote, escape].iter().any(|c| *c == b'\r' || *c == b'\n') {
            return Err(invalid(
                "COPY quote and escape cannot be newline or carriage return",
            ));
        }

        let force_quote = self.force_quote.unwrap_or_default();
        if !force_quote.is_none() {
            if !csv {
                return Err(feature("COPY force quote available only in CSV mode"));
            }
            if is_from {
                return Err(feature("COPY force quote only available using COPY TO"));
            }
        }
        let force_not_null = self.force_not_null.unwrap_or_default();
        if !force_not_null.is_none() {
            if !csv {
                return Err(feature("COPY force not null available only in CSV mode"));
            }
            if !is_from {
                return Err(feature(
                    "COPY force not null only available using COPY FROM",
                ));
            }
        }
        let force_null = self.force_null.unwrap_or_default();
        if !force_null.is_none() {
            if !csv {
                return Err(feature("COPY force null available only in CSV mode"));
            }
            if !is_from {
                return Err(feature("COPY force null only available using COPY FROM"));
            }
        }

        if null.as_bytes().contains(&delimiter) {
            return Err(invalid(
                "COPY delimiter must not appear in the NULL specification",
            ));
        }
        if csv && null.as_bytes().contains(&quote) {
            return Err(invalid(
                "CSV quote character must not appear in the NULL specification",
            ));
        }
        let freeze = self.freeze.unwrap_or(false);
        if freeze && !is_from {
            return Err(feature("COPY FREEZE cannot be used with COPY TO"));
        }

        Ok(CopyOptions {
            format,
            delimiter,
            null,
            header: self.header.unwrap_or(false),
            quote,
            escape,
            force_quote,
            force_not_null,
            force_null,
            freeze,
        })
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::ast::Statement;

    use super::*;
    use crate::sql::dialect::parse_sql;

    fn parse(sql: &str) -> Result<CopyOptions> {
        let statements = parse_sql(sql)?;
        match statements.as_slice() {
            [
                Statement::Copy {
                    to,
                    options,
                    legacy_options,
                    ..
                },
            ] => CopyOptions::from_ast(options, legacy_options, !to),
            other => panic!("not a COPY: {other:?}"),
        }
    }

    fn code(sql: &str) -> &'static str {
        match parse(sql) {
            Ok(o) => panic!("{sql} was accepted: {o:?}"),
            Err(e) => e.code,
        }
    }

    #[test]
    fn defaults_per_format() {
        let text = parse("COPY t FROM STDIN").unwrap();
        assert_eq!(text, CopyOptions::new(CopyFormat::Text));
        assert_eq!(text.delimiter, b'\t');
        assert_eq!(text.null, "\\N");
        let csv = parse("COPY t FROM STDIN WITH (FORMAT csv)").unwrap();
        assert_eq!(csv, CopyOptions::new(CopyFormat::Csv));
        assert_eq!((csv.delimiter, csv.null.as_str()), (b',', ""));
        assert_eq!((csv.quote, csv.escape), (b'"', b'"'));
        let bin = parse("COPY t TO STDOUT (FORMAT binary)").unwrap();
        assert!(bin.is_binary());
    }

    #[test]
    fn modern_options() {
        let o = parse(
            "COPY t (a, b) FROM STDIN WITH (FORMAT csv, DELIMITER ';', NULL 'NA', HEADER, \
             QUOTE '''', ESCAPE '\\', FORCE_NOT_NULL (a), FORCE_NULL (\"B\"), ENCODING 'utf-8', FREEZE)",
        )
        .unwrap();
        assert!(o.is_csv());
        assert_eq!(o.delimiter, b';');
        assert_eq!(o.null, "NA");
        assert!(o.header && o.freeze);
        assert_eq!((o.quote, o.escape), (b'\'', b'\\'));
        assert_eq!(o.force_not_null, ColumnList::Named(vec!["a".into()]));
        assert_eq!(o.force_null, ColumnList::Named(vec!["B".into()]));
        let o = parse("COPY t TO STDOUT (FORMAT CSV, FORCE_QUOTE (X, y), HEADER false)").unwrap();
        assert_eq!(
            o.force_quote,
            ColumnList::Named(vec!["x".into(), "y".into()])
        );
        assert!(!o.header);
        // PostgreSQL 15+ accepts HEADER in text format.
        assert!(parse("COPY t FROM STDIN (HEADER)").unwrap().header);
    }

    #[test]
    fn legacy_options() {
        let o = parse("COPY t FROM STDIN WITH CSV HEADER").unwrap();
        assert!(o.is_csv() && o.header);
        let o = parse("COPY t FROM STDIN WITH DELIMITER AS '|' NULL AS 'nil'").unwrap();
        assert_eq!(
            (o.format, o.delimiter, o.null.as_str()),
            (CopyFormat::Text, b'|', "nil")
        );
        let o = parse("COPY t TO STDOUT WITH BINARY").unwrap();
        assert!(o.is_binary());
        let o = parse("COPY t TO STDOUT CSV QUOTE AS '$' ESCAPE AS '!' FORCE QUOTE a, b").unwrap();
        assert_eq!((o.quote, o.escape), (b'$', b'!'));
        assert_eq!(
            o.force_quote,
            ColumnList::Named(vec!["a".into(), "b".into()])
        );
        let o = parse("COPY t FROM STDIN CSV FORCE NOT NULL a").unwrap();
        assert_eq!(o.force_not_null, ColumnList::Named(vec!["a".into()]));
    }

    #[test]
    fn validation_errors() {
        use sqlstate::*;
        let cases = [
            ("COPY t FROM STDIN (FORMAT json)", INVALID_PARAMETER_VALUE),
            ("COPY t FROM STDIN (FORMAT csv, FORMAT csv)", SYNTAX_ERROR),
            (
                "COPY t FROM STDIN (DELIMITER ',', DELIMITER ';')",
                SYNTAX_ERROR,
            ),
            ("COPY t FROM STDIN (FORMAT csv) CSV", SYNTAX_ERROR),
            ("COPY t FROM STDIN (NULL 'a', NULL 'b')", SYNTAX_ERROR),
            ("COPY t FROM STDIN (HEADER, HEADER)", SYNTAX_ERROR),
            (
                "COPY t FROM STDIN (FORMAT binary, DELIMITER ',')",
                SYNTAX_ERROR,
            ),
            ("COPY t FROM STDIN (FORMAT binary, NULL 'x')", SYNTAX_ERROR),
            (
                "COPY t FROM STDIN (FORMAT binary, HEADER)",
                FEATURE_NOT_SUPPORTED,
            ),
            (
                "COPY t FROM STDIN (FORMAT binary, QUOTE '\"')",
                FEATURE_NOT_SUPPORTED,
            ),
            (
                "COPY t FROM STDIN (DELIMITER '\\')",
                INVALID_PARAMETER_VALUE,
            ),
            ("COPY t FROM STDIN (DELIMITER 'a')", INVALID_PARAMETER_VALUE),
            ("COPY t FROM STDIN (DELIMITER '7')", INVALID_PARAMETER_VALUE),
            ("COPY t FROM STDIN (DELIMITER '.')", INVALID_PARAMETER_VALUE),
            (
                "COPY t FROM STDIN (DELIMITER E'\\n')",
                INVALID_PARAMETER_VALUE,
            ),
            (
                "COPY t FROM STDIN (FORMAT csv, DELIMITER E'\\r')",
                INVALID_PARAMETER_VALUE,
            ),
            ("COPY t FROM STDIN (NULL E'a\\nb')", INVALID_PARAMETER_VALUE),
            (
                "COPY t FROM STDIN (NULL 'a|b', DELIMITER '|')",
                INVALID_PARAMETER_VALUE,
            ),
            (
                "COPY t FROM STDIN (FORMAT csv, NULL '\"')",
                INVALID_PARAMETER_VALUE,
            ),
            (
                "COPY t FROM STDIN (FORMAT csv, QUOTE ',')",
                INVALID_PARAMETER_VALUE,
            ),
            ("COPY t FROM STDIN (QUOTE '\"')", FEATURE_NOT_SUPPORTED),
            ("COPY t FROM STDIN (ESCAPE '\\')", FEATURE_NOT_SUPPORTED),
            ("COPY t TO STDOUT (FORCE_QUOTE (a))", FEATURE_NOT_SUPPORTED),
            (
                "COPY t FROM STDIN (FORMAT csv, FORCE_QUOTE (a))",
                FEATURE_NOT_SUPPORTED,
            ),
            (
                "COPY t FROM STDIN (FORCE_NOT_NULL (a))",
                FEATURE_NOT_SUPPORTED,
            ),
            (
                "COPY t TO STDOUT (FORMAT csv, FORCE_NOT_NULL (a))",
                FEATURE_NOT_SUPPORTED,
            ),
            ("COPY t FROM STDIN (FORCE_NULL (a))", FEATURE_NOT_SUPPORTED),
            (
                "COPY t TO STDOUT (FORMAT csv, FORCE_NULL (a))",
                FEATURE_NOT_SUPPORTED,
            ),
            (
                "COPY t FROM STDIN (ENCODING 'LATIN1')",
                FEATURE_NOT_SUPPORTED,
            ),
            ("COPY t TO STDOUT (FREEZE)", FEATURE_NOT_SUPPORTED),
            (
                "COPY t FROM STDIN (FORMAT csv, QUOTE E'\\n')",
                INVALID_PARAMETER_VALUE,
            ),
            ("COPY t FROM STDIN GZIP", SYNTAX_ERROR),
        ];
        for (sql, expected) in cases {
            assert_eq!(code(sql), expected, "{sql}");
        }
        // A comma delimiter is fine in text mode; letters are fine in CSV.
        assert_eq!(
            parse("COPY t FROM STDIN (FORMAT csv, DELIMITER 'a')")
                .unwrap()
                .delimiter,
            b'a'
        );
        assert!(parse("COPY t FROM STDIN (FREEZE false)").is_ok());
    }

    #[test]
    fn column_masks() {
        let cols = ["a", "b", "c"];
        assert_eq!(
            ColumnList::None.mask("FORCE_QUOTE", &cols).unwrap(),
            [false; 3]
        );
        assert_eq!(
            ColumnList::All.mask("FORCE_QUOTE", &cols).unwrap(),
            [true; 3]
        );
        let named = ColumnList::Named(vec!["c".into(), "a".into()]);
        assert_eq!(
            named.mask("FORCE_QUOTE", &cols).unwrap(),
            [true, false, true]
        );
        let err = ColumnList::Named(vec!["z".into()])
            .mask("FORCE_NULL", &cols)
            .unwrap_err();
        assert_eq!(err.code, sqlstate::INVALID_COLUMN_REFERENCE);
        assert_eq!(
            err.message,
            "FORCE_NULL column \"z\" not referenced by COPY"
        );
    }
}
