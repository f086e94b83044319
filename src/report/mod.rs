//! Reports: the terminal (progress and summary) and JUnit XML. The JSON report is the
//! serialized [`crate::verdict::RunReport`].

pub mod junit;
pub mod terminal;
