//! Fault modes: deliberate defects, each of which breaks a named set of keel requirements.
//!
//! keel proves that every one of its checks can fail by running the reference issuer with a
//! fault switched on and expecting exactly the listed requirements to fail. The requirement ids
//! are keel's (see keel's `SPEC.md`); this module only names them.

use std::fmt;
use std::str::FromStr;

/// One deliberate defect of the reference issuer, chosen with `--fault NAME`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// A fresh signing key at every start, never persisted.
    EphemeralKeys,
    /// Revocations kept only in memory.
    MemoryRevocations,
    /// `sub` derived from the boot id instead of a stored identifier.
    NewSubAfterRestart,
    /// Refresh-token checksum not compared.
    ChecksumUnchecked,
    /// Refresh-token prefix not compared.
    PrefixUnchecked,
    /// Checksum computed without the prefix.
    BadChecksum,
    /// Refresh tokens issued with `rt_` instead of `krt_`.
    UnprefixedRefresh,
    /// Access-token JWTs introspected without verifying signature, alg or kid.
    JwtSignatureUnchecked,
    /// Unsigned `alg: none` JWTs accepted by introspection.
    AlgNoneAccepted,
    /// Signature verification skipped when the kid is unknown.
    UnknownKidAccepted,
    /// A random kid at every start instead of the RFC 7638 thumbprint.
    RandomKid,
    /// The JWKS publishes a key other than the signing key.
    KidNotPublished,
    /// Access tokens without a `client_id` claim.
    MissingClientId,
    /// Refresh-token introspection reports a `jti` other than the public id.
    IntrospectionJtiMismatch,
    /// `exp` and `iat` introspected as strings.
    StringTimestamps,
    /// Inactive introspection responses carry an extra member.
    VerboseInactive,
    /// Revoking an unknown token answers 400.
    RevokeUnknown400,
    /// Revoking a refresh token leaves its grant's access tokens active.
    RevokeKeepsAccess,
    /// Token records buffered in memory and written to SQLite every 2 s.
    LazyCommit,
    /// A replayed rotated-out refresh token is refused but revokes nothing.
    ReuseNotDetected,
    /// Refresh-token reuse revokes every family of the client, not only the replayed one.
    RevokeAllFamilies,
    /// Every refresh starts a new family (grant) instead of staying in the token's family.
    NewFamilyOnRefresh,
    /// Refresh rotation without the atomic guard, so concurrent refreshes can all succeed.
    RefreshRace,
    /// A staged signing key signs at once (no pre-publication).
    ActivateOnStage,
    /// Activation drops the retired key from the JWKS and from verification at once.
    RotateWithoutOverlap,
    /// Every signing key gets the kid `reused-kid`.
    KidReused,
    /// Rolling an API key issues a new public id.
    RollChangesPublicId,
    /// An API key's previous secret never expires after a roll.
    RollKeepsOldSecret,
    /// The `Idempotency-Key` header is ignored.
    IdempotencyIgnored,
    /// Idempotency records live in memory only.
    MemoryIdempotency,
    /// Access-token `jti` is three hex characters.
    ShortJti,
    /// Access-token `iat`, `nbf` and `exp` are ten minutes in the past.
    SkewedIat,
    /// Migrating up to schema version 3 gives every principal a new `sub`.
    MigrationRenumbersIds,
    /// Rolling back from schema version 3 deletes the tokens issued at version 3.
    RollbackLosesTokens,
}

