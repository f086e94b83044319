//! The command line: exit codes, error messages that name the cause and the fix, JUnit output,
//! user feature directories, and that nothing keel writes carries a secret or a token.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn keel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .output()
        .expect("keel runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_tag_selection_that_matches_nothing_is_exit_2_not_green() {
    let o = keel(&["run", "--tags", "@no-such-tag"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("matches no scenario"), "{}", stderr(&o));
}

#[test]
fn an_unknown_requirement_is_exit_2() {
    let o = keel(&["run", "--req", "XYZ-9"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("XYZ-9"), "{}", stderr(&o));
}

#[test]
fn an_unknown_reference_fault_is_exit_2_and_lists_the_names() {
    let o = keel(&["run", "--reference-fault", "no-such-fault"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("ephemeral-keys"), "{}", stderr(&o));
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const TARGET: &str = "[issuer]\nurl = \"http://127.0.0.1:9\"\n\n[client]\nid = \"keel-ci\"\nsecret_env = \"KEEL_CLI_TEST_SECRET\"\nauth_method = \"client_secret_basic\"\n";

#[test]
fn target_file_problems_name_the_file_the_line_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "unknown.toml",
            TARGET.replace("auth_method", "auth_metod"),
            ":7:",
            "unknown field `auth_metod`",
        ),
        (
            "missing.toml",
            TARGET.replace("id = \"keel-ci\"\n", ""),
            "missing.toml",
            "missing field `id`",
        ),
        (
            "syntax.toml",
            TARGET.replace("[client]", "[client"),
            ":4:",
            "unclosed table",
        ),
        (
            "secret.toml",
            TARGET.to_owned(),
            ":6:",
            "KEEL_CLI_TEST_SECRET",
        ),
    ];
    for (name, text, place, what) in cases {
        let path = write(dir.path(), name, &text);
        let o = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["run", "--target", &path])
            .env_remove("KEEL_CLI_TEST_SECRET")
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{name}: one line expected: {err}"
        );
        assert!(err.contains(place) && err.contains(what), "{name}: {err}");
        assert!(err.contains("fix:"), "{name}: {err}");
    }
}

