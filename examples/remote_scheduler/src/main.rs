//! A custom scheduler in its own process: one filter and one score of our own on top of
//! Orkestrator's standard filters, joining a real manager over HTTP with a join token.
//!
//! Start a manager without its embedded scheduler, then this program:
//!
//! ```text
//! orkestrator server --no-embedded-scheduler --data-dir ./m
//! cargo run -p remote-scheduler -- --manager http://127.0.0.1:5555 \
//!     --join-token-file ./m/join.token --prefer disk=ssd
//! ```
//!
//! It registers under `--name`, heartbeats, long-polls the manager for instances nobody has
//! placed, places them with its pipeline and publishes the decisions, until Ctrl-C. The join
//! token is used once: the registration issues the scheduler a credential of its own, kept in
//! memory (a restarted scheduler joins again).

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use orkestrator_core::api::WorkerSnapshot;
use orkestrator_core::ids::SchedulerId;
use orkestrator_core::scheduler::{
    Filter, Pipeline, Rejection, Request, SchedulerAgent, Score, scores,
};
use orkestrator_runtime::HttpTransport;
use orkestrator_runtime::http::tls::ClientTls;

/// Keeps a share of every worker's memory free. It counts the larger of what is reserved on the
/// worker and what its host was last measured to use (the metrics pipeline's figure in the
/// scheduler's worker view), so a host busy with things Orkestrator did not place is spared.
struct Headroom {
    /// The share of memory to keep free, in percent.
    free_percent: u64,
}

impl Filter for Headroom {
    fn name(&self) -> &str {
        "headroom"
    }

    fn check(&self, req: &Request<'_>, w: &WorkerSnapshot) -> Result<(), Rejection> {
        let used = w
            .measured
            .as_ref()
            .map_or(w.allocated.memory, |m| m.memory.max(w.allocated.memory));
        let after = used.saturating_add(req.need.memory).bytes();
        let limit = w.total.memory.bytes() / 100 * (100 - self.free_percent);
        if after > limit {
            return Err(Rejection::new(format!(
                "would leave less than {}% memory free",
                self.free_percent
            )));
        }
        Ok(())
    }
}

/// Prefers workers with one label value (`--prefer KEY=VALUE`).
struct PreferLabel {
    key: String,
    value: String,
}

impl Score for PreferLabel {
    fn name(&self) -> &str {
        "prefer-label"
    }

    fn score(&self, _req: &Request<'_>, w: &WorkerSnapshot) -> u32 {
        if w.labels.get(&self.key) == Some(&self.value) {
            100
        } else {
            0
        }
    }
}

/// A custom scheduler that joins an Orkestrator manager over HTTP.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The manager's address (several, comma-separated, for an HA cluster).
    #[arg(
        long,
        env = "ORKESTRATOR_ADDR",
        default_value = "http://127.0.0.1:5555"
    )]
    manager: String,
    /// The join token (the manager writes it to DATA_DIR/join.token).
    #[arg(
        long,
        env = "ORKESTRATOR_JOIN_TOKEN",
        conflicts_with = "join_token_file"
    )]
    join_token: Option<String>,
    /// A file holding the join token.
    #[arg(long)]
    join_token_file: Option<PathBuf>,
    /// The name this scheduler registers under.
    #[arg(long, default_value = "remote-example")]
    name: String,
    /// Prefer workers with this label, as KEY=VALUE.
    #[arg(long, value_parser = key_value)]
    prefer: Option<(String, String)>,
    /// The share of every worker's memory to keep free, in percent.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..100))]
    free_memory_percent: u64,
}

/// Parses `KEY=VALUE`.
fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE (for example disk=ssd)")),
    }
}

/// The HTTP client for `args`: registers with the join token, then presents the credential the
/// registration issued. An `https://` manager is verified by the cluster CA's digest that a join
/// token made with TLS carries.
fn client(args: &Args) -> Result<HttpTransport, Box<dyn Error>> {
    let join = match (&args.join_token, &args.join_token_file) {
        (Some(t), _) => t.trim().to_owned(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| format!("--join-token-file {}: {e}", f.display()))?
            .trim()
            .to_owned(),
        (None, None) => {
            return Err(
                "no join token: pass --join-token-file DATA_DIR/join.token or --join-token".into(),
            );
        }
    };
    let mut http = HttpTransport::new(&args.manager).map_err(|e| format!("--manager: {e}"))?;
    let digest = orkestrator_core::auth::TokenParts::parse(&join).and_then(|p| p.ca_digest);
    if let (true, Some(d)) = (http.uses_tls(), digest) {
        http = http.with_tls(ClientTls::CaDigest(d))?;
    }
    Ok(http.with_join_token(join, None))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let transport = Arc::new(client(&args)?);
    let mut pipeline = Pipeline::standard(args.name.clone()).with_filter(Headroom {
        free_percent: args.free_memory_percent,
    });
    if let Some((key, value)) = args.prefer.clone() {
        pipeline = pipeline.with_score(PreferLabel { key, value }, 10);
    }
    let pipeline = pipeline
        .with_score(scores::JobSpread, 2)
        .with_score(scores::Spread, 1);
    eprintln!(
        "scheduler {}: filters {:?}, scores {:?}; manager {}",
        args.name,
        pipeline.filter_names(),
        pipeline.score_names(),
        transport.addresses().join(",")
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    SchedulerAgent::new(SchedulerId::new(args.name), transport, Arc::new(pipeline))
        .run(shutdown)
        .await?;
    Ok(())
}
