//! Runs the sandbox as its own server: `cargo run -p sandbox --example standalone -- --help`.

use clap::Parser;
use sandbox::SandboxArgs;

/// The Open Humans sandbox, standalone.
#[derive(Debug, Parser)]
#[command(name = "sandbox", about = "Emulates the Open Humans platform for offline tests")]
struct Cli {
    #[command(flatten)]
    args: SandboxArgs,
}

#[tokio::main]
async fn main() -> Result<(), sandbox::SandboxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    sandbox::serve_standalone(Cli::parse().args).await
}
