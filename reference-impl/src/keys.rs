//! Signing keys: Ed25519 generation, RFC 7638 thumbprints, and the key ring the server signs and
//! verifies with, including rotation.
//!
//! Keys live in the `signing_keys` table with a state: `staged` (published in the JWKS, does not
//! sign yet), `active` (signs new tokens) or `retired` (still published and verifying until
//! `retired_at + key_overlap_seconds`, then dropped from both). Retirement times are kept in the
//! `key_retirements` table, which the store creates on demand. Exactly one key is active.

use std::sync::{Arc, RwLock};

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

/// Why a rotation step was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotateError {
    /// `stage` while a key is already staged.
    #[error("a key is already staged; activate it first")]
    AlreadyStaged,
    /// `activate` with no staged key.
    #[error("no key is staged; stage one first")]
    NothingStaged,
    /// Generating or storing the key failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl From<StoreError> for RotateError {
    fn from(e: StoreError) -> Self {
        RotateError::Key(KeyError::Store(e))
    }
}

/// The kid every key gets under the `kid-reused` fault.
pub const REUSED_KID: &str = "reused-kid";

/// State values of `signing_keys.state`.
const STAGED: &str = "staged";
const ACTIVE: &str = "active";
const RETIRED: &str = "retired";

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

/// One key of the ring.
#[derive(Clone)]
struct KeyEntry {
    /// The kid in the database (always the thumbprint).
    db_kid: String,
    /// The kid published and written into JWTs (differs under `random-kid` and `kid-reused`).
    kid: String,
    x: String,
    raw_public: Vec<u8>,
    pkcs8: Vec<u8>,
    state: &'static str,
    created_at: i64,
    retired_at: Option<i64>,
}

impl KeyEntry {
    fn new(
        db_kid: String,
        kid: String,
        x: String,
        pkcs8: Vec<u8>,
        state: &'static str,
        created_at: i64,
        retired_at: Option<i64>,
    ) -> Result<KeyEntry, KeyError> {
        let raw_public = URL_SAFE_NO_PAD
            .decode(&x)
            .map_err(|e| KeyError::Crypto(e.to_string()))?;
        Ok(KeyEntry {
            db_kid,
            kid,
            x,
            raw_public,
            pkcs8,
            state,
            created_at,
            retired_at,
        })
    }
}

/// The ring's mutable part: every key plus the derived signer.
struct Ring {
    entries: Vec<KeyEntry>,
    signing: Arc<SigningKey>,
}

/// Everything the server needs about keys at runtime: the signing key, the verification keys
/// and the published JWKS, all of which change on rotation.
pub struct KeyRing {
    ring: RwLock<Ring>,
    /// Serializes the admin operations so that "is a key staged?" and the write agree.
    admin: tokio::sync::Mutex<()>,
    fault: Option<Fault>,
    /// How long a retired key stays (0 under `rotate-without-overlap`).
    overlap: i64,
    /// False under `ephemeral-keys`: rotations happen in memory only.
    persist: bool,
}

fn state_of(s: &str) -> Option<&'static str> {
    [STAGED, ACTIVE, RETIRED].into_iter().find(|k| *k == s)
}

