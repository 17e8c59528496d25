//! The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL runs it inside SASL:
//! client-first → server-first (nonce, salt, iterations) → client-final (proof) → server-final
//! (signature). The user name comes from the startup message; the one inside the SCRAM
//! message is ignored, as PostgreSQL does.
//!
//! Invariants: a user that does not exist gets the same exchange as one that does (a salt
//! derived from the name and a server secret, so it is stable per name) and fails at the
//! proof, so the answers never tell "no such user" from "wrong password"; a malformed message
//! is a protocol violation (08P01), a wrong proof an authentication failure (28P01).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::verifier::{SCRAM_ITERATIONS, ScramVerifier, random_bytes, sha256};
use crate::error::{KuraError, Result, sqlstate};

pub const MECHANISM: &str = "SCRAM-SHA-256";

fn malformed(what: &str) -> KuraError {
    KuraError::new(
        sqlstate::PROTOCOL_VIOLATION,
        format!("malformed SCRAM message: {what}"),
    )
}

/// The failure every wrong password or unknown user gets.
pub fn login_failed(user: &str) -> KuraError {
    KuraError::new(
        sqlstate::INVALID_PASSWORD,
        format!("password authentication failed for user \"{user}\""),
    )
}

/// A verifier for a user that does not exist: its salt depends only on the name and the
/// server's secret, its keys are random, so no proof matches it.
pub fn mock_verifier(user: &str, secret: &[u8]) -> ScramVerifier {
    let mut seed = secret.to_vec();
    seed.extend_from_slice(user.as_bytes());
    let salt = sha256(&seed)[..16].to_vec();
    let mut keys = random_bytes(64);
    let server_key: [u8; 32] = keys.split_off(32).try_into().unwrap_or([0; 32]);
    let stored_key: [u8; 32] = keys.try_into().unwrap_or([0; 32]);
    ScramVerifier {
        iterations: SCRAM_ITERATIONS,
        salt,
        stored_key,
        server_key,
    }
}

/// The exchange after server-first was sent, waiting for client-final.
#[derive(Debug)]
pub struct ScramExchange {
    verifier: ScramVerifier,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

fn text(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8"))
}

/// The value of attribute `name=` in a comma-separated SCRAM message.
fn attribute<'a>(parts: &[&'a str], name: char) -> Option<&'a str> {
    parts
        .iter()
        .find_map(|p| p.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
}

impl ScramExchange {
    /// Reads client-first; returns the exchange and server-first.
    pub fn start(client_first: &[u8], verifier: ScramVerifier) -> Result<(ScramExchange, String)> {
        let message = text(client_first)?;
        // gs2-header: channel-binding flag, optional authzid, then the bare message.
        let mut pieces = message.splitn(3, ',');
        let flag = pieces.next().ok_or_else(|| malformed("empty"))?;
        let authzid = pieces.next().ok_or_else(|| malformed("no gs2 header"))?;
        let bare = pieces
            .next()
            .ok_or_else(|| malformed("no client-first-bare"))?;
        match flag {
            "n" | "y" => {}
            f if f.starts_with("p=") => {
                return Err(KuraError::new(
                    sqlstate::PROTOCOL_VIOLATION,
                    "SCRAM channel binding is not supported; connect with channel_binding=prefer or disable",
                ));
            }
            _ => return Err(malformed("bad channel-binding flag")),
        }
        if !authzid.is_empty() {
            return Err(KuraError::unsupported(
                "SCRAM authorization identities are not supported",
            ));
        }
        let parts: Vec<&str> = bare.split(',').collect();
        if parts.first().is_some_and(|p| p.starts_with("m=")) {
            return Err(KuraError::unsupported("SCRAM extensions are not supported"));
        }
        let client_nonce = attribute(&parts, 'r')
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_graphic() && c != ','))
            .ok_or_else(|| malformed("no client nonce"))?;
        let nonce = format!("{client_nonce}{}", BASE64.encode(random_bytes(18)));
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&verifier.salt),
            verifier.iterations
        );
        let exchange = ScramExchange {
            verifier,
            gs2_header: format!("{flag},{authzid},"),
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok((exchange, server_first))
    }

    /// Checks client-final; returns server-final, or the error for `user`.
    pub fn finish(&self, client_final: &[u8], user: &str) -> Result<String> {
        let message = text(client_final)?;
        let (without_proof, proof) = message
            .rsplit_once(",p=")
            .ok_or_else(|| malformed("no proof"))?;
        let parts: Vec<&str> = without_proof.split(',').collect();
        let binding = attribute(&parts, 'c').ok_or_else(|| malformed("no channel binding"))?;
        if binding != BASE64.encode(&self.gs2_header) {
            return Err(malformed("channel binding does not match"));
        }
        if attribute(&parts, 'r') != Some(self.nonce.as_str()) {
            return Err(malformed("nonce does not match"));
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| malformed("proof is not base64"))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = self
            .verifier
            .verify_proof(auth_message.as_bytes(), &proof)
            .ok_or_else(|| login_failed(user))?;
        Ok(format!("v={}", BASE64.encode(signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    fn run(password_on_client: &str, verifier: ScramVerifier) -> Result<()> {
        let mut client =
            ScramSha256::new(password_on_client.as_bytes(), ChannelBinding::unsupported());
        let (exchange, server_first) = ScramExchange::start(client.message(), verifier)?;
        client.update(server_first.as_bytes()).unwrap();
        let server_final = exchange.finish(client.message(), "u")?;
        client
            .finish(server_final.as_bytes())
            .map_err(|e| KuraError::internal(e.to_string()))
    }

    #[test]
    fn a_postgres_client_logs_in_with_the_right_password_only() {
        let verifier = ScramVerifier::generate("pässword");
        run("pässword", verifier.clone()).expect("right password");
        let wrong = run("password", verifier).unwrap_err();
        assert_eq!(wrong.code, sqlstate::INVALID_PASSWORD);
        let mock = run("anything", mock_verifier("ghost", b"secret")).unwrap_err();
        assert_eq!((mock.code, mock.message), (wrong.code, wrong.message));
        assert_eq!(
            mock_verifier("ghost", b"secret").salt,
            mock_verifier("ghost", b"secret").salt
        );
    }

    #[test]
    fn malformed_messages_are_protocol_errors() {
        let verifier = ScramVerifier::generate("x");
        for bad in [&b""[..], b"n,,", b"x,,n=,r=abc", b"n,,n=u", b"\xff\xfe"] {
            let e = ScramExchange::start(bad, verifier.clone()).unwrap_err();
            assert_eq!(e.code, sqlstate::PROTOCOL_VIOLATION, "{bad:?}");
        }
        let (exchange, _) = ScramExchange::start(b"n,,n=u,r=abc", verifier).unwrap();
        for bad in [
            &b"c=biws,r=abc"[..],
            b"c=xxxx,r=abc,p=AAAA",
            b"c=biws,r=wrong,p=AAAA",
        ] {
            let e = exchange.finish(bad, "u").unwrap_err();
            assert_eq!(e.code, sqlstate::PROTOCOL_VIOLATION, "{bad:?}");
        }
    }
}
