//! The `ohkit` binary.
//!
//! `ohkit` (or `ohkit serve`) serves the project's web app; `ohkit --help` lists the
//! subcommands and every setting, each of which can also be given as an environment variable or
//! in a `.env` file in the working directory.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use server::config::Config;

/// Runs an Open Humans project: the signup page, member enrollment and the member dashboard.
#[derive(Debug, Parser)]
#[command(name = "ohkit", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the web app (the default when no subcommand is given).
    Serve(Box<Config>),
    /// Run the Open Humans sandbox on its own port, without the app.
    Sandbox(Box<sandbox::SandboxArgs>),
}

fn main() -> ExitCode {
    // A missing .env is the normal case; a malformed one is worth stopping for.
    if let Err(err) = dotenvy::dotenv()
        && !err.not_found()
    {
        eprintln!("ohkit: could not read .env: {err}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    server::telemetry::init();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(%err, "could not start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            None => server::serve(Config::from_env()).await,
            Some(Command::Serve(config)) => server::serve(*config).await,
            Some(Command::Sandbox(args)) => {
                sandbox::serve_standalone(*args).await.map_err(server::ServeError::from)
            }
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "ohkit stopped");
            eprintln!("ohkit: {err}");
            ExitCode::FAILURE
        }
    }
}
