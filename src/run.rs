//! A run, start to finish: features and selection, the target (or the bundled reference
//! issuer), discovery, cucumber with keel's hooks, verdicts, reports.
//!
//! Everything that can stop a run before it starts (a bad target file, a missing secret, an
//! unreachable issuer, a selection that matches nothing) is a [`StartError`], reported before any
//! scenario runs; the binary maps it to exit code 2.

use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Instant;

use cucumber::{World as _, event, gherkin};
use futures::FutureExt as _;

use crate::client::IssuerClient;
use crate::context::{self, Context, Creds};
use crate::discovery::{self, DiscoveryError};
use crate::features::{self, FeatureError, Selection};
use crate::lifecycle::Lifecycle;
use crate::reference::{self, ReferenceError, ReferenceIssuer};
use crate::target::{
    self, AccessTokenFormat, AuthMethod, ChecksumScheme, PrefixedFormat, TargetError, TokenFormat,
    UserTokenMethod, UserTokens,
};
use crate::verdict::{Problem, RunReport, ScenarioRecord, Verdict};
use crate::world::KeelWorld;

/// What to run and where to report.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Target file; None runs against the bundled reference issuer.
    pub target: Option<PathBuf>,
    /// Fault mode for the bundled reference issuer.
    pub reference_fault: Option<String>,
    /// Directories (or files) of extra `.feature` files.
    pub features: Vec<PathBuf>,
    /// Tag expression.
    pub tags: Option<String>,
    /// Requirement ids.
    pub reqs: Vec<String>,
    /// JUnit XML output.
    pub junit: Option<PathBuf>,
    /// JSON report output.
    pub json: Option<PathBuf>,
    /// Expectations file (known failures).
    pub expectations: Option<PathBuf>,
    /// Keep the reference issuer's data directory.
    pub keep_data: bool,
    /// Warnings fail the run.
    pub strict: bool,
    /// The binary that serves the reference issuer (`keel serve-reference`); default: this one.
    pub reference_bin: Option<PathBuf>,
    /// Print live progress and the summary.
    pub progress: bool,
    /// Scenarios run at once (serial ones always alone).
    pub concurrency: usize,
}

