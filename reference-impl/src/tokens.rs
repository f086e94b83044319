//! Token formats: opaque prefixed tokens with a checksum (refresh tokens, API keys), the
//! access-token JWT, and the small encodings they share (base62, SHA-256 hex).
//!
//! An opaque token is `PREFIX + public id (16) + secret (32) + checksum (6)`, all base62 after the
//! prefix. The checksum is CRC-32/IEEE of every character before it, prefix included, written in
//! base62 (most significant digit first) and left-padded with `0` to six characters.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::faults::Fault;
use crate::keys::KeyRing;

/// The base62 alphabet, in digit order.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Prefix of every API key.
pub const API_KEY_PREFIX: &str = "kak_";

/// Length of the public id of an opaque token.
pub const PUBLIC_ID_LEN: usize = 16;
/// Length of the secret of an opaque token.
pub const SECRET_LEN: usize = 32;
/// Length of the checksum of an opaque token.
pub const CHECKSUM_LEN: usize = 6;
const BODY_LEN: usize = PUBLIC_ID_LEN + SECRET_LEN + CHECKSUM_LEN;

/// A random base62 string of `len` characters from the thread-local CSPRNG.
pub fn random_base62(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(BASE62[rng.random_range(0..BASE62.len())]))
        .collect()
}

/// CRC-32/IEEE of `covered`, as six base62 digits.
pub fn checksum(covered: &str) -> String {
    let mut n = crc32fast::hash(covered.as_bytes());
    let mut digits = [b'0'; CHECKSUM_LEN];
    // 62^6 > 2^32, so six digits always suffice.
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    digits.iter().map(|&b| char::from(b)).collect()
}

/// Lowercase hex of SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, data);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// base64url (no padding) of SHA-256 of `data`.
pub fn sha256_b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, data))
}

/// Constant-time equality (the length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a string is not a well-formed opaque token, in validation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The prefix is not the expected one.
    #[error("wrong prefix")]
    Prefix,
    /// The part after the prefix has the wrong length.
    #[error("wrong length")]
    Length,
    /// The part after the prefix is not all base62.
    #[error("characters outside base62")]
    Charset,
    /// The checksum does not match.
    #[error("checksum mismatch")]
    Checksum,
}

/// The parts of a well-formed opaque token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpaqueParts {
    /// The public id (lookup key).
    pub public_id: String,
    /// The secret (only its SHA-256 is stored).
    pub secret: String,
}

/// How an opaque token kind is written and checked. The fields let fault modes weaken
/// individual checks without a second parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpaqueFormat {
    /// The prefix written when issuing.
    pub prefix: &'static str,
    /// Whether validation compares the prefix (otherwise any `prefix.len()` chars pass).
    pub check_prefix: bool,
    /// Whether the checksum covers the prefix (it must; `bad-checksum` turns this off).
    pub checksum_covers_prefix: bool,
    /// Whether validation compares the checksum.
    pub check_checksum: bool,
}

impl OpaqueFormat {
    /// The correct refresh-token format.
    pub const REFRESH: OpaqueFormat = OpaqueFormat {
        prefix: crate::REFRESH_PREFIX,
        check_prefix: true,
        checksum_covers_prefix: true,
        check_checksum: true,
    };

    /// The API-key format (no fault weakens it).
    pub const API_KEY: OpaqueFormat = OpaqueFormat {
        prefix: API_KEY_PREFIX,
        ..Self::REFRESH
    };

    /// The refresh-token format as weakened by `fault`.
    pub fn refresh(fault: Option<Fault>) -> OpaqueFormat {
        let f = Self::REFRESH;
        match fault {
            Some(Fault::ChecksumUnchecked) => OpaqueFormat {
                check_checksum: false,
                ..f
            },
            Some(Fault::PrefixUnchecked) => OpaqueFormat {
                check_prefix: false,
                ..f
            },
            Some(Fault::BadChecksum) => OpaqueFormat {
                checksum_covers_prefix: false,
                ..f
            },
            Some(Fault::UnprefixedRefresh) => OpaqueFormat { prefix: "rt_", ..f },
            _ => f,
        }
    }

    fn checksum_of(&self, prefix: &str, id_and_secret: &str) -> String {
        if self.checksum_covers_prefix {
            checksum(&format!("{prefix}{id_and_secret}"))
        } else {
            checksum(id_and_secret)
        }
    }

