//! The requirement catalogue: keel's own numbered rules, mirrored by `SPEC.md`.
//!
//! Scenarios refer to requirements by tag (`@req:RST-1`). The catalogue is the source of truth
//! for a requirement's strength (which decides fail versus warn) and title; a test checks that
//! `SPEC.md`, this table and the feature files agree, so an id can never silently drift.

/// How strongly a requirement binds, in RFC 2119 terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Strength {
    /// A broken MUST is a failure.
    Must,
    /// A broken SHOULD is a warning (a failure under `--strict`).
    Should,
}

impl std::fmt::Display for Strength {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Strength::Must => "MUST",
            Strength::Should => "SHOULD",
        })
    }
}

/// One numbered rule of keel's specification.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Requirement {
    /// Stable id such as `RST-1`; never reused for another rule.
    pub id: &'static str,
    /// MUST or SHOULD.
    pub strength: Strength,
    /// One-line statement of the rule.
    pub title: &'static str,
    /// The RFC section (or other source) the rule builds on.
    pub source: &'static str,
}

const fn req(
    id: &'static str,
    strength: Strength,
    title: &'static str,
    source: &'static str,
) -> Requirement {
    Requirement {
        id,
        strength,
        title,
        source,
    }
}

use Strength::{Must, Should};

/// Every requirement keel checks, in catalogue order.
pub const REQUIREMENTS: &[Requirement] = &[
    req(
        "CLK-1",
        Must,
        "iat is within the declared skew of the response's Date header, nbf is not after iat, and exp - iat is the declared lifetime",
        "RFC 7519 §4.1.4-4.1.6; RFC 9110 §6.6.1",
    ),
    req(
        "FMT-1",
        Must,
        "Prefixed tokens carry the declared prefix and segment shape",
        "GitHub token format; RFC 6749 §1.5",
    ),
    req(
        "FMT-2",
        Must,
        "The embedded checksum of every checksummed token is valid, and keel's offline validator rejects every single-character substitution",
        "GitHub token format (CRC-32, base62)",
    ),
    req(
        "IDN-1",
        Must,
        "Access tokens carry their identity references: iss, sub, aud, client_id, iat, exp, jti",
        "RFC 9068 §2.2; RFC 7662 §2.2",
    ),
    req(
        "IDN-2",
        Must,
        "A JWT's kid names a key in the JWKS, and that key verifies the signature",
        "RFC 7515 §4.1.4; RFC 7517 §5",
    ),
    req(
        "IDN-3",
        Should,
        "Every JWKS key's kid is its RFC 7638 thumbprint (so a kid names key material, never a moment)",
        "RFC 7638 §3",
    ),
    req(
        "IDN-4",
        Must,
        "The identity a token carries agrees with what introspection reports for it (a refresh token's public id is its jti)",
        "RFC 7662 §2.2",
    ),
    req(
        "IDM-1",
        Must,
        "The same Idempotency-Key with the same request gives the same token identity (the same token, or an earlier one that stays valid)",
        "IETF httpapi idempotency-key draft §2",
    ),
    req(
        "IDM-2",
        Must,
        "The same Idempotency-Key with a different request is refused with 422",
        "IETF httpapi idempotency-key draft §2.7",
    ),
    req(
        "IDM-3",
        Must,
        "The Idempotency-Key guarantee survives a restart",
        "IETF httpapi idempotency-key draft §2.6",
    ),
    req(
        "IDM-4",
        Must,
        "2,000 issuances give 2,000 distinct token ids, and distinct principals never share a sub",
        "RFC 7519 §4.1.7, §4.1.2",
    ),
    req(
        "INT-1",
        Must,
        "An active introspection response has the RFC 7662 shape and member types",
        "RFC 7662 §2.2",
    ),
    req(
        "INT-2",
        Must,
        "Introspection of an unknown, malformed or revoked token answers exactly {\"active\":false}",
        "RFC 7662 §2.2, §4",
    ),
    req(
        "INT-3",
        Must,
        "A revoked token is inactive at once, and revoking an unknown token answers 200",
        "RFC 7009 §2.1, §2.2",
    ),
    req(
        "INT-4",
        Must,
        "Revoking a refresh token also deactivates the access tokens of its grant",
        "RFC 7009 §2.1; RFC 9700 §4.14.2",
    ),
    req(
        "KEY-1",
        Must,
        "A staged signing key is published in the JWKS before it signs: between the phases the JWKS holds both keys and new tokens carry the old kid",
        "RFC 7517 §5; RFC 8414 §2 (jwks_uri caching)",
    ),
    req(
        "KEY-2",
        Must,
        "After activation new tokens carry the new kid and the same identity, and tokens signed by the previous key keep verifying and stay active",
        "RFC 7517 §5; RFC 9068 §4",
    ),
    req(
        "KEY-3",
        Must,
        "A kid never changes and is never reused for other key material",
        "RFC 7517 §4.5; RFC 7638 §1",
    ),
    req(
        "KEY-4",
        Must,
        "After a rotation, a restart leaves the JWKS exactly as it was",
        "RFC 7517 §5",
    ),
    req(
        "MIG-1",
        Must,
        "Tokens issued before a schema migration are active after it with identical identity references; refresh tokens still refresh; revoked tokens stay revoked",
        "RFC 6749 §1.4 (grants outlive deployments)",
    ),
    req(
        "MIG-2",
        Must,
        "Tokens issued before a rollback are active after it with identical identity references, and refresh tokens still refresh",
        "RFC 6749 §1.4",
    ),
    req(
        "MIG-3",
        Must,
        "Tokens issued after a migration name the same subject for the same client, with exp after iat and a positive expires_in",
        "RFC 9068 §2.2; RFC 6749 §5.1",
    ),
    req(
        "NEG-1",
        Must,
        "A refresh token whose checksum segment alone was changed is rejected",
        "GitHub token format; RFC 6749 §5.2",
    ),
    req(
        "NEG-2",
        Must,
        "A refresh token whose prefix alone was changed (checksum recomputed) is rejected",
        "GitHub token format; RFC 6749 §5.2",
    ),
    req(
        "NEG-3",
        Must,
        "An access-token JWT with one signature byte flipped is rejected",
        "RFC 7515 §5.2; RFC 8725 §3.1",
    ),
    req(
        "NEG-4",
        Must,
        "An access-token JWT re-encoded with alg none is rejected",
        "RFC 8725 §2.1, §3.1",
    ),
    req(
        "NEG-5",
        Must,
        "An access-token JWT signed by a key whose kid is not in the JWKS is rejected",
        "RFC 8725 §3.1; RFC 7515 §4.1.4",
    ),
    req(
        "RFR-1",
        Must,
        "Through a chain of 50 refreshes the family id, sub, client_id, iss and scope stay byte-identical, and under rotation every refresh token has a new public id",
        "RFC 6749 §6; RFC 9700 §4.14.2",
    ),
    req(
        "RFR-2",
        Must,
        "Replaying a rotated-out refresh token fails with invalid_grant and revokes the live tokens of its family",
        "RFC 9700 §4.14.2; RFC 6749 §10.4",
    ),
    req(
        "RFR-3",
        Must,
        "Reuse detection revokes only the replayed token's family, never another family",
        "RFC 9700 §4.14.2",
    ),
    req(
        "RFR-4",
        Must,
        "Of 20 concurrent refreshes of one refresh token, the outcome matches the declared policy (rotate: exactly one 200, the rest invalid_grant, the family revoked); none answers 5xx",
        "RFC 9700 §4.14.2; RFC 6749 §5.2",
    ),
    req(
        "RFR-5",
        Must,
        "A refresh chain continues across a restart: a refresh token from before it refreshes after it, in the same family",
        "RFC 6749 §6; RFC 9700 §4.14.2",
    ),
    req(
        "ROL-1",
        Must,
        "Rolling an API key's secret keeps its public id, and both the old and the new key carry valid checksums",
        "GitHub token format",
    ),
    req(
        "ROL-2",
        Must,
        "After a roll the new secret works at once, the previous one works during the declared grace period and stops after it",
        "credential rotation with overlap (NIST SP 800-57 §5.3)",
    ),
    req(
        "RST-1",
        Must,
        "Tokens active before a restart are active after it",
        "RFC 6749 §1.4, §1.5",
    ),
    req(
        "RST-2",
        Must,
        "Identity references of every token are byte-identical across a restart",
        "RFC 9068 §2.2; RFC 7662 §2.2",
    ),
    req(
        "RST-3",
        Must,
        "The JWKS is unchanged across a restart",
        "RFC 7517 §5; RFC 8414 §2",
    ),
    req(
        "RST-4",
        Must,
        "Revoked tokens stay revoked across a restart",
        "RFC 7009 §2.2",
    ),
    req(
        "RST-5",
        Must,
        "A refresh token issued before a restart refreshes after it, keeping the identity",
        "RFC 6749 §6",
    ),
    req(
        "RST-6",
        Must,
        "A token issued immediately before a hard kill (SIGKILL) survives it",
        "RFC 6749 §1.4 (durability of issued grants)",
    ),
];

