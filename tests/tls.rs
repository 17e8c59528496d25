//! TLS with real clients: psql with `sslmode=require` and `verify-full` against a certificate
//! from `kura cert`, plaintext refused in REQUIRED mode and accepted in PREFERRED mode, and
//! PostgreSQL 17's direct TLS (ALPN `postgresql`, no SSLRequest) through rustls.
//! Client certificates: checked (VERIFY_FULL) and in place of the password (CERT); tokio-postgres
//! over rustls (tokio-postgres-rustls) in every mode.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::{ADMIN_PASSWORD, TestServer};
use pgwire::tokio::tokio_rustls::{TlsConnector, rustls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A data directory with development certificates in `security/` and a configuration file.
fn node(mode: &str) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = common::temp_dir();
    let data = tmp.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(["cert", "--out"])
        .arg(data.join("security"))
        .output()
        .expect("run kura cert");
    assert!(out.status.success(), "{out:?}");
    let config = tmp.path().join("kura.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"system": {{"serverSslMode": "{mode}", "sslProtocolMaxVersion": "TLSv1.3"}}}}"#
        ),
    )
    .unwrap();
    (tmp, data, config)
}

fn start(data: &Path, config: &Path) -> TestServer {
    TestServer::start_in(data, &["--config", config.to_str().unwrap()])
}

