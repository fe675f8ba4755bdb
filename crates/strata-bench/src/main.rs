//! `strata-bench`: runs every registered workload for Strata and its peers in one
//! process and writes the terminal tables, `report.csv`, `ratios.csv` and `index.html`.
//! See `--help`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, FromArgMatches, Parser};
use indicatif::{ProgressBar, ProgressStyle};

use strata_bench::harness::{self, Event, RunConfig, Workload};
use strata_bench::report::{self, Meta};
use strata_bench::workloads;

/// Thread counts measured by default: true parallelism at 1 and 2, oversubscribed above.
const DEFAULT_THREADS: [usize; 5] = [1, 2, 4, 8, 16];
/// More threads than this is refused (each measurement starts them all).
const MAX_THREADS: usize = 512;
/// The time budget of a `--quick` report.
const QUICK_BUDGET: Duration = Duration::from_secs(180);

/// Runs every Strata workload beside its peers in one process and reports Strata ÷ peer
/// throughput ratios.
///
/// Method: threads start at a barrier; per (workload, thread count) every implementation
/// runs once as a discarded warm-up, then in each round every implementation runs once,
/// interleaved, the start order rotating; each figure is the median of the rounds with
/// its spread (min–max). A ratio is Strata ÷ peer median throughput; ≥ 0.95 is parity.
/// Thread counts above the available cores are oversubscribed and marked `*`.
#[derive(Parser, Debug)]
#[command(name = "strata-bench", version)]
struct Cli {
    /// Quick report: ~100 ms per measurement, 5 runs.
    #[arg(long, conflicts_with = "smoke")]
    quick: bool,

    /// CI smoke run: every workload at every thread count once for ~5 ms, no warm-up;
    /// exits 1 if any measurement panics or does 0 operations. Writes to <OUT>/smoke
    /// unless --out is given.
    #[arg(long)]
    smoke: bool,

    /// Only workloads whose name contains this substring (or one of several,
    /// comma-separated: `--filter lock/,pool/`).
    #[arg(long, value_name = "SUBSTRING")]
    filter: Option<String>,

    /// Comma-separated thread counts [default: 1,2,4,8,16].
    #[arg(long, value_name = "LIST", value_parser = parse_threads)]
    threads: Option<ThreadList>,

    /// Milliseconds per measurement [default: 500; --quick 100; --smoke 5].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    duration: Option<u64>,

    /// Measured rounds, at least 5 unless --smoke [default: 7; --quick 5; --smoke 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    runs: Option<u64>,

    /// Output directory [default: <workspace>/target/strata-report].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// List the workloads with their help and implementations, then exit.
    #[arg(long)]
    list: bool,

    /// Print one `workload impl` line per implementation with a fixed-iteration path
    /// (for callgrind.sh), then exit.
    #[arg(long)]
    list_fixed: bool,

    /// Run ITERS operations of one implementation's single-thread path once and exit
    /// (run it under `valgrind --tool=callgrind`; see callgrind.sh).
    #[arg(long, num_args = 3, value_names = ["WORKLOAD", "IMPL", "ITERS"])]
    callgrind: Option<Vec<String>>,

    /// Read this report.csv and rewrite the table between the lines
    /// `<!-- strata-bench:begin -->` and `<!-- strata-bench:end -->` of the README.
    #[arg(long, value_name = "REPORT_CSV")]
    readme: Option<PathBuf>,

    /// The README that --readme rewrites [default: <workspace>/README.md].
    #[arg(long, value_name = "FILE", requires = "readme")]
    readme_file: Option<PathBuf>,

    /// With --readme: rewrite the table between `<!-- strata-bench:begin NAME -->` and
    /// `<!-- strata-bench:end NAME -->` instead of the default markers, so that each
    /// run's table (a `--filter`ed run per layer, say) has its own place.
    #[arg(long, value_name = "NAME", requires = "readme")]
    readme_section: Option<String>,
}

#[derive(Clone, Debug)]
struct ThreadList(Vec<usize>);

