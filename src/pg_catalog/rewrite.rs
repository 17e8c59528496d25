//! Rewrites that let the catalog queries clients send plan on DataFusion, applied to a
//! statement before planning when it touches the catalog:
//!
//! - `'name'::regclass` (and regtype, regnamespace) become lookups that fail like PostgreSQL's
//!   casts; `'16393'::regclass` becomes the number; `'pg_catalog.array_in'::regproc` becomes
//!   the function's name (the static `pg_type` stores regproc columns as names);
//! - `oid::regclass::text` and a bare `oid::regclass` in a select list print the name, as in
//!   PostgreSQL; inside comparisons the cast stays a number;
//! - subscripts of `int2vector`/`oidvector` columns (`indkey[0]`) are 0-based in PostgreSQL
//!   and are shifted onto DataFusion's 1-based arrays;
//! - `pg_catalog.f(...)` calls lose their qualifier; `pg_get_userbyid(oid)` names the role;
//! - `ARRAY(SELECT x ...)` becomes `(SELECT array_agg(x) ...)`;
//! - from `datafusion-pg-catalog`: `OPERATOR(pg_catalog.~)`, `COLLATE`, `'{1,2}'::int[]`,
//!   duplicate names beside a qualified wildcard, unqualified names beside one.
//!
//! Invariant: a statement that does not touch the catalog is left exactly as it was.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, BinaryOperator, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    GroupByExpr, Ident, LambdaFunction, LambdaFunctionParameter, LambdaSyntax, ObjectName,
    OneOrManyWithParens, Query, Select, SelectItem, SetExpr, Statement, Subscript, TableFactor,
    Value, ValueWithSpan, VisitMut, VisitorMut, visit_expressions, visit_expressions_mut,
    visit_relations,
};
use datafusion_pg_catalog::sql::rules::{
    AliasDuplicatedProjectionRewrite, FixArrayLiteral, ResolveUnqualifiedIdentifier,
    RewritePgCatalogOperator, SqlStatementRewriteRule, StripCollate,
};

use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;

use crate::sql::template::function_call;

/// Catalog columns PostgreSQL stores as 0-based vectors.
const VECTOR_COLUMNS: &[&str] = &[
    "indkey",
    "indclass",
    "indoption",
    "indcollation",
    "proargtypes",
];

const CATALOG_FUNCTION_PREFIXES: &[&str] = &["pg_", "has_", "format_type", "obj_description"];

/// Whether `statement` reads the catalog or uses its functions or casts.
pub fn touches_catalog(statement: &Statement) -> bool {
    let relations = visit_relations(statement, |name| {
        if is_catalog_relation(name) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    if relations.is_break() {
        return true;
    }
    visit_expressions(statement, |expr| {
        let found = match expr {
            Expr::Cast { data_type, .. } => reg_type(data_type).is_some(),
            Expr::Function(f) => {
                let name = f.name.to_string().to_lowercase();
                name.starts_with("pg_catalog.")
                    || name.starts_with("information_schema.")
                    || CATALOG_FUNCTION_PREFIXES
                        .iter()
                        .any(|p| name.starts_with(p))
                    || is_array_subquery(expr)
            }
            _ => false,
        };
        if found {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}

/// Whether relation `name` is one of `pg_catalog` or `information_schema`.
pub(super) fn is_catalog_relation(name: &ObjectName) -> bool {
    let first = name.0.first().map(|p| p.to_string().to_lowercase());
    let last = name.0.last().map(|p| p.to_string().to_lowercase());
    matches!(first.as_deref(), Some("pg_catalog" | "information_schema"))
        || last.is_some_and(|n| n.starts_with("pg_"))
}

/// Rewrites `statement` for planning; `user` is the session's role name.
pub fn rewrite(statement: Statement, user: &str) -> Statement {
    let mut statement = statement;
    let rules: [&dyn SqlStatementRewriteRule; 5] = [
        &AliasDuplicatedProjectionRewrite,
        &ResolveUnqualifiedIdentifier,
        &FixArrayLiteral,
        &StripCollate,
        &RewritePgCatalogOperator,
    ];
    for rule in rules {
        statement = rule.rewrite(statement);
    }
    name_projected_reg_casts(&mut statement);
    super::system_columns::rewrite(&mut statement);
    let mut visitor = Rewriter { user };
    let _ = statement.visit(&mut visitor);
    statement
}

/// The reg* type a cast names, if any.
fn reg_type(data_type: &DataType) -> Option<&'static str> {
    let name = match data_type {
        DataType::Regclass => return Some("regclass"),
        DataType::Custom(name, args) if args.is_empty() => name
            .0
            .last()
            .map(|p| p.to_string().to_lowercase())
            .unwrap_or_default(),
        _ => return None,
    };
    [
        "regclass",
        "regtype",
        "regnamespace",
        "regproc",
        "regprocedure",
        "regrole",
        "regoper",
    ]
    .into_iter()
    .find(|t| *t == name)
}

fn is_text_type(data_type: &DataType) -> bool {
    match data_type {
        DataType::Text | DataType::Varchar(_) | DataType::CharacterVarying(_) => true,
        DataType::Custom(name, args) if args.is_empty() => name.0.last().is_some_and(|p| {
            matches!(
                p.to_string().to_lowercase().as_str(),
                "text" | "name" | "varchar"
            )
        }),
        _ => false,
    }
}

fn string_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s),
            ..
        }) => Some(s),
        _ => None,
    }
}

