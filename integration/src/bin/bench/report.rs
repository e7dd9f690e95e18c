//! What `make bench` prints, kept as it goes so that the run can also be written to
//! `docs/bench.md` with what it ran on: date, machine, the baselines' versions, and every
//! row, or why a section could not run.

use std::fmt::Write as _;
use std::process::Command;
use std::sync::Mutex;

/// Everything said so far, in order.
static SAID: Mutex<String> = Mutex::new(String::new());

/// Prints one line and keeps it for the report.
pub fn say_line(line: &str) {
    println!("{line}");
    let mut said = SAID
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    said.push_str(line);
    said.push('\n');
}

/// `println!` that also keeps the line for the report.
macro_rules! say {
    () => { $crate::report::say_line("") };
    ($($arg:tt)*) => { $crate::report::say_line(&format!($($arg)*)) };
}
pub(crate) use say;

/// Runs one section; a failure is reported as the section's answer and the run goes on,
/// so one set-up that cannot run does not hide the others. Returns whether it ran.
pub fn section(title: &str, run: impl FnOnce() -> anyhow::Result<()>) -> bool {
    match run() {
        Ok(()) => true,
        Err(e) => {
            say_line(&format!("{title}: could not run: {e:#}"));
            false
        }
    }
}

/// The Markdown page: what this run ran on, then everything it printed.
pub fn page() -> String {
    let said = SAID
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut page = String::from("# Benchmarks\n\n");
    page.push_str(
        "Written by `make bench` (release build); figures are printed, never asserted. Each \
         comparison runs ours and its baseline in the same run, alternating, and reports \
         medians.\n\n",
    );
    let _ = writeln!(page, "| | |\n|---|---|");
    for (what, value) in [
        (
            "Date (UTC)",
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        ),
        ("Commit", output("git", &["rev-parse", "--short", "HEAD"])),
        ("Kernel", output("uname", &["-srm"])),
        ("CPU", cpu()),
        ("Memory", memory()),
        (
            "Baseline plugins (Debian's containernetworking-plugins)",
            output(
                "dpkg-query",
                &["-W", "-f=${Version}", "containernetworking-plugins"],
            ),
        ),
    ] {
        let _ = writeln!(page, "| {what} | {value} |");
    }
    page.push_str("\n```text\n");
    page.push_str(&said);
    page.push_str("```\n");
    page
}

/// A command's first output line, or why there is none.
fn output(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        Ok(out) => format!("({program} failed: {})", out.status),
        Err(e) => format!("({program}: {e})"),
    }
}

/// The CPU model and how many this process may use.
fn cpu() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown model".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    format!("{model}, {cores} cores")
}

/// MemTotal from /proc/meminfo.
fn memory() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}
