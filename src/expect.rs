//! Expectations files: the failures a target is known to have, each with a reason and
//! optionally an expiry date, so that CI stays green on known findings but never on new ones.
//!
//! Must-still-fail: an expected failure that passes, or an entry past its expiry, fails the run,
//! so the file can only shrink as the issuer is fixed. A failure not in the file is reported with
//! the entry to paste.

use std::path::Path;

use serde::Deserialize;

use crate::target::TargetError;
use crate::verdict::{RunReport, Verdict};

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectationsFile {
    /// The entries.
    #[serde(default)]
    pub expected: Vec<Expected>,
}

/// One known failure.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// Requirement id.
    pub req: String,
    /// Why it fails (required: an unexplained expectation is a silenced test).
    pub reason: String,
    /// `YYYY-MM-DD`; after this day the entry fails the run.
    pub expires: Option<String>,
}

/// Reads and checks an expectations file.
pub fn load(path: &Path) -> Result<Vec<Expected>, TargetError> {
    let err = |line: Option<usize>, message: String, fix: &str| TargetError {
        path: path.to_owned(),
        line,
        message,
        fix: Some(fix.to_owned()),
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(
            None,
            format!("cannot read the expectations file: {e}"),
            "pass an existing TOML file to --expectations",
        )
    })?;
    let file: ExpectationsFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        err(
            line,
            e.message().trim().to_owned(),
            "each entry is [[expected]] with req, reason and optionally expires = \"YYYY-MM-DD\"",
        )
    })?;
    for (i, e) in file.expected.iter().enumerate() {
        let line = text
            .match_indices("[[expected]]")
            .nth(i)
            .map(|(o, _)| text[..o].matches('\n').count() + 1);
        if crate::spec::find(&e.req).is_none() {
            return Err(err(
                line,
                format!("requirement {:?} is not in keel's catalogue", e.req),
                "use an id from SPEC.md, e.g. RST-1",
            ));
        }
        if e.reason.trim().is_empty() {
            return Err(err(
                line,
                format!("the entry for {} has no reason", e.req),
                "say why it fails in reason = \"...\"",
            ));
        }
        if let Some(d) = &e.expires
            && !valid_date(d)
        {
            let line = line.map(|start| {
                text.lines()
                    .enumerate()
                    .skip(start - 1)
                    .find(|(_, l)| l.trim_start().starts_with("expires"))
                    .map_or(start, |(i, _)| i + 1)
            });
            return Err(err(
                line,
                format!("expires {d:?} is not a YYYY-MM-DD date"),
                "write expires = \"2027-06-30\"",
            ));
        }
    }
    Ok(file.expected)
}

fn valid_date(d: &str) -> bool {
    let b = d.as_bytes();
    if !(d.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && d.chars()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit()))
    {
        return false;
    }
    let num = |r: std::ops::Range<usize>| d[r].parse::<u32>().unwrap_or(0);
    let (y, m, day) = (num(0..4), num(5..7), num(8..10));
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    y >= 1970 && (1..=days).contains(&day)
}

/// Today as `YYYY-MM-DD` (UTC).
pub fn today() -> String {
    humantime::format_rfc3339(std::time::SystemTime::now()).to_string()[..10].to_owned()
}

