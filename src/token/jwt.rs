//! JWTs as keel sees them: decoded without trust, verified against a JWKS, and tampered with.
//!
//! Decoding never panics on what an issuer sends: every malformed part is an [`JwtError`]
//! naming the part.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Map, Value};

/// Why a string could not be read as a JWT, or did not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Not three dot-separated segments.
    #[error("not a compact JWS: expected 3 dot-separated segments, found {0}")]
    Segments(usize),
    /// A segment is not valid base64url.
    #[error("the {0} segment is not valid base64url")]
    Base64(&'static str),
    /// A segment is not a JSON object.
    #[error("the {0} segment is not a JSON object")]
    Json(&'static str),
    /// The JWKS has no key with this kid.
    #[error("kid {0:?} is not in the JWKS")]
    UnknownKid(String),
    /// The header has no kid, and the JWKS has more than one key.
    #[error("the JWT has no kid and the JWKS holds {0} keys")]
    NoKid(usize),
    /// The JWKS holds more than one key with this kid.
    #[error("the JWKS holds {1} keys with kid {0:?}")]
    DuplicateKid(String, usize),
    /// The key could not be used (unsupported alg or malformed JWK).
    #[error("the JWKS key for kid {kid:?} cannot verify {alg}: {reason}")]
    UnusableKey {
        /// The key's kid.
        kid: String,
        /// The JWT's alg.
        alg: String,
        /// What went wrong.
        reason: String,
    },
    /// The signature does not verify.
    #[error("the signature does not verify with the JWKS key {0:?}")]
    BadSignature(String),
    /// Forging a tampered token failed (key generation).
    #[error("could not build the tampered token: {0}")]
    Forge(String),
}

/// A JWT decoded without verification.
#[derive(Clone, Debug)]
pub struct Decoded {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The claims.
    pub claims: Map<String, Value>,
    /// The signature bytes.
    pub signature: Vec<u8>,
    /// `header.payload`, the signing input.
    pub signing_input: String,
}

impl Decoded {
    /// The header's `kid`, if it is a string.
    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// The header's `alg`, if it is a string.
    pub fn alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }
}

/// Whether `token` looks like a compact JWS at all (three base64url segments, JSON header).
pub fn looks_like_jwt(token: &str) -> bool {
    decode(token).is_ok()
}

/// Decodes `token` without verifying it.
pub fn decode(token: &str) -> Result<Decoded, JwtError> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(JwtError::Segments(parts.len()));
    }
    let header = object(parts[0], "header")?;
    let claims = object(parts[1], "payload")?;
    let signature = B64
        .decode(parts[2])
        .map_err(|_| JwtError::Base64("signature"))?;
    Ok(Decoded {
        header,
        claims,
        signature,
        signing_input: format!("{}.{}", parts[0], parts[1]),
    })
}

fn object(segment: &str, name: &'static str) -> Result<Map<String, Value>, JwtError> {
    let bytes = B64.decode(segment).map_err(|_| JwtError::Base64(name))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(JwtError::Json(name)),
    }
}

/// The keys of a JWKS document (`{"keys":[...]}`), tolerant of junk entries.
pub fn jwks_keys(jwks: &Value) -> Vec<&Value> {
    jwks.get("keys")
        .and_then(Value::as_array)
        .map(|keys| keys.iter().filter(|k| k.is_object()).collect())
        .unwrap_or_default()
}

/// Finds the JWKS key that should verify `jwt`, by kid.
pub fn find_key<'a>(jwt: &Decoded, jwks: &'a Value) -> Result<&'a Value, JwtError> {
    let keys = jwks_keys(jwks);
    match jwt.kid() {
        Some(kid) => {
            let matching: Vec<&Value> = keys
                .into_iter()
                .filter(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
                .collect();
            match matching.len() {
                0 => Err(JwtError::UnknownKid(kid.to_owned())),
                1 => Ok(matching[0]),
                n => Err(JwtError::DuplicateKid(kid.to_owned(), n)),
            }
        }
        None if keys.len() == 1 => Ok(keys[0]),
        None => Err(JwtError::NoKid(keys.len())),
    }
}

/// Verifies `token`'s signature with the JWKS key its kid names. Claims (exp, aud) are not
/// validated here: the scenarios check them explicitly, with their own messages.
pub fn verify(token: &str, jwks: &Value) -> Result<Decoded, JwtError> {
    let decoded = decode(token)?;
    let key = find_key(&decoded, jwks)?;
    let kid = key
        .get("kid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let alg_name = decoded.alg().unwrap_or("").to_owned();
    let unusable = |reason: String| JwtError::UnusableKey {
        kid: kid.clone(),
        alg: alg_name.clone(),
        reason,
    };
    let alg: jsonwebtoken::Algorithm = alg_name
        .parse()
        .map_err(|_| unusable("unknown or unsupported alg".into()))?;
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(key.clone()).map_err(|e| unusable(e.to_string()))?;
    let decoding =
        jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|e| unusable(e.to_string()))?;
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    match jsonwebtoken::decode::<Value>(token, &decoding, &validation) {
        Ok(_) => Ok(decoded),
        Err(e) => match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => Err(JwtError::BadSignature(kid)),
            _ => Err(unusable(e.to_string())),
        },
    }
}

