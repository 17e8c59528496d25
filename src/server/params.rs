//! Decoding Bind parameters into DataFusion values, on top of `arrow-pg`.
//!
//! Invariant: the decoded list has exactly one value per parameter the client bound, in
//! order. `arrow-pg` silently skips a NULL whose declared type it does not know (pgjdbc's
//! `setNull(i, Types.CHAR)` declares bpchar), which would shift every later parameter; here
//! such hints are first mapped to a type it decodes with the same wire format, and a NULL
//! never depends on its declared type at all.

use std::sync::Arc;

use arrow_pg::datatypes::df::deserialize_parameters;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use pgwire::api::Type;
use pgwire::api::portal::Portal;
use pgwire::api::stmt::StoredStatement;
use pgwire::error::PgWireResult;

/// Client type hints whose text and binary forms are those of `text`.
fn text_alias(hint: &Type) -> bool {
    *hint == Type::BPCHAR || *hint == Type::NAME
}

/// A hint that says nothing: the server's inferred type decides.
fn unknown(hint: &Type) -> bool {
    *hint == Type::UNKNOWN
}

/// The parameters of `portal`, typed by the client's hints where it gave them and by the
/// server's inference (`types`, by position) elsewhere.
pub fn decode_parameters<S: Clone>(
    portal: &Portal<S>,
    types: &[Option<&DataType>],
) -> PgWireResult<ParamValues> {
    let hints = &portal.statement.parameter_types;
    let is_null = |i: usize| portal.parameters.get(i).is_some_and(Option::is_none);
    let needs_fix = |i: usize| {
        let hint = hints.get(i).cloned().flatten();
        is_null(i) || hint.as_ref().is_some_and(|h| text_alias(h) || unknown(h))
    };
    if !(0..portal.parameter_len()).any(needs_fix) {
        return deserialize_parameters(portal, types);
    }
    let mut fixed_hints = hints.clone();
    fixed_hints.resize(portal.parameter_len(), None);
    let mut fixed_types: Vec<Option<&DataType>> = types.to_vec();
    fixed_types.resize(portal.parameter_len(), None);
    for (i, (hint, inferred)) in fixed_hints.iter_mut().zip(&mut fixed_types).enumerate() {
        // A NULL decodes the same whatever it claims to be; the server's type keeps the value
        // typed where DataFusion needs it.
        if is_null(i) || hint.as_ref().is_some_and(unknown) {
            *hint = None;
            if inferred.is_none() {
                *inferred = Some(&DataType::Utf8);
            }
        } else if hint.as_ref().is_some_and(text_alias) {
            *hint = Some(Type::TEXT);
        }
    }
    let statement = StoredStatement::new(
        portal.statement.id.clone(),
        portal.statement.statement.clone(),
        fixed_hints,
    );
    let mut patched = Portal::new_cursor(portal.name.clone(), Arc::new(statement));
    patched.parameter_format = portal.parameter_format.clone();
    patched.parameters = portal.parameters.clone();
    deserialize_parameters(&patched, &fixed_types)
}
