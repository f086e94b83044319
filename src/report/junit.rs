//! keel's own JUnit XML writer: one test case per scenario, named with its requirement ids.
//!
//! cucumber's writer has no notion of not-applicable or error and leaves tags out, so keel maps
//! its verdicts itself: fail → `<failure>`, error → `<error>`, not applicable →
//! `<skipped message>`, warn → a passing case with the warning in `<system-out>` (a `<failure>`
//! under `--strict`).

use std::io::Write as _;
use std::path::Path;

use quick_xml::escape::escape;

use crate::verdict::{RunReport, ScenarioRecord, Verdict};

/// Renders the report as JUnit XML.
pub fn render(report: &RunReport) -> String {
    let mut features: Vec<&str> = Vec::new();
    for s in &report.scenarios {
        if !features.contains(&s.feature.as_str()) {
            features.push(&s.feature);
        }
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total = report.scenarios.len();
    let failures = report.count(Verdict::Fail)
        + if report.strict {
            report.count(Verdict::Warn)
        } else {
            0
        };
    out.push_str(&format!(
        "<testsuites name=\"keel\" tests=\"{total}\" failures=\"{failures}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">\n",
        report.count(Verdict::Error),
        report.count(Verdict::NotApplicable) + report.count(Verdict::ExpectedFailure),
        report.duration_ms as f64 / 1000.0
    ));
    for f in features {
        let cases: Vec<&ScenarioRecord> =
            report.scenarios.iter().filter(|s| s.feature == f).collect();
        let count = |v: Verdict| cases.iter().filter(|s| s.verdict == v).count();
        let fails = count(Verdict::Fail)
            + if report.strict {
                count(Verdict::Warn)
            } else {
                0
            };
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{fails}\" errors=\"{}\" skipped=\"{}\">\n",
            escape(f),
            cases.len(),
            count(Verdict::Error),
            count(Verdict::NotApplicable) + count(Verdict::ExpectedFailure)
        ));
        for s in cases {
            out.push_str(&case(s, report.strict));
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn case(s: &ScenarioRecord, strict: bool) -> String {
    let name = if s.requirements.is_empty() {
        s.name.clone()
    } else {
        format!("{} {}", s.name, s.req_label())
    };
    let mut x = format!(
        "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\" line=\"{}\" time=\"{:.3}\"",
        escape(name.as_str()),
        escape(s.feature.as_str()),
        escape(s.file.as_str()),
        s.line,
        s.duration_ms as f64 / 1000.0
    );
    let msg = s.message.clone().unwrap_or_default();
    let body = match s.verdict {
        Verdict::Pass => String::new(),
        Verdict::Fail => format!(
            "      <failure message=\"{}\">{}</failure>\n",
            escape(msg.as_str()),
            escape(msg.as_str())
        ),
        Verdict::Error => format!(
            "      <error message=\"{}\">{}</error>\n",
            escape(msg.as_str()),
            escape(msg.as_str())
        ),
        Verdict::NotApplicable => format!(
            "      <skipped message=\"{}\"/>\n",
            escape(format!("not applicable: {msg}").as_str())
        ),
        Verdict::ExpectedFailure => format!(
            "      <skipped message=\"{}\"/>\n",
            escape(format!("expected failure: {msg}").as_str())
        ),
        Verdict::Warn if strict => format!(
            "      <failure message=\"{}\">{}</failure>\n",
            escape(format!("warning (strict): {msg}").as_str()),
            escape(msg.as_str())
        ),
        Verdict::Warn => format!(
            "      <system-out>{}</system-out>\n",
            escape(format!("warning: {msg}").as_str())
        ),
    };
    let proofs = if s.proofs.is_empty() || s.verdict == Verdict::Warn && !strict {
        String::new()
    } else {
        format!(
            "      <system-out>{}</system-out>\n",
            escape(s.proofs.join("\n").as_str())
        )
    };
    if body.is_empty() && proofs.is_empty() {
        x.push_str("/>\n");
    } else {
        x.push_str(">\n");
        x.push_str(&body);
        x.push_str(&proofs);
        x.push_str("    </testcase>\n");
    }
    x
}

/// Writes the report to `path`.
pub fn write(report: &RunReport, path: &Path) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(render(report).as_bytes())
}
