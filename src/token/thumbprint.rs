//! RFC 7638 JWK thumbprints.
//!
//! Written out rather than taken from `jsonwebtoken` so that keel states exactly which members
//! it hashes (RFC 7638 §3.2: the required members only, in lexicographic order, no whitespace).

use base64::Engine as _;
use serde_json::Value;

/// Why a thumbprint could not be computed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThumbprintError {
    /// The JWK has no `kty`, or one keel does not know.
    #[error("JWK has unsupported or missing kty {0:?}")]
    UnsupportedKty(String),
    /// A member that RFC 7638 §3.2 requires for this `kty` is absent or not a string.
    #[error("JWK of kty {kty} lacks the required string member {member:?}")]
    MissingMember {
        /// The key type.
        kty: String,
        /// The missing member.
        member: &'static str,
    },
}

/// The SHA-256 RFC 7638 thumbprint of `jwk`, base64url without padding.
pub fn sha256(jwk: &Value) -> Result<String, ThumbprintError> {
    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or_default();
    let members: &[&'static str] = match kty {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        "oct" => &["k", "kty"],
        other => return Err(ThumbprintError::UnsupportedKty(other.to_owned())),
    };
    // serde_json's map keeps keys sorted (preserve_order is off), which is the order RFC 7638
    // asks for; the members listed above are already sorted too.
    let mut canonical = serde_json::Map::new();
    for &m in members {
        let v = jwk
            .get(m)
            .and_then(Value::as_str)
            .ok_or(ThumbprintError::MissingMember {
                kty: kty.to_owned(),
                member: m,
            })?;
        canonical.insert(m.to_owned(), Value::String(v.to_owned()));
    }
    let json = Value::Object(canonical).to_string();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, json.as_bytes());
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of RFC 7638 §3.1.
    #[test]
    fn rfc7638_section_3_1_example() {
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            sha256(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn missing_member_is_named() {
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519"});
        assert_eq!(
            sha256(&jwk),
            Err(ThumbprintError::MissingMember {
                kty: "OKP".into(),
                member: "x"
            })
        );
    }
}
