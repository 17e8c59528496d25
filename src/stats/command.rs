//! `kura stat` (GridDB's gs_stat): the figures of a running server as JSON, one object per
//! section, read through SQL from the `kura_stat` relation.

use crate::client::{ClientOptions, connect, server_error};

/// The server's statistics as pretty-printed JSON.
pub async fn stat(options: &ClientOptions) -> Result<String, String> {
    let client = connect(options).await?;
    let rows = client
        .query("SELECT section, name, value, metric FROM kura_stat", &[])
        .await
        .map_err(server_error)?;
    let mut out = serde_json::Map::new();
    for row in rows {
        let section: String = row.get(0);
        let name: String = row.get(1);
        let value: Option<String> = row.get(2);
        let numeric = row.get::<_, Option<String>>(3).is_some();
        let value = match value {
            None => serde_json::Value::Null,
            Some(text) if numeric => serde_json::from_str::<serde_json::Number>(&text)
                .map_or(serde_json::Value::String(text), serde_json::Value::Number),
            Some(text) => serde_json::Value::String(text),
        };
        if let serde_json::Value::Object(map) = out
            .entry(section)
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()))
        {
            map.insert(name, value);
        }
    }
    serde_json::to_string_pretty(&serde_json::Value::Object(out)).map_err(|e| e.to_string())
}