/// Looks a requirement up by id.
pub fn find(id: &str) -> Option<&'static Requirement> {
    REQUIREMENTS.iter().find(|r| r.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let re = regex::Regex::new(r"^[A-Z]{3}-[1-9][0-9]*$").unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for r in REQUIREMENTS {
            assert!(re.is_match(r.id), "malformed id {}", r.id);
            assert!(seen.insert(r.id), "duplicate id {}", r.id);
        }
        assert!(REQUIREMENTS.len() >= 10);
    }
}

#[cfg(test)]
mod spec_md {
    /// `SPEC.md` lists exactly the catalogue's requirements, in order, with the same strength.
    #[test]
    fn spec_md_agrees_with_the_catalogue() {
        let md = include_str!("../SPEC.md");
        let re = regex::Regex::new(r"(?m)^### ([A-Z]{3}-[0-9]+) \((MUST|SHOULD)\)$").unwrap();
        let headings: Vec<(String, String)> = re
            .captures_iter(md)
            .map(|c| (c[1].to_owned(), c[2].to_owned()))
            .collect();
        let table: Vec<(String, String)> = super::REQUIREMENTS
            .iter()
            .map(|r| (r.id.to_owned(), r.strength.to_string()))
            .collect();
        assert_eq!(headings, table);
    }
}