    /// Writes a token from its parts.
    pub fn format(&self, public_id: &str, secret: &str) -> String {
        let id_and_secret = format!("{public_id}{secret}");
        let sum = self.checksum_of(self.prefix, &id_and_secret);
        format!("{}{id_and_secret}{sum}", self.prefix)
    }

    /// A fresh random token: `(token, parts)`.
    pub fn generate(&self) -> (String, OpaqueParts) {
        let parts = OpaqueParts {
            public_id: random_base62(PUBLIC_ID_LEN),
            secret: random_base62(SECRET_LEN),
        };
        (self.format(&parts.public_id, &parts.secret), parts)
    }

    /// Checks prefix, then length and charset, then checksum.
    pub fn parse(&self, token: &str) -> Result<OpaqueParts, FormatError> {
        let n = self.prefix.len();
        let prefix = token.get(..n).ok_or(FormatError::Prefix)?;
        if self.check_prefix && prefix != self.prefix {
            return Err(FormatError::Prefix);
        }
        let body = &token[n..];
        if body.len() != BODY_LEN {
            return Err(FormatError::Length);
        }
        if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(FormatError::Charset);
        }
        let (id_and_secret, sum) = body.split_at(PUBLIC_ID_LEN + SECRET_LEN);
        if self.check_checksum
            && !ct_eq(
                self.checksum_of(prefix, id_and_secret).as_bytes(),
                sum.as_bytes(),
            )
        {
            return Err(FormatError::Checksum);
        }
        let (public_id, secret) = id_and_secret.split_at(PUBLIC_ID_LEN);
        Ok(OpaqueParts {
            public_id: public_id.to_owned(),
            secret: secret.to_owned(),
        })
    }
}

/// The scopes this issuer knows, in canonical order.
pub const SCOPES: &[&str] = &["read", "write"];

/// Parses a space-separated scope parameter into canonical order; `None` if any scope is
/// unknown or the value is empty. A missing parameter is the caller's business (default `read`).
pub fn parse_scope(raw: &str) -> Option<Vec<&'static str>> {
    let mut out = Vec::new();
    for s in raw.split(' ') {
        if s.is_empty() {
            continue;
        }
        let known = SCOPES.iter().find(|k| **k == s)?;
        if !out.contains(known) {
            out.push(*known);
        }
    }
    if out.is_empty() {
        return None;
    }
    out.sort_by_key(|s| SCOPES.iter().position(|k| k == s));
    Some(out)
}

/// The claims of an access-token JWT (RFC 9068).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer identifier.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Client the token was issued to (omitted by the `missing-client-id` fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Issued at (seconds).
    pub iat: i64,
    /// Not before (= `iat`).
    pub nbf: i64,
    /// Expiry (seconds).
    pub exp: i64,
    /// Token id (uuid v4), the key of the token record.
    pub jti: String,
    /// Space-separated scopes.
    pub scope: String,
    /// Refresh family (grant id) for tokens of an authorization-code grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_id: Option<String>,
}

/// Signs `claims` with the key ring's current signing key.
pub fn sign_access(
    keys: &KeyRing,
    claims: &AccessClaims,
) -> Result<String, jsonwebtoken::errors::Error> {
    let signing = keys.signing();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(signing.kid.clone());
    jsonwebtoken::encode(&header, claims, &signing.encoding_key)
}

#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// The claims introspection needs from an access token; the rest comes from the record.
#[derive(Deserialize)]
struct CheckedClaims {
    jti: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    iss: String,
    aud: serde_json::Value,
}

/// How strictly access-token JWTs are verified; weakened by the JWT fault modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwtPolicy {
    /// alg must be EdDSA, kid must be in the store, signature must verify.
    Strict,
    /// No signature, alg or kid check (`jwt-signature-unchecked`).
    SignatureUnchecked,
    /// `alg: none` tokens pass unsigned (`alg-none-accepted`).
    AlgNoneAccepted,
    /// Unknown kids skip the signature check (`unknown-kid-accepted`).
    UnknownKidAccepted,
}

