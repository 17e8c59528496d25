//! GridDB's time bucketing with gap filling:
//!
//! ```text
//! SELECT ... FROM t WHERE <key bounded on both sides>
//!   GROUP BY RANGE(key) EVERY (n, unit [, offset [, 'timezone']]) [FILL (LINEAR | NONE | NULL | PREVIOUS)]
//! ```
//!
//! The dialect parses the clause into a marker call, `__kura_range_group(key, n, 'UNIT',
//! offset, 'tz', 'FILL')`, in GROUP BY ([`parse_range_group`]). Before planning,
//! [`Exec::rewrite_range_groups`] turns each SELECT grouped that way into:
//! - an inner aggregate query grouped by `date_bin(n unit, key, origin)`, where the key column
//!   in the select list becomes the bucket start and other plain columns take the value of
//!   the bucket's first row, plus a hidden bucket column;
//! - a [`GapFillTable`] over it that emits one row per bucket between the WHERE bounds and
//!   fills empty buckets as FILL asks (`query/gap_fill.rs`);
//! - and, in place of the SELECT, `SELECT * FROM <that table>`.
//!
//! Invariant: the user's expressions are moved into the generated queries as syntax trees;
//! no SQL text is rewritten.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArgumentClause, FunctionArguments,
    GroupByExpr, Ident, OrderByExpr, OrderByOptions, Query, Select, SelectItem, SetExpr,
    TableFactor, Value,
};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

use super::exec::Exec;
use super::names::normalize;
use super::template::{aliased, function_call, function_with_clauses, parse_expr, parse_query};
use crate::error::{KuraError, Result, sqlstate};
use crate::query::database::TempGuard;
use crate::query::gap_fill::{Fill, GapFillSpec, GapFillTable};

/// The name of the marker call the dialect puts in GROUP BY.
const MARKER: &str = "__kura_range_group";

/// The hidden bucket column of the inner query.
pub const BUCKET_COLUMN: &str = "__kura_bucket";

/// Most buckets one GROUP BY RANGE may generate.
const MAX_BUCKETS: i64 = 10_000_000;

/// `RANGE(key) EVERY (...) [FILL (...)]` in expression position; `None` (parser untouched)
/// unless the tokens start that way.
pub fn parse_range_group(parser: &mut Parser) -> Option<std::result::Result<Expr, ParserError>> {
    if !matches!(&parser.peek_token_ref().token,
        Token::Word(w) if w.keyword == Keyword::RANGE && w.quote_style.is_none())
    {
        return None;
    }
    let start = parser.index();
    let key = (|| {
        parser.next_token();
        let parenthesized = parser.consume_token(&Token::LParen);
        let mut parts = vec![parser.parse_identifier().ok()?];
        while parser.consume_token(&Token::Period) {
            parts.push(parser.parse_identifier().ok()?);
        }
        if parenthesized && !parser.consume_token(&Token::RParen) {
            return None;
        }
        let every = matches!(&parser.peek_token_ref().token,
            Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("EVERY"));
        every.then(|| {
            if parts.len() == 1 {
                Expr::Identifier(parts.remove(0))
            } else {
                Expr::CompoundIdentifier(parts)
            }
        })
    })();
    let Some(key) = key else {
        while parser.index() > start {
            parser.prev_token();
        }
        return None;
    };
    parser.next_token();
    Some(parse_every(parser, key))
}

fn parse_every(parser: &mut Parser, key: Expr) -> std::result::Result<Expr, ParserError> {
    parser.expect_token(&Token::LParen)?;
    let count = parser.parse_literal_uint()?;
    parser.expect_token(&Token::Comma)?;
    let unit = parser.parse_identifier()?.value.to_ascii_uppercase();
    let offset = if parser.consume_token(&Token::Comma) {
        parser.parse_literal_uint()?
    } else {
        0
    };
    let timezone = if parser.consume_token(&Token::Comma) {
        Some(parser.parse_literal_string()?)
    } else {
        None
    };
    parser.expect_token(&Token::RParen)?;
    let fill = if matches!(&parser.peek_token_ref().token,
        Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("FILL"))
    {
        parser.next_token();
        parser.expect_token(&Token::LParen)?;
        let token = parser.next_token();
        let method = match &token.token {
            Token::Word(w) => w.value.to_ascii_uppercase(),
            _ => return parser.expected("LINEAR, NONE, NULL or PREVIOUS", token),
        };
        parser.expect_token(&Token::RParen)?;
        method
    } else {
        "NULL".to_string()
    };
    let number = |n: u64| Expr::value(Value::Number(n.to_string(), false));
    let text = |s: String| Expr::value(Value::SingleQuotedString(s));
    Ok(function_call(
        MARKER,
        vec![
            key,
            number(count),
            text(unit),
            number(offset),
            timezone.map_or(Expr::value(Value::Null), text),
            text(fill),
        ],
    ))
}