impl KeyRing {
    /// Loads the keys from the store, generating and storing an active one on first start, and
    /// applies the key-related fault modes. A retired key stays for `overlap_seconds` after its
    /// retirement.
    pub async fn load(
        store: &Store,
        fault: Option<Fault>,
        overlap_seconds: u64,
    ) -> Result<KeyRing, KeyError> {
        let persist = fault != Some(Fault::EphemeralKeys);
        let mut entries = Vec::new();
        if !persist {
            // Never persisted: a new key and kid on every start.
            let g = generate()?;
            entries.push(KeyEntry::new(
                g.kid.clone(),
                g.kid,
                g.x,
                g.pkcs8,
                ACTIVE,
                crate::now(),
                None,
            )?);
        } else {
            store.ensure_key_retirements().await?;
            let retirements = store.key_retirements().await?;
            let mut stored = store.signing_keys().await?;
            if !stored.iter().any(|k| k.state == ACTIVE) {
                let g = generate()?;
                let key = stored_key(&g, ACTIVE)?;
                store.insert_signing_key(&key).await?;
                stored.push(key);
            }
            // signing_keys() orders by created_at; the newest active key is the active one.
            let active_kid = stored
                .iter()
                .rev()
                .find(|k| k.state == ACTIVE)
                .map(|k| k.kid.clone())
                .unwrap_or_default();
            for k in stored {
                let jwk: PublicJwk =
                    serde_json::from_str(&k.public_jwk).map_err(|source| KeyError::StoredJwk {
                        kid: k.kid.clone(),
                        source,
                    })?;
                let state = match state_of(&k.state) {
                    // An older key left active by some earlier version counts as retired.
                    Some(ACTIVE) if k.kid != active_kid => RETIRED,
                    Some(s) => s,
                    None => continue,
                };
                // A retired key without a recorded time is long gone.
                let retired_at =
                    (state == RETIRED).then(|| retirements.get(&k.kid).copied().unwrap_or(0));
                entries.push(KeyEntry::new(
                    k.kid.clone(),
                    k.kid,
                    jwk.x,
                    k.pkcs8,
                    state,
                    k.created_at,
                    retired_at,
                )?);
            }
        }

        match fault {
            Some(Fault::RandomKid) => {
                // The key persists but its runtime kid is new at every start.
                let random = uuid::Uuid::new_v4().to_string();
                for e in entries.iter_mut().filter(|e| e.state == ACTIVE) {
                    e.kid = random.clone();
                }
            }
            Some(Fault::KidReused) => {
                for e in &mut entries {
                    e.kid = REUSED_KID.to_owned();
                }
            }
            _ => {}
        }

        let overlap = if fault == Some(Fault::RotateWithoutOverlap) {
            0
        } else {
            i64::try_from(overlap_seconds).unwrap_or(i64::MAX / 2)
        };
        let ring = Self::derive(entries, fault)?;
        Ok(KeyRing {
            ring: RwLock::new(ring),
            admin: tokio::sync::Mutex::new(()),
            fault,
            overlap,
            persist,
        })
    }

