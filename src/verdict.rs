//! keel's verdict model, richer than cucumber's pass/fail/skip.
//!
//! A step that cannot go on returns a [`Problem`], which says whether the issuer broke a rule
//! ([`Problem::Fail`]), keel could not check ([`Problem::Error`]), or the rule does not apply to
//! this target ([`Problem::NotApplicable`]). cucumber turns the error into a panic payload; the
//! after-hook reads the kind back from the payload's tag (see [`Problem::from_payload`]).

use serde::Serialize;

/// The outcome of one scenario (and, aggregated, of one requirement).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The rule holds.
    Pass,
    /// The rule does not apply to this target (a capability is absent); the reason is given.
    NotApplicable,
    /// Failed, as the target's expectations file says it does (with a reason).
    ExpectedFailure,
    /// A SHOULD was broken.
    Warn,
    /// A MUST was broken.
    Fail,
    /// keel could not check: garbage from the issuer, a hook failed, an event was not proven.
    Error,
}

impl Verdict {
    /// Fixed-width label for the terminal.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::NotApplicable => "N/A",
            Verdict::ExpectedFailure => "XFAIL",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
            Verdict::Error => "ERROR",
        }
    }

    /// Worst-of, for aggregating the scenarios of one requirement: error > fail > warn > pass > n/a.
    /// A requirement with one passing and one not-applicable scenario passes.
    pub fn rank(self) -> u8 {
        match self {
            Verdict::NotApplicable => 0,
            Verdict::Pass => 1,
            Verdict::ExpectedFailure => 2,
            Verdict::Warn => 3,
            Verdict::Fail => 4,
            Verdict::Error => 5,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::NotApplicable => "not applicable",
            Verdict::ExpectedFailure => "expected failure",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        })
    }
}

/// Why a step stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The issuer broke the rule: "expected X, got Y".
    Fail(String),
    /// keel could not check.
    Error(String),
    /// The rule does not apply: the reason.
    NotApplicable(String),
}

const TAG_FAIL: &str = "\u{1}keel:fail\u{1}";
const TAG_ERROR: &str = "\u{1}keel:error\u{1}";
const TAG_NA: &str = "\u{1}keel:n/a\u{1}";

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The tag survives cucumber's `panic!("{}", e)`; nothing else ever prints this form.
        match self {
            Problem::Fail(m) => write!(f, "{TAG_FAIL}{m}"),
            Problem::Error(m) => write!(f, "{TAG_ERROR}{m}"),
            Problem::NotApplicable(m) => write!(f, "{TAG_NA}{m}"),
        }
    }
}

impl std::error::Error for Problem {}

impl Problem {
    /// Recovers a problem from a step's panic payload. A payload without keel's tag is a panic
    /// inside keel itself, reported as an error so that it is never mistaken for a verdict on
    /// the issuer.
    pub fn from_payload(payload: &(dyn std::any::Any + Send)) -> Problem {
        let text = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "(non-string panic payload)".to_owned());
        if let Some(m) = text.strip_prefix(TAG_FAIL) {
            Problem::Fail(m.to_owned())
        } else if let Some(m) = text.strip_prefix(TAG_ERROR) {
            Problem::Error(m.to_owned())
        } else if let Some(m) = text.strip_prefix(TAG_NA) {
            Problem::NotApplicable(m.to_owned())
        } else {
            Problem::Error(format!(
                "keel itself panicked (a bug in keel, please report it): {text}"
            ))
        }
    }

    /// The message without the kind.
    pub fn message(&self) -> &str {
        match self {
            Problem::Fail(m) | Problem::Error(m) | Problem::NotApplicable(m) => m,
        }
    }
}

/// Builds a failure.
pub fn fail(msg: impl Into<String>) -> Problem {
    Problem::Fail(msg.into())
}

/// Builds an error (keel could not check).
pub fn error(msg: impl Into<String>) -> Problem {
    Problem::Error(msg.into())
}

/// Builds a not-applicable.
pub fn not_applicable(msg: impl Into<String>) -> Problem {
    Problem::NotApplicable(msg.into())
}

impl From<crate::client::HttpError> for Problem {
    fn from(e: crate::client::HttpError) -> Self {
        Problem::Error(e.to_string())
    }
}

/// The recorded outcome of one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioRecord {
    /// Feature name.
    pub feature: String,
    /// Feature file (virtual path for built-ins).
    pub file: String,
    /// Line of the scenario.
    pub line: usize,
    /// Scenario name.
    pub name: String,
    /// Requirement ids from `@req:` tags.
    pub requirements: Vec<String>,
    /// All tags.
    pub tags: Vec<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, for anything but a pass.
    pub message: Option<String>,
    /// SHOULD-level findings.
    pub warnings: Vec<String>,
    /// Proof of every lifecycle event the scenario triggered.
    pub proofs: Vec<String>,
    /// The identity ledger, with fingerprints instead of tokens (normalize before snapshotting).
    pub ledger: serde_json::Value,
    /// Wall time.
    pub duration_ms: u64,
}

