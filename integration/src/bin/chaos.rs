//! `make chaos`: the full reliability campaign. Runs every scenario at full size, reads the
//! property-test run `make chaos` did just before (its log), and writes the table with the
//! date and the machine to `docs/reliability.md`. Exits non-zero if any row fails.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use vpc_cni_integration::chaos::{self, report, Row, Size, Tally};

#[derive(Parser)]
#[command(about = "Runs the reliability campaign and writes docs/reliability.md")]
struct Args {
    /// Where to write the page.
    #[arg(long, default_value = "docs/reliability.md")]
    out: PathBuf,
    /// Output of the property-test run (`cargo test` with VPC_CNI_PROPTEST_CASES set).
    #[arg(long)]
    proptest_log: Option<PathBuf>,
    /// A file the property run writes its exit code to when it ends (it runs beside the
    /// scenarios); the page waits for it.
    #[arg(long)]
    proptest_rc: Option<PathBuf>,
    /// The proptest case count that run used.
    #[arg(long, default_value_t = 100_000)]
    proptest_cases: u64,
    /// Length of the soak, in minutes.
    #[arg(long, default_value_t = 30)]
    soak_minutes: u64,
}

/// A named scenario at full size.
type Scenario = (&'static str, fn() -> Row);

/// A row for the property tests: how many passed and failed, from cargo's summaries.
fn proptest_row(log: &str, cases: u64) -> Row {
    let (mut passed, mut failed) = (0usize, 0usize);
    for line in log.lines().filter(|l| l.starts_with("test result:")) {
        let count = |word: &str| {
            line.split(';')
                .find(|part| part.contains(word))
                .and_then(|part| part.split_whitespace().rev().nth(1))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0)
        };
        passed += count("passed");
        failed += count("failed");
    }
    Row::new(
        "bad input: property tests of every parser",
        format!("{cases} cases per property"),
        Tally::default(),
    )
    .with_figures(
        format!("{passed} properties passed, {failed} failed (no panic, no hang, typed errors naming the input)"),
        failed == 0 && passed > 0,
    )
}

/// Waits for the property run beside the campaign to write its exit code; `None` without one.
fn wait_for_proptests(rc: Option<&std::path::Path>) -> Option<String> {
    let rc = rc?;
    eprintln!("chaos: waiting for the property tests ({})", rc.display());
    loop {
        if let Ok(code) = std::fs::read_to_string(rc) {
            if !code.trim().is_empty() {
                return Some(code);
            }
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores, {} GiB, Linux {}",
        mem_kib / 1024 / 1024,
        kernel.trim()
    )
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    vpc_cni_testkit::require_root();
    let started = Instant::now();
    let mut rows = Vec::new();
    let scenarios: [Scenario; 5] = [
        ("kill -9 during churn", || chaos::kill::run(Size::Full)),
        ("checkpoint damage", || chaos::checkpoint::run(Size::Full)),
        ("cloud faults", || chaos::cloud::run(Size::Full)),
        ("restarts, VPC", || chaos::restart::vpc(Size::Full)),
        ("restarts, overlay", || chaos::restart::overlay(Size::Full)),
    ];
    for (name, run) in scenarios {
        eprintln!("chaos: {name}");
        let row = run();
        eprintln!("chaos: {name}: {}", if row.ok() { "pass" } else { "FAIL" });
        rows.push(row);
    }
    eprintln!("chaos: soak");
    rows.push(chaos::soak::run(Duration::from_secs(
        args.soak_minutes * 60,
    )));
    if let Some(path) = &args.proptest_log {
        let exit = wait_for_proptests(args.proptest_rc.as_deref());
        let log =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut row = proptest_row(&log, args.proptest_cases);
        if exit.as_deref().is_some_and(|rc| rc.trim() != "0") {
            row.extra_ok = false;
        }
        rows.insert(0, row);
    }

    let all_ok = rows.iter().all(Row::ok);
    let page = format!(
        "# Reliability\n\n\
         What vpc-cni promises, and the campaign that checks it: no address handed to two pods, \
         none held for no pod once the sweep ran, no pod losing its address, no ENI leaked, and \
         every DEL succeeding in the end. Each scenario runs the real ipamd and plugin on \
         vpc-sim (or the overlay) and is judged by a ground-truth audit: the address on each \
         live pod namespace's eth0, each ipamd's checkpoint file, and the addresses EC2 has on \
         each node's ENIs (`integration/src/chaos/audit.rs`). `make test` runs a short version \
         of every scenario (`integration/tests/chaos.rs`); `make chaos` runs the full campaign \
         below and rewrites this page.\n\n\
         Last run: {}, on {}; {} minutes in all. Result: **{}**.\n\n{}\n\
         Columns: *Orphaned* counts addresses ipamd still held for no live pod once its sweep \
         had run; *Lost* counts live pods whose address their node's ipamd or EC2 did not \
         have (or, for restarts, whose address changed); *Vanished / reported* counts pods \
         whose address a fault removed behind ipamd's back and how many of them ipamd \
         reported. A failed ADD during a kill is retried the way a runtime does (DEL, new \
         sandbox) and is not a failure.\n",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        machine(),
        started.elapsed().as_secs() / 60,
        if all_ok {
            "every row passed"
        } else {
            "FAILURES"
        },
        report::table(&rows)
    );
    std::fs::write(&args.out, page).with_context(|| format!("writing {}", args.out.display()))?;
    println!("{}", report::table(&rows));
    anyhow::ensure!(all_ok, "some scenarios failed; see {}", args.out.display());
    Ok(())
}