    /// Rebuilds the signer (and the decoy) from the entries.
    fn derive(mut entries: Vec<KeyEntry>, fault: Option<Fault>) -> Result<Ring, KeyError> {
        // The store's order (`ORDER BY created_at, kid`), so the JWKS reads the same after a
        // restart.
        entries.sort_by(|a, b| (a.created_at, &a.db_kid).cmp(&(b.created_at, &b.db_kid)));
        let staged_signs = fault == Some(Fault::ActivateOnStage);
        let signer = entries
            .iter()
            .rev()
            .find(|e| staged_signs && e.state == STAGED)
            .or_else(|| entries.iter().rev().find(|e| e.state == ACTIVE))
            .ok_or_else(|| KeyError::Crypto("no active signing key".to_owned()))?;
        let signing = Arc::new(SigningKey {
            kid: signer.kid.clone(),
            encoding_key: EncodingKey::from_ed_der(&signer.pkcs8),
        });
        Ok(Ring { entries, signing })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        // A poisoned lock only means a panic elsewhere; the ring is replaced whole, never torn.
        self.ring.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `e` is published at `now`.
    fn published_at(&self, e: &KeyEntry, now: i64) -> bool {
        match e.retired_at {
            Some(t) if e.state == RETIRED => now < t.saturating_add(self.overlap),
            _ => true,
        }
    }

    /// Whether `e` verifies signatures at `now`: active keys, retired ones within the overlap,
    /// and a staged key only if it signs (`activate-on-stage`).
    fn verifies_at(&self, e: &KeyEntry, now: i64) -> bool {
        match e.state {
            STAGED => self.fault == Some(Fault::ActivateOnStage),
            _ => self.published_at(e, now),
        }
    }

    /// The key that signs new tokens.
    pub fn signing(&self) -> Arc<SigningKey> {
        Arc::clone(&self.read().signing)
    }

    /// The runtime kid of the active key.
    pub fn active_kid(&self) -> String {
        self.read()
            .entries
            .iter()
            .rev()
            .find(|e| e.state == ACTIVE)
            .map(|e| e.kid.clone())
            .unwrap_or_default()
    }

    /// Whether some key with this kid verifies at `now`.
    pub fn knows_kid(&self, kid: &str, now: i64) -> bool {
        self.read()
            .entries
            .iter()
            .any(|e| e.kid == kid && self.verifies_at(e, now))
    }

    /// Whether `signature` over `message` verifies with a key named `kid` that is usable at
    /// `now`. Every key with that kid is tried (several share one under `kid-reused`).
    pub fn verify(&self, kid: &str, message: &[u8], signature: &[u8], now: i64) -> bool {
        self.read()
            .entries
            .iter()
            .filter(|e| e.kid == kid && self.verifies_at(e, now))
            .any(|e| {
                UnparsedPublicKey::new(&signature::ED25519, &e.raw_public)
                    .verify(message, signature)
                    .is_ok()
            })
    }

    /// The keys published at `/jwks` at `now`, oldest first.
    pub fn published(&self, now: i64) -> Vec<PublicJwk> {
        let ring = self.read();
        // Under `kid-not-published` every key is published as a decoy derived from it, so the
        // JWKS still follows rotations and restarts; only "the kid names the signing key" breaks.
        let decoys = self.fault == Some(Fault::KidNotPublished);
        ring.entries
            .iter()
            .filter(|e| self.published_at(e, now))
            .filter_map(|e| {
                if decoys {
                    decoy_for(&e.pkcs8)
                        .ok()
                        .map(|(x, kid)| PublicJwk::ed25519(&x, &kid))
                } else {
                    Some(PublicJwk::ed25519(&e.x, &e.kid))
                }
            })
            .collect()
    }

    /// Generates a key in state `staged` (published, not signing) and returns its kid.
    pub async fn stage(&self, store: &Store) -> Result<String, RotateError> {
        let _admin = self.admin.lock().await;
        self.stage_locked(store).await
    }

    async fn stage_locked(&self, store: &Store) -> Result<String, RotateError> {
        if self.read().entries.iter().any(|e| e.state == STAGED) {
            return Err(RotateError::AlreadyStaged);
        }
        let g = generate()?;
        let stored = stored_key(&g, STAGED)?;
        if self.persist {
            store.insert_signing_key(&stored).await?;
        }
        let kid = if self.fault == Some(Fault::KidReused) {
            REUSED_KID.to_owned()
        } else {
            g.kid.clone()
        };
        let entry = KeyEntry::new(
            g.kid,
            kid.clone(),
            g.x,
            g.pkcs8,
            STAGED,
            stored.created_at,
            None,
        )?;
        self.replace(|entries| entries.push(entry))?;
        Ok(kid)
    }

    /// Makes the staged key active and retires the active one at `now`; returns
    /// `(new kid, retired kid)`.
    pub async fn activate(&self, store: &Store, now: i64) -> Result<(String, String), RotateError> {
        let _admin = self.admin.lock().await;
        self.activate_locked(store, now).await
    }

    async fn activate_locked(
        &self,
        store: &Store,
        now: i64,
    ) -> Result<(String, String), RotateError> {
        let (staged, active) = {
            let ring = self.read();
            let staged = ring
                .entries
                .iter()
                .rev()
                .find(|e| e.state == STAGED)
                .map(|e| (e.db_kid.clone(), e.kid.clone()));
            let active = ring
                .entries
                .iter()
                .rev()
                .find(|e| e.state == ACTIVE)
                .map(|e| (e.db_kid.clone(), e.kid.clone()));
            (staged, active)
        };
        let Some((staged_db, staged_kid)) = staged else {
            return Err(RotateError::NothingStaged);
        };
        if self.persist {
            store
                .activate_signing_key(&staged_db, active.as_ref().map(|a| a.0.as_str()), now)
                .await?;
        }
        self.replace(|entries| {
            for e in entries.iter_mut() {
                if e.state == ACTIVE {
                    e.state = RETIRED;
                    e.retired_at = Some(now);
                } else if e.db_kid == staged_db {
                    e.state = ACTIVE;
                }
            }
        })?;
        Ok((staged_kid, active.map(|a| a.1).unwrap_or_default()))
    }

    /// Stage and activate in one step; returns `(new kid, retired kid)`.
    pub async fn rotate(&self, store: &Store, now: i64) -> Result<(String, String), RotateError> {
        let _admin = self.admin.lock().await;
        self.stage_locked(store).await?;
        self.activate_locked(store, now).await
    }

    fn replace(&self, change: impl FnOnce(&mut Vec<KeyEntry>)) -> Result<(), KeyError> {
        let mut entries = self.read().entries.clone();
        change(&mut entries);
        let ring = Self::derive(entries, self.fault)?;
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = ring;
        Ok(())
    }
}

fn stored_key(g: &GeneratedKey, state: &str) -> Result<StoredKey, KeyError> {
    let jwk = PublicJwk::ed25519(&g.x, &g.kid);
    Ok(StoredKey {
        kid: g.kid.clone(),
        alg: ALG.to_owned(),
        pkcs8: g.pkcs8.clone(),
        public_jwk: serde_json::to_string(&jwk).map_err(|source| KeyError::StoredJwk {
            kid: g.kid.clone(),
            source,
        })?,
        state: state.to_owned(),
        created_at: crate::now(),
    })
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