/// A decoded marker call.
#[derive(Debug, Clone)]
struct RangeGroup {
    key: Expr,
    count: i64,
    unit_nanos: i64,
    offset_nanos: i64,
    fill: Fill,
}

fn bad(message: impl Into<String>) -> KuraError {
    KuraError::new(sqlstate::INVALID_PARAMETER_VALUE, message)
}

fn unit_nanos(unit: &str) -> Result<i64> {
    Ok(match unit {
        "DAY" => 86_400_000_000_000,
        "HOUR" => 3_600_000_000_000,
        "MINUTE" => 60_000_000_000,
        "SECOND" => 1_000_000_000,
        "MILLISECOND" => 1_000_000,
        "MICROSECOND" => 1_000,
        "NANOSECOND" => 1,
        "YEAR" | "MONTH" => {
            return Err(bad(
                "GROUP BY RANGE does not support YEAR or MONTH: their length varies",
            ));
        }
        other => return Err(bad(format!("unknown GROUP BY RANGE unit {other}"))),
    })
}

/// `Z`, `±hh:mm` or `±hhmm` as nanoseconds east of UTC.
fn zone_nanos(zone: &str) -> Result<i64> {
    if zone.eq_ignore_ascii_case("Z") {
        return Ok(0);
    }
    let invalid = || {
        bad(format!(
            "invalid time zone '{zone}': use Z, +hh:mm or +hhmm"
        ))
    };
    let (sign, rest) = match zone.as_bytes().first() {
        Some(b'+') => (1, &zone[1..]),
        Some(b'-') => (-1, &zone[1..]),
        _ => return Err(invalid()),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid());
    }
    let hours: i64 = digits[..2].parse().map_err(|_| invalid())?;
    let minutes: i64 = digits[2..].parse().map_err(|_| invalid())?;
    if hours > 23 || minutes > 59 {
        return Err(invalid());
    }
    Ok(sign * (hours * 3_600 + minutes * 60) * 1_000_000_000)
}

fn marker_args(expr: &Expr) -> Option<Vec<&Expr>> {
    let Expr::Function(f) = expr else { return None };
    if !f.name.to_string().eq_ignore_ascii_case(MARKER) {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect()
}

impl RangeGroup {
    fn from_marker(expr: &Expr) -> Option<Result<RangeGroup>> {
        let args = marker_args(expr)?;
        let number = |e: &Expr| match e {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => n.parse::<i64>().ok(),
                _ => None,
            },
            _ => None,
        };
        let text = |e: &Expr| match e {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        };
        Some((|| {
            let malformed = || KuraError::internal("malformed GROUP BY RANGE marker");
            let [key, count, unit, offset, zone, fill] = args.as_slice() else {
                return Err(malformed());
            };
            let count = number(count).ok_or_else(malformed)?;
            if count < 1 {
                return Err(bad("GROUP BY RANGE needs an interval of at least 1"));
            }
            let unit = unit_nanos(&text(unit).ok_or_else(malformed)?)?;
            let offset = number(offset).ok_or_else(malformed)?;
            let zone = match text(zone) {
                Some(zone) => zone_nanos(&zone)?,
                None => 0,
            };
            let fill = match text(fill).ok_or_else(malformed)?.as_str() {
                "LINEAR" => Fill::Linear,
                "NONE" => Fill::None,
                "NULL" => Fill::Null,
                "PREVIOUS" => Fill::Previous,
                other => return Err(bad(format!("unknown FILL method {other}"))),
            };
            let interval = count
                .checked_mul(unit)
                .ok_or_else(|| bad("GROUP BY RANGE interval is too large"))?;
            let offset_nanos = offset
                .checked_mul(unit)
                .and_then(|o| o.checked_add(zone))
                .ok_or_else(|| bad("GROUP BY RANGE offset is too large"))?
                .rem_euclid(interval);
            Ok(RangeGroup {
                key: (*key).clone(),
                count,
                unit_nanos: unit,
                offset_nanos,
                fill,
            })
        })())
    }

    fn interval_nanos(&self) -> i64 {
        self.count * self.unit_nanos
    }

    /// `date_bin(<interval>, key, <origin>)`.
    fn bucket_expr(&self) -> Result<Expr> {
        let origin = chrono::DateTime::from_timestamp_nanos(self.offset_nanos)
            .naive_utc()
            .format("%Y-%m-%d %H:%M:%S%.9f")
            .to_string();
        let template = parse_expr(&format!(
            "date_bin(INTERVAL '{} nanoseconds', x, TIMESTAMP '{origin}')",
            self.interval_nanos()
        ))?;
        let Expr::Function(mut f) = template else {
            return Err(KuraError::internal("date_bin template is not a call"));
        };
        if let FunctionArguments::List(list) = &mut f.args {
            list.args[1] = FunctionArg::Unnamed(FunctionArgExpr::Expr(self.key.clone()));
        }
        Ok(Expr::Function(f))
    }

    fn is_key(&self, expr: &Expr) -> bool {
        last_name(expr).is_some_and(|name| Some(name) == last_name(&self.key))
    }
}

