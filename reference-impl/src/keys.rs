//! Signing keys: Ed25519 generation, RFC 7638 thumbprints, and the key ring the server signs and
//! verifies with.
//!
//! Keys live in the `signing_keys` table with a state (`staged`, `active`, `retired`) so that a
//! later key-rotation issue can publish several; today exactly one key is active and signs.

use std::collections::HashMap;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use serde::{Deserialize, Serialize};

use crate::faults::Fault;
use crate::store::{Store, StoreError, StoredKey};
use crate::tokens::sha256_b64url;

/// The JWS algorithm of every key here.
pub const ALG: &str = "EdDSA";

/// Why the key ring could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The crypto library refused to generate or parse a key.
    #[error("Ed25519 key operation failed: {0}")]
    Crypto(String),
    /// A stored key's public JWK is not valid JSON of the expected shape.
    #[error("stored public JWK for kid {kid} is invalid: {source}")]
    StoredJwk {
        /// The key id.
        kid: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// Reading or writing the key store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// RFC 7638 thumbprint over the required members: base64url(SHA-256 of the members as JSON
/// with lexicographically sorted names and no whitespace).
pub fn thumbprint(members: &[(&str, &str)]) -> String {
    let mut sorted = members.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let body = sorted
        .iter()
        .map(|(k, v)| {
            // serde_json escapes as RFC 7638 requires; serializing a &str cannot fail.
            let k = serde_json::Value::from(*k);
            let v = serde_json::Value::from(*v);
            format!("{k}:{v}")
        })
        .collect::<Vec<_>>()
        .join(",");
    sha256_b64url(format!("{{{body}}}").as_bytes())
}

/// The thumbprint of an Ed25519 public key given as base64url `x`.
pub fn ed25519_thumbprint(x: &str) -> String {
    thumbprint(&[("crv", "Ed25519"), ("kty", "OKP"), ("x", x)])
}

/// A public key as published in the JWKS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    /// The key id.
    pub kid: String,
    /// Always `EdDSA`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

impl PublicJwk {
    fn ed25519(x: &str, kid: &str) -> PublicJwk {
        PublicJwk {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: x.to_owned(),
            kid: kid.to_owned(),
            alg: ALG.to_owned(),
            use_: "sig".to_owned(),
        }
    }
}

/// A freshly generated Ed25519 key.
#[derive(Clone)]
pub struct GeneratedKey {
    /// PKCS#8 v1 private key DER (what jsonwebtoken accepts).
    pub pkcs8: Vec<u8>,
    /// Public key, base64url.
    pub x: String,
    /// RFC 7638 thumbprint.
    pub kid: String,
}

/// Generates an Ed25519 key.
pub fn generate() -> Result<GeneratedKey, KeyError> {
    let doc = Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new())
        .map_err(|e| KeyError::Crypto(e.to_string()))?;
    let pkcs8 = doc.as_ref().to_vec();
    let x = public_x(&pkcs8)?;
    let kid = ed25519_thumbprint(&x);
    Ok(GeneratedKey { pkcs8, x, kid })
}

/// A stand-in public key derived deterministically from `pkcs8` (for `kid-not-published`).
fn decoy_for(pkcs8: &[u8]) -> Result<(String, String), KeyError> {
    let mut input = b"keel-reference decoy key".to_vec();
    input.extend_from_slice(pkcs8);
    let seed = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    let pair = Ed25519KeyPair::from_seed_unchecked(seed.as_ref())
        .map_err(|e| KeyError::Crypto(e.to_string()))?;
    let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let kid = ed25519_thumbprint(&x);
    Ok((x, kid))
}

fn public_x(pkcs8: &[u8]) -> Result<String, KeyError> {
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| KeyError::Crypto(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()))
}

/// The key that signs new access tokens.
pub struct SigningKey {
    /// The kid written into JWT headers.
    pub kid: String,
    /// The private key.
    pub encoding_key: EncodingKey,
}

/// Everything the server needs about keys at runtime.
pub struct KeyRing {
    signing: SigningKey,
    verifiers: HashMap<String, UnparsedPublicKey<Vec<u8>>>,
    published: Vec<PublicJwk>,
}

