//! The whole suite against the bundled reference issuer: every scenario passes, the restarts
//! are real and proven, and each scenario's normalized identity ledger matches its snapshot in
//! `snapshots/`.

use keel::{RunOptions, Verdict};

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(90).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_against_the_reference_issuer_and_matches_its_snapshots() {
    let report = keel::run(RunOptions {
        reference_bin: Some(env!("CARGO_BIN_EXE_keel").into()),
        concurrency: 8,
        ..Default::default()
    })
    .await
    .expect("the run starts");

    let not_passed: Vec<String> = report
        .scenarios
        .iter()
        .filter(|s| s.verdict != Verdict::Pass)
        .map(|s| {
            format!(
                "{} {}: {} {}",
                s.req_label(),
                s.name,
                s.verdict,
                s.message.clone().unwrap_or_default()
            )
        })
        .collect();
    assert!(
        not_passed.is_empty(),
        "scenarios that did not pass:\n{}",
        not_passed.join("\n")
    );
    assert!(
        report.scenarios.len() >= 25,
        "only {} scenarios",
        report.scenarios.len()
    );
    assert_eq!(report.exit_code(), 0);

    // Every requirement of the catalogue was checked and passed.
    for r in keel::spec::REQUIREMENTS {
        let summary = report
            .requirements
            .iter()
            .find(|s| s.id == r.id)
            .unwrap_or_else(|| panic!("{} not checked", r.id));
        assert_eq!(summary.verdict, Verdict::Pass, "{}", r.id);
    }

    // Restarts were real: each one proven by a changed boot id, at least one of them a SIGKILL.
    let proofs: Vec<&String> = report.scenarios.iter().flat_map(|s| &s.proofs).collect();
    let restarts = proofs
        .iter()
        .filter(|p| p.contains("boot id") && p.contains("changed"))
        .count();
    assert!(restarts >= 3, "only {restarts} proven restarts: {proofs:?}");
    assert!(
        proofs
            .iter()
            .any(|p| p.starts_with("kill:") && p.contains("SIGKILL")),
        "no SIGKILL restart: {proofs:?}"
    );

    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        for s in &report.scenarios {
            let file = s
                .file
                .rsplit('/')
                .next()
                .unwrap_or("")
                .trim_end_matches(".feature");
            let name = format!("{file}__{}", slug(&s.name));
            let ledger = keel::normalize::normalize(&s.ledger);
            settings_description(&s.name, || insta::assert_json_snapshot!(name, ledger));
        }
    });
}

fn settings_description(name: &str, f: impl FnOnce()) {
    let mut s = insta::Settings::clone_current();
    s.set_description(name);
    s.bind(f);
}