#[test]
fn an_unreachable_issuer_is_exit_2_within_seconds_naming_the_url() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens there.
    let path = write(dir.path(), "t.toml", TARGET);
    let start = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["run", "--target", &path])
        .env("KEEL_CLI_TEST_SECRET", "x")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unreachable")
            && err.contains("http://127.0.0.1:9/.well-known/oauth-authorization-server"),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn junit_names_cases_with_requirement_ids_and_marks_failures() {
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok.xml");
    let o = keel(&[
        "run",
        "--req",
        "RST-1,IDN-3",
        "--junit",
        ok.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let xml = std::fs::read_to_string(&ok).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
    assert!(
        xml.contains("[RST-1]\"") && xml.contains("[IDN-3]\""),
        "{xml}"
    );
    assert!(
        !xml.contains("<failure") && !xml.contains("<error"),
        "{xml}"
    );

    let bad = dir.path().join("bad.xml");
    let o = keel(&[
        "run",
        "--reference-fault",
        "memory-revocations",
        "--req",
        "RST-4",
        "--junit",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let xml = std::fs::read_to_string(&bad).unwrap();
    assert_eq!(xml.matches("<failure").count(), 2, "{xml}");

    // A SHOULD broken is a warning: a passing case with the warning in system-out, exit 0;
    // under --strict a failure and exit 1.
    let warn = dir.path().join("warn.xml");
    let o = keel(&[
        "run",
        "--reference-fault",
        "random-kid",
        "--req",
        "IDN-3",
        "--junit",
        warn.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let xml = std::fs::read_to_string(&warn).unwrap();
    assert!(
        xml.contains("<system-out>warning:") && !xml.contains("<failure"),
        "{xml}"
    );
    let o = keel(&[
        "run",
        "--strict",
        "--reference-fault",
        "random-kid",
        "--req",
        "IDN-3",
        "--junit",
        warn.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        std::fs::read_to_string(&warn)
            .unwrap()
            .contains("<failure message=\"warning (strict)")
    );
}

#[test]
fn user_features_run_with_keels_steps_and_unknown_steps_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let feats = dir.path().join("features");
    std::fs::create_dir(&feats).unwrap();
    write(
        &feats,
        "mine.feature",
        "@req:MINE-1\nFeature: Mine\n\n  @serial\n  Scenario: My token survives two restarts\n    Given an access token from the client credentials grant\n    When the issuer restarts\n    And the issuer restarts\n    Then the access token is active\n\n  @req:MINE-2\n  Scenario: A misspelt step\n    Given an acess token from the client credentials grant\n\n  @req:MINE-3\n  Scenario: No judgement\n    Given an access token from the client credentials grant\n",
    );
    let report = dir.path().join("r.json");
    let o = keel(&[
        "run",
        "--features",
        feats.to_str().unwrap(),
        "--tags",
        "@req:MINE-1",
        "--report-json",
        report.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let sc = v["scenarios"].as_array().unwrap();
    assert_eq!(sc.len(), 3);
    assert_eq!(sc[0]["verdict"], "pass", "{:#}", sc[0]);
    assert_eq!(sc[0]["proofs"].as_array().unwrap().len(), 2);
    assert_eq!(sc[1]["verdict"], "error", "{:#}", sc[1]);
    assert!(
        sc[1]["message"]
            .as_str()
            .unwrap()
            .contains("matches no step"),
        "{:#}",
        sc[1]
    );

    write(
        &feats,
        "broken.feature",
        "Feature: Broken\n  Scenario without colon\n    Given x\n",
    );
    let o = keel(&["run", "--features", feats.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("broken.feature"), "{}", stderr(&o));
}

#[test]
fn nothing_keel_writes_carries_a_secret_or_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("j.xml");
    let json = dir.path().join("r.json");
    let o = keel(&[
        "run",
        "--keep-data",
        "--junit",
        junit.to_str().unwrap(),
        "--report-json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let err = stderr(&o);
    let kept = err
        .lines()
        .find_map(|l| l.split("was kept: ").nth(1))
        .unwrap_or_else(|| panic!("--keep-data printed no directory: {err}"))
        .trim()
        .to_owned();
    let config = std::fs::read_to_string(Path::new(&kept).join("config.toml")).unwrap();
    let secrets: Vec<String> = config
        .lines()
        .filter_map(|l| l.strip_prefix("secret = \""))
        .map(|s| s.trim_end_matches('"').to_owned())
        .collect();
    assert_eq!(secrets.len(), 2);
    let mut outputs = vec![
        stdout(&o),
        err,
        std::fs::read_to_string(&junit).unwrap(),
        std::fs::read_to_string(&json).unwrap(),
    ];
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots")).unwrap() {
        outputs.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let token = regex::Regex::new(r"krt_[0-9A-Za-z]{20,}|eyJ[A-Za-z0-9_-]{10,}\.eyJ").unwrap();
    for out in &outputs {
        for s in &secrets {
            assert!(!out.contains(s.as_str()), "a client secret was written");
        }
        assert!(
            !token.is_match(out),
            "a token was written: {:?}",
            token
                .find(out)
                .map(|m| m.as_str().chars().take(12).collect::<String>())
        );
    }
    std::fs::remove_dir_all(&kept).unwrap();
}

#[test]
fn list_and_help_teach() {
    let o = keel(&["list"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("@req:RST-1"));
    let o = keel(&["run", "--help"]);
    assert!(stdout(&o).contains("secret_env") && stdout(&o).contains("Exit codes"));
}

#[test]
fn an_interrupt_at_any_moment_stops_the_issuer_and_removes_its_data() {
    for delay_ms in [30u64, 300] {
        let tmp = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["run", "--quiet"])
            .env("TMPDIR", tmp.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        let status = child.wait().unwrap();
        // A run may finish before the signal lands; otherwise it must exit 130.
        assert!(
            matches!(status.code(), Some(130) | Some(0)),
            "after {delay_ms} ms: {status:?}"
        );
        // The child issuer may take a moment to exit after keel does; the directory must go.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "after {delay_ms} ms: data left behind: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn init_drafts_a_target_file_that_check_then_validates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut issuer = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["serve-reference", "--data-dir"])
        .arg(&data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(issuer.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line.trim().to_owned();
    let file = dir.path().join("t.toml");
    let o = keel(&["init", "--issuer", &url, "--out", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("url = \"{url}\"")) && text.contains("does not trust"),
        "{text}"
    );
    // keel init never overwrites.
    assert_eq!(
        keel(&["init", "--issuer", &url, "--out", file.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
    // The draft names its placeholder and the missing secret, each with a line and a fix.
    let o = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["check", file.to_str().unwrap()])
        .env_remove("KEEL_CLIENT_SECRET")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("TODO placeholder") && err.contains("KEEL_CLIENT_SECRET"),
        "{err}"
    );
    assert!(
        err.lines()
            .all(|l| l.contains(".toml:") && l.contains("(fix: ")),
        "{err}"
    );
    std::fs::write(&file, text.replace("TODO-client-id", "keel-ci")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["check", file.to_str().unwrap()])
        .env("KEEL_CLIENT_SECRET", "x")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let _ = issuer.kill();
    let _ = issuer.wait();
}
