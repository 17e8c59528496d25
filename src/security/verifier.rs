//! Password verifiers in PostgreSQL's text forms, so a verifier made by a client (psql's
//! `\password` sends one) is stored as it is:
//!
//! - `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (RFC 5802/7677, base64);
//! - `md5<hex md5(password || user name)>`, only when `/security/passwordEncryption` asks.
//!
//! Invariants: a verifier never holds the password nor anything that logs in by itself
//! (a SCRAM verifier keeps StoredKey = H(ClientKey), not the salted password); parsing never
//! panics on a malformed string; comparisons of secrets run in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::{digest, hmac, pbkdf2};

use crate::error::{KuraError, Result, sqlstate};

/// PBKDF2 rounds for new SCRAM verifiers (PostgreSQL's default `scram_iterations`).
pub const SCRAM_ITERATIONS: u32 = 4096;
const SALT_LEN: usize = 16;
const KEY_LEN: usize = 32;

/// How new passwords are stored (`/security/passwordEncryption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    ScramSha256,
    Md5,
}

impl From<crate::config::PasswordEncryption> for Encryption {
    fn from(setting: crate::config::PasswordEncryption) -> Encryption {
        match setting {
            crate::config::PasswordEncryption::ScramSha256 => Encryption::ScramSha256,
            crate::config::PasswordEncryption::Md5 => Encryption::Md5,
        }
    }
}

/// A stored password verifier.
#[derive(Clone, PartialEq, Eq)]
pub enum Verifier {
    Scram(ScramVerifier),
    /// The 16 bytes of md5(password || user).
    Md5([u8; 16]),
}

#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; KEY_LEN],
    pub server_key: [u8; KEY_LEN],
}

impl std::fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramVerifier")
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Verifiers are secrets too: debug output never carries one.
        match self {
            Verifier::Scram(_) => f.write_str("Verifier(SCRAM-SHA-256)"),
            Verifier::Md5(_) => f.write_str("Verifier(md5)"),
        }
    }
}

/// Fills `out` from the operating system's secure random source.
pub fn fill_random(out: &mut [u8]) {
    use ring::rand::SecureRandom;
    // The system source fails only when the OS has no entropy source at all; an all-zero
    // buffer would be a silent weakness, so that is a hard stop.
    ring::rand::SystemRandom::new()
        .fill(out)
        .expect("the operating system's random source is unavailable");
}

pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    fill_random(&mut out);
    out
}