impl KeyRing {
    /// Loads the active key from the store, generating and storing one on first start, and
    /// applies the key-related fault modes.
    pub async fn load(store: &Store, fault: Option<Fault>) -> Result<KeyRing, KeyError> {
        let (mut keys, active_kid) = if fault == Some(Fault::EphemeralKeys) {
            // Never persisted: a new key and kid on every start.
            let g = generate()?;
            let kid = g.kid.clone();
            (vec![(g.kid, g.x, g.pkcs8)], kid)
        } else {
            let mut stored = store.signing_keys().await?;
            if !stored.iter().any(|k| k.state == "active") {
                let g = generate()?;
                let jwk = PublicJwk::ed25519(&g.x, &g.kid);
                let key = StoredKey {
                    kid: g.kid.clone(),
                    alg: ALG.to_owned(),
                    pkcs8: g.pkcs8.clone(),
                    public_jwk: serde_json::to_string(&jwk).map_err(|source| {
                        KeyError::StoredJwk {
                            kid: g.kid.clone(),
                            source,
                        }
                    })?,
                    state: "active".to_owned(),
                    created_at: crate::now(),
                };
                store.insert_signing_key(&key).await?;
                stored.push(key);
            }
            // signing_keys() orders by created_at; the newest active key signs.
            let active_kid = stored
                .iter()
                .rev()
                .find(|k| k.state == "active")
                .map(|k| k.kid.clone())
                .unwrap_or_default();
            let mut keys = Vec::new();
            for k in stored.into_iter().filter(|k| k.state != "staged") {
                let jwk: PublicJwk =
                    serde_json::from_str(&k.public_jwk).map_err(|source| KeyError::StoredJwk {
                        kid: k.kid.clone(),
                        source,
                    })?;
                keys.push((k.kid, jwk.x, k.pkcs8));
            }
            (keys, active_kid)
        };

        let mut active_kid = active_kid;
        if fault == Some(Fault::RandomKid) {
            // The key persists but its runtime kid is new at every start.
            let random = uuid::Uuid::new_v4().to_string();
            for k in &mut keys {
                if k.0 == active_kid {
                    k.0 = random.clone();
                }
            }
            active_kid = random;
        }

        let mut verifiers = HashMap::new();
        let mut published = Vec::new();
        let mut signing = None;
        let mut active_pkcs8 = Vec::new();
        for (kid, x, pkcs8) in keys {
            let raw = URL_SAFE_NO_PAD
                .decode(&x)
                .map_err(|e| KeyError::Crypto(e.to_string()))?;
            verifiers.insert(
                kid.clone(),
                UnparsedPublicKey::new(&signature::ED25519, raw),
            );
            published.push(PublicJwk::ed25519(&x, &kid));
            if kid == active_kid {
                active_pkcs8 = pkcs8.clone();
                signing = Some(SigningKey {
                    kid,
                    encoding_key: EncodingKey::from_ed_der(&pkcs8),
                });
            }
        }
        let signing =
            signing.ok_or_else(|| KeyError::Crypto("no active signing key".to_owned()))?;

        if fault == Some(Fault::KidNotPublished) {
            // The decoy is derived from the signing key, so it is the same at every start: this
            // fault breaks only "the kid is in the JWKS", not "the JWKS survives a restart".
            let (x, kid) = decoy_for(&active_pkcs8)?;
            published = vec![PublicJwk::ed25519(&x, &kid)];
        }
        Ok(KeyRing {
            signing,
            verifiers,
            published,
        })
    }

    /// The key that signs new tokens.
    pub fn signing(&self) -> &SigningKey {
        &self.signing
    }

    /// The verification key for `kid`, if it is in the store.
    pub fn verifier(&self, kid: &str) -> Option<&UnparsedPublicKey<Vec<u8>>> {
        self.verifiers.get(kid)
    }

    /// The keys published at `/jwks`.
    pub fn published(&self) -> &[PublicJwk] {
        &self.published
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_rsa_example() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        // Member order given here is deliberately not sorted.
        let t = thumbprint(&[("n", n), ("kty", "RSA"), ("e", "AQAB")]);
        assert_eq!(t, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn generated_key_signs_and_thumbprint_matches_jsonwebtoken() {
        let g = generate().unwrap();
        assert_eq!(g.kid.len(), 43);
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(
            &EncodingKey::from_ed_der(&g.pkcs8),
            jsonwebtoken::Algorithm::EdDSA,
        )
        .unwrap();
        assert_eq!(
            jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .unwrap(),
            g.kid
        );
    }
}