/// Applies `expected` to `report`: listed failures become expected failures; entries that did
/// not fail, or expired, become expectation problems (which fail the run). Returns the entries
/// to paste for new failures.
pub fn apply(report: &mut RunReport, expected: &[Expected], today: &str) -> Vec<String> {
    // Only failures and warnings can be expected: an error means keel could not check, and an
    // expectations entry must not turn "could not check" into a green run.
    let expectable = |v: Verdict| matches!(v, Verdict::Fail | Verdict::Warn);
    let failing = |v: Verdict| matches!(v, Verdict::Fail | Verdict::Error | Verdict::Warn);
    for s in &mut report.scenarios {
        if !expectable(s.verdict) {
            continue;
        }
        if let Some(e) = expected.iter().find(|e| s.requirements.contains(&e.req)) {
            s.message = Some(format!(
                "expected ({}): {}; got {}: {}",
                e.reason,
                e.expires
                    .as_ref()
                    .map(|d| format!("until {d}"))
                    .unwrap_or_else(|| "no expiry".into()),
                s.verdict,
                s.message.clone().unwrap_or_default()
            ));
            s.verdict = Verdict::ExpectedFailure;
        }
    }
    for e in expected {
        let scenarios: Vec<_> = report
            .scenarios
            .iter()
            .filter(|s| s.requirements.contains(&e.req))
            .collect();
        if scenarios.is_empty() {
            // Not selected in this run (--req/--tags): nothing to say about it.
            continue;
        }
        if !scenarios
            .iter()
            .any(|s| s.verdict == Verdict::ExpectedFailure)
        {
            let how = if scenarios
                .iter()
                .all(|s| s.verdict == Verdict::NotApplicable)
            {
                "was not applicable"
            } else {
                "passed"
            };
            report.expectation_problems.push(format!(
                "{} is expected to fail ({}) but {how}: remove its entry from the expectations file",
                e.req, e.reason
            ));
        }
        if let Some(d) = &e.expires
            && d.as_str() < today
        {
            report.expectation_problems.push(format!(
                "the expected failure of {} expired on {d}: fix the issuer, or renew the entry with a new date and reason",
                e.req
            ));
        }
    }
    let mut paste = Vec::new();
    for r in &report.scenarios {
        if failing(r.verdict) {
            for id in &r.requirements {
                let why = r.message.clone().unwrap_or_default().replace('"', "'");
                let mut short: String = why.chars().take(100).collect();
                if short.len() < why.len()
                    && let Some(cut) = short.rfind(' ')
                {
                    short.truncate(cut);
                    short.push_str(" ...");
                }
                let entry = format!("[[expected]]\nreq = \"{id}\"\nreason = \"<why: {short}>\"");
                if !paste
                    .iter()
                    .any(|p: &String| p.starts_with(&format!("[[expected]]\nreq = \"{id}\"")))
                {
                    paste.push(entry);
                }
            }
        }
    }
    report.summarize();
    paste
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::ScenarioRecord;

    fn rec(req: &str, v: Verdict) -> ScenarioRecord {
        ScenarioRecord {
            feature: "f".into(),
            file: "f.feature".into(),
            line: 1,
            name: format!("{req} scenario"),
            requirements: vec![req.into()],
            tags: vec![],
            verdict: v,
            message: Some("m".into()),
            warnings: vec![],
            proofs: vec![],
            ledger: serde_json::Value::Null,
            duration_ms: 0,
        }
    }

    fn report(s: Vec<ScenarioRecord>) -> RunReport {
        RunReport {
            target: "t".into(),
            reference_fault: None,
            scenarios: s,
            requirements: vec![],
            strict: false,
            expectation_problems: vec![],
            duration_ms: 0,
        }
    }

    fn exp(req: &str, expires: Option<&str>) -> Expected {
        Expected {
            req: req.into(),
            reason: "known".into(),
            expires: expires.map(str::to_owned),
        }
    }

    #[test]
    fn a_listed_failure_is_expected_and_does_not_fail_the_run() {
        let mut r = report(vec![
            rec("RST-1", Verdict::Fail),
            rec("RST-2", Verdict::Pass),
        ]);
        let paste = apply(&mut r, &[exp("RST-1", None)], "2026-12-03");
        assert_eq!(r.scenarios[0].verdict, Verdict::ExpectedFailure);
        assert!(paste.is_empty());
        assert_eq!(r.exit_code(), 0);
    }

    #[test]
    fn an_expected_failure_that_passes_fails_the_run() {
        let mut r = report(vec![rec("RST-1", Verdict::Pass)]);
        apply(&mut r, &[exp("RST-1", None)], "2026-12-03");
        assert_eq!(r.exit_code(), 1);
        assert!(r.expectation_problems[0].contains("but passed"));
    }

    #[test]
    fn an_error_is_never_hidden_by_an_expectation() {
        let mut r = report(vec![rec("RST-1", Verdict::Error)]);
        apply(&mut r, &[exp("RST-1", None)], "2026-12-03");
        assert_eq!(r.scenarios[0].verdict, Verdict::Error);
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn an_expired_entry_fails_the_run() {
        let mut r = report(vec![rec("RST-1", Verdict::Fail)]);
        apply(&mut r, &[exp("RST-1", Some("2026-01-01"))], "2026-12-03");
        assert_eq!(r.exit_code(), 1);
        assert!(r.expectation_problems[0].contains("expired"));
    }

    #[test]
    fn a_new_failure_fails_and_gets_an_entry_to_paste() {
        let mut r = report(vec![rec("RST-4", Verdict::Fail)]);
        let paste = apply(&mut r, &[], "2026-12-03");
        assert_eq!(r.exit_code(), 1);
        assert!(paste[0].starts_with("[[expected]]\nreq = \"RST-4\""));
    }

    #[test]
    fn dates_are_checked() {
        assert!(valid_date("2027-06-30"));
        assert!(!valid_date("2027-6-30"));
        assert!(!valid_date("2027-13-45"));
        assert!(!valid_date("2026-02-30"));
        assert!(valid_date("2028-02-29"));
        assert!(!valid_date("0000-00-00"));
        assert_eq!(today().len(), 10);
    }
}
