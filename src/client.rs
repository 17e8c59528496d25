//! The client side of the `kura` command: connecting to a running server over the
//! PostgreSQL protocol, as psql would, for the commands that act on a live server
//! (`kura promote`).
//!
//! Invariants: with a CA certificate the connection is TLS and the server's certificate must
//! be signed by it; without one it is plain; the password never appears on a command line.

use std::path::PathBuf;

/// Where a server is and who connects to it.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    /// Verify the server against this CA certificate (turns TLS on).
    pub root_cert: Option<PathBuf>,
}

/// Connects and drives the connection in the background. Errors are for the terminal.
pub async fn connect(options: &ClientOptions) -> Result<tokio_postgres::Client, String> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&options.host)
        .port(options.port)
        .user(&options.user)
        .dbname(&options.database)
        .application_name("kura")
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Some(password) = &options.password {
        config.password(password);
    }
    let failed = |e: tokio_postgres::Error| {
        let why = if options.password.is_none() && e.to_string().contains("password missing") {
            "the server asks for a password: set PGPASSWORD".to_string()
        } else {
            server_error(e)
        };
        format!(
            "cannot connect to {}:{} as \"{}\": {why}",
            options.host, options.port, options.user
        )
    };
    match &options.root_cert {
        Some(ca) => {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            let tls_config = crate::server::tls::client_config(ca).map_err(|e| e.message)?;
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config);
            let (client, connection) = config.connect(tls).await.map_err(failed)?;
            tokio::spawn(connection);
            Ok(client)
        }
        None => {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(failed)?;
            tokio::spawn(connection);
            Ok(client)
        }
    }
}

/// A server's error as the command reports it: message, SQLSTATE, detail and hint.
pub fn server_error(e: tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        use std::error::Error;
        return match e.source() {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        };
    };
    let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
    if let Some(detail) = db.detail() {
        text.push_str(&format!("\ndetail: {detail}"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("\nhint: {hint}"));
    }
    if let Some(context) = db.where_() {
        text.push_str(&format!("\ncontext: {context}"));
    }
    text
}

/// Runs a client command's future on a small runtime of its own.
pub fn block_on<T>(
    future: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?
        .block_on(future)
}
