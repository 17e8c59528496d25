//! Authentication of a new connection: which exchange a login gets (`/security/authMethod`
//! and the kind of verifier the user has), and each step of it.
//!
//! - SCRAM-SHA-256 for every user by default;
//! - MD5 (PostgreSQL's md5 challenge) only for users whose verifier is md5 when the method is
//!   MD5, SCRAM for the others (as PostgreSQL does);
//! - the cleartext password only when the method is PASSWORD, which the configuration allows
//!   with TLS required;
//! - a client certificate whose common name is the user (`/security/clientCertificate`
//!   VERIFY_FULL, with the password; CERT, instead of it).
//!
//! Invariants: an unknown user goes through the same exchange as a known one and fails with
//! the same message (28P01); nothing here logs or keeps a password.

use std::sync::Arc;
use std::time::Duration;

use pgwire::messages::startup::{Authentication, PasswordMessageFamily};
use pgwire::tokio::tokio_rustls::rustls::pki_types::CertificateDer;

use crate::config::{AuthMethod, ClientCertificate, Config, SslMode};
use crate::error::{KuraError, Result, sqlstate};
use crate::query::Engine;
use crate::security::Login;
use crate::security::admins::Admins;
use crate::security::scram::{self, ScramExchange, login_failed, mock_verifier};
use crate::security::verifier::{Verifier, constant_time_eq, md5_response, random_bytes};

/// The server-wide authentication settings and sources of users.
#[derive(Debug)]
pub struct Authenticator {
    pub engine: Arc<Engine>,
    pub admins: Arc<Admins>,
    pub method: AuthMethod,
    pub ssl_mode: SslMode,
    pub failure_delay: Duration,
    client_certificate: ClientCertificate,
    /// Salts the mock exchange of unknown users, so their salts are stable but unguessable.
    secret: Vec<u8>,
}

/// An exchange waiting for the client's next password message.
#[derive(Debug)]
pub enum Pending {
    SaslStart(Candidate),
    Scram(Candidate, Box<ScramExchange>),
    Md5(Candidate, [u8; 4]),
    Cleartext(Candidate),
}

/// The user a login claims to be: `None` when no such user exists.
#[derive(Debug)]
pub struct Candidate {
    requested: String,
    found: Option<(Login, Verifier)>,
}

/// What to do after a password message.
pub enum Progress {
    /// Send this and wait for the next message.
    Continue(Authentication, Pending),
    /// Authenticated; send the final SASL message first when there is one.
    Done(Option<Authentication>, Login),
}

impl Authenticator {
    pub fn new(engine: Arc<Engine>, admins: Arc<Admins>, config: &Config) -> Authenticator {
        Authenticator {
            engine,
            admins,
            method: config.security.auth_method,
            ssl_mode: config.system.server_ssl_mode,
            failure_delay: config.security.login_failure_delay.get(),
            client_certificate: config.security.client_certificate,
            secret: random_bytes(32),
        }
    }

    fn candidate(&self, user: &str) -> Candidate {
        let found = match self.admins.get_now(user) {
            Some(admin) => Some((
                Login {
                    user: admin.name,
                    admin: true,
                },
                admin.verifier,
            )),
            None => self.engine.directory.user(user).map(|u| {
                (
                    Login {
                        user: u.name,
                        admin: false,
                    },
                    u.verifier,
                )
            }),
        };
        Candidate {
            requested: user.to_string(),
            found,
        }
    }

