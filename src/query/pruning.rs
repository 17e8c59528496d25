//! Partition pruning: which data partitions of a table a scan must read, given what the
//! pushed-down filters say about the partitioning columns and the server's clock.
//!
//! - Interval key: equality and IN pick single intervals; `<`, `<=`, `>`, `>=` and BETWEEN
//!   bound a range of intervals.
//! - Hash key: equality and IN pick buckets.
//! - Expired partitions are never read: their rows are invisible to every statement.
//!
//! Invariant: pruning only removes partitions that cannot hold a matching row; DataFusion
//! still applies every filter to the rows that are read.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use super::access::ColumnFacts;
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