/// The JWKS key that verifies `token`, trying every key whatever its kid (to follow a
/// rotation even when kids are reused); `None` if none does.
pub fn verifying_key<'a>(token: &str, jwks: &'a Value) -> Option<&'a Value> {
    jwks_keys(jwks).into_iter().find(|k| {
        let mut single = k.as_object().cloned().unwrap_or_default();
        let kid = decode(token).ok().and_then(|d| d.kid().map(str::to_owned));
        match kid {
            Some(kid) => single.insert("kid".into(), Value::String(kid)),
            None => single.remove("kid"),
        };
        verify(
            token,
            &serde_json::json!({ "keys": [Value::Object(single)] }),
        )
        .is_ok()
    })
}

/// `token` with one bit of the first signature byte flipped.
pub fn flip_signature_byte(token: &str) -> Result<String, JwtError> {
    let d = decode(token)?;
    let mut sig = d.signature.clone();
    match sig.first_mut() {
        Some(b) => *b ^= 0x01,
        None => return Err(JwtError::Base64("signature")),
    }
    Ok(format!("{}.{}", d.signing_input, B64.encode(sig)))
}

/// `token` re-encoded as an unsigned JWT: header `alg: none` (other header members kept),
/// the same claims, an empty signature.
pub fn with_alg_none(token: &str) -> Result<String, JwtError> {
    let d = decode(token)?;
    let mut header = d.header.clone();
    header.insert("alg".into(), Value::String("none".into()));
    let payload = d
        .signing_input
        .split('.')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    Ok(format!(
        "{}.{payload}.",
        B64.encode(Value::Object(header).to_string())
    ))
}

/// `token`'s claims re-signed by a key keel generates now, under a kid that no JWKS holds.
///
/// The algorithm follows the original (EdDSA, ES256, RS256) so that an issuer cannot pass by
/// rejecting an unexpected algorithm rather than an unknown key.
pub fn resign_with_unknown_key(token: &str) -> Result<String, JwtError> {
    use aws_lc_rs::signature::{self, KeyPair as _};
    let d = decode(token)?;
    let alg = d.alg().unwrap_or("EdDSA").to_owned();
    let kid = format!("keel-unknown-{}", rand::random::<u64>());
    let mut header = d.header.clone();
    header.insert("kid".into(), Value::String(kid));
    let forge = |e: aws_lc_rs::error::Unspecified| JwtError::Forge(e.to_string());
    let payload = d
        .signing_input
        .split('.')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let sign_with = |alg: &str, header: &mut Map<String, Value>| -> Result<String, JwtError> {
        header.insert("alg".into(), Value::String(alg.to_owned()));
        let input = format!(
            "{}.{payload}",
            B64.encode(Value::Object(header.clone()).to_string())
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig: Vec<u8> = match alg {
            "ES256" => {
                let kp =
                    signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                        .map_err(forge)?;
                kp.sign(&rng, input.as_bytes())
                    .map_err(forge)?
                    .as_ref()
                    .to_vec()
            }
            "RS256" => {
                let kp = signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(forge)?;
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .map_err(forge)?;
                sig
            }
            _ => {
                let kp = signature::Ed25519KeyPair::generate().map_err(forge)?;
                let _ = kp.public_key();
                kp.sign(input.as_bytes()).as_ref().to_vec()
            }
        };
        Ok(format!("{input}.{}", B64.encode(sig)))
    };
    let chosen = match alg.as_str() {
        "ES256" | "RS256" => alg.as_str(),
        _ => "EdDSA",
    };
    sign_with(chosen, &mut header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (String, Value) {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
        let kp = Ed25519KeyPair::generate().unwrap();
        let x = B64.encode(kp.public_key().as_ref());
        let jwk = serde_json::json!({"kty":"OKP","crv":"Ed25519","x":x,"kid":"k1","alg":"EdDSA"});
        let header = B64.encode(r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1"}"#);
        let claims = B64.encode(r#"{"sub":"s","jti":"j"}"#);
        let input = format!("{header}.{claims}");
        let sig = B64.encode(kp.sign(input.as_bytes()).as_ref());
        (format!("{input}.{sig}"), serde_json::json!({"keys":[jwk]}))
    }

    #[test]
    fn a_genuine_token_verifies() {
        let (t, jwks) = sample();
        verify(&t, &jwks).unwrap();
    }

    #[test]
    fn tamperings_do_not_verify() {
        let (t, jwks) = sample();
        assert!(matches!(
            verify(&flip_signature_byte(&t).unwrap(), &jwks),
            Err(JwtError::BadSignature(_))
        ));
        assert!(verify(&with_alg_none(&t).unwrap(), &jwks).is_err());
        assert!(matches!(
            verify(&resign_with_unknown_key(&t).unwrap(), &jwks),
            Err(JwtError::UnknownKid(_))
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for g in ["", "a.b", "a.b.c", "!!.!!.!!", "e30.e30.", "e30.W10.AA"] {
            let _ = decode(g);
        }
        assert!(matches!(decode("a.b"), Err(JwtError::Segments(2))));
    }
}