/// Why a run could not start (exit code 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The target file.
    #[error("target file {0}")]
    Target(#[from] TargetError),
    /// The expectations file.
    #[error("expectations file {0}")]
    Expectations(TargetError),
    /// Feature files or selection.
    #[error("{0}")]
    Features(#[from] FeatureError),
    /// Nothing selected.
    #[error(
        "the selection matches no scenario ({0}); a run that checks nothing is not a pass (list the tags with `keel list`)"
    )]
    EmptySelection(String),
    /// Discovery or reachability.
    #[error("{0}")]
    Discovery(#[from] DiscoveryError),
    /// The reference issuer.
    #[error("{0}")]
    Reference(#[from] ReferenceError),
    /// An unknown fault name.
    #[error("unknown reference fault {0:?}; `keel faults` lists them: {1}")]
    UnknownFault(String, String),
    /// Local I/O.
    #[error("{0}")]
    Io(String),
    /// Ctrl-C.
    #[error("interrupted; any reference issuer keel started was stopped and its data removed")]
    Interrupted,
}

struct Started {
    ctx: Arc<Context>,
    concurrency: Option<usize>,
    reference: Option<Arc<ReferenceIssuer>>,
    data_dir: Option<tempfile::TempDir>,
    label: String,
}

/// Runs the suite. Ctrl-C (SIGINT) or SIGTERM at any point stops the reference issuer and
/// removes its data directory (dropping the run does both), and gives [`StartError::Interrupted`].
pub async fn run(opts: RunOptions) -> Result<RunReport, StartError> {
    let interrupted = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    let result = tokio::select! {
        r = run_inner(opts) => r,
        () = interrupted => Err(StartError::Interrupted),
    };
    context::clear();
    result
}

async fn run_inner(opts: RunOptions) -> Result<RunReport, StartError> {
    let _serial = context::RUN_LOCK.lock().await;
    let started_at = Instant::now();

    let mut all = features::builtin()?;
    for dir in &opts.features {
        all.extend(features::from_dir(dir)?);
    }
    let selection = Selection::new(opts.tags.as_deref(), &opts.reqs, &all)?;
    let total = selection.count(&all);
    if total == 0 {
        let what = match (&opts.tags, opts.reqs.is_empty()) {
            (Some(t), true) => format!("--tags {t:?}"),
            (Some(t), false) => format!("--tags {t:?} with --req {}", opts.reqs.join(",")),
            (None, false) => format!("--req {}", opts.reqs.join(",")),
            (None, true) => "no scenarios at all".to_owned(),
        };
        return Err(StartError::EmptySelection(what));
    }

    let expected = match &opts.expectations {
        Some(p) => Some(crate::expect::load(p).map_err(StartError::Expectations)?),
        None => None,
    };
    let mut started = start(&opts, total).await?;
    if let Some(e) = &expected
        && let Some(c) = Arc::get_mut(&mut started.ctx)
    {
        c.expected_reqs = e.iter().map(|x| x.req.clone()).collect();
    }
    let ctx = started.ctx.clone();
    context::install(ctx.clone());
    let previous_hook = std::panic::take_hook();
    // Step failures travel as panics inside cucumber; their messages become verdicts, so the
    // default hook's "thread panicked" noise is silenced for the run.
    std::panic::set_hook(Box::new(|_| {}));

    let concurrency = started.concurrency.unwrap_or(opts.concurrency).max(1);
    let exec = KeelWorld::cucumber::<&str>()
        .with_parser(Preparsed(all))
        .with_writer(SilentWriter::default())
        .with_cli(cucumber::cli::Opts::<_, _, _, cucumber::cli::Empty>::default())
        .max_concurrent_scenarios(concurrency)
        .which_scenario(|f, r, s| {
            if features::all_tags(f, r, s).any(|t| t == "serial") {
                cucumber::ScenarioType::Serial
            } else {
                cucumber::ScenarioType::Concurrent
            }
        })
        .before(|f, r, s, w| {
            w.serial = features::all_tags(f, r, s).any(|t| t == "serial");
            w.started = Some(Instant::now());
            let isolated = features::all_tags(f, r, s).any(|t| t == "isolated");
            async move {
                if isolated {
                    isolate(w).await;
                }
            }
            .boxed_local()
        })
        .after(|f, r, s, ev, w| {
            async move {
                let mut w = w;
                if let Some(world) = w.as_deref_mut() {
                    restore_schema(world).await;
                }
                record(f, r, s, ev, w);
            }
            .boxed_local()
        })
        .filter_run((), move |f, r, s| selection.matches(f, r, s));

    let outcome: Result<_, StartError> = Ok(exec.await);
    std::panic::set_hook(previous_hook);
    context::clear();

    if let Some(r) = &started.reference {
        let _ = r.stop(false).await;
    }
    if let Some(dir) = started.data_dir
        && opts.keep_data
    {
        let path = dir.keep();
        eprintln!(
            "keel: the reference issuer's data directory was kept: {}",
            path.display()
        );
    }
    let writer = outcome?;

    let mut scenarios = ctx
        .results
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default();
    for e in writer.parse_errors {
        scenarios.push(ScenarioRecord {
            feature: "(parse error)".into(),
            file: String::new(),
            line: 0,
            name: e.clone(),
            requirements: vec![],
            tags: vec![],
            verdict: Verdict::Error,
            message: Some(e),
            warnings: vec![],
            proofs: vec![],
            ledger: serde_json::Value::Null,
            duration_ms: 0,
        });
    }
    scenarios.sort_by(|a, b| {
        (file_rank(&a.file), &a.file, a.line).cmp(&(file_rank(&b.file), &b.file, b.line))
    });
    let mut report = RunReport {
        target: started.label,
        reference_fault: opts.reference_fault.clone(),
        scenarios,
        requirements: vec![],
        strict: opts.strict,
        expectation_problems: Vec::new(),
        duration_ms: started_at.elapsed().as_millis() as u64,
    };
    report.summarize();
    if let Some(expected) = &expected {
        let paste = crate::expect::apply(&mut report, expected, &crate::expect::today());
        if opts.progress && !paste.is_empty() {
            crate::say!("\nkeel: failures not in the expectations file; if they are known, add:\n");
            for p in &paste {
                crate::say!("{p}\n");
            }
        }
    }
    if let Some(path) = &opts.junit {
        crate::report::junit::write(&report, path).map_err(|e| {
            StartError::Io(format!("cannot write JUnit XML to {}: {e}", path.display()))
        })?;
    }
    if let Some(path) = &opts.json {
        let text =
            serde_json::to_string_pretty(&report).map_err(|e| StartError::Io(e.to_string()))?;
        std::fs::write(path, text).map_err(|e| {
            StartError::Io(format!(
                "cannot write the JSON report to {}: {e}",
                path.display()
            ))
        })?;
    }
    Ok(report)
}

/// How to start another reference issuer (for `@isolated` scenarios).
#[derive(Clone, Debug)]
pub struct ReferenceSpawn {
    /// The binary serving `serve-reference`.
    pub bin: PathBuf,
    /// Its fault mode.
    pub fault: Option<String>,
}

/// An issuer of one's own, for one scenario; dropping it stops the issuer and removes its data.
pub struct IsolatedIssuer {
    /// The issuer.
    pub issuer: Arc<ReferenceIssuer>,
    /// Its data directory.
    pub dir: tempfile::TempDir,
}

/// Starts a reference issuer with a fresh data directory and builds the context that tests it.
pub async fn reference_context(
    spawn: &ReferenceSpawn,
    fingerprint_key: [u8; 32],
) -> Result<(Context, Arc<ReferenceIssuer>, tempfile::TempDir), StartError> {
    let dir = tempfile::Builder::new()
        .prefix("keel-reference-")
        .tempdir()
        .map_err(|e| StartError::Io(format!("cannot create a data directory: {e}")))?;
    let config = reference::write_config(dir.path())?;
    let issuer =
        Arc::new(ReferenceIssuer::start(&spawn.bin, dir.path(), spawn.fault.as_deref()).await?);
    let client = IssuerClient::new(
        crate::client::DEFAULT_TIMEOUT,
        crate::client::DEFAULT_MAX_BODY,
    )
    .map_err(|e| StartError::Io(e.to_string()))?;
    let endpoints = discovery::discover(&client, issuer.base_url(), &Default::default()).await?;
    let main = &config.clients[0];
    let base = issuer.base_url().to_owned();
    let ctx = Context {
        client,
        endpoints,
        creds: Creds {
            id: main.id.clone(),
            secret: main.secret.clone(),
            method: AuthMethod::ClientSecretBasic,
            scope: None,
            params: Vec::new(),
            assertion: None,
        },
        access_format: Some(AccessTokenFormat::Jwt),
        refresh_format: Some(TokenFormat::Prefixed(PrefixedFormat {
            prefix: keel_reference::REFRESH_PREFIX.to_owned(),
            public_id_length: 16,
            secret_length: Some(32),
            checksum: ChecksumScheme::Crc32Base62,
        })),
        refresh_policy: Some(crate::target::RefreshPolicy::Rotate),
        identity: Default::default(),
        introspects_refresh_tokens: true,
        expected_reqs: Vec::new(),
        user_client: None,
        second_creds: config.clients.get(1).map(|c| Creds {
            id: c.id.clone(),
            secret: c.secret.clone(),
            method: AuthMethod::ClientSecretPost,
            scope: None,
            params: Vec::new(),
            assertion: None,
        }),
        access_lifetime: Some(std::time::Duration::from_secs(reference::ACCESS_LIFETIME)),
        clock_skew: DEFAULT_SKEW,
        idempotency: true,
        api_keys: Some((
            crate::target::ApiKeys {
                issue: format!("{base}/api-keys"),
                validate: format!("{base}/api-keys/validate"),
                roll: format!("{base}/api-keys/{{id}}/roll"),
                grace: std::time::Duration::from_secs(reference::API_KEY_GRACE),
            },
            Some(TokenFormat::Prefixed(PrefixedFormat {
                prefix: "kak_".to_owned(),
                public_id_length: 16,
                secret_length: Some(32),
                checksum: ChecksumScheme::Crc32Base62,
            })),
        )),
        user_tokens: Some(UserTokens {
            method: UserTokenMethod::AuthorizationCode,
            redirect_uri: "http://127.0.0.1/callback".into(),
            login_hint: config.users.first().cloned(),
            scope: Some("read".into()),
            username: None,
            password_env: None,
            run: None,
            client_id: None,
            secret_env: None,
            auth_method: None,
        }),
        lifecycle: Lifecycle::Reference(issuer.clone(), config.admin_token.clone()),
        fingerprint_key,
        results: Default::default(),
        progress: false,
        total: 0,
        reference_spawn: None,
    };
    Ok((ctx, issuer, dir))
}

/// Default allowed distance between `iat` and the `Date` header.
const DEFAULT_SKEW: std::time::Duration = std::time::Duration::from_secs(60);

fn file_rank(file: &str) -> usize {
    features::BUILTIN
        .iter()
        .position(|(p, _)| *p == file)
        .unwrap_or(usize::MAX)
}

async fn start(opts: &RunOptions, total: usize) -> Result<Started, StartError> {
    let fingerprint_key: [u8; 32] = rand::random();
    match &opts.target {
        Some(path) => {
            if opts.reference_fault.is_some() {
                return Err(StartError::Io("--reference-fault applies to the bundled reference issuer only; drop --target or the fault".into()));
            }
            let loaded = target::load(path)?;
            let f = &loaded.file;
            let ca = match &f.http.ca_bundle {
                Some(p) => {
                    let p = if p.is_relative() {
                        path.parent().unwrap_or(std::path::Path::new(".")).join(p)
                    } else {
                        p.clone()
                    };
                    Some(std::fs::read(&p).map_err(|e| {
                        StartError::Target(TargetError {
                            path: path.clone(),
                            line: None,
                            message: format!("cannot read the CA bundle {}: {e}", p.display()),
                            fix: Some(
                                "point [http] ca_bundle at a PEM file of CA certificates".into(),
                            ),
                        })
                    })?)
                }
                None => None,
            };
            let client =
                IssuerClient::with_ca(f.http.timeout, f.http.max_body_bytes, ca.as_deref())
                    .map_err(|e| {
                        StartError::Target(TargetError {
                            path: path.clone(),
                            line: None,
                            message: e.to_string(),
                            fix: Some(
                                "point [http] ca_bundle at a PEM file of CA certificates".into(),
                            ),
                        })
                    })?;
            let endpoints =
                discovery::discover(&client, f.issuer.url.get_ref(), &f.issuer.endpoints).await?;
            if endpoints.metadata_url.is_none() {
                // No discovery document: prove the token endpoint answers at all.
                if let Err(e) = client.get(&endpoints.token).await {
                    return Err(DiscoveryError::Unreachable(e).into());
                }
            }
            let ready_url = endpoints
                .metadata_url
                .clone()
                .or_else(|| endpoints.jwks.clone())
                .unwrap_or_else(|| endpoints.token.clone());
            let lifecycle = Lifecycle::Hooks {
                hooks: Box::new(f.hooks.clone()),
                proof: f.proof.clone(),
                ready_url,
            };
            let ctx = Context {
                client,
                endpoints,
                creds: Creds::from_section(&f.client, loaded.secret.clone()),
                access_format: f.capabilities.access_token,
                refresh_format: f.capabilities.refresh_token.clone(),
                refresh_policy: f.capabilities.refresh_policy,
                identity: f.identity.clone(),
                introspects_refresh_tokens: f.capabilities.refresh_token_introspection,
                expected_reqs: Vec::new(),
                user_client: match (f.user_tokens.as_ref(), &loaded.user_secret) {
                    (Some(u), Some(secret)) => Some(Creds {
                        id: u.client_id.clone().unwrap_or_else(|| f.client.id.clone()),
                        secret: secret.clone(),
                        method: u.auth_method.unwrap_or(f.client.auth_method),
                        scope: None,
                        params: Vec::new(),
                        assertion: None,
                    }),
                    _ => None,
                },
                second_creds: match (&f.second_client, &loaded.second_secret) {
                    (Some(c), Some(secret)) => Some(Creds::from_section(c, secret.clone())),
                    _ => None,
                },
                access_lifetime: f.capabilities.access_token_lifetime,
                clock_skew: f.capabilities.clock_skew.unwrap_or(DEFAULT_SKEW),
                idempotency: f.capabilities.idempotency,
                api_keys: f
                    .api_keys
                    .clone()
                    .map(|a| (a, f.capabilities.api_key.clone())),
                user_tokens: f.user_tokens.clone(),
                lifecycle,
                fingerprint_key,
                results: Default::default(),
                progress: opts.progress,
                total,
                reference_spawn: None,
            };
            if opts.progress {
                crate::say!(
                    "keel: {total} scenario{} against {} ({})",
                    if total == 1 { "" } else { "s" },
                    f.issuer.url.get_ref(),
                    path.display()
                );
            }
            Ok(Started {
                label: f.issuer.url.get_ref().clone(),
                concurrency: f.http.concurrency,
                ctx: Arc::new(ctx),
                reference: None,
                data_dir: None,
            })
        }
        None => {
            if let Some(name) = &opts.reference_fault
                && keel_reference::Fault::from_str(name).is_err()
            {
                let names: Vec<&str> = keel_reference::Fault::ALL
                    .iter()
                    .map(|f| f.name())
                    .collect();
                return Err(StartError::UnknownFault(name.clone(), names.join(", ")));
            }
            let bin = match &opts.reference_bin {
                Some(b) => b.clone(),
                None => std::env::current_exe()
                    .map_err(|e| StartError::Io(format!("cannot find keel's own binary: {e}")))?,
            };
            let spawn = ReferenceSpawn {
                bin,
                fault: opts.reference_fault.clone(),
            };
            let (mut ctx, issuer, dir) = reference_context(&spawn, fingerprint_key).await?;
            ctx.progress = opts.progress;
            ctx.total = total;
            ctx.reference_spawn = Some(spawn);
            let label = match &opts.reference_fault {
                Some(f) => format!("bundled reference issuer (fault: {f})"),
                None => "bundled reference issuer".to_owned(),
            };
            if opts.progress {
                crate::say!(
                    "keel: {total} scenario{} against the {label} at {} (pid {}, data {})",
                    if total == 1 { "" } else { "s" },
                    issuer.base_url(),
                    issuer.pid().await.map_or("?".into(), |p| p.to_string()),
                    issuer.data_dir().display()
                );
            }
            Ok(Started {
                label,
                concurrency: None,
                ctx: Arc::new(ctx),
                reference: Some(issuer),
                data_dir: Some(dir),
            })
        }
    }
}

/// Gives an `@isolated` scenario a reference issuer of its own (against a target, the scenario
/// shares the target and relies on `@serial`). A failure to start one is recorded in the world
/// and reported as the scenario's error.
async fn isolate(w: &mut KeelWorld) {
    let Some(global) = context::current() else {
        return;
    };
    let Some(spawn) = global.reference_spawn.clone() else {
        return;
    };
    match reference_context(&spawn, global.fingerprint_key).await {
        Ok((ctx, issuer, dir)) => {
            w.set_ctx(Arc::new(ctx));
            w.isolated = Some(IsolatedIssuer { issuer, dir });
        }
        Err(e) => {
            w.setup_error = Some(format!("could not start an isolated reference issuer: {e}"))
        }
    }
}

/// Migrates a target back up after a scenario that stopped while rolled back. Cleanup, not a
/// check: its outcome is a proof line (or a warning when it fails).
async fn restore_schema(w: &mut KeelWorld) {
    let Ok(ctx) = w.ctx() else { return };
    while w.schema_balance < 0 {
        match ctx
            .lifecycle
            .schema_event(&ctx.client, crate::lifecycle::SchemaEvent::Migrate)
            .await
        {
            Ok(p) => {
                w.proofs.push(format!("cleanup migrate: {}", p.proof));
                w.schema_balance += 1;
            }
            Err(e) => {
                w.warnings.push(format!(
                    "could not migrate back up after the scenario: {}",
                    e.message()
                ));
                break;
            }
        }
    }
}

/// Turns cucumber's outcome and the world's observations into keel's verdict.
fn record(
    feature: &gherkin::Feature,
    rule: Option<&gherkin::Rule>,
    sc: &gherkin::Scenario,
    ev: &event::ScenarioFinished,
    world: Option<&mut KeelWorld>,
) {
    let Some(ctx) = context::current() else {
        return;
    };
    let requirements = features::requirements(feature, rule, sc);
    let tags: Vec<String> = features::all_tags(feature, rule, sc).cloned().collect();
    let problem = match ev {
        event::ScenarioFinished::StepPassed => None,
        event::ScenarioFinished::StepSkipped => Some(Problem::Error(
            "a step matches no step definition of keel's library (check its wording against the built-in features)".into(),
        )),
        event::ScenarioFinished::BeforeHookFailed(info) => Some(Problem::from_payload(info.as_ref())),
        event::ScenarioFinished::StepFailed(_, _, err) => Some(match err {
            event::StepError::Panic(info) => Problem::from_payload(info.as_ref()),
            other => Problem::Error(other.to_string()),
        }),
    };
    let only_should = !requirements.is_empty()
        && requirements.iter().all(|r| {
            crate::spec::find(r).is_some_and(|q| q.strength == crate::spec::Strength::Should)
        });
    let problem = match (&world, problem) {
        (Some(w), _) if w.setup_error.is_some() => {
            Some(Problem::Error(w.setup_error.clone().unwrap_or_default()))
        }
        (_, p) => p,
    };
    let redactor = world
        .as_ref()
        .and_then(|w| w.ctx().ok())
        .unwrap_or_else(|| ctx.clone());
    let (warnings, proofs, ledger, duration_ms) = match &world {
        Some(w) => (
            w.warnings.clone(),
            w.proofs.clone(),
            serde_json::Value::Array(w.ledger.clone()),
            w.started.map_or(0, |t| t.elapsed().as_millis() as u64),
        ),
        None => (vec![], vec![], serde_json::Value::Null, 0),
    };
    // A scenario without a Then step judges nothing: it must never read as a pass.
    let judges = sc.steps.iter().any(|st| st.ty == gherkin::StepType::Then);
    let problem = match problem {
        None if !judges => Some(Problem::Error(
            "the scenario has no Then step, so it checks nothing; add a Then step that judges the issuer".into(),
        )),
        other => other,
    };
    let (verdict, message) = match problem {
        None if warnings.is_empty() => (Verdict::Pass, None),
        None => (Verdict::Warn, Some(warnings.join("; "))),
        Some(Problem::Fail(m)) if only_should => (Verdict::Warn, Some(m)),
        Some(Problem::Fail(m)) => (Verdict::Fail, Some(m)),
        Some(Problem::Error(m)) => (Verdict::Error, Some(m)),
        Some(Problem::NotApplicable(m)) => (Verdict::NotApplicable, Some(m)),
    };
    // Issuers may echo credentials or tokens in error descriptions: redact every message.
    let held: Vec<String> = world
        .as_ref()
        .map(|w| {
            let mut v: Vec<String> = w.tokens.values().map(|h| h.value.clone()).collect();
            v.extend(w.chain.iter().map(|l| l.refresh.value.clone()));
            v.extend(
                w.replies
                    .iter()
                    .filter_map(|r| r.2.as_ref().map(|h| h.value.clone())),
            );
            v
        })
        .unwrap_or_default();
    let refs: Vec<&str> = held.iter().map(String::as_str).collect();
    let message = message.map(|m| redactor.redact(&m, &refs));
    let warnings: Vec<String> = warnings.iter().map(|m| redactor.redact(m, &refs)).collect();
    let rec = ScenarioRecord {
        feature: feature.name.clone(),
        file: feature
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        line: sc.position.line,
        name: sc.name.clone(),
        requirements,
        tags,
        verdict,
        message,
        warnings,
        proofs,
        ledger,
        duration_ms,
    };
    if ctx.progress {
        crate::report::terminal::progress(
            &rec,
            ctx.results.lock().map(|r| r.len() + 1).unwrap_or(0),
            ctx.total,
            rec.requirements
                .iter()
                .any(|r| ctx.expected_reqs.contains(r)),
        );
    }
    if let Ok(mut r) = ctx.results.lock() {
        r.push(rec);
    }
}

/// A parser that hands cucumber features parsed (and checked) before the run.
struct Preparsed(Vec<gherkin::Feature>);

impl cucumber::Parser<()> for Preparsed {
    type Cli = cucumber::cli::Empty;
    type Output =
        futures::stream::Iter<std::vec::IntoIter<cucumber::parser::Result<gherkin::Feature>>>;

    fn parse(self, _: (), _: Self::Cli) -> Self::Output {
        futures::stream::iter(self.0.into_iter().map(Ok).collect::<Vec<_>>())
    }
}

/// cucumber's writer seat: keel prints from the after-hook, so this only keeps parse errors.
#[derive(Default)]
struct SilentWriter {
    parse_errors: Vec<String>,
}

impl cucumber::Writer<KeelWorld> for SilentWriter {
    type Cli = cucumber::cli::Empty;

    async fn handle_event(
        &mut self,
        ev: cucumber::parser::Result<event::Event<event::Cucumber<KeelWorld>>>,
        _: &Self::Cli,
    ) {
        if let Err(e) = ev {
            self.parse_errors.push(e.to_string());
        }
    }
}

impl cucumber::writer::Normalized for SilentWriter {}
