//! keel: a conformance suite for API-token issuers.
//!
//! keel exercises an issuer over HTTP through the events that break token identities (restarts
//! first; rotations and migrations next) and proves that tokens keep validating and that their
//! identity references do not change. Scenarios are Gherkin ([`features`]), run by cucumber with
//! keel's step library ([`steps`]); outcomes are keel's own verdicts ([`verdict`]).
#![forbid(unsafe_code)]

pub mod client;
pub mod context;
pub mod discovery;
pub mod expect;
pub mod features;
pub mod identity;
pub mod init;
pub mod issuer;
pub mod lifecycle;
pub mod normalize;
pub mod reference;
pub mod report;
pub mod run;
pub mod spec;
pub mod steps;
pub mod target;
pub mod token;
pub mod verdict;
pub mod world;

pub use run::{RunOptions, StartError, run};
pub use verdict::{RunReport, Verdict};
