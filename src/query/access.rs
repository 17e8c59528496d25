//! Access-path selection: turns the filters DataFusion pushes into a scan into an index lookup
//! when an index can answer them (equality or IN on leading index columns, or a range on the
//! first one).
//!
//! Invariant: filters are only used to narrow the rows read; the scan still applies every
//! filter to the rows a lookup returns (`scan_filter`), so a lookup may return extra rows but
//! never miss one.

use std::collections::HashMap;
use std::ops::Bound;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

use crate::storage::index::KeyRange;
use crate::storage::{IndexDef, TableDef};

/// What the filters say about one column (values already have the column's type).
#[derive(Debug, Default, Clone)]
pub struct ColumnFacts {
    pub equals: Option<Vec<ScalarValue>>,
    pub lower: Option<Bound<ScalarValue>>,
    pub upper: Option<Bound<ScalarValue>>,
}

/// A chosen index and the key ranges to look up in it.
#[derive(Debug, Clone)]
pub struct IndexAccess {
    pub index: IndexDef,
    pub ranges: Vec<KeyRange>,
    pub description: String,
}

/// Most key ranges an IN list may expand to before a full scan is cheaper.
const MAX_LOOKUPS: usize = 1024;

/// What the conjunction of `filters` says about each column of the table.
pub fn column_facts(def: &TableDef, filters: &[Expr]) -> HashMap<usize, ColumnFacts> {
    let mut facts: HashMap<usize, ColumnFacts> = HashMap::new();
    for filter in filters {
        collect_facts(def, filter, &mut facts);
    }
    facts
}

pub fn choose_index(def: &TableDef, facts: &HashMap<usize, ColumnFacts>) -> Option<IndexAccess> {
    if facts.is_empty() {
        return None;
    }
    let mut best: Option<(usize, IndexAccess)> = None;
    let mut ordered: Vec<&IndexDef> = def.indexes.iter().collect();
    ordered.sort_by_key(|i| !i.primary);
    for index in ordered {
        if let Some((score, access)) = plan_index(def, index, facts)
            && best.as_ref().is_none_or(|(s, _)| score > *s)
        {
            best = Some((score, access));
        }
    }
    best.map(|(_, access)| access)
}

fn plan_index(
    def: &TableDef,
    index: &IndexDef,
    facts: &HashMap<usize, ColumnFacts>,
) -> Option<(usize, IndexAccess)> {
    let mut prefixes: Vec<Vec<ScalarValue>> = vec![Vec::new()];
    let mut used = Vec::new();
    for column in &index.columns {
        let Some(values) = facts.get(column).and_then(|f| f.equals.clone()) else {
            break;
        };
        if prefixes.len() * values.len() > MAX_LOOKUPS {
            break;
        }
        prefixes = prefixes
            .iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut next = p.clone();
                    next.push(v.clone());
                    next
                })
            })
            .collect();
        used.push(def.columns[*column].name.clone());
    }
    let name = &index.name;
    if !used.is_empty() {
        let full = used.len() == index.columns.len();
        let score = used.len() * 10 + if full { 5 } else { 0 } + usize::from(index.primary);
        let ranges = prefixes.into_iter().map(KeyRange::Prefix).collect();
        let description = format!("index {name} ({} =)", used.join(", "));
        return Some((
            score,
            IndexAccess {
                index: index.clone(),
                ranges,
                description,
            },
        ));
    }
    let first = index.columns.first()?;
    let f = facts.get(first)?;
    if f.lower.is_none() && f.upper.is_none() {
        return None;
    }
    let lower = f.lower.clone().unwrap_or(Bound::Unbounded);
    let upper = f.upper.clone().unwrap_or(Bound::Unbounded);
    let description = format!("index {name} ({} range)", def.columns[*first].name);
    Some((
        1,
        IndexAccess {
            index: index.clone(),
            ranges: vec![KeyRange::Range(lower, upper)],
            description,
        },
    ))
}

fn column_of(def: &TableDef, expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Column(c) => def.column_index(&c.name),
        _ => None,
    }
}

/// A literal converted to the column's type, or `None` when it does not convert exactly.
fn literal_for(def: &TableDef, column: usize, expr: &Expr) -> Option<ScalarValue> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    if value.is_null() {
        return None;
    }
    let target = def.columns[column].ty.arrow_type();
    if value.data_type() == target {
        return Some(value.clone());
    }
    let converted = value.cast_to(&target).ok()?;
    // Only use the value when the conversion is lossless (e.g. 5 → 5, not 5.5 → 5).
    let back = converted.cast_to(&value.data_type()).ok()?;
    (back == *value).then_some(converted)
}

fn collect_facts(def: &TableDef, expr: &Expr, facts: &mut HashMap<usize, ColumnFacts>) {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            collect_facts(def, left, facts);
            collect_facts(def, right, facts);
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            // `c = 1 OR c = 2` (how DataFusion rewrites a short IN list) is `c IN (1, 2)`.
            if let (Some((lc, mut lv)), Some((rc, rv))) =
                (equality_set(def, left), equality_set(def, right))
                && lc == rc
            {
                lv.extend(rv);
                facts.entry(lc).or_default().equals = Some(lv);
            }
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (column, literal, op) = match (column_of(def, left), column_of(def, right)) {
                (Some(c), None) => (c, right.as_ref(), *op),
                (None, Some(c)) => match op.swap() {
                    Some(swapped) => (c, left.as_ref(), swapped),
                    None => return,
                },
                _ => return,
            };
            let Some(value) = literal_for(def, column, literal) else {
                return;
            };
            let entry = facts.entry(column).or_default();
            match op {
                Operator::Eq => entry.equals = Some(vec![value]),
                Operator::Gt => entry.lower = Some(Bound::Excluded(value)),
                Operator::GtEq => entry.lower = Some(Bound::Included(value)),
                Operator::Lt => entry.upper = Some(Bound::Excluded(value)),
                Operator::LtEq => entry.upper = Some(Bound::Included(value)),
                _ => {}
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            let Some(column) = column_of(def, expr) else {
                return;
            };
            if let (Some(lo), Some(hi)) = (
                literal_for(def, column, low),
                literal_for(def, column, high),
            ) {
                let entry = facts.entry(column).or_default();
                entry.lower = Some(Bound::Included(lo));
                entry.upper = Some(Bound::Included(hi));
            }
        }
        Expr::InList(list) if !list.negated => {
            let Some(column) = column_of(def, &list.expr) else {
                return;
            };
            let values: Option<Vec<ScalarValue>> = list
                .list
                .iter()
                .map(|e| literal_for(def, column, e))
                .collect();
            if let Some(values) = values
                && !values.is_empty()
            {
                facts.entry(column).or_default().equals = Some(values);
            }
        }
        _ => {}
    }
}

/// The column and values of a filter that only says "column is one of these values".
fn equality_set(def: &TableDef, expr: &Expr) -> Option<(usize, Vec<ScalarValue>)> {
    let mut facts = HashMap::new();
    collect_facts(def, expr, &mut facts);
    if facts.len() != 1 {
        return None;
    }
    let (column, fact) = facts.into_iter().next()?;
    match fact {
        ColumnFacts {
            equals: Some(values),
            lower: None,
            upper: None,
        } => Some((column, values)),
        _ => None,
    }
}
