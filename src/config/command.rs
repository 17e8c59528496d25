//! `kura config`: the server settings of a running server (`pg_settings` rows named by their
//! definition-file path) and their online changes (`ALTER SYSTEM SET` / `RESET`).

use crate::client::{ClientOptions, connect, server_error};

fn quoted_name(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `kura config show [NAME]`: path, value, whether it changes online, where it came from.
pub async fn show(options: &ClientOptions, name: Option<&str>) -> Result<String, String> {
    let client = connect(options).await?;
    let rows = client
        .query(
            "SELECT name, setting, context, source FROM pg_settings \
             WHERE name LIKE '/%' AND ($1::text IS NULL OR lower(name) = lower($1::text) \
             OR lower(replace(name, '/', '.')) = lower('.' || $1::text)) ORDER BY name",
            &[&name],
        )
        .await
        .map_err(server_error)?;
    if rows.is_empty() {
        return Err(format!("no server setting named {}", name.unwrap_or("")));
    }
    let mut out = String::new();
    for row in rows {
        let (path, value, context, source): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let when = if context == "sighup" {
            "online"
        } else {
            "restart"
        };
        out.push_str(&format!("{path:<42} {value:<24} {when:<8} {source}\n"));
    }
    Ok(out)
}

/// `kura config set NAME VALUE` (or, without a value, back to the startup value): the
/// server's notice, which says until when the change lasts.
pub async fn set(
    options: &ClientOptions,
    name: &str,
    value: Option<&str>,
) -> Result<String, String> {
    let client = connect(options).await?;
    let sql = match value {
        Some(value) => format!(
            "ALTER SYSTEM SET {} = '{}'",
            quoted_name(name),
            value.replace('\'', "''")
        ),
        None => format!("ALTER SYSTEM RESET {}", quoted_name(name)),
    };
    client.batch_execute(&sql).await.map_err(server_error)?;
    show(options, Some(name)).await
}