/// The column name an identifier expression ends in, folded as the planner folds it.
fn last_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(i) => Some(normalize(i)),
        Expr::CompoundIdentifier(parts) => parts.last().map(normalize),
        Expr::Nested(inner) => last_name(inner),
        _ => None,
    }
}

/// The bounds WHERE puts on the key: `(lower, lower inclusive, upper, upper inclusive)`.
type Bounds = (Option<(Expr, bool)>, Option<(Expr, bool)>);

fn collect_bounds(group: &RangeGroup, expr: &Expr, bounds: &mut Bounds) {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            collect_bounds(group, left, bounds);
            collect_bounds(group, right, bounds);
        }
        Expr::Nested(inner) => collect_bounds(group, inner, bounds),
        Expr::Between {
            expr,
            negated: false,
            low,
            high,
        } if group.is_key(expr) => {
            bounds.0 = Some(((**low).clone(), true));
            bounds.1 = Some(((**high).clone(), true));
        }
        Expr::BinaryOp { left, op, right } => {
            let (value, op) = if group.is_key(left) {
                (right.as_ref(), op.clone())
            } else if group.is_key(right) {
                let flipped = match op {
                    BinaryOperator::Lt => BinaryOperator::Gt,
                    BinaryOperator::LtEq => BinaryOperator::GtEq,
                    BinaryOperator::Gt => BinaryOperator::Lt,
                    BinaryOperator::GtEq => BinaryOperator::LtEq,
                    _ => return,
                };
                (left.as_ref(), flipped)
            } else {
                return;
            };
            match op {
                BinaryOperator::Gt => bounds.0 = Some((value.clone(), false)),
                BinaryOperator::GtEq => bounds.0 = Some((value.clone(), true)),
                BinaryOperator::Lt => bounds.1 = Some((value.clone(), false)),
                BinaryOperator::LtEq => bounds.1 = Some((value.clone(), true)),
                _ => {}
            }
        }
        _ => {}
    }
}

/// `first_value(column ORDER BY key)`: a plain column's value in a bucket.
fn first_value(column: Expr, key: &Expr) -> Expr {
    function_with_clauses(
        "first_value",
        vec![column],
        vec![FunctionArgumentClause::OrderBy(vec![OrderByExpr {
            expr: key.clone(),
            options: OrderByOptions {
                asc: None,
                nulls_first: None,
            },
            with_fill: None,
        }])],
    )
}