impl JwtPolicy {
    /// The policy for a fault mode.
    pub fn for_fault(fault: Option<Fault>) -> JwtPolicy {
        match fault {
            Some(Fault::JwtSignatureUnchecked) => JwtPolicy::SignatureUnchecked,
            Some(Fault::AlgNoneAccepted) => JwtPolicy::AlgNoneAccepted,
            Some(Fault::UnknownKidAccepted) => JwtPolicy::UnknownKidAccepted,
            _ => JwtPolicy::Strict,
        }
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Verifies an access-token JWT and its claims (`iss`, `aud`, `exp`, `nbf`) and returns its
/// `jti`; `None` for anything not acceptable. Whether the token record is live is the caller's
/// second check.
pub fn verify_access(
    token: &str,
    keys: &KeyRing,
    policy: JwtPolicy,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Option<String> {
    let mut parts = token.split('.');
    let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: JwtHeader = decode_json(h)?;
    let claims: CheckedClaims = decode_json(c)?;
    let signature_ok = || {
        let Some(kid) = header.kid.as_deref() else {
            return false;
        };
        let Ok(sig) = URL_SAFE_NO_PAD.decode(s) else {
            return false;
        };
        let message = &token[..h.len() + 1 + c.len()];
        keys.verify(kid, message.as_bytes(), &sig, now)
    };
    let verified = match policy {
        JwtPolicy::SignatureUnchecked => true,
        JwtPolicy::AlgNoneAccepted if header.alg == "none" => true,
        JwtPolicy::UnknownKidAccepted
            if header.alg == "EdDSA"
                && !header
                    .kid
                    .as_deref()
                    .is_some_and(|k| keys.knows_kid(k, now)) =>
        {
            true
        }
        _ => header.alg == "EdDSA" && signature_ok(),
    };
    if !verified {
        return None;
    }
    let aud_ok = match &claims.aud {
        serde_json::Value::String(a) => a == audience,
        serde_json::Value::Array(v) => v.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    let live = claims.exp > now && claims.nbf.is_none_or(|nbf| nbf <= now);
    (aud_ok && live && claims.iss == issuer).then_some(claims.jti)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checksums computed with Python: zlib.crc32(b"...") and a base62 encoder.
    #[test]
    fn checksum_vectors_from_python_zlib() {
        // zlib.crc32(b"krt_" + b"0"*48) == 868380258
        assert_eq!(
            crc32fast::hash(b"krt_000000000000000000000000000000000000000000000000"),
            868380258
        );
        assert_eq!(
            checksum("krt_000000000000000000000000000000000000000000000000"),
            "0wldNC"
        );
        // zlib.crc32(b"krt_AbCdEfGhIjKlMnOp0123456789abcdefghijABCDEFGHIJKL") == 3677089269
        assert_eq!(
            checksum("krt_AbCdEfGhIjKlMnOp0123456789abcdefghijABCDEFGHIJKL"),
            "40qgtR"
        );
        // zlib.crc32(b"krt_" + b"z"*16 + b"Z"*32) == 301592124
        assert_eq!(
            checksum("krt_zzzzzzzzzzzzzzzzZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"),
            "0KPRt6"
        );
        // zlib.crc32(b"hello world") == 222957957
        assert_eq!(crc32fast::hash(b"hello world"), 222957957);
        assert_eq!(checksum(""), "000000");
    }

    #[test]
    fn format_matches_vector_and_parses_back() {
        let f = OpaqueFormat::REFRESH;
        let t = f.format("AbCdEfGhIjKlMnOp", "0123456789abcdefghijABCDEFGHIJKL");
        assert_eq!(
            t,
            "krt_AbCdEfGhIjKlMnOp0123456789abcdefghijABCDEFGHIJKL40qgtR"
        );
        assert_eq!(t.len(), 58);
        let p = f.parse(&t).unwrap();
        assert_eq!(p.public_id, "AbCdEfGhIjKlMnOp");
        assert_eq!(p.secret, "0123456789abcdefghijABCDEFGHIJKL");
    }

    #[test]
    fn generated_tokens_roundtrip() {
        for _ in 0..50 {
            let (t, parts) = OpaqueFormat::REFRESH.generate();
            assert_eq!(t.len(), 58);
            assert!(t.starts_with("krt_"));
            assert_eq!(OpaqueFormat::REFRESH.parse(&t).unwrap(), parts);
        }
    }

    #[test]
    fn validation_order_and_errors() {
        let f = OpaqueFormat::REFRESH;
        let good = "krt_AbCdEfGhIjKlMnOp0123456789abcdefghijABCDEFGHIJKL40qgtR";
        assert_eq!(
            f.parse(&good.replacen("krt_", "kat_", 1)),
            Err(FormatError::Prefix)
        );
        assert_eq!(f.parse("kr"), Err(FormatError::Prefix));
        assert_eq!(f.parse(&good[..57]), Err(FormatError::Length));
        assert_eq!(
            f.parse(&good.replacen('A', "-", 1)),
            Err(FormatError::Charset)
        );
        assert_eq!(
            f.parse(&good.replacen("40qgtR", "40qgtS", 1)),
            Err(FormatError::Checksum)
        );
        assert_eq!(f.parse("é"), Err(FormatError::Prefix));
    }

    #[test]
    fn fault_formats() {
        let good = "krt_AbCdEfGhIjKlMnOp0123456789abcdefghijABCDEFGHIJKL40qgtR";
        let bad_sum = good.replacen("40qgtR", "000000", 1);
        assert!(
            OpaqueFormat::refresh(Some(Fault::ChecksumUnchecked))
                .parse(&bad_sum)
                .is_ok()
        );
        let other_prefix = OpaqueFormat::REFRESH
            .format("AbCdEfGhIjKlMnOp", "0123456789abcdefghijABCDEFGHIJKL")
            .replacen("krt_", "xyz_", 1);
        assert_eq!(
            OpaqueFormat::REFRESH.parse(&other_prefix),
            Err(FormatError::Prefix)
        );
        let f = OpaqueFormat::refresh(Some(Fault::PrefixUnchecked));
        let recomputed = format!(
            "xyz_AbCdEfGhIjKlMnOp0123456789abcdefghijABCDEFGHIJKL{}",
            checksum("xyz_AbCdEfGhIjKlMnOp0123456789abcdefghijABCDEFGHIJKL")
        );
        assert!(f.parse(&recomputed).is_ok());
        // Python: zlib.crc32(b"AbCdEfGhIjKlMnOp0123456789abcdefghijABCDEFGHIJKL") == 3880314350
        let b = OpaqueFormat::refresh(Some(Fault::BadChecksum));
        assert_eq!(
            b.format("AbCdEfGhIjKlMnOp", "0123456789abcdefghijABCDEFGHIJKL"),
            "krt_AbCdEfGhIjKlMnOp0123456789abcdefghijABCDEFGHIJKL4EbP1K"
        );
        let u = OpaqueFormat::refresh(Some(Fault::UnprefixedRefresh));
        let (t, _) = u.generate();
        assert!(t.starts_with("rt_") && t.len() == 57);
        assert!(u.parse(&t).is_ok());
        assert!(OpaqueFormat::REFRESH.parse(&t).is_err());
    }

    #[test]
    fn api_key_format() {
        let (t, parts) = OpaqueFormat::API_KEY.generate();
        assert!(t.starts_with("kak_") && t.len() == 58);
        assert_eq!(OpaqueFormat::API_KEY.parse(&t).unwrap(), parts);
        assert!(OpaqueFormat::REFRESH.parse(&t).is_err());
        // Python: zlib.crc32(b"kak_AbCdEfGhIjKlMnOp0123456789abcdefghijABCDEFGHIJKL")
        // == 3038435324, "3JcxpM" in base62.
        assert_eq!(
            crc32fast::hash(b"kak_AbCdEfGhIjKlMnOp0123456789abcdefghijABCDEFGHIJKL"),
            3038435324
        );
        assert_eq!(
            OpaqueFormat::API_KEY.format("AbCdEfGhIjKlMnOp", "0123456789abcdefghijABCDEFGHIJKL"),
            "kak_AbCdEfGhIjKlMnOp0123456789abcdefghijABCDEFGHIJKL3JcxpM"
        );
    }

    #[test]
    fn scopes() {
        assert_eq!(parse_scope("write read"), Some(vec!["read", "write"]));
        assert_eq!(parse_scope("read"), Some(vec!["read"]));
        assert_eq!(parse_scope("read admin"), None);
        assert_eq!(parse_scope(""), None);
    }
}
