//! Token anatomy: the one place that takes tokens apart.
//!
//! Prefixed opaque tokens (`krt_…`, GitHub-style with an embedded CRC-32), JWTs (decoded
//! without trusting them, and verified against a JWKS), RFC 7638 thumbprints, and the
//! tamperings that the negative scenarios present to the issuer.

pub mod checksum;
pub mod jwt;
pub mod prefixed;
pub mod thumbprint;
