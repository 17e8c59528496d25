//! Partition pruning: which data partitions of a table a scan must read, given what the
//! pushed-down filters say about the partitioning columns and the server's clock.
//!
//! - Interval key: equality and IN pick single intervals; `<`, `<=`, `>`, `>=` and BETWEEN
//!   bound a range of intervals.
//! - Hash key: equality and IN pick buckets.
//! - Expired partitions are never read: their rows are invisible to every statement.
//!
//! Invariant: pruning only removes partitions that cannot hold a matching row; the scan still
//! applies every filter to the rows it reads, except a filter `intervals_implying` proves true
//! for every row of the row's interval.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use super::access::{ColumnFacts, column_facts};
use crate::storage::TableDef;
use crate::storage::partition::Partition;
use crate::storage::partitioning::{HashSpec, IntervalSpec, hash_bucket, raw_integer};
use crate::storage::table::PartitionSet;

/// The partitions a scan reads.
#[derive(Debug)]
pub struct PartitionChoice {
    pub partitions: Vec<Arc<Partition>>,
    /// Partitions the table has, expired ones included.
    pub total: usize,
}

pub fn choose_partitions(
    def: &TableDef,
    set: &PartitionSet,
    facts: &HashMap<usize, ColumnFacts>,
    now_millis: i64,
) -> PartitionChoice {
    let partitioning = def.partitioning();
    let buckets = partitioning
        .hash()
        .and_then(|spec| wanted_buckets(spec, facts.get(&spec.column)));
    let candidates: Vec<&Arc<Partition>> = match partitioning.interval() {
        Some(spec) => match facts.get(&spec.column) {
            Some(facts) => wanted_intervals(spec, facts, set),
            None => set.iter().collect(),
        },
        None => set.iter().collect(),
    };
    let partitions = candidates
        .into_iter()
        .filter(|p| {
            let key = p.key();
            buckets.as_ref().is_none_or(|b| b.contains(&key.bucket))
                && !def.placement.expired(key.interval, now_millis)
        })
        .cloned()
        .collect();
    PartitionChoice {
        partitions,
        total: set.len(),
    }
}

fn wanted_buckets(spec: &HashSpec, facts: Option<&ColumnFacts>) -> Option<BTreeSet<u32>> {
    let values = facts?.equals.as_ref()?;
    values
        .iter()
        .map(|v| hash_bucket(v, spec.count).ok())
        .collect()
}

fn wanted_intervals<'a>(
    spec: &IntervalSpec,
    facts: &ColumnFacts,
    set: &'a PartitionSet,
) -> Vec<&'a Arc<Partition>> {
    if let Some(values) = &facts.equals {
        let intervals: Option<BTreeSet<i64>> = values
            .iter()
            .map(|v| raw_integer(v).map(|raw| spec.interval_of(raw)))
            .collect();
        if let Some(intervals) = intervals {
            return intervals
                .into_iter()
                .flat_map(|i| set.in_intervals(i..=i))
                .collect();
        }
    }
    let lower = match &facts.lower {
        Some(Bound::Included(v)) => raw_integer(v),
        Some(Bound::Excluded(v)) => raw_integer(v).map(|raw| raw.saturating_add(1)),
        _ => None,
    }
    .map_or(i64::MIN, |raw| spec.interval_of(raw));
    let upper = match &facts.upper {
        Some(Bound::Included(v)) => raw_integer(v),
        Some(Bound::Excluded(v)) => raw_integer(v).map(|raw| raw.saturating_sub(1)),
        _ => None,
    }
    .map_or(i64::MAX, |raw| spec.interval_of(raw));
    set.in_intervals(lower..=upper).collect()
}

/// The intervals whose every possible key satisfies the filters' range on the interval key,
/// when the chosen index is a range over that key. Their partitions are scanned whole: a
/// vectorised scan of every chunk beats looking up and gathering each row the index would
/// return anyway.
pub fn covered_intervals(
    def: &TableDef,
    facts: &HashMap<usize, ColumnFacts>,
    access: Option<&super::access::IndexAccess>,
) -> Option<std::ops::RangeInclusive<i64>> {
    let spec = def.partitioning().interval()?;
    if access?.index.columns.first() != Some(&spec.column) {
        return None;
    }
    intervals_inside(spec, facts.get(&spec.column)?)
}

/// The intervals every key of which satisfies `filter` on its own, when `filter` is a single
/// comparison or BETWEEN of the interval key with a literal: a scan need not evaluate the
/// filter on the rows of those intervals.
pub fn intervals_implying(def: &TableDef, filter: &Expr) -> Option<std::ops::RangeInclusive<i64>> {
    let spec = def.partitioning().interval()?;
    // Anything else (AND, OR, IN, ...) may say more than the facts drawn from it.
    let simple = match filter {
        Expr::BinaryExpr(BinaryExpr { op, .. }) => matches!(
            op,
            Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
        ),
        Expr::Between(between) => !between.negated,
        _ => false,
    };
    if !simple {
        return None;
    }
    let facts = column_facts(def, std::slice::from_ref(filter));
    if facts.len() != 1 {
        return None;
    }
    intervals_inside(spec, facts.get(&spec.column)?)
}

