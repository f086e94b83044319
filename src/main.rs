//! The `keel` command line.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr as _;

use clap::{Parser, Subcommand};

/// keel: a conformance suite for API-token issuers.
///
/// keel puts an OAuth 2.0 issuer through the events that break token identities (restarts,
/// hard kills, refresh and signing-key rotation, API-key secret rolls, schema migrations and
/// rollbacks) and proves that tokens keep validating and that their identity references (iss,
/// sub, client_id, jti, kid, the public id of an opaque token) do not change. With no target it
/// tests its own bundled reference issuer.
#[derive(Parser)]
#[command(name = "keel", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the conformance suite.
    ///
    /// Without --target, keel starts its bundled reference issuer as a child process with a
    /// fresh data directory, runs every scenario against it, and stops it.
    ///
    /// Exit codes: 0 nothing failed or errored (warnings and not-applicable allowed; with
    /// --strict a warning fails); 1 a scenario failed or errored; 2 the run could not start
    /// (bad target file, missing secret, unreachable issuer, a selection matching nothing).
    #[command(after_help = TARGET_HELP)]
    Run(RunArgs),
    /// Serve the bundled reference issuer on its own (what `keel run` starts).
    ServeReference {
        /// Address to listen on; port 0 picks a free port once, recorded in the data directory.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Data directory (SQLite database, signing key, configuration); created if absent.
        #[arg(long)]
        data_dir: PathBuf,
        /// Break one rule on purpose (see `keel faults`).
        #[arg(long)]
        fault: Option<String>,
    },
    /// Migrate the reference issuer's database up (default: to the latest schema version).
    ///
    /// Refused while an issuer serves the directory; serving never migrates an existing
    /// database. Prints `schema version FROM -> TO`.
    MigrateReference(SchemaArgs),
    /// Roll the reference issuer's database back (default: one version down, never below 2).
    RollbackReference(SchemaArgs),
    /// Write a commented target file from an issuer's metadata (RFC 8414 / OpenID discovery).
    ///
    /// Everything keel could infer is filled in; what metadata cannot tell (the client, the
    /// refresh policy, hooks) is a TODO placeholder.
    Init {
        /// The issuer identifier.
        #[arg(long)]
        issuer: String,
        /// Where to write the file (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Validate a target file: every problem with its line and the fix; exit 0 when none.
    Check {
        /// The target file.
        file: PathBuf,
    },
    /// List the reference issuer's fault modes: name, a tab, the requirements each breaks.
    Faults,
    /// List the scenarios (built-in and --features) with their requirement ids and tags.
    List {
        /// Extra feature directories.
        #[arg(long = "features", value_name = "DIR")]
        features: Vec<PathBuf>,
    },
}

#[derive(clap::Args)]
struct SchemaArgs {
    /// The reference issuer's data directory.
    #[arg(long)]
    data_dir: PathBuf,
    /// Target schema version.
    #[arg(long)]
    to: Option<i64>,
    /// Fault mode (`migration-renumbers-ids` and `rollback-loses-tokens` act here).
    #[arg(long)]
    fault: Option<String>,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Target file (TOML) describing the issuer under test; see below.
    #[arg(long, value_name = "FILE")]
    target: Option<PathBuf>,
    /// Run against the bundled reference issuer in this fault mode (see `keel faults`).
    #[arg(long, value_name = "NAME", conflicts_with = "target")]
    reference_fault: Option<String>,
    /// Add a directory of your own .feature files, run with keel's steps (repeatable).
    #[arg(long = "features", value_name = "DIR")]
    features: Vec<PathBuf>,
    /// Select scenarios by tag expression, e.g. '@area:restart and not @level:2'.
    #[arg(long, value_name = "EXPR")]
    tags: Option<String>,
    /// Select scenarios by requirement id, e.g. --req RST-1 (repeatable, or comma-separated).
    #[arg(long = "req", value_name = "ID", value_delimiter = ',')]
    reqs: Vec<String>,
    /// Write JUnit XML here (written whatever the outcome).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write the full report as JSON here (verdicts, proofs, fingerprinted ledger).
    #[arg(long, value_name = "FILE")]
    report_json: Option<PathBuf>,
    /// Known failures of the target (TOML: [[expected]] req, reason, expires): they do not fail
    /// the run, but one that passes or expires does.
    #[arg(long, value_name = "FILE")]
    expectations: Option<PathBuf>,
    /// Keep the reference issuer's data directory and print where it is.
    #[arg(long)]
    keep_data: bool,
    /// Treat warnings (failed SHOULDs) as failures.
    #[arg(long)]
    strict: bool,
    /// How many non-serial scenarios run at once.
    #[arg(long, default_value_t = 8, value_name = "N")]
    concurrency: usize,
    /// Print only the summary, not a line per scenario.
    #[arg(long)]
    quiet: bool,
}