/// PostgreSQL normalises passwords with SASLprep before hashing, and uses the raw bytes when
/// the password is not valid for it.
fn prepared(password: &str) -> Vec<u8> {
    match stringprep::saslprep(password) {
        Ok(normalised) => normalised.as_bytes().to_vec(),
        Err(_) => password.as_bytes().to_vec(),
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; KEY_LEN] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message);
    let mut out = [0; KEY_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

pub fn sha256(bytes: &[u8]) -> [u8; KEY_LEN] {
    let mut out = [0; KEY_LEN];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

/// Equality of secrets without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl ScramVerifier {
    pub fn new(password: &str, salt: Vec<u8>, iterations: u32) -> ScramVerifier {
        let mut salted = [0; KEY_LEN];
        let rounds =
            std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            rounds,
            &salt,
            &prepared(password),
            &mut salted,
        );
        let client_key = hmac_sha256(&salted, b"Client Key");
        ScramVerifier {
            iterations,
            salt,
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// The verifier of `password` with a fresh random salt.
    pub fn generate(password: &str) -> ScramVerifier {
        ScramVerifier::new(password, random_bytes(SALT_LEN), SCRAM_ITERATIONS)
    }

    /// Checks a cleartext password against the verifier.
    pub fn matches(&self, password: &str) -> bool {
        let candidate = ScramVerifier::new(password, self.salt.clone(), self.iterations);
        constant_time_eq(&candidate.stored_key, &self.stored_key)
    }

    /// Checks a client's proof for `auth_message`; returns the server signature on success.
    pub fn verify_proof(&self, auth_message: &[u8], proof: &[u8]) -> Option<[u8; KEY_LEN]> {
        if proof.len() != KEY_LEN {
            return None;
        }
        let signature = hmac_sha256(&self.stored_key, auth_message);
        let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
        constant_time_eq(&sha256(&client_key), &self.stored_key)
            .then(|| hmac_sha256(&self.server_key, auth_message))
    }
}

fn md5_of(password: &[u8], user: &str) -> [u8; 16] {
    use md5::Digest;
    let mut hasher = md5::Md5::new();
    hasher.update(password);
    hasher.update(user.as_bytes());
    hasher.finalize().into()
}

/// The md5 answer to a challenge: `md5` + hex(md5(hex(stored) || salt)).
pub fn md5_response(stored: &[u8; 16], salt: &[u8; 4]) -> String {
    use md5::Digest;
    let mut hasher = md5::Md5::new();
    hasher.update(hex(stored).as_bytes());
    hasher.update(salt);
    format!("md5{}", hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

fn invalid(what: &str) -> KuraError {
    KuraError::new(
        sqlstate::INVALID_PARAMETER_VALUE,
        format!("invalid password verifier: {what}"),
    )
}

impl Verifier {
    /// The verifier to store for `password` given by `user`. A string that already is a
    /// verifier (a client hashed the password itself) is stored as it is.
    pub fn for_password(password: &str, user: &str, encryption: Encryption) -> Result<Verifier> {
        if password.is_empty() {
            return Err(KuraError::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                "empty password",
            ));
        }
        if let Some(verifier) = Verifier::parse_if_hashed(password)? {
            return Ok(verifier);
        }
        Ok(match encryption {
            Encryption::ScramSha256 => Verifier::Scram(ScramVerifier::generate(password)),
            Encryption::Md5 => Verifier::Md5(md5_of(password.as_bytes(), user)),
        })
    }

    /// `Some` when `text` has a verifier's form; an error when it has the prefix of one but
    /// not its shape.
    pub fn parse_if_hashed(text: &str) -> Result<Option<Verifier>> {
        if let Some(rest) = text.strip_prefix("SCRAM-SHA-256$") {
            return Verifier::parse_scram(rest).map(Some);
        }
        if let Some(rest) = text.strip_prefix("md5")
            && rest.len() == 32
            && let Some(bytes) = unhex(rest)
        {
            let mut out = [0; 16];
            out.copy_from_slice(&bytes);
            return Ok(Some(Verifier::Md5(out)));
        }
        Ok(None)
    }

    fn parse_scram(rest: &str) -> Result<Verifier> {
        let (params, keys) = rest.split_once('$').ok_or_else(|| invalid("no keys"))?;
        let (iterations, salt) = params.split_once(':').ok_or_else(|| invalid("no salt"))?;
        let (stored, server) = keys
            .split_once(':')
            .ok_or_else(|| invalid("no server key"))?;
        let iterations: u32 = iterations
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid("bad iteration count"))?;
        let decode = |text: &str| BASE64.decode(text).map_err(|_| invalid("bad base64"));
        let key = |text: &str| -> Result<[u8; KEY_LEN]> {
            decode(text)?
                .try_into()
                .map_err(|_| invalid("keys must be 32 bytes"))
        };
        Ok(Verifier::Scram(ScramVerifier {
            iterations,
            salt: decode(salt)?,
            stored_key: key(stored)?,
            server_key: key(server)?,
        }))
    }

    /// Parses a stored verifier (never a cleartext password).
    pub fn parse(text: &str) -> Result<Verifier> {
        Verifier::parse_if_hashed(text)?.ok_or_else(|| invalid("unknown format"))
    }

    /// PostgreSQL's text form.
    pub fn to_text(&self) -> String {
        match self {
            Verifier::Scram(v) => format!(
                "SCRAM-SHA-256${}:{}${}:{}",
                v.iterations,
                BASE64.encode(&v.salt),
                BASE64.encode(v.stored_key),
                BASE64.encode(v.server_key)
            ),
            Verifier::Md5(bytes) => format!("md5{}", hex(bytes)),
        }
    }

    /// Checks a cleartext password (the `password` method over TLS, and the CLI).
    pub fn matches(&self, password: &str, user: &str) -> bool {
        match self {
            Verifier::Scram(v) => v.matches(password),
            Verifier::Md5(stored) => constant_time_eq(&md5_of(password.as_bytes(), user), stored),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_verifiers_match_postgres_protocol() {
        // postgres-protocol (what tokio-postgres uses) makes PostgreSQL's verifier text; ours
        // must check the same password against it.
        let made = postgres_protocol::password::scram_sha_256(b"s3cret");
        let parsed = Verifier::parse(&made).unwrap();
        assert!(parsed.matches("s3cret", "anyone"));
        assert!(!parsed.matches("s3cret!", "anyone"));
        assert_eq!(parsed.to_text(), made);
    }

    #[test]
    fn md5_verifiers_are_postgres_md5() {
        let v = Verifier::for_password("pw", "alice", Encryption::Md5).unwrap();
        assert_eq!(
            v.to_text(),
            postgres_protocol::password::md5(b"pw", "alice")
        );
        assert!(v.matches("pw", "alice"));
        assert!(!v.matches("pw", "bob"));
    }

    #[test]
    fn hashed_passwords_are_kept_and_bad_ones_refused() {
        let text = Verifier::for_password("x", "u", Encryption::ScramSha256)
            .unwrap()
            .to_text();
        let again = Verifier::for_password(&text, "u", Encryption::Md5).unwrap();
        assert_eq!(again.to_text(), text);
        assert!(Verifier::parse("SCRAM-SHA-256$x:y$z").is_err());
        assert!(Verifier::parse("SCRAM-SHA-256$4096:AAAA$AAAA:AAAA").is_err());
        assert!(Verifier::parse("plain").is_err());
        assert!(Verifier::for_password("", "u", Encryption::ScramSha256).is_err());
        assert_eq!(format!("{again:?}"), "Verifier(SCRAM-SHA-256)");
    }
}
