//! TLS for client connections (`/system/serverSslMode`): the rustls server configuration from
//! GridDB's file names under `/system/securityPath` (`gs_node.crt`, `gs_node.key`), the
//! protocol versions up to `/system/sslProtocolMaxVersion`, and the ALPN name `postgresql`
//! that PostgreSQL 17's direct TLS handshake needs. pgwire answers SSLRequest and accepts
//! direct TLS with the acceptor built here.
//!
//! Also `kura cert`: a development CA and a server certificate signed by it (rcgen).
//!
//! Invariants: a server whose mode is PREFERRED or REQUIRED does not start without a usable
//! certificate and key; private keys are written with mode 0600.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::tokio_rustls::rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ClientCertificate, Config, SslMode, TlsVersion};
use crate::error::{KuraError, Result, sqlstate};

pub const CERT_FILE: &str = "gs_node.crt";
pub const KEY_FILE: &str = "gs_node.key";
pub const CA_CERT_FILE: &str = "ca.crt";
pub const CA_KEY_FILE: &str = "ca.key";

fn config_error(message: String) -> KuraError {
    KuraError::new(sqlstate::INVALID_PARAMETER_VALUE, message)
        .with_hint("`kura cert --out DIR` makes a development certificate; see the README")
}

/// The acceptor for the configured mode: `None` when TLS is DISABLED.
pub fn acceptor(config: &Config) -> Result<Option<TlsAcceptor>> {
    if config.system.server_ssl_mode == SslMode::Disabled {
        return Ok(None);
    }
    let dir = config.system.security_dir();
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect())
        .map_err(|e| config_error(format!("TLS certificate {}: {e}", cert_path.display())))?;
    if certs.is_empty() {
        return Err(config_error(format!(
            "TLS certificate {} holds no certificate",
            cert_path.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| config_error(format!("TLS key {}: {e}", key_path.display())))?;
    let versions: &[&rustls::SupportedProtocolVersion] =
        match config.system.ssl_protocol_max_version {
            TlsVersion::TlsV1_2 => &[&rustls::version::TLS12],
            TlsVersion::TlsV1_3 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| config_error(format!("TLS versions: {e}")))?;
    let builder = match config.security.client_certificate {
        ClientCertificate::Off => builder.with_no_client_auth(),
        _ => builder.with_client_cert_verifier(client_verifier(&dir, provider)?),
    };
    let mut server = builder.with_single_cert(certs, key).map_err(|e| {
        config_error(format!(
            "TLS certificate {} and key {}: {e}",
            cert_path.display(),
            key_path.display()
        ))
    })?;
    server.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

/// The connector a standby uses for its primary: the primary's certificate must be signed by
/// the CA in `<securityPath>/ca.crt` and name the host in `/cluster/standbyOf`.
pub fn connector(config: &Config) -> Result<pgwire::tokio::TlsConnector> {
    let path = config.system.security_dir().join(CA_CERT_FILE);
    Ok(pgwire::tokio::TlsConnector::from(Arc::new(client_config(
        &path,
    )?)))
}

/// A TLS client that trusts the CA certificates in `ca_path` (and nothing else).
pub fn client_config(ca_path: &Path) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let problem = |e: &dyn std::fmt::Display| {
        config_error(format!("CA certificate {}: {e}", ca_path.display()))
    };
    for cert in CertificateDer::pem_file_iter(ca_path).map_err(|e| problem(&e))? {
        roots
            .add(cert.map_err(|e| problem(&e))?)
            .map_err(|e| problem(&e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(format!("TLS versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(client)
}

/// Requires client certificates signed by the CA in `<dir>/ca.crt`.
fn client_verifier(
    dir: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let ca_path = dir.join(CA_CERT_FILE);
    let mut roots = rustls::RootCertStore::empty();
    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&ca_path)
        .and_then(|certs| certs.collect())
        .map_err(|e| config_error(format!("client CA certificate {}: {e}", ca_path.display())))?;
    for ca in cas {
        roots.add(ca).map_err(|e| {
            config_error(format!("client CA certificate {}: {e}", ca_path.display()))
        })?;
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| config_error(format!("client CA certificate {}: {e}", ca_path.display())))
}

/// The common name (CN) of a DER certificate's subject.
pub fn common_name(certificate: &[u8]) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).ok()?;
    let name = parsed
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(name)
}

/// What `kura cert` wrote.
#[derive(Debug)]
pub struct Written {
    pub files: Vec<PathBuf>,
}

/// `kura cert --out DIR`: a CA (`ca.crt`, `ca.key`; the ones already in `dir` are reused), a
/// server certificate signed by it (`gs_node.crt`, `gs_node.key`) for `localhost`, 127.0.0.1,
/// ::1 and `hosts`, and for each of `clients` a client certificate whose common name is that
/// user (`NAME.crt`, `NAME.key`).
pub fn make_development_certificates(
    dir: &Path,
    hosts: &[String],
    clients: &[String],
) -> Result<Written> {
    use rcgen::{CertificateParams, DnType, Issuer, KeyPair};
    let failed = |e: rcgen::Error| KuraError::internal(format!("cannot make a certificate: {e}"));
    for client in clients {
        let reserved = ["ca", "gs_node"].contains(&client.as_str());
        if client.is_empty() || reserved || client.contains(['/', '\\', '\0']) || client == ".." {
            return Err(KuraError::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("{client:?} cannot name a client certificate file"),
            ));
        }
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| KuraError::io(format!("cannot create {}: {e}", dir.display()), &e))?;
    let mut files: Vec<(String, String, u32)> = Vec::new();
    let (ca_key, ca_pem) = match existing_ca(dir)? {
        Some(existing) => existing,
        None => {
            let (key, pem) = new_ca().map_err(failed)?;
            files.push((CA_CERT_FILE.into(), pem.clone(), 0o644));
            files.push((CA_KEY_FILE.into(), key.serialize_pem(), 0o600));
            (key, pem)
        }
    };
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key).map_err(failed)?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    names.extend(hosts.iter().cloned());
    // (certificate file, key file, subject alternative names, common name)
    let mut leaves = vec![(
        CERT_FILE.to_string(),
        KEY_FILE.to_string(),
        names,
        "Kura server".to_string(),
    )];
    for client in clients {
        leaves.push((
            format!("{client}.crt"),
            format!("{client}.key"),
            Vec::new(),
            client.clone(),
        ));
    }
    for (cert_file, key_file, names, common_name) in leaves {
        let mut params = CertificateParams::new(names).map_err(failed)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().map_err(failed)?;
        let cert = params.signed_by(&key, &issuer).map_err(failed)?;
        files.push((cert_file, cert.pem(), 0o644));
        files.push((key_file, key.serialize_pem(), 0o600));
    }
    let mut written = Vec::new();
    for (name, text, mode) in files {
        let path = dir.join(name);
        crate::security::write_file(&path, &text, mode)?;
        written.push(path);
    }
    Ok(Written { files: written })
}

/// A new self-signed CA: its key and certificate (PEM).
fn new_ca() -> std::result::Result<(rcgen::KeyPair, String), rcgen::Error> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Kura development CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((key, cert.pem()))
}

/// The CA key and certificate already in `dir`, if both are there.
fn existing_ca(dir: &Path) -> Result<Option<(rcgen::KeyPair, String)>> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    if !cert_path.exists() || !key_path.exists() {
        return Ok(None);
    }
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .map_err(|e| KuraError::io(format!("cannot read {}: {e}", path.display()), &e))
    };
    let key = rcgen::KeyPair::from_pem(&read(&key_path)?)
        .map_err(|e| config_error(format!("CA key {}: {e}", key_path.display())))?;
    Ok(Some((key, read(&cert_path)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_certificates_load_into_an_acceptor() {
        let dir = tempfile::tempdir().unwrap();
        let security = dir.path().join("security");
        make_development_certificates(&security, &["db.example".into()], &[]).unwrap();
        let mut config = Config::default();
        config.system.data_dir = dir.path().to_path_buf();
        config.system.server_ssl_mode = SslMode::Required;
        assert!(acceptor(&config).unwrap().is_some());
        config.system.ssl_protocol_max_version = TlsVersion::TlsV1_3;
        assert!(acceptor(&config).unwrap().is_some());
        config.system.server_ssl_mode = SslMode::Disabled;
        assert!(acceptor(&config).unwrap().is_none());
        config.system.server_ssl_mode = SslMode::Preferred;
        std::fs::remove_file(security.join(KEY_FILE)).unwrap();
        let missing = acceptor(&config).err().expect("no key, no TLS");
        assert!(missing.message.contains(KEY_FILE), "{}", missing.message);
    }
}
