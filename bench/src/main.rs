//! `fieldlink-bench SCENARIO`: the benchmark harness. Run it in release mode
//! (`cargo run --release -p fieldlink-bench -- SCENARIO`); each scenario prints one summary
//! line of figures, measured, never asserted. This machine is shared and noisy: run a
//! scenario several times and quote the median (`--runs N` does it for you).

mod measure;
mod outbox;

use clap::{Parser, Subcommand};

/// fieldlink's benchmarks.
#[derive(Parser)]
struct Cli {
    /// Runs of the scenario; the summary reports each run and the median.
    #[arg(long, default_value_t = 1, global = true)]
    runs: usize,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Outbox append-and-ack throughput with 1,000-sample batches.
    Outbox(outbox::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for meaningful figures");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut figures = Vec::new();
    for run in 1..=cli.runs.max(1) {
        let result = runtime.block_on(async {
            match &cli.scenario {
                Scenario::Outbox(args) => outbox::run(args).await,
            }
        })?;
        println!("run {run}: {}", result.line());
        figures.push(result);
    }
    if figures.len() > 1 {
        println!("median: {}", measure::Summary::median(&figures).line());
    }
    Ok(())
}
