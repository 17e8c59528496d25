//! Functions whose value comes from the session rather than from data: `current_setting`,
//! `set_config`, `current_user` and its kin, `current_schema(s)`, `current_database` and
//! `pg_backend_pid`. They are bound before planning: each call is replaced by a literal
//! holding its value, so the planner sees constants and the session stays out of DataFusion.
//!
//! Invariants: a statement without such a call is returned untouched (no copy); `set_config`
//! changes the session only when the statement is executed, never when it is described.

use std::ops::ControlFlow;
use std::time::Duration;

use datafusion::sql::sqlparser::ast::{
    Array, CastKind, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident,
    SelectItem, SetExpr, Statement, Value, ValueWithSpan, visit_expressions, visit_expressions_mut,
};
use datafusion::sql::sqlparser::tokenizer::Span;

use datafusion::common::{ParamValues, ScalarValue};

use crate::error::{KuraError, Result, sqlstate};

/// What the session functions read and change.
pub trait SessionState {
    fn setting(&self, name: &str) -> Option<String>;
    /// Sets a parameter as `SET` (or `SET LOCAL`) would; returns the stored value.
    fn set_setting(&mut self, name: &str, value: &str, local: bool) -> Result<String>;
    fn user(&self) -> String;
    fn database(&self) -> String;
    fn backend_pid(&self) -> i32;
    /// `pg_cancel_backend` / `pg_terminate_backend`: whether the connection exists.
    fn signal_backend(&self, pid: i32, terminate: bool) -> bool;
    /// `pg_is_in_recovery()`: whether this server is a standby.
    fn in_recovery(&self) -> bool;
    /// The log positions of `pg_current_wal_lsn()` and friends, if this server has them.
    fn log_position(&self, which: LogPosition) -> Option<u64>;
}

/// Which LSN a log position function reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogPosition {
    /// The newest record written here (`pg_current_wal_lsn`).
    Written,
    /// The newest record a standby has received (`pg_last_wal_receive_lsn`).
    Received,
    /// The newest record a standby has applied (`pg_last_wal_replay_lsn`).
    Replayed,
}