/// The intervals lying wholly inside the range `facts` gives (none for equality facts).
fn intervals_inside(
    spec: &IntervalSpec,
    facts: &ColumnFacts,
) -> Option<std::ops::RangeInclusive<i64>> {
    if facts.equals.is_some() {
        return None;
    }
    let lower = match &facts.lower {
        Some(Bound::Included(v)) => raw_integer(v)?,
        Some(Bound::Excluded(v)) => raw_integer(v)?.checked_add(1)?,
        _ => i64::MIN,
    };
    let upper = match &facts.upper {
        Some(Bound::Included(v)) => raw_integer(v)?,
        Some(Bound::Excluded(v)) => raw_integer(v)?.checked_sub(1)?,
        _ => i64::MAX,
    };
    let first = spec.interval_of(lower);
    let first = if spec.bounds(first).0 >= lower {
        first
    } else {
        first.checked_add(1)?
    };
    let last = spec.interval_of(upper);
    // A saturated upper bound means the interval runs to the type's last value inclusive.
    let last_key = match spec.bounds(last).1 {
        i64::MAX => i64::MAX,
        exclusive => exclusive - 1,
    };
    let last = if last_key <= upper {
        last
    } else {
        last.checked_sub(1)?
    };
    Some(first..=last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::partitioning::{IntervalSpec, Partitioning};
    use crate::storage::schema::{Placement, long_key_table};
    use crate::types::SqlType;
    use datafusion::common::ScalarValue;

    /// A LONG key `k` in intervals [0, 1000), [1000, 2000), ...
    fn thousand_wide_intervals() -> TableDef {
        long_key_table().with_placement(Placement {
            partitioning: Partitioning::Interval(
                IntervalSpec::new(0, &SqlType::Long, 1000, None, None).unwrap(),
            ),
            ..Placement::default()
        })
    }

    #[test]
    fn only_intervals_wholly_inside_the_range_are_covered() {
        let def = thousand_wide_intervals();
        let access = super::super::access::IndexAccess {
            index: def.indexes[0].clone(),
            ranges: Vec::new(),
            description: String::new(),
        };
        let facts = |lower: Bound<ScalarValue>, upper: Bound<ScalarValue>| {
            HashMap::from([(
                0,
                ColumnFacts {
                    equals: None,
                    lower: Some(lower),
                    upper: Some(upper),
                },
            )])
        };
        let v = |n: i64| ScalarValue::Int64(Some(n));
        // [1000, 3000): intervals 1 and 2 exactly.
        let f = facts(Bound::Included(v(1000)), Bound::Excluded(v(3000)));
        assert_eq!(covered_intervals(&def, &f, Some(&access)), Some(1..=2));
        // (1000, 2999]: interval 1 misses its first key, interval 2 is whole.
        let f = facts(Bound::Excluded(v(1000)), Bound::Included(v(2999)));
        assert_eq!(covered_intervals(&def, &f, Some(&access)), Some(2..=2));
        // Inside one interval: nothing covered.
        let f = facts(Bound::Included(v(1100)), Bound::Included(v(1200)));
        let covered = covered_intervals(&def, &f, Some(&access)).unwrap();
        assert!(covered.is_empty());
        assert_eq!(covered_intervals(&def, &f, None), None);
    }

    #[test]
    fn a_filter_implies_only_the_intervals_it_holds_on_for_every_key() {
        use datafusion::logical_expr::{col, lit};
        let def = thousand_wide_intervals();
        let k = || col("k");
        assert_eq!(
            intervals_implying(&def, &k().gt_eq(lit(2000i64))),
            Some(2..=i64::MAX / 1000)
        );
        assert_eq!(
            intervals_implying(&def, &k().gt(lit(2000i64))),
            Some(3..=i64::MAX / 1000)
        );
        let below = intervals_implying(&def, &k().lt(lit(3000i64))).unwrap();
        assert_eq!(*below.end(), 2);
        assert_eq!(
            intervals_implying(&def, &k().lt_eq(lit(3000i64))).map(|r| *r.end()),
            Some(2)
        );
        assert_eq!(
            intervals_implying(&def, &k().between(lit(1000i64), lit(2999i64))),
            Some(1..=2)
        );
        // The literal on the left.
        assert_eq!(
            intervals_implying(&def, &lit(3000i64).gt(k())).map(|r| *r.end()),
            Some(2)
        );
        // Not a lone range on the key: nothing is implied.
        let range = k().gt_eq(lit(1000i64)).and(k().lt(lit(2000i64)));
        assert_eq!(intervals_implying(&def, &range), None);
        assert_eq!(intervals_implying(&def, &k().eq(lit(1000i64))), None);
        assert_eq!(
            intervals_implying(&def, &k().in_list(vec![lit(1i64)], false)),
            None
        );
        assert_eq!(
            intervals_implying(&def, &k().not_between(lit(1i64), lit(5i64))),
            None
        );
        assert_eq!(
            intervals_implying(&def, &(k() + lit(1i64)).gt(lit(1000i64))),
            None
        );
        assert_eq!(intervals_implying(&def, &k().gt(lit(1000.5f64))), None);
        // An unpartitioned table implies nothing.
        assert_eq!(
            intervals_implying(&long_key_table(), &k().gt(lit(1i64))),
            None
        );
    }
}