impl Fault {
    /// Every fault mode, in the order of the brief's table.
    pub const ALL: &'static [Fault] = &[
        Fault::EphemeralKeys,
        Fault::MemoryRevocations,
        Fault::NewSubAfterRestart,
        Fault::ChecksumUnchecked,
        Fault::PrefixUnchecked,
        Fault::BadChecksum,
        Fault::UnprefixedRefresh,
        Fault::JwtSignatureUnchecked,
        Fault::AlgNoneAccepted,
        Fault::UnknownKidAccepted,
        Fault::RandomKid,
        Fault::KidNotPublished,
        Fault::MissingClientId,
        Fault::IntrospectionJtiMismatch,
        Fault::StringTimestamps,
        Fault::VerboseInactive,
        Fault::RevokeUnknown400,
        Fault::RevokeKeepsAccess,
        Fault::LazyCommit,
        Fault::ReuseNotDetected,
        Fault::RevokeAllFamilies,
        Fault::NewFamilyOnRefresh,
        Fault::RefreshRace,
        Fault::ActivateOnStage,
        Fault::RotateWithoutOverlap,
        Fault::KidReused,
        Fault::RollChangesPublicId,
        Fault::RollKeepsOldSecret,
        Fault::IdempotencyIgnored,
        Fault::MemoryIdempotency,
        Fault::ShortJti,
        Fault::SkewedIat,
        Fault::MigrationRenumbersIds,
        Fault::RollbackLosesTokens,
    ];

    /// The kebab-case name used on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::EphemeralKeys => "ephemeral-keys",
            Fault::MemoryRevocations => "memory-revocations",
            Fault::NewSubAfterRestart => "new-sub-after-restart",
            Fault::ChecksumUnchecked => "checksum-unchecked",
            Fault::PrefixUnchecked => "prefix-unchecked",
            Fault::BadChecksum => "bad-checksum",
            Fault::UnprefixedRefresh => "unprefixed-refresh",
            Fault::JwtSignatureUnchecked => "jwt-signature-unchecked",
            Fault::AlgNoneAccepted => "alg-none-accepted",
            Fault::UnknownKidAccepted => "unknown-kid-accepted",
            Fault::RandomKid => "random-kid",
            Fault::KidNotPublished => "kid-not-published",
            Fault::MissingClientId => "missing-client-id",
            Fault::IntrospectionJtiMismatch => "introspection-jti-mismatch",
            Fault::StringTimestamps => "string-timestamps",
            Fault::VerboseInactive => "verbose-inactive",
            Fault::RevokeUnknown400 => "revoke-unknown-400",
            Fault::RevokeKeepsAccess => "revoke-keeps-access",
            Fault::LazyCommit => "lazy-commit",
            Fault::ReuseNotDetected => "reuse-not-detected",
            Fault::RevokeAllFamilies => "revoke-all-families",
            Fault::NewFamilyOnRefresh => "new-family-on-refresh",
            Fault::RefreshRace => "refresh-race",
            Fault::ActivateOnStage => "activate-on-stage",
            Fault::RotateWithoutOverlap => "rotate-without-overlap",
            Fault::KidReused => "kid-reused",
            Fault::RollChangesPublicId => "roll-changes-public-id",
            Fault::RollKeepsOldSecret => "roll-keeps-old-secret",
            Fault::IdempotencyIgnored => "idempotency-ignored",
            Fault::MemoryIdempotency => "memory-idempotency",
            Fault::ShortJti => "short-jti",
            Fault::SkewedIat => "skewed-iat",
            Fault::MigrationRenumbersIds => "migration-renumbers-ids",
            Fault::RollbackLosesTokens => "rollback-loses-tokens",
        }
    }

    /// The MUST requirement ids of keel this fault breaks, and nothing else (never empty).
    pub fn breaks(&self) -> &'static [&'static str] {
        match self {
            Fault::EphemeralKeys => &[
                "IDM-3", "KEY-4", "MIG-1", "MIG-2", "RST-1", "RST-2", "RST-3", "RST-6",
            ],
            Fault::MemoryRevocations => &["MIG-1", "RST-4"],
            Fault::NewSubAfterRestart => &[
                "IDM-3", "MIG-1", "MIG-2", "MIG-3", "RFR-5", "RST-2", "RST-5",
            ],
            Fault::ChecksumUnchecked => &["NEG-1"],
            Fault::PrefixUnchecked => &["NEG-2"],
            Fault::BadChecksum => &["FMT-2"],
            Fault::UnprefixedRefresh => &["FMT-1"],
            Fault::JwtSignatureUnchecked => &["NEG-3", "NEG-4", "NEG-5"],
            Fault::AlgNoneAccepted => &["NEG-4"],
            Fault::UnknownKidAccepted => &["NEG-5"],
            Fault::RandomKid => &[
                "IDM-3", "KEY-4", "MIG-1", "MIG-2", "RST-1", "RST-2", "RST-3", "RST-6",
            ],
            Fault::KidNotPublished => &["IDN-2", "KEY-2"],
            Fault::MissingClientId => &["IDN-1"],
            Fault::IntrospectionJtiMismatch => &["IDN-4"],
            Fault::StringTimestamps => &["INT-1"],
            Fault::VerboseInactive => &["INT-2"],
            Fault::RevokeUnknown400 => &["INT-3"],
            Fault::RevokeKeepsAccess => &["INT-4"],
            Fault::LazyCommit => &["RST-6"],
            Fault::ReuseNotDetected => &["RFR-2", "RFR-4"],
            Fault::RevokeAllFamilies => &["RFR-3"],
            Fault::NewFamilyOnRefresh => &["RFR-1", "RFR-5", "RST-5"],
            Fault::RefreshRace => &["RFR-4"],
            Fault::ActivateOnStage => &["KEY-1"],
            Fault::RotateWithoutOverlap => &["KEY-2"],
            Fault::KidReused => &["KEY-2", "KEY-3"],
            Fault::RollChangesPublicId => &["ROL-1"],
            Fault::RollKeepsOldSecret => &["ROL-2"],
            Fault::IdempotencyIgnored => &["IDM-1", "IDM-2", "IDM-3"],
            Fault::MemoryIdempotency => &["IDM-3"],
            Fault::ShortJti => &["IDM-4"],
            Fault::SkewedIat => &["CLK-1"],
            Fault::MigrationRenumbersIds => &["MIG-1", "MIG-3"],
            Fault::RollbackLosesTokens => &["MIG-2"],
        }
    }

    /// The SHOULD requirements this fault breaks (keel warns on them rather than failing).
    pub fn warns(&self) -> &'static [&'static str] {
        match self {
            Fault::RandomKid => &["IDN-3"],
            Fault::KidReused => &["IDN-3"],
            _ => &[],
        }
    }

    /// One sentence saying what the fault does.
    pub fn description(&self) -> &'static str {
        match self {
            Fault::EphemeralKeys => {
                "Generates a fresh signing key at every start and never persists it, so the JWKS and kid change on restart and older JWTs stop verifying."
            }
            Fault::MemoryRevocations => {
                "Keeps revocations only in an in-memory set, so a restart brings revoked tokens back to life."
            }
            Fault::NewSubAfterRestart => {
                "Derives `sub` from the boot id and the principal at issuance and introspection, so the same principal gets a new `sub` after every restart."
            }
            Fault::ChecksumUnchecked => {
                "Skips the checksum comparison when validating refresh tokens."
            }
            Fault::PrefixUnchecked => {
                "Accepts any four characters as the refresh-token prefix, checking the checksum over whatever is there."
            }
            Fault::BadChecksum => {
                "Computes the refresh-token checksum over the characters after the prefix only, when issuing and when validating."
            }
            Fault::UnprefixedRefresh => {
                "Issues (and accepts) refresh tokens with the prefix `rt_` instead of `krt_`."
            }
            Fault::JwtSignatureUnchecked => {
                "Introspection decodes access-token JWTs without verifying their signature, alg or kid."
            }
            Fault::AlgNoneAccepted => {
                "Introspection accepts unsigned `alg: none` JWTs whose jti names a live token record."
            }
            Fault::UnknownKidAccepted => {
                "Introspection skips signature verification when the JWT's kid is not in the key store."
            }
            Fault::RandomKid => {
                "Uses a random uuid chosen at every start as the kid instead of the RFC 7638 thumbprint, so tokens signed before a restart name a kid that no longer exists."
            }
            Fault::KidNotPublished => {
                "Publishes a different, freshly generated key in the JWKS instead of the signing key."
            }
            Fault::MissingClientId => "Omits the `client_id` claim from access-token JWTs.",
            Fault::IntrospectionJtiMismatch => {
                "Reports a refresh token's `jti` at introspection as the first 16 hex characters of its secret hash instead of its public id."
            }
            Fault::StringTimestamps => {
                "Reports `exp` and `iat` as strings in active introspection responses."
            }
            Fault::VerboseInactive => {
                "Answers inactive introspections with `{\"active\":false,\"error\":\"token_not_found\"}`."
            }
            Fault::RevokeUnknown400 => {
                "Answers the revocation of an unknown token with 400 `{\"error\":\"invalid_request\"}`."
            }
            Fault::RevokeKeepsAccess => {
                "Revoking a refresh token revokes that refresh token only, leaving its grant's access tokens active."
            }
            Fault::LazyCommit => {
                "Buffers token records in memory and writes them to SQLite every 2 s and on graceful shutdown, so a SIGKILL right after issuance loses them."
            }
            Fault::ReuseNotDetected => {
                "Answers a replayed rotated-out refresh token with `invalid_grant` but revokes nothing, so the rest of its family stays usable."
            }
            Fault::RevokeAllFamilies => {
                "On refresh-token reuse, revokes every refresh family of the same client instead of only the replayed token's family."
            }
            Fault::NewFamilyOnRefresh => {
                "Starts a new family (a new grant copying sub, client and scope) at every refresh, so `family_id` changes along a rotation chain."
            }
            Fault::RefreshRace => {
                "Rotates refresh tokens without the atomic guard (check, 100 ms pause, then an unconditional update in separate statements), so concurrent refreshes of one token can all succeed."
            }
            Fault::ActivateOnStage => {
                "Makes a newly staged signing key sign at once, so it is never pre-published before it signs."
            }
            Fault::RotateWithoutOverlap => {
                "Activating (or rotating to) a new signing key drops the previous key from the JWKS and from verification at once."
            }
            Fault::KidReused => {
                "Gives every signing key the kid `reused-kid` instead of its thumbprint, so after a stage two different keys share one kid."
            }
            Fault::RollChangesPublicId => {
                "Rolling an API key issues a key with a new public id instead of a new secret under the same id."
            }
            Fault::RollKeepsOldSecret => {
                "An API key's previous secret keeps working forever after a roll instead of only during the grace period."
            }
            Fault::IdempotencyIgnored => {
                "Ignores the `Idempotency-Key` header, so every client-credentials request issues a new token."
            }
            Fault::MemoryIdempotency => {
                "Keeps Idempotency-Key records in memory only, so a restart forgets them."
            }
            Fault::ShortJti => {
                "Issues access tokens whose `jti` is three hex characters, so a few thousand tokens collide."
            }
            Fault::SkewedIat => {
                "Issues access tokens whose `iat`, `nbf` and `exp` are ten minutes in the past (the issuer judges them with the same skewed clock)."
            }
            Fault::MigrationRenumbersIds => {
                "Migrating up to schema version 3 re-derives every `sub` (a new uuid per principal) instead of copying it."
            }
            Fault::RollbackLosesTokens => {
                "Rolling back from schema version 3 to 2 deletes every access and refresh token issued since migration 0003 was applied."
            }
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a fault name that names no fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault {given:?}; valid faults are: {}", valid_names())]
pub struct UnknownFault {
    /// The name that was given.
    pub given: String,
}

fn valid_names() -> String {
    Fault::ALL
        .iter()
        .map(Fault::name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for Fault {
    type Err = UnknownFault;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fault::ALL
            .iter()
            .copied()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFault {
                given: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_roundtrip_and_are_unique() {
        let mut seen = HashSet::new();
        for f in Fault::ALL {
            assert!(seen.insert(f.name()), "duplicate name {}", f.name());
            assert_eq!(f.name().parse::<Fault>(), Ok(*f));
            assert!(!f.breaks().is_empty());
            assert!(f.description().ends_with('.'));
        }
        assert_eq!(seen.len(), Fault::ALL.len());
    }

    #[test]
    fn unknown_name_lists_valid_ones() {
        let err = "nope".parse::<Fault>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"nope\""));
        assert!(msg.contains("ephemeral-keys"));
        assert!(msg.contains("lazy-commit"));
    }
}