/// The schemas a session can see, in search order (`pg_catalog` is always searched first).
pub fn current_schemas(search_path: &str, include_implicit: bool) -> Vec<String> {
    let mut schemas = Vec::new();
    if include_implicit {
        schemas.push("pg_catalog".to_string());
    }
    for part in search_path.split(',') {
        let name = part.trim().trim_matches('"');
        if name == "public" && !schemas.iter().any(|s| s == "public") {
            schemas.push(name.to_string());
        }
    }
    schemas
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionFunction {
    CurrentSetting,
    SetConfig,
    User,
    Database,
    Schema,
    Schemas,
    BackendPid,
    Signal { terminate: bool },
    Sleep,
    InRecovery,
    Promote,
    Fence,
    Position(LogPosition),
}

fn session_function(expr: &Expr) -> Option<SessionFunction> {
    match expr {
        Expr::Function(f) => {
            let parts = &f.name.0;
            let last = parts.last()?.as_ident()?;
            if parts.len() == 2
                && !parts[0]
                    .as_ident()
                    .is_some_and(|q| q.value.eq_ignore_ascii_case("pg_catalog"))
            {
                return None;
            }
            if parts.len() > 2 || last.quote_style.is_some() {
                return None;
            }
            let bare = matches!(f.args, FunctionArguments::None);
            match last.value.to_lowercase().as_str() {
                "current_setting" if !bare => Some(SessionFunction::CurrentSetting),
                "set_config" if !bare => Some(SessionFunction::SetConfig),
                "current_user" | "session_user" | "current_role" | "user" if bare => {
                    Some(SessionFunction::User)
                }
                "getpgusername" if !bare => Some(SessionFunction::User),
                "current_catalog" if bare => Some(SessionFunction::Database),
                "current_database" if !bare => Some(SessionFunction::Database),
                "current_schema" => Some(SessionFunction::Schema),
                "current_schemas" if !bare => Some(SessionFunction::Schemas),
                "pg_backend_pid" if !bare => Some(SessionFunction::BackendPid),
                "pg_sleep" if !bare => Some(SessionFunction::Sleep),
                "pg_is_in_recovery" if !bare => Some(SessionFunction::InRecovery),
                "pg_promote" if !bare => Some(SessionFunction::Promote),
                "kura_fence" if !bare => Some(SessionFunction::Fence),
                "pg_current_wal_lsn" | "pg_current_wal_insert_lsn" | "pg_current_wal_flush_lsn"
                    if !bare =>
                {
                    Some(SessionFunction::Position(LogPosition::Written))
                }
                "pg_last_wal_receive_lsn" if !bare => {
                    Some(SessionFunction::Position(LogPosition::Received))
                }
                "pg_last_wal_replay_lsn" if !bare => {
                    Some(SessionFunction::Position(LogPosition::Replayed))
                }
                "pg_cancel_backend" if !bare => Some(SessionFunction::Signal { terminate: false }),
                "pg_terminate_backend" if !bare => {
                    Some(SessionFunction::Signal { terminate: true })
                }
                _ => None,
            }
        }
        Expr::Identifier(ident) if ident.quote_style.is_none() => {
            match ident.value.to_lowercase().as_str() {
                "current_user" | "session_user" | "current_role" => Some(SessionFunction::User),
                "current_catalog" => Some(SessionFunction::Database),
                "current_schema" => Some(SessionFunction::Schema),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A statement with its session functions bound.
#[derive(Debug, Default)]
pub struct Bound {
    /// The rewritten statement; `None` when the statement had no session function.
    pub statement: Option<Statement>,
    /// How long the statement's `pg_sleep` calls ask to wait before it runs.
    pub sleep: Duration,
    /// `pg_promote(wait, wait_seconds)`: promote this server before the statement runs,
    /// waiting at most this long for the standby to stop following its primary.
    pub promote: Option<Duration>,
    /// `kura_fence()`: stop this primary taking writes before the statement runs.
    pub fence: bool,
}

/// `statement` with its session functions replaced by their values. `params` are the bound
/// parameter values, or `None` while a statement is only being described: then nothing is
/// set or signalled, and calls whose arguments are parameters stay in place for the planner
/// to type them.
pub fn bind(
    statement: &Statement,
    session: &mut dyn SessionState,
    params: Option<&ParamValues>,
) -> Result<Bound> {
    let execute = params.is_some();
    let found = visit_expressions(statement, |expr| match session_function(expr) {
        Some(_) => ControlFlow::Break(()),
        None => ControlFlow::Continue(()),
    });
    if found.is_continue() {
        return Ok(Bound::default());
    }
    let mut bound = statement.clone();
    name_top_level_calls(&mut bound);
    let mut sleep = Duration::ZERO;
    let mut promote = None;
    let mut fence = false;
    let outcome = visit_expressions_mut(&mut bound, |expr| {
        let Some(function) = session_function(expr) else {
            return ControlFlow::Continue(());
        };
        let args = match literal_args(expr, params) {
            Ok(Some(args)) => args,
            Ok(None) => return ControlFlow::Continue(()),
            Err(e) => return ControlFlow::Break(e),
        };
        let value = if function == SessionFunction::Sleep {
            seconds_to_sleep(&args).map(|seconds| {
                sleep = sleep.saturating_add(seconds);
                typed_null()
            })
        } else if function == SessionFunction::Promote {
            promote_wait(&args).map(|wait| {
                promote = Some(wait);
                boolean(true)
            })
        } else if function == SessionFunction::Fence {
            fence = true;
            Ok(boolean(true))
        } else {
            value_of(function, expr, args, session, execute)
        };
        match value {
            Ok(value) => {
                *expr = value;
                ControlFlow::Continue(())
            }
            Err(e) => ControlFlow::Break(e),
        }
    });
    match outcome {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(Bound {
            statement: Some(bound),
            sleep,
            promote: promote.filter(|_| execute),
            fence: fence && execute,
        }),
    }
}

/// `pg_sleep(seconds)`: the statement waits (interruptibly) before it runs.
fn seconds_to_sleep(args: &[Literal]) -> Result<Duration> {
    let seconds = match args {
        [Literal::Number(n)] | [Literal::Text(n)] => n.trim().parse::<f64>().ok(),
        [Literal::Null] => Some(0.0),
        _ => None,
    }
    .ok_or_else(|| {
        KuraError::new(
            sqlstate::UNDEFINED_FUNCTION,
            "function pg_sleep takes one number of seconds",
        )
    })?;
    Ok(Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX))
}

/// `pg_promote([wait boolean [, wait_seconds integer]])`: how long to wait for the standby to
/// stop following (PostgreSQL's default: 60 seconds). Kura always waits.
fn promote_wait(args: &[Literal]) -> Result<Duration> {
    let seconds = match args {
        [] | [_] => Some(60),
        [_, Literal::Number(n)] => n.trim().parse::<u64>().ok().filter(|s| *s > 0),
        _ => None,
    }
    .ok_or_else(|| {
        KuraError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            "pg_promote takes (wait boolean, wait_seconds integer > 0)",
        )
    })?;
    Ok(Duration::from_secs(seconds))
}

fn boolean(value: bool) -> Expr {
    Expr::Value(ValueWithSpan {
        value: Value::Boolean(value),
        span: Span::empty(),
    })
}

/// `SELECT current_user` names its column `current_user`, as PostgreSQL does; the literal
/// that replaces the call would otherwise be called `?column?`.
fn name_top_level_calls(statement: &mut Statement) {
    let Statement::Query(query) = statement else {
        return;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(expr) = item
            && session_function(expr).is_some()
        {
            let name = match expr {
                Expr::Function(f) => f
                    .name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map(|i| i.value.to_lowercase()),
                Expr::Identifier(i) => Some(i.value.to_lowercase()),
                _ => None,
            };
            if let Some(name) = name {
                *item = SelectItem::ExprWithAlias {
                    expr: expr.clone(),
                    alias: Ident::with_quote('"', name),
                };
            }
        }
    }
}

fn value_of(
    function: SessionFunction,
    call: &Expr,
    args: Vec<Literal>,
    session: &mut dyn SessionState,
    execute: bool,
) -> Result<Expr> {
    let name = function_name(call);
    let arg_count = |range: std::ops::RangeInclusive<usize>| {
        if range.contains(&args.len()) {
            Ok(())
        } else {
            Err(KuraError::new(
                sqlstate::UNDEFINED_FUNCTION,
                format!(
                    "function {name} with {} argument(s) does not exist",
                    args.len()
                ),
            ))
        }
    };
    Ok(match function {
        SessionFunction::CurrentSetting => {
            arg_count(1..=2)?;
            let setting = text_arg(&args[0], &name)?;
            let missing_ok = match args.get(1) {
                Some(arg) => bool_arg(arg, &name)?,
                None => false,
            };
            match session.setting(&setting) {
                Some(value) => text(value),
                None if missing_ok => typed_null(),
                None => {
                    return Err(KuraError::new(
                        sqlstate::UNDEFINED_OBJECT,
                        format!("unrecognized configuration parameter \"{setting}\""),
                    ));
                }
            }
        }
        SessionFunction::SetConfig => {
            arg_count(3..=3)?;
            let setting = text_arg(&args[0], &name)?;
            let value = match &args[1] {
                Literal::Null => String::new(),
                other => text_arg(other, &name)?,
            };
            let local = bool_arg(&args[2], &name)?;
            if execute {
                text(session.set_setting(&setting, &value, local)?)
            } else {
                text(value)
            }
        }
        SessionFunction::User => text(session.user()),
        SessionFunction::Database => text(session.database()),
        SessionFunction::Schema => {
            let path = session.setting("search_path").unwrap_or_default();
            match current_schemas(&path, false).into_iter().next() {
                Some(schema) => text(schema),
                None => typed_null(),
            }
        }
        SessionFunction::Schemas => {
            arg_count(1..=1)?;
            let implicit = bool_arg(&args[0], &name)?;
            let path = session.setting("search_path").unwrap_or_default();
            let elem = current_schemas(&path, implicit)
                .into_iter()
                .map(text)
                .collect();
            Expr::Array(Array { elem, named: true })
        }
        SessionFunction::Signal { terminate } => {
            arg_count(1..=2)?;
            let pid = match &args[0] {
                Literal::Number(n) => n.parse::<i32>().ok(),
                Literal::Text(t) => t.trim().parse::<i32>().ok(),
                _ => None,
            }
            .ok_or_else(|| {
                KuraError::new(
                    sqlstate::INVALID_TEXT_REPRESENTATION,
                    format!("{name}: the process id must be an integer"),
                )
            })?;
            let signalled = execute && session.signal_backend(pid, terminate);
            if execute && !signalled {
                return Ok(Expr::Value(ValueWithSpan {
                    value: Value::Boolean(false),
                    span: Span::empty(),
                }));
            }
            Expr::Value(ValueWithSpan {
                value: Value::Boolean(true),
                span: Span::empty(),
            })
        }
        SessionFunction::Sleep => typed_null(),
        SessionFunction::Promote | SessionFunction::Fence => boolean(true),
        SessionFunction::Position(which) => {
            arg_count(0..=0)?;
            if which == LogPosition::Written && session.in_recovery() {
                return Err(KuraError::new(
                    sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "recovery is in progress",
                )
                .with_hint(format!(
                    "{name}() cannot be executed during recovery; use pg_last_wal_receive_lsn()"
                )));
            }
            match session.log_position(which) {
                Some(lsn) => Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(Expr::Value(ValueWithSpan {
                        value: Value::Number(lsn.to_string(), false),
                        span: Span::empty(),
                    })),
                    data_type: DataType::BigInt(None),
                    array: false,
                    format: None,
                },
                None => Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(Expr::Value(ValueWithSpan {
                        value: Value::Null,
                        span: Span::empty(),
                    })),
                    data_type: DataType::BigInt(None),
                    array: false,
                    format: None,
                },
            }
        }
        SessionFunction::InRecovery => {
            arg_count(0..=0)?;
            boolean(session.in_recovery())
        }
        SessionFunction::BackendPid => Expr::Cast {
            kind: CastKind::Cast,
            expr: Box::new(Expr::Value(ValueWithSpan {
                value: Value::Number(session.backend_pid().to_string(), false),
                span: Span::empty(),
            })),
            data_type: DataType::Integer(None),
            array: false,
            format: None,
        },
    })
}

enum Literal {
    Text(String),
    Bool(bool),
    Number(String),
    Null,
}

/// The arguments of a procedure call (`CALL name(...)`) as text, `None` for NULL; they must
/// be constants or bound parameters.
pub fn call_text_args(
    function: &datafusion::sql::sqlparser::ast::Function,
    params: Option<&ParamValues>,
) -> Result<Vec<Option<String>>> {
    let call = Expr::Function(function.clone());
    let args = literal_args(&call, params)?.ok_or_else(|| {
        KuraError::new(
            sqlstate::UNDEFINED_PARAMETER,
            format!("{}: a parameter has no value", function.name),
        )
    })?;
    Ok(args
        .into_iter()
        .map(|arg| match arg {
            Literal::Text(s) | Literal::Number(s) => Some(s),
            Literal::Bool(b) => Some(b.to_string()),
            Literal::Null => None,
        })
        .collect())
}

fn function_name(call: &Expr) -> String {
    match call {
        Expr::Function(f) => f.name.to_string().to_lowercase(),
        other => other.to_string().to_lowercase(),
    }
}

/// The arguments of a session function, which must be constants or parameters; `None`
/// when a parameter has no value yet (the statement is being described).
fn literal_args(call: &Expr, params: Option<&ParamValues>) -> Result<Option<Vec<Literal>>> {
    let Expr::Function(f) = call else {
        return Ok(Some(Vec::new()));
    };
    let list = match &f.args {
        FunctionArguments::List(list) => &list.args,
        _ => return Ok(Some(Vec::new())),
    };
    let mut out = Vec::with_capacity(list.len());
    for arg in list {
        let FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) = arg else {
            return Err(KuraError::unsupported(format!(
                "{} does not take the argument {arg}",
                f.name
            )));
        };
        match literal(expr, params) {
            Ok(Some(value)) => out.push(value),
            Ok(None) => return Ok(None),
            Err(()) => {
                return Err(KuraError::unsupported(format!(
                    "{} accepts only constant arguments or parameters in Kura, not {expr}",
                    f.name
                )));
            }
        }
    }
    Ok(Some(out))
}

