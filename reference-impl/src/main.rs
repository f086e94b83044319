//! `keel-reference`: run the reference issuer, list its fault modes, or change the schema
//! version of a data directory (`migrate`, `rollback`).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use keel_reference::{Fault, Refusal, ServeOptions};

/// keel's reference OAuth 2.0 token issuer.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve until SIGTERM/SIGINT; the first stdout line is the base URL.
    Serve {
        /// Address to bind on the first start (port 0: any); later starts reuse the recorded one.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Data directory (config.toml, instance.json, issuer.db); created if missing.
        #[arg(long)]
        data_dir: PathBuf,
        /// Fault mode to switch on (see `keel-reference faults`).
        #[arg(long)]
        fault: Option<Fault>,
    },
    /// List fault modes, one per line: `name<TAB>REQ-1,REQ-2`.
    Faults,
    /// Migrate the database up (default: to the latest version); prints `schema version FROM -> TO`.
    Migrate(SchemaArgs),
    /// Roll the database back (default: one version down, never below 2); prints
    /// `schema version FROM -> TO`.
    Rollback(SchemaArgs),
}

/// The arguments of `migrate` and `rollback`.
#[derive(Args)]
struct SchemaArgs {
    /// Data directory holding issuer.db (refused while an issuer serves it).
    #[arg(long)]
    data_dir: PathBuf,
    /// Target schema version.
    #[arg(long)]
    to: Option<i64>,
    /// Fault mode (`migration-renumbers-ids`, `rollback-loses-tokens`; others have no effect).
    #[arg(long)]
    fault: Option<Fault>,
}

/// Exit status of a refused `migrate`/`rollback` (clap also uses 2 for usage errors).
const REFUSED: u8 = 2;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            data_dir,
            fault,
        } => {
            keel_reference::init_tracing();
            keel_reference::serve(ServeOptions {
                listen,
                data_dir,
                fault,
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Faults => {
            for f in Fault::ALL {
                println!("{}\t{}", f.name(), f.breaks().join(","));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate(args) => {
            keel_reference::init_tracing();
            report(keel_reference::migrate(&args.data_dir, args.to, args.fault).await)
        }
        Command::Rollback(args) => {
            keel_reference::init_tracing();
            report(keel_reference::rollback(&args.data_dir, args.to, args.fault).await)
        }
    }
}

/// Prints the one-line result of a schema change; a [`Refusal`] exits with [`REFUSED`], any
/// other failure goes to `main`'s error path (exit 1).
fn report(result: anyhow::Result<(i64, i64)>) -> anyhow::Result<ExitCode> {
    match result {
        Ok((from, to)) => {
            println!("schema version {from} -> {to}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.is::<Refusal>() => {
            eprintln!("Error: {e}");
            Ok(ExitCode::from(REFUSED))
        }
        Err(e) => Err(e),
    }
}