fn parse_threads(s: &str) -> Result<ThreadList, String> {
    let mut v = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let n: usize = part
            .parse()
            .map_err(|_| format!("`{part}` is not a thread count (expected e.g. 1,2,4)"))?;
        if n == 0 || n > MAX_THREADS {
            return Err(format!(
                "thread count {n} is out of range 1..={MAX_THREADS}"
            ));
        }
        v.push(n);
    }
    v.sort_unstable();
    v.dedup();
    Ok(ThreadList(v))
}

fn workspace_root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    p.canonicalize().unwrap_or(p)
}

fn wrap(text: &str, indent: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > width {
            out.push_str(indent);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(indent);
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn impl_list(w: &Workload) -> String {
    w.impls
        .iter()
        .map(|i| {
            let fixed = if i.fixed.is_some() { ", fixed" } else { "" };
            format!("{} ({}{fixed})", i.name, i.kind.as_str())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn workloads_help(all: &[Workload]) -> String {
    let mut s = String::from(
        "Workloads (--filter matches a substring of the name, or any of several comma-separated ones; --list also shows the implementations):\n",
    );
    for w in all {
        s.push_str(&format!("  {}\n", w.name));
        s.push_str(&wrap(w.help, "      ", 92));
    }
    s.push_str(
        "\nExit status: 0 on success, 1 if a measurement panicked or did 0 operations, 2 on bad input.",
    );
    s
}

/// The thread counts a workload runs at, for `--list`.
fn thread_range(w: &Workload) -> String {
    match w.max_threads {
        None => format!("from {} thread(s)", w.min_threads),
        Some(max) if max == w.min_threads => format!("at {max} thread(s) only"),
        Some(max) => format!("from {} to {max} threads", w.min_threads),
    }
}

fn list(all: &[Workload]) {
    for w in all {
        println!("{}  [{}, {}]", w.name, w.unit, thread_range(w));
        print!("{}", wrap(w.help, "    ", 92));
        println!("    impls: {}", impl_list(w));
    }
}

fn callgrind(all: &[Workload], args: &[String]) -> Result<(), String> {
    let [workload, imp, iters] = args else {
        return Err("--callgrind takes WORKLOAD IMPL ITERS".to_owned());
    };
    let w = all.iter().find(|w| w.name == workload).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|w| w.name).collect();
        format!(
            "unknown workload `{workload}`; workloads: {}",
            names.join(", ")
        )
    })?;
    let i = w.find_impl(imp).ok_or_else(|| {
        let names: Vec<&str> = w.impls.iter().map(|i| i.name).collect();
        format!(
            "workload `{workload}` has no impl `{imp}`; impls: {}",
            names.join(", ")
        )
    })?;
    let iters: u64 = iters
        .parse()
        .map_err(|_| format!("ITERS `{iters}` is not a whole number"))?;
    let fixed = i.fixed.as_ref().ok_or_else(|| {
        format!("`{workload}` / `{imp}` has no fixed-iteration path (see --list-fixed)")
    })?;
    fixed(iters);
    Ok(())
}

fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}m{:02}s", s / 60, s % 60)
}

