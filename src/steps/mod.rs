//! keel's step library, one module per area (mirroring `features/`).
//!
//! Steps compose the issuer client ([`crate::issuer`]), token anatomy ([`crate::token`]) and
//! lifecycle ([`crate::lifecycle`]); they do not speak HTTP or parse tokens themselves. `Given`
//! steps establish preconditions: when one cannot be established the verdict is an error (keel
//! could not check), not a failure. `Then` steps judge, with "expected X, got Y" messages.

pub mod apikeys;
pub mod clock;
pub mod format;
pub mod idempotency;
pub mod identity;
pub mod introspection;
pub mod issuance;
pub mod keys;
pub mod migration;
pub mod refresh;
pub mod restart;
pub mod tampering;