/// A constant argument; `Ok(None)` for a parameter without a value, `Err` for anything else.
fn literal(expr: &Expr, params: Option<&ParamValues>) -> std::result::Result<Option<Literal>, ()> {
    if let Expr::Value(v) = expr
        && let Value::Placeholder(name) = &v.value
    {
        let Some(params) = params else {
            return Ok(None);
        };
        return params
            .get_placeholders_with_values(name)
            .map(|value| Some(scalar_literal(&value.value)))
            .map_err(|_| ());
    }
    Ok(Some(constant(expr).ok_or(())?))
}

fn scalar_literal(value: &ScalarValue) -> Literal {
    if value.is_null() {
        return Literal::Null;
    }
    match value {
        ScalarValue::Boolean(Some(b)) => Literal::Bool(*b),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Literal::Text(s.clone()),
        other => Literal::Number(other.to_string()),
    }
}

fn constant(expr: &Expr) -> Option<Literal> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::DollarQuotedString(datafusion::sql::sqlparser::ast::DollarQuotedString {
                value: s,
                ..
            }) => Some(Literal::Text(s.clone())),
            Value::Boolean(b) => Some(Literal::Bool(*b)),
            Value::Number(n, _) => Some(Literal::Number(n.clone())),
            Value::Null => Some(Literal::Null),
            _ => None,
        },
        Expr::Cast { expr, .. } | Expr::Nested(expr) => constant(expr),
        _ => None,
    }
}