/// psql's output and exit status for `sql` on connection string `conn`.
fn psql(conn: &str, sql: &str) -> (bool, String) {
    let out = Command::new("psql")
        .args(["-X", "-At", "-c", sql, conn])
        .env("PGPASSWORD", ADMIN_PASSWORD)
        .env("PGCONNECT_TIMEOUT", "20")
        .output()
        .expect("run psql (the PostgreSQL client must be installed)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_string())
}

#[test]
fn required_mode_serves_tls_only() {
    let (_tmp, data, config) = node("REQUIRED");
    let server = start(&data, &config);
    let port = server.port;
    let (ok, text) = psql(
        &format!("host=127.0.0.1 port={port} user=admin dbname=public sslmode=require"),
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    assert!(ok && text == "t", "{text}");
    let ca = data.join("security/ca.crt");
    let (ok, text) = psql(
        &format!(
            "host=localhost port={port} user=admin dbname=public sslmode=verify-full sslrootcert={}",
            ca.display()
        ),
        "SELECT 'verified'",
    );
    assert!(ok && text == "verified", "{text}");
    // The server certificate is not a CA: verifying against it fails on the client.
    let (ok, _) = psql(
        &format!(
            "host=localhost port={port} user=admin dbname=public sslmode=verify-full sslrootcert={}",
            data.join("security/gs_node.crt").display()
        ),
        "SELECT 1",
    );
    assert!(!ok);
    let (ok, text) = psql(
        &format!("host=127.0.0.1 port={port} user=admin dbname=public sslmode=disable"),
        "SELECT 1",
    );
    assert!(
        !ok && text.contains("FATAL") && text.contains("TLS"),
        "{text}"
    );
}

#[tokio::test]
async fn preferred_mode_serves_both_and_tokio_postgres_sees_sqlstate_28000_in_required_mode() {
    let (_tmp, data, config) = node("PREFERRED");
    let server = start(&data, &config);
    let plain = server.connect().await;
    assert_eq!(
        common::text_rows(
            &plain,
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
        .await,
        vec!["f"]
    );
    let (ok, text) = psql(
        &format!(
            "host=127.0.0.1 port={} user=admin dbname=public sslmode=require",
            server.port
        ),
        "SELECT 'tls'",
    );
    assert!(ok && text == "tls", "{text}");
    drop(server);

    let (_tmp, data, config) = node("REQUIRED");
    let server = start(&data, &config);
    let refused = tokio_postgres::connect(
        &format!("{} sslmode=disable", server.conn_string()),
        tokio_postgres::NoTls,
    )
    .await
    .err()
    .expect("plaintext is refused");
    assert_eq!(common::sqlstate(&refused), Some("28000"), "{refused:?}");
}

#[tokio::test]
async fn direct_tls_with_alpn_postgresql() {
    let (_tmp, data, config) = node("REQUIRED");
    let server = start(&data, &config);
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(data.join("security/ca.crt")).unwrap();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"postgresql".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = common::within(
        "the direct TLS handshake",
        TlsConnector::from(Arc::new(client)).connect(name, tcp),
    )
    .await
    .expect("handshake");
    // A startup message straight away: the server asks for SASL (R, code 10).
    let mut body = 196608i32.to_be_bytes().to_vec();
    for part in ["user", "admin", "database", "public", ""] {
        body.extend_from_slice(part.as_bytes());
        body.push(0);
    }
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    tls.write_all(&packet).await.unwrap();
    let mut head = [0u8; 9];
    common::within("the authentication request", tls.read_exact(&mut head))
        .await
        .unwrap();
    assert_eq!(head[0], b'R');
    assert_eq!(i32::from_be_bytes(head[5..9].try_into().unwrap()), 10);
}

#[test]
fn cleartext_passwords_only_over_tls() {
    let (tmp, data, _) = node("REQUIRED");
    let config = tmp.path().join("cleartext.json");
    std::fs::write(
        &config,
        r#"{"system": {"serverSslMode": "REQUIRED"}, "security": {"authMethod": "PASSWORD"}}"#,
    )
    .unwrap();
    let server = start(&data, &config);
    let conn = format!(
        "host=127.0.0.1 port={} user=admin dbname=public sslmode=require",
        server.port
    );
    let (ok, text) = psql(&conn, "SELECT 'cleartext over tls'");
    assert!(ok && text == "cleartext over tls", "{text}");
    // The configuration refuses PASSWORD without TLS required.
    let plain = tmp.path().join("plain.json");
    std::fs::write(&plain, r#"{"security": {"authMethod": "PASSWORD"}}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(["check", "--config"])
        .arg(&plain)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/security/authMethod"));
}

fn kura_cert(dir: &Path, clients: &[&str]) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kura"));
    command.args(["cert", "--out"]).arg(dir);
    for client in clients {
        command.args(["--client", client]);
    }
    let out = command.output().expect("run kura cert");
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn client_certificates_are_checked_and_can_replace_passwords() {
    let (tmp, data, _) = node("REQUIRED");
    let security = data.join("security");
    let ca_before = std::fs::read(security.join("ca.crt")).unwrap();
    // A second run reuses the CA, so the client certificates match the server's CA.
    kura_cert(&security, &["admin", "mallory"]);
    assert_eq!(std::fs::read(security.join("ca.crt")).unwrap(), ca_before);
    let with_cert = |port: u16, user: &str, cert: &str, extra: &str| {
        format!(
            "host=localhost port={port} user={user} dbname=public sslmode=verify-full \
             sslrootcert={} sslcert={} sslkey={} {extra}",
            security.join("ca.crt").display(),
            security.join(format!("{cert}.crt")).display(),
            security.join(format!("{cert}.key")).display(),
        )
    };

    let config = tmp.path().join("cert.json");
    std::fs::write(
        &config,
        r#"{"system": {"serverSslMode": "REQUIRED"}, "security": {"clientCertificate": "CERT"}}"#,
    )
    .unwrap();
    let mut server = start(&data, &config);
    let port = server.port;
    // The certificate is the login: a wrong password is never asked for.
    let (ok, text) = psql(
        &with_cert(port, "admin", "admin", "password=wrong"),
        "SELECT current_user",
    );
    assert!(ok && text == "admin", "{text}");
    let (ok, text) = psql(&with_cert(port, "mallory", "mallory", ""), "SELECT 1");
    assert!(
        !ok && text.contains("certificate authentication failed"),
        "{text}"
    );
    let (ok, text) = psql(&with_cert(port, "admin", "mallory", ""), "SELECT 1");
    assert!(
        !ok && text.contains("certificate authentication failed"),
        "{text}"
    );
    // No certificate: the TLS handshake itself fails.
    let (ok, text) = psql(
        &format!("host=127.0.0.1 port={port} user=admin dbname=public sslmode=require"),
        "SELECT 1",
    );
    assert!(!ok, "{text}");
    server.terminate();

    std::fs::write(
        &config,
        r#"{"system": {"serverSslMode": "REQUIRED"},
            "security": {"clientCertificate": "VERIFY_FULL"}}"#,
    )
    .unwrap();
    let server = start(&data, &config);
    let port = server.port;
    let (ok, text) = psql(&with_cert(port, "admin", "admin", ""), "SELECT 'both'");
    assert!(ok && text == "both", "{text}");
    let (ok, text) = psql(
        &with_cert(port, "admin", "admin", "password=wrong"),
        "SELECT 1",
    );
    assert!(
        !ok && text.contains("password authentication failed"),
        "{text}"
    );
    let (ok, text) = psql(&with_cert(port, "admin", "mallory", ""), "SELECT 1");
    assert!(
        !ok && text.contains("certificate authentication failed"),
        "{text}"
    );
}

/// A tokio-postgres TLS connector (rustls) that trusts `ca`.
fn rustls_connector(ca: &Path) -> tokio_postgres_rustls::MakeRustlsConnect {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

/// Whether the connection `conn` makes uses TLS, or its error.
async fn uses_tls(conn: &str, ca: &Path) -> Result<bool, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conn, rustls_connector(ca)).await?;
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

#[tokio::test]
async fn tokio_postgres_with_rustls_in_every_mode() {
    for mode in ["DISABLED", "PREFERRED", "REQUIRED"] {
        let (_tmp, data, config) = node(mode);
        let server = start(&data, &config);
        let ca = data.join("security/ca.crt");
        let conn = format!(
            "host=localhost hostaddr=127.0.0.1 port={} user=admin password={ADMIN_PASSWORD} \
             dbname=public",
            server.port
        );
        let required = uses_tls(&format!("{conn} sslmode=require"), &ca).await;
        let preferred = uses_tls(&format!("{conn} sslmode=prefer"), &ca).await;
        let plaintext = uses_tls(&format!("{conn} sslmode=disable"), &ca).await;
        match mode {
            "DISABLED" => {
                assert!(required.is_err(), "{mode}: {required:?}");
                assert!(!preferred.unwrap(), "{mode}");
                assert!(!plaintext.unwrap(), "{mode}");
            }
            "PREFERRED" => {
                assert!(required.unwrap(), "{mode}");
                assert!(preferred.unwrap(), "{mode}");
                assert!(!plaintext.unwrap(), "{mode}");
            }
            _ => {
                assert!(required.unwrap(), "{mode}");
                assert!(preferred.unwrap(), "{mode}");
                let refused = plaintext.expect_err("plaintext is refused");
                assert_eq!(common::sqlstate(&refused), Some("28000"), "{refused:?}");
            }
        }
    }
}