fn is_placeholder(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Value(ValueWithSpan {
            value: Value::Placeholder(_),
            ..
        })
    )
}

fn number(value: i64) -> Expr {
    Expr::Value(Value::Number(value.to_string(), false).into())
}

fn string(value: &str) -> Expr {
    Expr::Value(Value::SingleQuotedString(value.to_string()).into())
}

/// `oid::regclass` as text: the function that prints the name.
fn output_function(reg: &str) -> Option<&'static str> {
    match reg {
        "regclass" => Some("__kura_regclass_out"),
        "regtype" => Some("__kura_regtype_out"),
        "regnamespace" => Some("__kura_regnamespace_out"),
        "regproc" | "regprocedure" => Some("__kura_regproc_out"),
        _ => None,
    }
}

/// A select-list item `x::regclass` prints the name; it keeps the column name PostgreSQL
/// gives it (the operand's, or the type's).
fn name_projected_reg_casts(statement: &mut Statement) {
    fn in_query(query: &mut Query) {
        // With an ORDER BY, naming the column after its operand (`oid`) would make the
        // operand's own name ambiguous there; the type's name is used instead.
        let ordered = query.order_by.is_some();
        in_set_expr(query.body.as_mut(), ordered);
    }
    fn in_set_expr(body: &mut SetExpr, ordered: bool) {
        match body {
            SetExpr::Select(select) => {
                for item in &mut select.projection {
                    let (expr, alias) = match item {
                        SelectItem::UnnamedExpr(expr) => (expr.clone(), None),
                        SelectItem::ExprWithAlias { expr, alias } => {
                            (expr.clone(), Some(alias.clone()))
                        }
                        _ => continue,
                    };
                    let Expr::Cast {
                        expr: operand,
                        data_type,
                        ..
                    } = &expr
                    else {
                        continue;
                    };
                    let Some(function) = reg_type(data_type).and_then(output_function) else {
                        continue;
                    };
                    if string_literal(operand).is_some() || is_placeholder(operand) {
                        continue;
                    }
                    let alias = alias.unwrap_or_else(|| match operand.as_ref() {
                        _ if ordered => Ident::new(reg_type(data_type).unwrap_or("oid")),
                        Expr::Identifier(i) => i.clone(),
                        Expr::CompoundIdentifier(parts) => {
                            parts.last().cloned().unwrap_or_else(|| Ident::new("oid"))
                        }
                        _ => Ident::new(reg_type(data_type).unwrap_or("oid")),
                    });
                    *item = SelectItem::ExprWithAlias {
                        expr: function_call(function, vec![operand.as_ref().clone()]),
                        alias,
                    };
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                in_set_expr(left, ordered);
                in_set_expr(right, ordered);
            }
            SetExpr::Query(query) => in_query(query),
            _ => {}
        }
    }
    if let Statement::Query(query) = statement {
        in_query(query);
    }
}

/// Columns of the static `pg_type` and `pg_aggregate` that PostgreSQL types `regproc` and
/// the snapshot stores as function names.
const REGPROC_COLUMNS: &[&str] = &[
    "typinput",
    "typoutput",
    "typreceive",
    "typsend",
    "typmodin",
    "typmodout",
    "typanalyze",
    "aggfnoid",
    "aggtransfn",
    "aggfinalfn",
    "aggcombinefn",
    "aggserialfn",
    "aggdeserialfn",
    "aggmtransfn",
    "aggminvtransfn",
    "aggmfinalfn",
];

fn is_regproc_column(expr: &Expr) -> bool {
    let name = match expr {
        Expr::Identifier(i) => &i.value,
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(i) => &i.value,
            None => return false,
        },
        _ => return false,
    };
    REGPROC_COLUMNS.contains(&name.to_lowercase().as_str())
}