const TARGET_HELP: &str = r#"Target file (every key not shown is optional; unknown keys are errors; `keel init` writes one):

  [issuer]
  url = "https://auth.example.com"       # issuer identifier; RFC 8414 / OIDC discovery
  # [issuer.endpoints]                   # override discovery: token, introspection,
  # token = "https://auth.example.com/oauth/token"   revocation, jwks, authorization

  [client]
  id = "keel-ci"
  secret_env = "KEEL_CLIENT_SECRET"      # the secret itself never goes in this file
  auth_method = "client_secret_basic"    # or "client_secret_post", or "private_key_jwt"
                                         #   (then secret_env holds the PEM private key)
  # scope = "read"
  # token_params = { resource = "https://api.example.com", audience = "api" }
  # [second_client]                      # same keys; for requirements comparing two principals

  [capabilities]                         # what you declare decides what applies
  access_token = "jwt"                   # or "opaque"
  refresh_policy = "rotate"              # or "reuse" or "none"
  access_token_lifetime = "3600s"        # exp - iat; clock_skew = "60s"; idempotency = true
  [capabilities.refresh_token]
  format = "prefixed"                    # or "opaque" (format checks not applicable)
  prefix = "krt_"
  public_id_length = 16
  checksum = "crc32-base62"

  [user_tokens]                          # how keel gets user (and refresh) tokens
  method = "authorization_code"          # auto-approved: redirect_uri, login_hint
  redirect_uri = "http://127.0.0.1/callback"
  login_hint = "alice"
  # method = "password"  username = "alice"  password_env = "KEEL_USER_PASSWORD"
  # method = "command"   run = "./get-token.sh"   (prints a token response as JSON)

  [hooks.restart]                        # each hook: run = "<shell>" or an HTTP call,
  run = "systemctl restart my-issuer"    #   http = { url = "...", bearer_env = "VAR" }
  ready_timeout = "30s"                  # and timeout = "60s" for the hook itself
  # [hooks.kill]                         # SIGKILL + start (durability, RST-6)
  # [hooks.migrate] / [hooks.rollback]   # schema up / down, issuer restarted on it
  # [hooks.stage_signing_key] + [hooks.activate_signing_key], or [hooks.rotate_signing_key]

  [proof]
  boot_id_url = "https://auth.example.com/health"   # else: downtime observed during the hook
  boot_id_pointer = "/boot_id"
  # schema_version_url = "..."  schema_version_pointer = "/schema_version"  (migrate/rollback)

  # [identity]                           # where references live: "jwt", "introspection" or
  # sub = "introspection"                #   "none" (declared absent: a warning)
  # [api_keys]                           # an API-key resource (keel's reference protocol:
  # issue = "https://.../api-keys"       #   form POSTs, client-authenticated)
  # validate = "https://.../api-keys/validate"
  # roll = "https://.../api-keys/{id}/roll"
  # grace = "60s"                        # the previous secret's grace period after a roll
  # [capabilities.api_key]  format = "prefixed"  prefix = "kak_"  public_id_length = 16  checksum = "crc32-base62"

  [http]
  timeout = "10s"                        # per request, body included
  # max_body_bytes = 1048576  ca_bundle = "ca.pem"  concurrency = 8

Expectations file (--expectations), known failures that must still fail:

  [[expected]]
  req = "RST-1"
  reason = "in-memory store: tokens are lost on restart"
  expires = "2027-06-30"                 # optional; past it the run fails

