//! `keel-reference`: run the reference issuer, or list its fault modes.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use keel_reference::{Fault, ServeOptions};

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
    // `migrate` and `rollback` subcommands come with the schema-migration issue.
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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
            .await
        }
        Command::Faults => {
            for f in Fault::ALL {
                println!("{}\t{}", f.name(), f.breaks().join(","));
            }
            Ok(())
        }
    }
}