fn is_array_subquery(expr: &Expr) -> bool {
    matches!(expr, Expr::Function(f)
        if f.name.to_string().eq_ignore_ascii_case("array")
            && matches!(f.args, FunctionArguments::Subquery(_)))
}

struct Rewriter<'a> {
    user: &'a str,
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        // `x::regclass::text` prints the name; the inner cast is rewritten afterwards (into a
        // lookup when `x` is a name).
        if let Expr::Cast {
            expr: operand,
            data_type,
            ..
        } = expr
            && is_text_type(data_type)
            && let Expr::Cast {
                data_type: inner_type,
                ..
            } = operand.as_ref()
            && let Some(function) = reg_type(inner_type).and_then(output_function)
        {
            *expr = function_call(function, vec![operand.as_ref().clone()]);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        null_subqueries_over_empty_relations(query.body.as_mut());
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        // `FROM pg_catalog.unnest(...)`, `pg_catalog.generate_series(...)`.
        if let TableFactor::Table {
            name,
            args: Some(_),
            ..
        } = factor
            && name.0.len() == 2
            && name.0[0].to_string().eq_ignore_ascii_case("pg_catalog")
        {
            name.0.remove(0);
        }
        if let TableFactor::Table {
            name,
            args: Some(args),
            alias,
            with_ordinality,
            ..
        } = factor
            && name.to_string().eq_ignore_ascii_case("unnest")
        {
            let with_ordinality = *with_ordinality;
            let array_exprs = args
                .args
                .iter()
                .filter_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                    _ => None,
                })
                .collect();
            *factor = TableFactor::UNNEST {
                alias: alias.take(),
                array_exprs,
                with_offset: false,
                with_offset_alias: None,
                with_ordinality,
            };
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Cast {
                expr: operand,
                data_type,
                ..
            } => {
                if let Some(reg) = reg_type(data_type)
                    && let Some(replacement) = reg_input(reg, operand)
                {
                    *expr = replacement;
                }
            }
            Expr::CompoundFieldAccess { root, access_chain }
                if matches!(root.as_ref(), Expr::Nested(_))
                    && matches!(
                        access_chain.as_slice(),
                        [AccessExpr::Dot(Expr::Identifier(_))]
                    ) =>
            {
                // `(keys).x`: a field of a composite value.
                if let [AccessExpr::Dot(Expr::Identifier(field))] = access_chain.as_slice() {
                    *expr = function_call(
                        "get_field",
                        vec![root.as_ref().clone(), string(&field.value.to_lowercase())],
                    );
                }
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                // The name a subscript applies to: the root's last part, or the field accessed
                // just before it (`i.indkey[0]` parses as `i` . `indkey` [0]).
                let mut column = match root.as_ref() {
                    Expr::Identifier(i) => Some(i.value.to_lowercase()),
                    Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.to_lowercase()),
                    _ => None,
                };
                for access in access_chain.iter_mut() {
                    match access {
                        AccessExpr::Dot(Expr::Identifier(i)) => {
                            column = Some(i.value.to_lowercase());
                        }
                        AccessExpr::Subscript(Subscript::Index { index })
                            if column
                                .as_deref()
                                .is_some_and(|c| VECTOR_COLUMNS.contains(&c)) =>
                        {
                            *index = Expr::BinaryOp {
                                left: Box::new(Expr::Nested(Box::new(index.clone()))),
                                op: BinaryOperator::Plus,
                                right: Box::new(number(1)),
                            };
                            column = None;
                        }
                        _ => column = None,
                    }
                }
            }
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq | BinaryOperator::NotEq,
                right,
            } => {
                for side in [&mut *left, &mut *right] {
                    if let Some(array) = string_literal(side).and_then(array_literal) {
                        **side = array;
                    }
                }
                // A regproc column compared with an oid (Npgsql's `pg_proc.oid = typreceive`):
                // the column holds the function's name, so it is looked up.
                let lookup = |e: &Expr| function_call("__kura_regproc_in", vec![e.clone()]);
                if is_regproc_column(left) && string_literal(right).is_none() {
                    **left = lookup(left);
                } else if is_regproc_column(right) && string_literal(left).is_none() {
                    **right = lookup(right);
                }
            }
            Expr::Subquery(query) => {
                let hoisted = decorrelate(query);
                aggregate_single_value(query);
                if let Some(condition) = hoisted {
                    *expr = Expr::Case {
                        case_token: AttachedToken::empty(),
                        end_token: AttachedToken::empty(),
                        operand: None,
                        conditions: vec![datafusion::sql::sqlparser::ast::CaseWhen {
                            condition,
                            result: expr.clone(),
                        }],
                        else_result: None,
                    };
                }
            }
            Expr::Function(function) => {
                let qualified = function.name.0.len() == 2
                    && function.name.0.first().is_some_and(|p| {
                        matches!(
                            p.to_string().to_lowercase().as_str(),
                            "pg_catalog" | "\"pg_catalog\""
                        )
                    });
                if qualified {
                    function.name.0.remove(0);
                }
                let name = function.name.to_string().to_lowercase();
                if name == "information_schema._pg_expandarray"
                    && let Some(arg) = single_arg(&function.args)
                {
                    // A set-returning function: one row per element.
                    *expr = function_call(
                        "unnest",
                        vec![function_call(super::expand_array::NAME, vec![arg])],
                    );
                } else if name == "pg_get_userbyid"
                    && let Some(arg) = single_arg(&function.args)
                {
                    *expr = role_name(arg, self.user);
                } else if let Some(replacement) = array_over_unnest(expr) {
                    *expr = replacement;
                } else if let Some(replacement) = array_subquery(expr) {
                    *expr = replacement;
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// In each SELECT of `body` that inner-joins an empty system relation, no row reaches the
/// select list or the filter, so their subqueries (correlated in ways DataFusion cannot plan,
/// like psql's policy and publication lookups) never run: NULL takes their place.
fn null_subqueries_over_empty_relations(body: &mut SetExpr) {
    let select = match body {
        SetExpr::SetOperation { left, right, .. } => {
            null_subqueries_over_empty_relations(left);
            null_subqueries_over_empty_relations(right);
            return;
        }
        SetExpr::Select(select) => select,
        _ => return,
    };
    if !reads_an_empty_relation(select) {
        return;
    }
    let null_out = |e: &mut Expr| {
        let _ = visit_expressions_mut(e, |inner| {
            if has_subquery(inner) {
                *inner = Expr::Value(Value::Null.into());
            }
            ControlFlow::<()>::Continue(())
        });
    };
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
            null_out(e);
        }
    }
    if let Some(selection) = &mut select.selection {
        null_out(selection);
    }
}

