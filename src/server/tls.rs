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

use crate::config::{Config, SslMode, TlsVersion};
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
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| config_error(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            config_error(format!(
                "TLS certificate {} and key {}: {e}",
                cert_path.display(),
                key_path.display()
            ))
        })?;
    server.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

/// What `kura cert` wrote.
#[derive(Debug)]
pub struct Written {
    pub files: Vec<PathBuf>,
}

/// `kura cert --out DIR`: a CA (`ca.crt`, `ca.key`) and a server certificate signed by it
/// (`gs_node.crt`, `gs_node.key`) for `localhost`, 127.0.0.1, ::1 and `hosts`.
pub fn make_development_certificates(dir: &Path, hosts: &[String]) -> Result<Written> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let failed = |e: rcgen::Error| KuraError::internal(format!("cannot make a certificate: {e}"));
    std::fs::create_dir_all(dir)
        .map_err(|e| KuraError::io(format!("cannot create {}: {e}", dir.display()), &e))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Kura development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().map_err(failed)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(failed)?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    names.extend(hosts.iter().cloned());
    let mut server_params = CertificateParams::new(names).map_err(failed)?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "Kura server");
    let server_key = KeyPair::generate().map_err(failed)?;
    let issuer = Issuer::new(ca_params, &ca_key);
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .map_err(failed)?;
    let files = [
        (CA_CERT_FILE, ca_cert.pem(), 0o644),
        (CA_KEY_FILE, ca_key.serialize_pem(), 0o600),
        (CERT_FILE, server_cert.pem(), 0o644),
        (KEY_FILE, server_key.serialize_pem(), 0o600),
    ];
    let mut written = Vec::new();
    for (name, text, mode) in files {
        let path = dir.join(name);
        crate::security::write_file(&path, &text, mode)?;
        written.push(path);
    }
    Ok(Written { files: written })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_certificates_load_into_an_acceptor() {
        let dir = tempfile::tempdir().unwrap();
        let security = dir.path().join("security");
        make_development_certificates(&security, &["db.example".into()]).unwrap();
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
