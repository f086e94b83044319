//! Table-driven fault detection: every fault mode of the reference issuer fails exactly the
//! MUST requirements it names (and warns on exactly the SHOULDs it names), every other
//! requirement passes, and every MUST requirement is broken by at least one fault.
//!
//! Each fault runs the real `keel` binary (`keel run --reference-fault NAME`) in a subprocess;
//! the matrix is printed (`cargo test --test faults -- --nocapture` is not needed: it goes to
//! stderr, shown on failure, and to `target/fault-matrix.txt`).

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

fn run_fault(name: &str) -> (i32, BTreeMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["run", "--quiet", "--reference-fault", name, "--report-json"])
        .arg(&report)
        .output()
        .expect("keel runs");
    let code = out.status.code().unwrap_or(-1);
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| {
        panic!(
            "{name}: no report ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let v: Value = serde_json::from_str(&text).unwrap();
    let verdicts = v["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (code, verdicts)
}

#[test]
fn every_fault_fails_exactly_the_requirements_it_claims() {
    let ids: Vec<&str> = keel::spec::REQUIREMENTS.iter().map(|r| r.id).collect();
    let mut matrix = String::new();
    matrix.push_str(&format!("{:<28}", "fault \\ requirement"));
    for id in &ids {
        matrix.push_str(&format!(" {id:<5}"));
    }
    matrix.push('\n');
    let mut problems = Vec::new();
    let mut broken_somewhere = std::collections::BTreeSet::new();
    // Three runs at a time: each is mostly waiting on its issuer, and the machine has 2 cores.
    let results: Vec<(i32, BTreeMap<String, String>)> = {
        let faults: Vec<&'static str> = keel_reference::Fault::ALL
            .iter()
            .map(|f| f.name())
            .collect();
        let mut out: Vec<Option<(i32, BTreeMap<String, String>)>> = vec![None; faults.len()];
        for (chunk_index, chunk) in faults.chunks(3).enumerate() {
            let handles: Vec<_> = chunk
                .iter()
                .map(|name| {
                    let name = (*name).to_owned();
                    std::thread::spawn(move || run_fault(&name))
                })
                .collect();
            for (i, h) in handles.into_iter().enumerate() {
                out[chunk_index * 3 + i] = Some(h.join().expect("fault run"));
            }
        }
        out.into_iter()
            .map(|r| r.expect("every fault ran"))
            .collect()
    };
    for (fault, (code, verdicts)) in keel_reference::Fault::ALL.iter().zip(results) {
        let claims = fault.breaks();
        let warns = fault.warns();
        assert!(!claims.is_empty(), "{} claims nothing", fault.name());
        matrix.push_str(&format!("{:<28}", fault.name()));
        for id in &ids {
            let got = verdicts.get(*id).map(String::as_str).unwrap_or("(absent)");
            let expected = if claims.contains(id) {
                "fail"
            } else if warns.contains(id) {
                "warn"
            } else {
                "pass"
            };
            if got == "fail" {
                broken_somewhere.insert(*id);
            }
            if got != expected {
                problems.push(format!(
                    "{}: {id} expected {expected}, got {got}",
                    fault.name()
                ));
            }
            let cell = match got {
                "pass" => ".",
                "fail" => "FAIL",
                "warn" => "warn",
                other => other,
            };
            matrix.push_str(&format!(" {cell:<5}"));
        }
        matrix.push('\n');
        if code != 1 {
            problems.push(format!("{}: exit code {code}, expected 1", fault.name()));
        }
    }
    eprintln!("{matrix}");
    let _ = std::fs::write(
        concat!(env!("CARGO_TARGET_TMPDIR"), "/fault-matrix.txt"),
        &matrix,
    );
    for r in keel::spec::REQUIREMENTS {
        if r.strength == keel::spec::Strength::Must && !broken_somewhere.contains(r.id) {
            problems.push(format!(
                "MUST requirement {} is broken by no fault mode",
                r.id
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "fault matrix mismatches:\n{}\n{matrix}",
        problems.join("\n")
    );
}

#[test]
fn keel_faults_lists_every_fault_as_name_tab_ids() {
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("faults")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.ends_with('\n'));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), keel_reference::Fault::ALL.len());
    let id = regex::Regex::new(r"^[A-Z]{3}-[0-9]+$").unwrap();
    for (line, fault) in lines.iter().zip(keel_reference::Fault::ALL) {
        let (name, ids) = line.split_once('\t').expect("name<TAB>ids");
        assert_eq!(name, fault.name());
        assert!(!ids.is_empty());
        for i in ids.split(',') {
            assert!(id.is_match(i), "{line}");
            let req = keel::spec::find(i).unwrap_or_else(|| panic!("{i} is not in the catalogue"));
            assert_eq!(
                req.strength,
                keel::spec::Strength::Must,
                "{line}: {i} is not a MUST"
            );
        }
    }
}