fn text_arg(arg: &Literal, function: &str) -> Result<String> {
    match arg {
        Literal::Text(s) | Literal::Number(s) => Ok(s.clone()),
        Literal::Bool(b) => Ok(b.to_string()),
        Literal::Null => Err(KuraError::new(
            sqlstate::NULL_VALUE_NOT_ALLOWED,
            format!("{function}: the setting name must not be null"),
        )),
    }
}

fn bool_arg(arg: &Literal, function: &str) -> Result<bool> {
    match arg {
        Literal::Bool(b) => Ok(*b),
        Literal::Text(s) => match s.trim().to_lowercase().as_str() {
            "t" | "true" | "on" | "yes" | "y" | "1" => Ok(true),
            "f" | "false" | "off" | "no" | "n" | "0" => Ok(false),
            _ => Err(KuraError::new(
                sqlstate::INVALID_TEXT_REPRESENTATION,
                format!("invalid input syntax for type boolean: \"{s}\""),
            )),
        },
        Literal::Null => Ok(false),
        Literal::Number(_) => Err(KuraError::new(
            sqlstate::UNDEFINED_FUNCTION,
            format!("{function}: the flag must be a boolean"),
        )),
    }
}

fn text(value: impl Into<String>) -> Expr {
    Expr::Value(ValueWithSpan {
        value: Value::SingleQuotedString(value.into()),
        span: Span::empty(),
    })
}