    /// Checks a TLS client's certificate against `/security/clientCertificate` for `user`;
    /// under CERT the certificate is the login, returned here.
    pub fn check_certificate(
        &self,
        user: &str,
        certificates: Option<&[CertificateDer<'_>]>,
    ) -> Result<Option<Login>> {
        if matches!(
            self.client_certificate,
            ClientCertificate::Off | ClientCertificate::VerifyCa
        ) {
            return Ok(None);
        }
        let failed = || {
            KuraError::new(
                sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                format!("certificate authentication failed for user \"{user}\""),
            )
        };
        let common_name = certificates
            .and_then(|certificates| certificates.first())
            .and_then(|certificate| super::tls::common_name(certificate))
            .ok_or_else(failed)?;
        if !common_name.eq_ignore_ascii_case(user) {
            return Err(failed().with_detail(format!("the certificate is for \"{common_name}\"")));
        }
        if self.client_certificate != ClientCertificate::Cert {
            return Ok(None);
        }
        match self.candidate(user).found {
            Some((login, _)) => Ok(Some(login)),
            None => Err(failed()),
        }
    }

    /// The first request of the exchange for `user`.
    pub fn begin(&self, user: &str) -> (Authentication, Pending) {
        let candidate = self.candidate(user);
        let md5 = match &candidate.found {
            Some((_, Verifier::Md5(_))) => self.method == AuthMethod::Md5,
            _ => false,
        };
        match self.method {
            AuthMethod::Password => (
                Authentication::CleartextPassword,
                Pending::Cleartext(candidate),
            ),
            _ if md5 => {
                let salt: [u8; 4] = random_bytes(4).try_into().unwrap_or([0; 4]);
                (
                    Authentication::MD5Password(salt.to_vec()),
                    Pending::Md5(candidate, salt),
                )
            }
            _ => (
                Authentication::SASL(vec![scram::MECHANISM.to_string()]),
                Pending::SaslStart(candidate),
            ),
        }
    }

    /// One password message of the exchange.
    pub fn step(&self, pending: Pending, message: PasswordMessageFamily) -> Result<Progress> {
        match pending {
            Pending::SaslStart(candidate) => {
                let initial = message.into_sasl_initial_response().map_err(protocol)?;
                if initial.auth_method != scram::MECHANISM {
                    return Err(KuraError::new(
                        sqlstate::PROTOCOL_VIOLATION,
                        format!(
                            "client selected an invalid SASL authentication mechanism \"{}\"",
                            initial.auth_method
                        ),
                    ));
                }
                let data = initial.data.unwrap_or_default();
                let verifier = match &candidate.found {
                    Some((_, Verifier::Scram(v))) => v.clone(),
                    // An md5 verifier cannot answer SCRAM: the login fails like a wrong password.
                    _ => mock_verifier(&candidate.requested, &self.secret),
                };
                let (exchange, server_first) = ScramExchange::start(&data, verifier)?;
                Ok(Progress::Continue(
                    Authentication::SASLContinue(server_first.into_bytes().into()),
                    Pending::Scram(candidate, Box::new(exchange)),
                ))
            }
            Pending::Scram(candidate, exchange) => {
                let response = message.into_sasl_response().map_err(protocol)?;
                let server_final = exchange.finish(&response.data, &candidate.requested)?;
                let login = match candidate.found {
                    Some((login, Verifier::Scram(_))) => login,
                    _ => return Err(login_failed(&candidate.requested)),
                };
                Ok(Progress::Done(
                    Some(Authentication::SASLFinal(server_final.into_bytes().into())),
                    login,
                ))
            }
            Pending::Md5(candidate, salt) => {
                let answer = message.into_password().map_err(protocol)?.password;
                match candidate.found {
                    Some((login, Verifier::Md5(stored)))
                        if constant_time_eq(
                            md5_response(&stored, &salt).as_bytes(),
                            answer.as_bytes(),
                        ) =>
                    {
                        Ok(Progress::Done(None, login))
                    }
                    _ => Err(login_failed(&candidate.requested)),
                }
            }
            Pending::Cleartext(candidate) => {
                let password = message.into_password().map_err(protocol)?.password;
                match candidate.found {
                    Some((login, verifier)) if verifier.matches(&password, &login.user) => {
                        Ok(Progress::Done(None, login))
                    }
                    _ => Err(login_failed(&candidate.requested)),
                }
            }
        }
    }
}

fn protocol(e: pgwire::error::PgWireError) -> KuraError {
    KuraError::new(
        sqlstate::PROTOCOL_VIOLATION,
        format!("invalid password message: {e}"),
    )
}