Examples:
  keel run                                   # the suite against the bundled reference issuer
  keel run --reference-fault ephemeral-keys  # prove the suite catches a broken issuer
  keel init --issuer https://auth.example.com --out my-issuer.toml && keel check my-issuer.toml
  keel run --target my-issuer.toml --expectations known.toml --junit keel.xml
  keel run --req RST-1,RST-2 --tags @area:restart"#;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keel: error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::ServeReference {
                listen,
                data_dir,
                fault,
            } => serve(listen, data_dir, fault).await,
            Command::MigrateReference(a) => schema(a, true).await,
            Command::RollbackReference(a) => schema(a, false).await,
            Command::Init { issuer, out } => init(&issuer, out).await,
            Command::Check { file } => {
                let problems = keel::target::check(&file);
                for p in &problems {
                    eprintln!("keel: {p}");
                }
                if problems.is_empty() {
                    keel::say!("{}: ok", file.display());
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(2)
                }
            }
            Command::Faults => {
                for f in keel_reference::Fault::ALL {
                    keel::say!("{}\t{}", f.name(), f.breaks().join(","));
                }
                ExitCode::SUCCESS
            }
            Command::List { features } => list(&features),
        }
    })
}

async fn run(a: RunArgs) -> ExitCode {
    let opts = keel::RunOptions {
        target: a.target,
        reference_fault: a.reference_fault,
        features: a.features,
        tags: a.tags,
        reqs: a.reqs,
        junit: a.junit,
        json: a.report_json,
        expectations: a.expectations,
        keep_data: a.keep_data,
        strict: a.strict,
        reference_bin: None,
        progress: !a.quiet,
        concurrency: a.concurrency,
    };
    match keel::run(opts).await {
        Ok(report) => {
            keel::report::terminal::summary(&report);
            ExitCode::from(u8::try_from(report.exit_code()).unwrap_or(1))
        }
        Err(keel::StartError::Interrupted) => {
            eprintln!(
                "keel: interrupted; any reference issuer keel started was stopped and its data removed"
            );
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("keel: error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn serve(listen: SocketAddr, data_dir: PathBuf, fault: Option<String>) -> ExitCode {
    let fault = match fault.as_deref().map(keel_reference::Fault::from_str) {
        None => None,
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => {
            eprintln!("keel: error: {e}");
            return ExitCode::from(2);
        }
    };
    keel_reference::init_tracing();
    match keel_reference::serve(keel_reference::ServeOptions {
        listen,
        data_dir,
        fault,
    })
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keel: error: the reference issuer stopped: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn init(issuer: &str, out: Option<PathBuf>) -> ExitCode {
    let client = match keel::client::IssuerClient::new(
        keel::client::DEFAULT_TIMEOUT,
        keel::client::DEFAULT_MAX_BODY,
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keel: error: {e}");
            return ExitCode::from(2);
        }
    };
    match keel::init::init(&client, issuer).await {
        Ok(text) => match out {
            Some(path) if path.exists() => {
                eprintln!(
                    "keel: error: {} exists; keel init never overwrites a file (choose another --out)",
                    path.display()
                );
                ExitCode::from(2)
            }
            Some(path) => match std::fs::write(&path, text) {
                Ok(()) => {
                    eprintln!(
                        "keel: wrote {}; fill in the TODOs, then `keel check {}`",
                        path.display(),
                        path.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("keel: error: cannot write {}: {e}", path.display());
                    ExitCode::from(2)
                }
            },
            None => {
                keel::say!("{text}");
                ExitCode::SUCCESS
            }
        },
        Err(e) => {
            eprintln!("keel: error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn schema(a: SchemaArgs, up: bool) -> ExitCode {
    let fault = match a.fault.as_deref().map(keel_reference::Fault::from_str) {
        None => None,
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => {
            eprintln!("keel: error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = if up {
        keel_reference::migrate(&a.data_dir, a.to, fault).await
    } else {
        keel_reference::rollback(&a.data_dir, a.to, fault).await
    };
    match result {
        Ok((from, to)) => {
            keel::say!("schema version {from} -> {to}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keel: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn list(dirs: &[PathBuf]) -> ExitCode {
    let mut all = match keel::features::builtin() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("keel: error: {e}");
            return ExitCode::from(2);
        }
    };
    for d in dirs {
        match keel::features::from_dir(d) {
            Ok(f) => all.extend(f),
            Err(e) => {
                eprintln!("keel: error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    for f in &all {
        let file = f
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        keel::say!("{} ({file})", f.name);
        for (r, s) in keel::features::scenarios(f) {
            let tags: Vec<String> = keel::features::all_tags(f, r, s)
                .map(|t| format!("@{t}"))
                .collect();
            keel::say!(
                "  {}:{}  {}  {}",
                file,
                s.position.line,
                s.name,
                tags.join(" ")
            );
        }
    }
    ExitCode::SUCCESS
}