fn typed_null() -> Expr {
    Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(Expr::Value(ValueWithSpan {
            value: Value::Null,
            span: Span::empty(),
        })),
        data_type: DataType::Text,
        array: false,
        format: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Settings;
    use crate::sql::parse_sql;
    use std::time::Duration;

    struct Fake(Settings);

    impl SessionState for Fake {
        fn setting(&self, name: &str) -> Option<String> {
            self.0.get(name).map(str::to_string)
        }
        fn set_setting(&mut self, name: &str, value: &str, _local: bool) -> Result<String> {
            self.0.set(name, value)
        }
        fn user(&self) -> String {
            "alice".into()
        }
        fn database(&self) -> String {
            "kura".into()
        }
        fn backend_pid(&self) -> i32 {
            4242
        }
        fn signal_backend(&self, pid: i32, _terminate: bool) -> bool {
            pid == 4242
        }
        fn in_recovery(&self) -> bool {
            false
        }
        fn log_position(&self, which: LogPosition) -> Option<u64> {
            (which == LogPosition::Written).then_some(17)
        }
    }

    fn bound(sql: &str, session: &mut Fake, execute: bool) -> String {
        let statement = parse_sql(sql).unwrap().remove(0);
        let params = ParamValues::List(Vec::new());
        let params = execute.then_some(&params);
        match bind(&statement, session, params).unwrap().statement {
            Some(s) => s.to_string(),
            None => "untouched".into(),
        }
    }

    fn fake() -> Fake {
        Fake(Settings::new("read committed", Duration::ZERO, true))
    }

    #[test]
    fn session_values_become_literals() {
        let mut s = fake();
        assert_eq!(
            bound(
                "SELECT current_setting('application_name'), current_user, pg_backend_pid()",
                &mut s,
                true
            ),
            "SELECT '' AS \"current_setting\", 'alice' AS \"current_user\", CAST(4242 AS INTEGER) AS \"pg_backend_pid\""
        );
        assert_eq!(
            bound(
                "SELECT pg_catalog.current_schemas(true), current_schema()",
                &mut s,
                true
            ),
            "SELECT ARRAY['pg_catalog', 'public'] AS \"current_schemas\", 'public' AS \"current_schema\""
        );
        assert_eq!(
            bound("SELECT 1 FROM t WHERE a = 2", &mut s, true),
            "untouched"
        );
        assert_eq!(
            bound("SELECT current_setting('no.such', true)", &mut s, true),
            "SELECT CAST(NULL AS TEXT) AS \"current_setting\""
        );
    }

    #[test]
    fn set_config_changes_the_session_only_when_executed() {
        let mut s = fake();
        bound(
            "SELECT set_config('application_name', 'x', false)",
            &mut s,
            false,
        );
        assert_eq!(s.0.get("application_name"), Some(""));
        assert_eq!(
            bound(
                "SELECT set_config('application_name', 'x', false)",
                &mut s,
                true
            ),
            "SELECT 'x' AS \"set_config\""
        );
        assert_eq!(s.0.get("application_name"), Some("x"));
    }

    #[test]
    fn errors_name_the_problem() {
        let mut s = fake();
        let statement = parse_sql("SELECT current_setting('nope')")
            .unwrap()
            .remove(0);
        assert_eq!(
            bind(&statement, &mut s, Some(&ParamValues::List(vec![])))
                .unwrap_err()
                .code,
            "42704"
        );
        let statement = parse_sql("SELECT current_setting(name) FROM t")
            .unwrap()
            .remove(0);
        assert_eq!(
            bind(&statement, &mut s, Some(&ParamValues::List(vec![])))
                .unwrap_err()
                .code,
            "0A000"
        );
    }
}
