//! Terminal output: one line per finished scenario, then a summary by requirement.

use crate::verdict::{RunReport, ScenarioRecord, Verdict};

/// `println!` that ignores write errors: `keel run | head` must not panic on a closed pipe.
#[macro_export]
macro_rules! say {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout());
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Prints the progress line of one finished scenario; `expected` marks a failure the
/// expectations file lists (shown as XFAIL, as it will be counted).
pub fn progress(rec: &ScenarioRecord, done: usize, total: usize, expected: bool) {
    let width = total.to_string().len();
    let file = rec.file.rsplit('/').next().unwrap_or(&rec.file);
    crate::say!(
        "[{done:>width$}/{total}] {:<5} {} {} ({file}:{}) {:.2}s",
        if expected && matches!(rec.verdict, Verdict::Fail | Verdict::Warn) {
            Verdict::ExpectedFailure.label()
        } else {
            rec.verdict.label()
        },
        rec.req_label(),
        rec.name,
        rec.line,
        rec.duration_ms as f64 / 1000.0
    );
    if let Some(m) = &rec.message
        && rec.verdict != Verdict::Pass
    {
        crate::say!("{:width$}         {m}", "");
    }
    for p in &rec.proofs {
        crate::say!("{:width$}         proof: {p}", "");
    }
}

/// Prints the summary by requirement and the totals.
pub fn summary(report: &RunReport) {
    crate::say!();
    crate::say!("Requirements ({}):", report.target);
    for r in &report.requirements {
        crate::say!(
            "  {:<5} {:<6} {:<6} {}",
            r.verdict.label(),
            r.id,
            r.strength,
            r.title
        );
        if let Some(m) = &r.message {
            crate::say!("                      {m}");
        }
    }
    crate::say!();
    crate::say!(
        "{} scenario{}: {} passed, {} failed, {} warned, {} not applicable, {} expected failures, {} errors ({:.1}s)",
        report.scenarios.len(),
        if report.scenarios.len() == 1 { "" } else { "s" },
        report.count(Verdict::Pass),
        report.count(Verdict::Fail),
        report.count(Verdict::Warn),
        report.count(Verdict::NotApplicable),
        report.count(Verdict::ExpectedFailure),
        report.count(Verdict::Error),
        report.duration_ms as f64 / 1000.0
    );
    if !report.expectation_problems.is_empty() {
        crate::say!(
            "{} expectation problem(s), each failing the run:",
            report.expectation_problems.len()
        );
    }
    for p in &report.expectation_problems {
        crate::say!("keel: expectations: {p}");
    }
    if report.count(Verdict::ExpectedFailure) > 0 {
        crate::say!(
            "{} expected failures (listed in the expectations file)",
            report.count(Verdict::ExpectedFailure)
        );
    }
    let verdict = match report.exit_code() {
        0 if report.count(Verdict::ExpectedFailure) > 0 => {
            "conformant except for the expected failures listed in the expectations file"
        }
        0 if report.count(Verdict::Warn) > 0 => "conformant, with warnings",
        0 => "conformant",
        _ => "NOT conformant",
    };
    crate::say!("keel: {verdict}");
}