impl ScenarioRecord {
    /// `[RST-1][RST-2]`.
    pub fn req_label(&self) -> String {
        self.requirements.iter().map(|r| format!("[{r}]")).collect()
    }
}

/// Aggregate of one requirement over its scenarios.
#[derive(Clone, Debug, Serialize)]
pub struct RequirementSummary {
    /// Id.
    pub id: String,
    /// MUST / SHOULD, or `custom` for ids not in keel's catalogue.
    pub strength: String,
    /// Title.
    pub title: String,
    /// Worst verdict of its scenarios.
    pub verdict: Verdict,
    /// Number of scenarios.
    pub scenarios: usize,
    /// The first non-pass message.
    pub message: Option<String>,
}

/// Everything a run found.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// What was tested (issuer URL or "bundled reference issuer").
    pub target: String,
    /// Reference fault mode, if any.
    pub reference_fault: Option<String>,
    /// Scenarios in file order.
    pub scenarios: Vec<ScenarioRecord>,
    /// Requirements in catalogue order.
    pub requirements: Vec<RequirementSummary>,
    /// Whether warnings fail the run.
    pub strict: bool,
    /// Problems with the expectations file (an expected failure that passed, an expired
    /// entry): each fails the run.
    pub expectation_problems: Vec<String>,
    /// Wall time of the whole run.
    pub duration_ms: u64,
}

impl RunReport {
    /// Builds the requirement summary from scenario records.
    pub fn summarize(&mut self) {
        let mut ids: Vec<String> = Vec::new();
        for r in crate::spec::REQUIREMENTS {
            ids.push(r.id.to_owned());
        }
        for s in &self.scenarios {
            for r in &s.requirements {
                if !ids.contains(r) {
                    ids.push(r.clone());
                }
            }
        }
        self.requirements = ids
            .into_iter()
            .filter_map(|id| {
                let scen: Vec<&ScenarioRecord> = self
                    .scenarios
                    .iter()
                    .filter(|s| s.requirements.contains(&id))
                    .collect();
                if scen.is_empty() {
                    return None;
                }
                let worst = scen.iter().map(|s| s.verdict).max_by_key(|v| v.rank())?;
                let na = scen
                    .iter()
                    .filter(|s| s.verdict == Verdict::NotApplicable)
                    .count();
                let message = scen
                    .iter()
                    .find(|s| s.verdict == worst && s.verdict != Verdict::Pass)
                    .and_then(|s| s.message.clone())
                    .or_else(|| {
                        // A pass with some scenarios not applicable was only partly checked: say so.
                        (worst == Verdict::Pass && na > 0).then(|| {
                            let why = scen
                                .iter()
                                .find(|s| s.verdict == Verdict::NotApplicable)
                                .and_then(|s| s.message.clone())
                                .unwrap_or_default();
                            format!(
                                "partly checked: {na} of {} scenarios not applicable ({why})",
                                scen.len()
                            )
                        })
                    });
                let (strength, title) = match crate::spec::find(&id) {
                    Some(r) => (r.strength.to_string(), r.title.to_owned()),
                    None => ("custom".to_owned(), "(not in keel's catalogue)".to_owned()),
                };
                Some(RequirementSummary {
                    id,
                    strength,
                    title,
                    verdict: worst,
                    scenarios: scen.len(),
                    message,
                })
            })
            .collect();
    }

    /// Count of scenarios with this verdict.
    pub fn count(&self, v: Verdict) -> usize {
        self.scenarios.iter().filter(|s| s.verdict == v).count()
    }

    /// Exit code: 0 nothing failed or errored (warnings allowed unless strict), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        let bad = self.expectation_problems.len()
            + self.count(Verdict::Fail)
            + self.count(Verdict::Error)
            + if self.strict {
                self.count(Verdict::Warn)
            } else {
                0
            };
        i32::from(bad > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_round_trip_through_a_panic_payload() {
        for p in [fail("x"), error("y"), not_applicable("z")] {
            let payload: Box<dyn std::any::Any + Send> = Box::new(p.to_string());
            assert_eq!(Problem::from_payload(payload.as_ref()), p);
        }
        let payload: Box<dyn std::any::Any + Send> = Box::new("index out of bounds");
        assert!(
            matches!(Problem::from_payload(payload.as_ref()), Problem::Error(m) if m.contains("keel itself panicked"))
        );
    }
}