/// Whether `expr` is itself a subquery expression.
fn has_subquery(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. }
    ) || is_array_subquery(expr)
}

/// Whether `select` inner-joins a system relation that has no rows in Kura (pg_policy,
/// pg_publication, pg_inherits, ...), so that it returns no rows whatever else it reads.
fn reads_an_empty_relation(select: &Select) -> bool {
    use datafusion::sql::sqlparser::ast::JoinOperator;
    let empty = |factor: &TableFactor| match factor {
        TableFactor::Table {
            name, args: None, ..
        } => {
            let parts: Vec<String> = name
                .0
                .iter()
                .map(|p| p.to_string().to_lowercase())
                .collect();
            let relation = match parts.as_slice() {
                [schema, relation] if schema == "pg_catalog" => relation,
                [relation] => relation,
                _ => return false,
            };
            super::statics::is_empty(relation)
        }
        _ => false,
    };
    select.from.iter().any(|from| {
        empty(&from.relation)
            || from.joins.iter().any(|join| {
                matches!(
                    join.join_operator,
                    JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_)
                ) && empty(&join.relation)
            })
    })
}

/// Helps DataFusion decorrelate a scalar subquery: conditions on the outer row alone are
/// taken out (returned, to guard the subquery with), and outer columns that an equality
/// binds to an inner column are replaced by that column in the other conditions
/// (`c.oid = a.attcollation AND a.attcollation <> t.typcollation` becomes
/// `... AND c.oid <> t.typcollation`).
fn decorrelate(query: &mut Query) -> Option<Expr> {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let mut inner: Vec<String> = Vec::new();
    for table in &select.from {
        for factor in
            std::iter::once(&table.relation).chain(table.joins.iter().map(|j| &j.relation))
        {
            if let TableFactor::Table { name, alias, .. } = factor {
                inner.push(match alias {
                    Some(alias) => alias.name.value.to_lowercase(),
                    None => name
                        .0
                        .last()
                        .map(|p| p.to_string().to_lowercase())
                        .unwrap_or_default(),
                });
            } else {
                return None;
            }
        }
    }
    let selection = select.selection.take()?;
    let mut conjuncts = Vec::new();
    split_and(selection, &mut conjuncts);
    let side = |e: &Expr| -> (bool, bool) {
        let (mut has_inner, mut has_outer) = (false, false);
        let _ = visit_expressions(e, |x| {
            match x {
                Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
                    if inner.contains(&parts[0].value.to_lowercase()) {
                        has_inner = true;
                    } else {
                        has_outer = true;
                    }
                }
                Expr::Identifier(_) => has_inner = true,
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
        (has_inner, has_outer)
    };
    let mut bound: Vec<(Expr, Expr)> = Vec::new();
    for c in &conjuncts {
        if let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = c
        {
            match (side(left), side(right)) {
                ((true, false), (false, true)) => {
                    bound.push((right.as_ref().clone(), left.as_ref().clone()))
                }
                ((false, true), (true, false)) => {
                    bound.push((left.as_ref().clone(), right.as_ref().clone()))
                }
                _ => {}
            }
        }
    }
    let mut kept = Vec::new();
    let mut hoisted = Vec::new();
    for mut c in conjuncts {
        match side(&c) {
            (false, true) => hoisted.push(c),
            (true, true) if !is_binding(&c, &bound) => {
                let _ = visit_expressions_mut(&mut c, |x| {
                    if let Some((_, inner)) = bound.iter().find(|(outer, _)| outer == x) {
                        *x = inner.clone();
                    }
                    ControlFlow::<()>::Continue(())
                });
                kept.push(c);
            }
            _ => kept.push(c),
        }
    }
    select.selection = join_and(kept);
    join_and(hoisted)
}

fn is_binding(c: &Expr, bound: &[(Expr, Expr)]) -> bool {
    matches!(c, Expr::BinaryOp { left, op: BinaryOperator::Eq, right }
        if bound.iter().any(|(o, i)| (o == left.as_ref() && i == right.as_ref()) || (o == right.as_ref() && i == left.as_ref())))
}

fn split_and(expr: Expr, out: &mut Vec<Expr>) {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            split_and(*left, out);
            split_and(*right, out);
        }
        Expr::Nested(inner)
            if matches!(
                inner.as_ref(),
                Expr::BinaryOp {
                    op: BinaryOperator::And,
                    ..
                }
            ) =>
        {
            split_and(*inner, out)
        }
        other => out.push(other),
    }
}