fn nanos_per(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

type Rewrite<'b> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'b>>;

impl Exec<'_> {
    /// Replaces every SELECT grouped by `RANGE(...) EVERY (...)` in `query` (also inside
    /// FROM subqueries and CTEs) with a scan of a gap-filling relation; the relations stay
    /// registered while the returned guards live.
    pub fn rewrite_range_groups<'b>(
        &'b self,
        query: &'b mut Query,
        guards: &'b mut Vec<TempGuard>,
    ) -> Rewrite<'b> {
        Box::pin(async move {
            if let Some(with) = query.with.as_mut() {
                for cte in &mut with.cte_tables {
                    self.rewrite_range_groups(&mut cte.query, guards).await?;
                }
            }
            let with = query.with.clone();
            self.rewrite_set_expr(query.body.as_mut(), with.as_ref(), guards)
                .await
        })
    }

    fn rewrite_set_expr<'b>(
        &'b self,
        body: &'b mut SetExpr,
        with: Option<&'b datafusion::sql::sqlparser::ast::With>,
        guards: &'b mut Vec<TempGuard>,
    ) -> Rewrite<'b> {
        Box::pin(async move {
            match body {
                SetExpr::Select(select) => {
                    for table in &mut select.from {
                        self.rewrite_factor(&mut table.relation, guards).await?;
                        for join in &mut table.joins {
                            self.rewrite_factor(&mut join.relation, guards).await?;
                        }
                    }
                    let group = match &select.group_by {
                        GroupByExpr::Expressions(exprs, _) => {
                            let found: Vec<_> =
                                exprs.iter().filter_map(RangeGroup::from_marker).collect();
                            match (found.len(), exprs.len()) {
                                (0, _) => None,
                                (1, 1) => found.into_iter().next(),
                                _ => {
                                    return Err(KuraError::syntax(
                                        "GROUP BY RANGE must be the only grouping",
                                    ));
                                }
                            }
                        }
                        GroupByExpr::All(_) => None,
                    };
                    if let Some(group) = group {
                        let group = group?;
                        let replacement = self.range_group_select(select, &group, with).await?;
                        guards.push(replacement.1);
                        **select = replacement.0;
                    }
                    Ok(())
                }
                SetExpr::Query(inner) => self.rewrite_range_groups(inner, guards).await,
                SetExpr::SetOperation { left, right, .. } => {
                    self.rewrite_set_expr(left, with, guards).await?;
                    self.rewrite_set_expr(right, with, guards).await
                }
                _ => Ok(()),
            }
        })
    }

    fn rewrite_factor<'b>(
        &'b self,
        factor: &'b mut TableFactor,
        guards: &'b mut Vec<TempGuard>,
    ) -> Rewrite<'b> {
        Box::pin(async move {
            match factor {
                TableFactor::Derived { subquery, .. } => {
                    self.rewrite_range_groups(subquery, guards).await
                }
                TableFactor::NestedJoin {
                    table_with_joins, ..
                } => {
                    self.rewrite_factor(&mut table_with_joins.relation, guards)
                        .await?;
                    for join in &mut table_with_joins.joins {
                        self.rewrite_factor(&mut join.relation, guards).await?;
                    }
                    Ok(())
                }
                _ => Ok(()),
            }
        })
    }

    /// Plans one GROUP BY RANGE select; returns the SELECT that replaces it.
    async fn range_group_select(
        &self,
        select: &Select,
        group: &RangeGroup,
        with: Option<&datafusion::sql::sqlparser::ast::With>,
    ) -> Result<(Select, TempGuard)> {
        let mut bounds: Bounds = (None, None);
        if let Some(selection) = &select.selection {
            collect_bounds(group, selection, &mut bounds);
        }
        let (Some(lower), Some(upper)) = bounds else {
            return Err(KuraError::syntax(
                "GROUP BY RANGE needs the key bounded on both sides in WHERE (key >= a AND key < b, or BETWEEN)",
            ));
        };
        self.check_key_type(select, group, with).await?;
        let bucket = group.bucket_expr()?;
        let mut inner = select.clone();
        inner.group_by = GroupByExpr::Expressions(vec![bucket.clone()], Vec::new());
        let mut projection = Vec::with_capacity(select.projection.len() + 1);
        let mut key_positions = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(_, _) => {
                    for column in self.wildcard_columns(select)? {
                        let expr = Expr::Identifier(Ident::with_quote('"', &column));
                        if group.is_key(&expr) {
                            key_positions.push(projection.len());
                            projection.push(aliased(bucket.clone(), &column));
                        } else {
                            projection.push(aliased(first_value(expr, &group.key), &column));
                        }
                    }
                }
                SelectItem::UnnamedExpr(expr) => self.range_item(
                    expr,
                    None,
                    group,
                    &bucket,
                    &mut projection,
                    &mut key_positions,
                ),
                SelectItem::ExprWithAliases { .. } => {
                    return Err(KuraError::unsupported(
                        "multiple aliases are not supported with GROUP BY RANGE",
                    ));
                }
                SelectItem::ExprWithAlias { expr, alias } => self.range_item(
                    expr,
                    Some(normalize(alias)),
                    group,
                    &bucket,
                    &mut projection,
                    &mut key_positions,
                ),
            }
        }
        projection.push(aliased(bucket, BUCKET_COLUMN));
        inner.projection = projection;
        let mut query = parse_query("SELECT 1")?;
        query.with = with.cloned();
        *query.body = SetExpr::Select(Box::new(inner));
        let plan = self.plan_query(query).await?;
        let bucket_type = plan
            .schema()
            .fields()
            .last()
            .map(|f| f.data_type().clone())
            .ok_or_else(|| KuraError::internal("GROUP BY RANGE query has no bucket column"))?;
        let DataType::Timestamp(unit, _) = &bucket_type else {
            return Err(KuraError::new(
                sqlstate::DATATYPE_MISMATCH,
                format!("GROUP BY RANGE needs a TIMESTAMP key, not {bucket_type}"),
            ));
        };
        let per = nanos_per(*unit);
        let interval = group.interval_nanos();
        if interval % per != 0 {
            return Err(bad(
                "the GROUP BY RANGE interval must be a whole number of the key's precision",
            ));
        }
        let (interval, origin) = (interval / per, group.offset_nanos / per);
        let lower = self.bound(&lower.0, &bucket_type).await? + i64::from(!lower.1);
        let upper = self.bound(&upper.0, &bucket_type).await? - i64::from(!upper.1);
        let start = |t: i64| (t - origin).div_euclid(interval) * interval + origin;
        let (first, last) = (start(lower), start(upper));
        let buckets = if last < first {
            0
        } else {
            (last - first) / interval + 1
        };
        if buckets > MAX_BUCKETS {
            return Err(KuraError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                format!("GROUP BY RANGE would generate {buckets} buckets (at most {MAX_BUCKETS})"),
            ));
        }
        let spec = GapFillSpec {
            first,
            interval,
            buckets: buckets as usize,
            fill: group.fill,
            key_positions,
        };
        let table = GapFillTable::new(plan, spec)?;
        let guard = self.db.temps.register(Arc::new(table));
        let mut replacement = parse_query(&format!(
            "SELECT * FROM {}",
            super::template::quoted(&guard.name)
        ))?;
        let select = super::template::select_mut(&mut replacement)?.clone();
        Ok((select, guard))
    }

    /// Fails with 42804 unless the RANGE key is a timestamp column.
    async fn check_key_type(
        &self,
        select: &Select,
        group: &RangeGroup,
        with: Option<&datafusion::sql::sqlparser::ast::With>,
    ) -> Result<()> {
        let mut probe = select.clone();
        probe.projection = vec![SelectItem::UnnamedExpr(group.key.clone())];
        probe.group_by = GroupByExpr::Expressions(Vec::new(), Vec::new());
        probe.having = None;
        probe.selection = None;
        let mut query = parse_query("SELECT 1")?;
        query.with = with.cloned();
        *query.body = SetExpr::Select(Box::new(probe));
        let plan = self.plan_query(query).await?;
        match plan.schema().fields().first().map(|f| f.data_type()) {
            Some(DataType::Timestamp(_, _)) => Ok(()),
            other => Err(KuraError::new(
                sqlstate::DATATYPE_MISMATCH,
                format!(
                    "GROUP BY RANGE needs a TIMESTAMP key column, not {}",
                    other.map_or("nothing".to_string(), |t| t.to_string())
                ),
            )),
        }
    }

    fn range_item(
        &self,
        expr: &Expr,
        alias: Option<String>,
        group: &RangeGroup,
        bucket: &Expr,
        projection: &mut Vec<SelectItem>,
        key_positions: &mut Vec<usize>,
    ) {
        let name = alias.clone().or_else(|| last_name(expr));
        if group.is_key(expr) {
            key_positions.push(projection.len());
            let name = name.unwrap_or_else(|| "key".into());
            projection.push(aliased(bucket.clone(), &name));
        } else if let (Some(name), true) = (name.clone(), last_name(expr).is_some()) {
            projection.push(aliased(first_value(expr.clone(), &group.key), &name));
        } else {
            projection.push(match alias {
                Some(alias) => aliased(expr.clone(), &alias),
                None => SelectItem::UnnamedExpr(expr.clone()),
            });
        }
    }

    /// The columns `SELECT *` stands for: those of the one table in FROM.
    fn wildcard_columns(&self, select: &Select) -> Result<Vec<String>> {
        let single = match select.from.as_slice() {
            [table] if table.joins.is_empty() => match &table.relation {
                TableFactor::Table { name, .. } => Some(super::names::relation_name(name)?),
                _ => None,
            },
            _ => None,
        };
        let table = single
            .and_then(|name| self.db.catalog.table(&name))
            .ok_or_else(|| {
                KuraError::unsupported(
                    "SELECT * with GROUP BY RANGE needs a single table in FROM; list the columns",
                )
            })?;
        Ok(table.def().columns.iter().map(|c| c.name.clone()).collect())
    }

    /// Evaluates a WHERE bound (a constant expression) as the key's raw value.
    async fn bound(&self, expr: &Expr, key_type: &DataType) -> Result<i64> {
        let mut query = parse_query("SELECT 1")?;
        super::template::select_mut(&mut query)?.projection = vec![aliased(expr.clone(), "v")];
        let plan = self.plan_query(query).await.map_err(|e| {
            KuraError::new(
                e.code,
                format!("GROUP BY RANGE bounds must be constants: {}", e.message),
            )
        })?;
        if !plan.get_parameter_types()?.is_empty() {
            return Err(KuraError::unsupported(
                "parameters in the WHERE bounds of GROUP BY RANGE are not supported",
            ));
        }
        let (_, batches) = self.collect(&plan).await?;
        let value = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .map(|b| ScalarValue::try_from_array(b.column(0), 0))
            .transpose()?
            .ok_or_else(|| KuraError::internal("GROUP BY RANGE bound produced no row"))?;
        value
            .cast_to(key_type)
            .ok()
            .and_then(|v| crate::storage::partitioning::raw_integer(&v))
            .ok_or_else(|| {
                KuraError::new(
                    sqlstate::DATATYPE_MISMATCH,
                    format!("GROUP BY RANGE bound {value} is not a timestamp"),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::dialect::parse_sql;
    use datafusion::sql::sqlparser::ast::Statement;

    fn group_of(sql: &str) -> RangeGroup {
        let Statement::Query(query) = parse_sql(sql).unwrap().remove(0) else {
            panic!("not a query")
        };
        let SetExpr::Select(select) = *query.body else {
            panic!("not a select")
        };
        let GroupByExpr::Expressions(exprs, _) = &select.group_by else {
            panic!("no group by")
        };
        RangeGroup::from_marker(&exprs[0]).unwrap().unwrap()
    }

    #[test]
    fn parses_both_key_spellings_offsets_zones_and_fill() {
        let g = group_of(
            "SELECT ts, avg(v) FROM t WHERE ts BETWEEN 1 AND 2 GROUP BY RANGE(ts) EVERY (20, SECOND)",
        );
        assert_eq!(g.interval_nanos(), 20_000_000_000);
        assert_eq!(g.fill, Fill::Null);
        let g = group_of(
            "SELECT * FROM t GROUP BY RANGE t.ts EVERY (1, DAY, 2, '+09:00') FILL (LINEAR)",
        );
        assert_eq!(g.fill, Fill::Linear);
        // (2 days + 9 hours) mod 1 day: the offset counts in the unit.
        assert_eq!(g.offset_nanos, 9 * 3_600_000_000_000);
        let g = group_of(
            "SELECT 1 FROM t GROUP BY RANGE(ts) EVERY (1, DAY, 0, '-01:00') FILL(PREVIOUS)",
        );
        assert_eq!(g.offset_nanos, 23 * 3_600_000_000_000);
        assert_eq!(g.fill, Fill::Previous);
        assert!(
            parse_sql("SELECT 1 FROM t GROUP BY RANGE(ts) EVERY (1, DAY) FILL (SOMETIMES)")
                .map(|mut s| {
                    let Statement::Query(q) = s.remove(0) else {
                        panic!()
                    };
                    let SetExpr::Select(select) = *q.body else {
                        panic!()
                    };
                    let GroupByExpr::Expressions(exprs, _) = &select.group_by else {
                        panic!()
                    };
                    RangeGroup::from_marker(&exprs[0]).unwrap().is_err()
                })
                .unwrap()
        );
        // Window frames keep their meaning.
        assert!(parse_sql(
            "SELECT sum(v) OVER (ORDER BY ts RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) FROM t"
        )
        .is_ok());
    }

    #[test]
    fn zones_and_units_are_checked() {
        assert_eq!(zone_nanos("Z").unwrap(), 0);
        assert_eq!(zone_nanos("-0130").unwrap(), -5_400_000_000_000);
        assert!(zone_nanos("+25:00").is_err());
        assert!(zone_nanos("Asia/Tokyo").is_err());
        assert!(unit_nanos("MONTH").is_err());
    }
}