fn use_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn bench(cli: &Cli, all: &[Workload]) -> Result<ExitCode, String> {
    let (mode, default_ms, default_runs) = if cli.smoke {
        ("smoke", 5, 1)
    } else if cli.quick {
        ("quick", 100, 5)
    } else {
        ("full", 500, 7)
    };
    let runs = cli.runs.map_or(default_runs, |r| r as usize);
    if !cli.smoke && runs < 5 {
        return Err(format!(
            "--runs {runs}: a figure is the median of at least 5 runs (use --smoke for a single unchecked run)"
        ));
    }
    let cores = harness::available_cores();
    let cfg = RunConfig {
        threads: cli
            .threads
            .as_ref()
            .map_or_else(|| DEFAULT_THREADS.to_vec(), |t| t.0.clone()),
        duration: Duration::from_millis(cli.duration.unwrap_or(default_ms)),
        runs,
        warmup: !cli.smoke,
        cores,
    };
    let selected = harness::select(all, cli.filter.as_deref());
    if selected.is_empty() {
        return Err(format!(
            "no workload name contains `{}` (see --list)",
            cli.filter.as_deref().unwrap_or("")
        ));
    }
    let out = cli.out.clone().unwrap_or_else(|| {
        let base = workspace_root().join("target").join("strata-report");
        if cli.smoke { base.join("smoke") } else { base }
    });
    let plan = harness::plan(&selected, &cfg);
    let labels: Vec<String> = cfg
        .threads
        .iter()
        .map(|&t| {
            if t > cores {
                format!("{t}*")
            } else {
                t.to_string()
            }
        })
        .collect();
    eprintln!(
        "strata-bench {mode}: {} workload(s), threads {} ({cores} cores, * = oversubscribed), {} ms × ({}{} runs)",
        selected.len(),
        labels.join(","),
        cfg.duration.as_millis(),
        if cfg.warmup { "1 warm-up + " } else { "" },
        cfg.runs,
    );
    eprintln!(
        "planned: {} measurements, estimated {}",
        plan.measurements,
        format_duration(plan.estimated)
    );
    if cli.quick && plan.estimated > QUICK_BUDGET {
        eprintln!(
            "warning: this quick report is estimated at {}, over its {} budget",
            format_duration(plan.estimated),
            format_duration(QUICK_BUDGET)
        );
    }

    let bar = if cli.smoke || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(plan.measurements as u64);
        if let Ok(style) = ProgressStyle::with_template(
            "{elapsed_precise} [{bar:32.cyan/blue}] {pos}/{len} eta {eta} {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    };
    let started = Instant::now();
    let results = harness::run(&selected, &cfg, |e| match e {
        Event::Start {
            workload,
            impl_name,
            threads,
            round,
        } => {
            let round = round.map_or_else(|| "warm-up".to_owned(), |r| format!("run {}", r + 1));
            bar.set_message(format!("{workload} {impl_name} ×{threads} {round}"));
        }
        Event::Done => bar.inc(1),
    });
    bar.finish_and_clear();
    let took = started.elapsed();

    let help = |name: &str| {
        all.iter()
            .find(|w| w.name == name)
            .map(|w| w.help.to_owned())
    };
    print!(
        "{}",
        report::terminal(&results.rows, &help, cores, use_color())
    );
    let meta = Meta::collect(&workspace_root(), mode, cfg.duration, cfg.runs, cores);
    let written =
        report::write_all(&out, &meta, &results.rows, &help).map_err(|e| e.to_string())?;
    for p in &written {
        println!("wrote {}", p.display());
    }
    println!(
        "{} measurements in {} (estimated {})",
        plan.measurements,
        format_duration(took),
        format_duration(plan.estimated)
    );
    if results.failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("\n{} failed measurement(s):", results.failures.len());
        for f in &results.failures {
            eprintln!("  FAILED {f}");
        }
        Ok(ExitCode::from(1))
    }
}

fn real_main() -> Result<ExitCode, String> {
    let all = workloads::all();
    let matches = Cli::command()
        .after_help(workloads_help(&all))
        .get_matches();
    let cli = Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;

    if let Some(csv) = &cli.readme {
        let readme = cli
            .readme_file
            .clone()
            .unwrap_or_else(|| workspace_root().join("README.md"));
        report::update_readme(csv, &readme, cli.readme_section.as_deref())
            .map_err(|e| e.to_string())?;
        println!("updated the strata-bench table in {}", readme.display());
        return Ok(ExitCode::SUCCESS);
    }
    if cli.list {
        list(&all);
        return Ok(ExitCode::SUCCESS);
    }
    if cli.list_fixed {
        for w in &all {
            for i in w.impls.iter().filter(|i| i.fixed.is_some()) {
                println!("{} {}", w.name, i.name);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(args) = &cli.callgrind {
        callgrind(&all, args)?;
        return Ok(ExitCode::SUCCESS);
    }
    bench(&cli, &all)
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("strata-bench: error: {msg}");
            ExitCode::from(2)
        }
    }
}