fn join_and(conjuncts: Vec<Expr>) -> Option<Expr> {
    conjuncts.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: BinaryOperator::And,
        right: Box::new(b),
    })
}

/// A scalar subquery in a catalog query yields one row (it looks up one object by key), but
/// DataFusion plans a correlated one only when it aggregates: the value is taken through
/// `max`, which returns that one row's value.
fn aggregate_single_value(query: &mut Query) {
    crate::sql::template::aggregate_single_item(query, "max");
}

/// `'{0}'` compared with an array column: an array of numbers or strings.
fn array_literal(text: &str) -> Option<Expr> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let items: Vec<&str> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let numeric = items.iter().all(|s| s.parse::<i64>().is_ok());
    let elem = items
        .iter()
        .map(|s| {
            if numeric {
                Expr::Value(Value::Number(s.to_string(), false).into())
            } else {
                string(s.trim_matches('"'))
            }
        })
        .collect();
    Some(Expr::Array(datafusion::sql::sqlparser::ast::Array {
        elem,
        named: true,
    }))
}

fn single_arg(args: &FunctionArguments) -> Option<Expr> {
    match args {
        FunctionArguments::List(list) if list.args.len() == 1 => match &list.args[0] {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// `'name'::regclass` and the like; also a name computed at run time, as in Metabase's
/// `format('%I.%I', schema, table)::regclass` (a column stays a number: it holds an oid).
fn reg_input(reg: &str, operand: &Expr) -> Option<Expr> {
    let literal = string_literal(operand);
    let computed = matches!(
        operand,
        Expr::Function(_)
            | Expr::BinaryOp {
                op: BinaryOperator::StringConcat,
                ..
            }
    );
    if literal.is_none() && !is_placeholder(operand) && !(computed && reg != "regproc") {
        return None;
    }
    if let Some(digits) = literal.filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    {
        return digits.parse().ok().map(number);
    }
    match reg {
        "regclass" => Some(function_call("__kura_regclass_in", vec![operand.clone()])),
        "regtype" => Some(function_call("__kura_regtype_in", vec![operand.clone()])),
        "regnamespace" => Some(function_call(
            "__kura_regnamespace_in",
            vec![operand.clone()],
        )),
        "regproc" | "regprocedure" => {
            let name = literal?;
            let bare = name.rsplit('.').next().unwrap_or(name);
            let bare = bare.split('(').next().unwrap_or(bare);
            Some(string(bare))
        }
        _ => None,
    }
}

/// `pg_get_userbyid(x)`: the one role's name for its oid, PostgreSQL's text otherwise.
fn role_name(arg: Expr, user: &str) -> Expr {
    let arg = Expr::Nested(Box::new(arg));
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: vec![datafusion::sql::sqlparser::ast::CaseWhen {
            condition: Expr::BinaryOp {
                left: Box::new(arg.clone()),
                op: BinaryOperator::Eq,
                right: Box::new(number(i64::from(super::oids::OWNER_ROLE))),
            },
            result: string(user),
        }],
        else_result: Some(Box::new(Expr::BinaryOp {
            left: Box::new(Expr::BinaryOp {
                left: Box::new(string("unknown (OID=")),
                op: BinaryOperator::StringConcat,
                right: Box::new(Expr::Cast {
                    kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
                    expr: Box::new(arg),
                    data_type: DataType::Text,
                    array: false,
                    format: None,
                }),
            }),
            op: BinaryOperator::StringConcat,
            right: Box::new(string(")")),
        })),
    }
}

/// `ARRAY(SELECT x FROM ... ORDER BY y)` → `(SELECT array_agg(x ORDER BY y) FROM ...)`.
/// `ARRAY(SELECT f(x) FROM unnest(a) x [WHERE p(x)])`, where `a` usually comes from the outer
/// row (psql's `\d+` adds `'toast.' || x` to each TOAST reloption), becomes
/// `array_transform(array_filter(a, x -> p(x)), x -> f(x))`: the same array, computed per row
/// without a correlated subquery DataFusion cannot plan.
fn array_over_unnest(expr: &Expr) -> Option<Expr> {
    let Expr::Function(function) = expr else {
        return None;
    };
    let FunctionArguments::Subquery(query) = &function.args else {
        return None;
    };
    if !function.name.to_string().eq_ignore_ascii_case("array")
        || query.order_by.is_some()
        || query.limit_clause.is_some()
        || query.with.is_some()
    {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let plain = select.distinct.is_none()
        && select.having.is_none()
        && matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
        && select.from.len() == 1
        && select.from[0].joins.is_empty()
        && select.projection.len() == 1;
    if !plain {
        return None;
    }
    let TableFactor::UNNEST {
        alias,
        array_exprs,
        with_offset: false,
        with_ordinality: false,
        ..
    } = &select.from[0].relation
    else {
        return None;
    };
    let [array] = array_exprs.as_slice() else {
        return None;
    };
    if alias.as_ref().is_some_and(|a| a.columns.len() > 1) {
        return None;
    }
    let element = crate::sql::lateral::unnest_column_names(alias.as_ref(), false)
        .into_iter()
        .next()?;
    let item = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
        _ => return None,
    };
    let lambda = |body: Expr| {
        Expr::Lambda(LambdaFunction {
            params: OneOrManyWithParens::One(LambdaFunctionParameter {
                name: element.clone(),
                data_type: None,
            }),
            body: Box::new(body),
            syntax: LambdaSyntax::Arrow,
        })
    };
    let mut out = array.clone();
    if let Some(condition) = &select.selection {
        out = function_call("array_filter", vec![out, lambda(condition.clone())]);
    }
    if !matches!(&item, Expr::Identifier(i) if *i == element) {
        out = function_call("array_transform", vec![out, lambda(item)]);
    }
    Some(out)
}

fn array_subquery(expr: &Expr) -> Option<Expr> {
    let Expr::Function(function) = expr else {
        return None;
    };
    if !function.name.to_string().eq_ignore_ascii_case("array") {
        return None;
    }
    let FunctionArguments::Subquery(query) = &function.args else {
        return None;
    };
    let mut query = query.as_ref().clone();
    let order_by = query.order_by.take();
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    if select.projection.len() != 1 {
        return None;
    }
    let item = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
        _ => return None,
    };
    let clauses = order_by
        .and_then(|o| match o.kind {
            datafusion::sql::sqlparser::ast::OrderByKind::Expressions(exprs) => Some(exprs),
            _ => None,
        })
        .map(|exprs| vec![datafusion::sql::sqlparser::ast::FunctionArgumentClause::OrderBy(exprs)])
        .unwrap_or_default();
    let aggregate = crate::sql::template::function_with_clauses("array_agg", vec![item], clauses);
    select.projection = vec![SelectItem::ExprWithAlias {
        expr: aggregate,
        alias: Ident::new("array"),
    }];
    Some(Expr::Subquery(Box::new(query)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse_sql;

    fn rewritten(sql: &str) -> String {
        let statement = parse_sql(sql).unwrap().remove(0);
        assert!(touches_catalog(&statement), "{sql}");
        rewrite(statement, "alice").to_string()
    }

    #[test]
    fn reg_casts_resolve_names_and_print_them() {
        assert_eq!(
            rewritten("SELECT 1 FROM pg_class WHERE oid = 'readings'::regclass"),
            "SELECT 1 FROM pg_class WHERE oid = __kura_regclass_in('readings')"
        );
        assert_eq!(
            rewritten("SELECT c.oid::pg_catalog.regclass FROM pg_class c"),
            "SELECT __kura_regclass_out(c.oid) AS oid FROM pg_class c"
        );
        assert_eq!(
            rewritten("SELECT 1 FROM pg_type WHERE typinput = 'pg_catalog.array_in'::regproc"),
            "SELECT 1 FROM pg_type WHERE typinput = 'array_in'"
        );
        assert_eq!(
            rewritten("SELECT 1 FROM pg_type a JOIN pg_proc ON pg_proc.oid = a.typreceive"),
            "SELECT 1 FROM pg_type a JOIN pg_proc ON pg_proc.oid = __kura_regproc_in(a.typreceive)"
        );
        assert!(
            rewritten("SELECT x::regtype::text FROM pg_type")
                .starts_with("SELECT __kura_regtype_out(x::")
        );
        assert_eq!(
            rewritten("SELECT format('%I.%I', 'public', 't')::regclass::oid FROM pg_class"),
            "SELECT __kura_regclass_in(format('%I.%I', 'public', 't'))::oid FROM pg_class"
        );
        assert!(
            rewritten("SELECT 1 FROM pg_class WHERE oid = '16393'::regclass")
                .ends_with("oid = 16393")
        );
    }

    #[test]
    fn vector_subscripts_become_one_based() {
        assert_eq!(
            rewritten("SELECT i.indkey[0] FROM pg_index i"),
            "SELECT i.indkey[(0) + 1] FROM pg_index i"
        );
    }

    #[test]
    fn role_names_and_array_subqueries() {
        let sql = rewritten("SELECT pg_catalog.pg_get_userbyid(d.datdba) FROM pg_database d");
        assert!(sql.contains("WHEN (d.datdba) = 10 THEN 'alice'"), "{sql}");
        let sql = rewritten(
            "SELECT ARRAY(SELECT b.rolname FROM pg_roles b ORDER BY 1) AS memberof FROM pg_roles r",
        );
        assert!(
            sql.contains("(SELECT array_agg(b.rolname ORDER BY 1) AS array FROM pg_roles AS b)")
                || sql.contains("array_agg(b.rolname ORDER BY 1)"),
            "{sql}"
        );
    }

    #[test]
    fn ordinary_statements_are_untouched() {
        let statement = parse_sql("SELECT a FROM readings WHERE b = 1")
            .unwrap()
            .remove(0);
        assert!(!touches_catalog(&statement));
    }
}
