//! Reports: the terminal tables, `report.csv` and `ratios.csv`, the HTML page with one
//! hand-written SVG plot per workload, and the README table.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::harness::{Kind, Ratio, Row, Stats, ratios};

/// An error reading or writing a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file or directory could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A report CSV is malformed.
    #[error("{path}:{line}: {msg}")]
    Csv {
        /// The file (or a label).
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// A README lacks a marker line.
    #[error(
        "{}: no line `{marker}`; the README needs the two marker lines `{begin}` and `{end}` around the generated table",
        path.display()
    )]
    MissingMarker {
        /// The README.
        path: PathBuf,
        /// The missing marker.
        marker: String,
        /// The section's begin marker.
        begin: String,
        /// The section's end marker.
        end: String,
    },
    /// A README's end marker comes before its begin marker.
    #[error("{}: `{end}` comes before `{begin}`", path.display())]
    MarkerOrder {
        /// The README.
        path: PathBuf,
        /// The section's begin marker.
        begin: String,
        /// The section's end marker.
        end: String,
    },
}

/// The line after which the README table is generated.
pub const BEGIN_MARKER: &str = "<!-- strata-bench:begin -->";
/// The line before which the README table ends.
pub const END_MARKER: &str = "<!-- strata-bench:end -->";

/// The two marker lines around one generated table of a README: the default table's
/// ([`BEGIN_MARKER`], [`END_MARKER`]), or a named section's
/// (`<!-- strata-bench:begin NAME -->` … `<!-- strata-bench:end NAME -->`), so that the
/// tables of separate runs (one per issue, say) can sit in one README.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Markers {
    /// The begin line.
    pub begin: String,
    /// The end line.
    pub end: String,
}

impl Markers {
    /// The markers of section `name`, or the default ones for `None`.
    pub fn section(name: Option<&str>) -> Markers {
        match name {
            None => Markers {
                begin: BEGIN_MARKER.to_owned(),
                end: END_MARKER.to_owned(),
            },
            Some(n) => Markers {
                begin: format!("<!-- strata-bench:begin {n} -->"),
                end: format!("<!-- strata-bench:end {n} -->"),
            },
        }
    }
}

/// The machine and run recorded in the CSV header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// UTC date and time, `YYYY-MM-DDTHH:MM:SSZ`.
    pub date: String,
    /// `git rev-parse --short HEAD`, `-dirty` appended for a modified tree, or `unknown`.
    pub commit: String,
    /// `rustc --version` of the compiler that built the bench.
    pub rustc: String,
    /// CPU model name.
    pub cpu: String,
    /// Available cores.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// `quick`, `full` or `smoke`.
    pub mode: String,
    /// Duration of one measurement, in milliseconds.
    pub duration_ms: u64,
    /// Measured runs per figure.
    pub runs: usize,
}

impl Meta {
    /// Collects the machine description now, running `git` in `repo`.
    pub fn collect(repo: &Path, mode: &str, duration: Duration, runs: usize, cores: usize) -> Meta {
        Meta {
            date: utc_now(),
            commit: git_commit(repo),
            rustc: env!("STRATA_BENCH_RUSTC_VERSION").to_owned(),
            cpu: cpu_model(),
            cores,
            kernel: kernel_release(),
            mode: mode.to_owned(),
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            runs,
        }
    }

    fn header_lines(&self) -> Vec<(&'static str, String)> {
        vec![
            ("date", self.date.clone()),
            ("commit", self.commit.clone()),
            ("rustc", self.rustc.clone()),
            ("cpu", self.cpu.clone()),
            ("cores", self.cores.to_string()),
            ("kernel", self.kernel.clone()),
            ("mode", self.mode.clone()),
            ("duration_ms", self.duration_ms.to_string()),
            ("runs", self.runs.to_string()),
        ]
    }
}

fn command_output(cmd: &str, args: &[&str], dir: &Path) -> Option<String> {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn git_commit(repo: &Path) -> String {
    match command_output("git", &["rev-parse", "--short", "HEAD"], repo) {
        Some(c) if !c.is_empty() => {
            let dirty = command_output("git", &["status", "--porcelain"], repo)
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{c}-dirty") } else { c }
        }
        _ => "unknown".to_owned(),
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------------------
// CSV

/// The column header of `report.csv`.
pub const REPORT_HEADER: &str = "workload,impl,kind,threads,oversubscribed,runs,median_ops_per_s,min_ops_per_s,max_ops_per_s,unit,median_spread";
/// The column header of reports written before the fairness spread was recorded (read,
/// never written).
const REPORT_HEADER_V1: &str = "workload,impl,kind,threads,oversubscribed,runs,median_ops_per_s,min_ops_per_s,max_ops_per_s,unit";
/// The column header of `ratios.csv`.
pub const RATIOS_HEADER: &str = "workload,threads,oversubscribed,strata_impl,peer_impl,ratio";

fn csv_field(s: &str) -> String {
    let s = s.replace(['\n', '\r'], " ");
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn split_csv_line(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && at_start {
            quoted = true;
            at_start = false;
        } else if c == ',' {
            fields.push(std::mem::take(&mut cur));
            at_start = true;
        } else {
            cur.push(c);
            at_start = false;
        }
    }
    if quoted {
        return Err("unterminated quoted field".to_owned());
    }
    fields.push(cur);
    Ok(fields)
}

/// `report.csv`: the `#` header lines recording the machine, then one row per
/// (workload, implementation, thread count).
pub fn report_csv(meta: &Meta, rows: &[Row]) -> String {
    let mut s = String::from("# strata-bench report\n");
    for (k, v) in meta.header_lines() {
        let _ = writeln!(s, "# {k}: {}", v.replace(['\n', '\r'], " "));
    }
    s.push_str(REPORT_HEADER);
    s.push('\n');
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{:.1},{:.1},{:.1},{},{}",
            csv_field(&r.workload),
            csv_field(&r.impl_name),
            r.kind.as_str(),
            r.threads,
            r.oversubscribed,
            r.stats.runs,
            r.stats.median,
            r.stats.min,
            r.stats.max,
            csv_field(&r.unit),
            r.spread.map_or_else(String::new, |v| format!("{v:.3}"))
        );
    }
    s
}

/// `ratios.csv`: one row per (workload, thread count, Strata implementation, peer).
pub fn ratios_csv(ratios: &[Ratio]) -> String {
    let mut s = String::from(RATIOS_HEADER);
    s.push('\n');
    for r in ratios {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{:.4}",
            csv_field(&r.workload),
            r.threads,
            r.oversubscribed,
            csv_field(&r.strata_impl),
            csv_field(&r.peer_impl),
            r.ratio
        );
    }
    s
}

/// Parses what [`report_csv`] wrote. `label` names the source in error messages.
pub fn parse_report_csv(text: &str, label: &str) -> Result<(Meta, Vec<Row>), ReportError> {
    let err = |line: usize, msg: String| ReportError::Csv {
        path: label.to_owned(),
        line,
        msg,
    };
    let mut meta = Meta {
        date: "unknown".into(),
        commit: "unknown".into(),
        rustc: "unknown".into(),
        cpu: "unknown".into(),
        cores: 0,
        kernel: "unknown".into(),
        mode: "unknown".into(),
        duration_ms: 0,
        runs: 0,
    };
    let mut header_seen = false;
    let mut fields = 11;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim_end_matches('\r');
        if let Some(comment) = line.strip_prefix('#') {
            if let Some((k, v)) = comment.split_once(':') {
                let v = v.trim().to_owned();
                match k.trim() {
                    "date" => meta.date = v,
                    "commit" => meta.commit = v,
                    "rustc" => meta.rustc = v,
                    "cpu" => meta.cpu = v,
                    "cores" => meta.cores = v.parse().unwrap_or(0),
                    "kernel" => meta.kernel = v,
                    "mode" => meta.mode = v,
                    "duration_ms" => meta.duration_ms = v.parse().unwrap_or(0),
                    "runs" => meta.runs = v.parse().unwrap_or(0),
                    _ => {}
                }
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        if !header_seen {
            if line.trim() == REPORT_HEADER_V1 {
                fields = 10;
            } else if line.trim() != REPORT_HEADER {
                return Err(err(
                    n,
                    format!(
                        "expected the column header `{REPORT_HEADER}`; is this a strata-bench report.csv?"
                    ),
                ));
            }
            header_seen = true;
            continue;
        }
        let f = split_csv_line(line).map_err(|m| err(n, m))?;
        if f.len() != fields {
            return Err(err(n, format!("expected {fields} fields, found {}", f.len())));
        }
        let num = |idx: usize, what: &str| -> Result<f64, ReportError> {
            f[idx]
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| err(n, format!("{what} `{}` is not a number", f[idx])))
        };
        let int = |idx: usize, what: &str| -> Result<usize, ReportError> {
            f[idx]
                .trim()
                .parse::<usize>()
                .map_err(|_| err(n, format!("{what} `{}` is not a whole number", f[idx])))
        };
        let kind = Kind::parse(f[2].trim())
            .ok_or_else(|| err(n, format!("kind `{}` is not strata, peer or limit", f[2])))?;
        let oversubscribed = match f[4].trim() {
            "true" => true,
            "false" => false,
            o => return Err(err(n, format!("oversubscribed `{o}` is not true or false"))),
        };
        rows.push(Row {
            workload: f[0].clone(),
            impl_name: f[1].clone(),
            kind,
            threads: int(3, "threads")?,
            oversubscribed,
            stats: Stats {
                runs: int(5, "runs")?,
                median: num(6, "median")?,
                min: num(7, "min")?,
                max: num(8, "max")?,
            },
            unit: f[9].clone(),
            spread: match f.get(10).map(|v| v.trim()) {
                None | Some("") => None,
                Some("inf") => Some(f64::INFINITY),
                Some(_) => Some(num(10, "spread")?),
            },
        });
    }
    if !header_seen {
        return Err(err(
            text.lines().count().max(1),
            format!("no column header `{REPORT_HEADER}`"),
        ));
    }
    Ok((meta, rows))
}

/// Reads and parses a `report.csv` file.
pub fn read_report_csv(path: &Path) -> Result<(Meta, Vec<Row>), ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_report_csv(&text, &path.display().to_string())
}

/// Writes `report.csv`, `ratios.csv` and `index.html` into `dir` (created if needed);
/// returns the paths written.
pub fn write_all(
    dir: &Path,
    meta: &Meta,
    rows: &[Row],
    help: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<PathBuf>, ReportError> {
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| ReportError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    let ratios = ratios(rows);
    let files = [
        ("report.csv", report_csv(meta, rows)),
        ("ratios.csv", ratios_csv(&ratios)),
        ("index.html", html(meta, rows, &ratios, help)),
    ];
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(write_err(&path))?;
        written.push(path);
    }
    Ok(written)
}

// ---------------------------------------------------------------------------------------
// Shared formatting

/// Workload names in the order of first appearance.
fn workload_names(rows: &[Row]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        if !names.contains(&r.workload.as_str()) {
            names.push(&r.workload);
        }
    }
    names
}

/// Implementation (name, kind) of one workload's rows, in order of first appearance.
fn impl_names(rows: &[&Row]) -> Vec<(String, Kind)> {
    let mut names: Vec<(String, Kind)> = Vec::new();
    for r in rows {
        if !names.iter().any(|(n, _)| *n == r.impl_name) {
            names.push((r.impl_name.clone(), r.kind));
        }
    }
    names
}

/// The (strata, peer) pairs of a workload's ratios, in order of first appearance.
fn ratio_pairs(ratios: &[&Ratio]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for r in ratios {
        let p = (r.strata_impl.clone(), r.peer_impl.clone());
        if !pairs.contains(&p) {
            pairs.push(p);
        }
    }
    pairs
}

/// Sorted (threads, oversubscribed) of some rows.
fn thread_counts(rows: &[&Row]) -> Vec<(usize, bool)> {
    let set: BTreeSet<(usize, bool)> = rows.iter().map(|r| (r.threads, r.oversubscribed)).collect();
    let mut v: Vec<(usize, bool)> = Vec::new();
    for (t, o) in set {
        match v.last_mut() {
            Some(last) if last.0 == t => last.1 |= o,
            _ => v.push((t, o)),
        }
    }
    v
}

fn threads_label(threads: usize, oversubscribed: bool) -> String {
    if oversubscribed {
        format!("{threads}*")
    } else {
        threads.to_string()
    }
}

/// A divisor and prefix so that the largest figure reads as a small number.
fn scale(max: f64) -> (f64, &'static str) {
    if max >= 1e6 {
        (1e6, "M ")
    } else if max >= 1e3 {
        (1e3, "k ")
    } else {
        (1.0, "")
    }
}

fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn unit_of(rows: &[&Row]) -> String {
    rows.first()
        .map_or_else(|| "ops/s".to_owned(), |r| r.unit.clone())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

// ---------------------------------------------------------------------------------------
// Terminal

fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(n)))
}

/// The terminal report: per workload a table with one row per thread count (`*` marks
/// oversubscribed ones), the median and spread of each implementation, then one column
/// per Strata ÷ peer ratio, green at parity and red below when `color` is set.
pub fn terminal(
    rows: &[Row],
    help: &dyn Fn(&str) -> Option<String>,
    cores: usize,
    color: bool,
) -> String {
    let all_ratios = ratios(rows);
    let mut out = String::new();
    for name in workload_names(rows) {
        let wrows: Vec<&Row> = rows.iter().filter(|r| r.workload == name).collect();
        let wratios: Vec<&Ratio> = all_ratios.iter().filter(|r| r.workload == name).collect();
        let impls = impl_names(&wrows);
        let pairs = ratio_pairs(&wratios);
        let max = wrows.iter().map(|r| r.stats.max).fold(0.0, f64::max);
        let (div, prefix) = scale(max);
        let _ = writeln!(
            out,
            "\n{name}  [median (min–max), {prefix}{}]",
            unit_of(&wrows)
        );
        if let Some(h) = help(name) {
            let _ = writeln!(out, "  {h}");
        }
        if wrows.iter().any(|r| r.spread.is_some()) {
            let _ = writeln!(
                out,
                "  ×N: fairness spread, the most acquisitions of one thread ÷ the fewest (median over runs)"
            );
        }
        let mut header = vec!["threads".to_owned()];
        header.extend(impls.iter().map(|(n, k)| format!("{n} [{}]", k.as_str())));
        header.extend(pairs.iter().map(|(s, p)| format!("{s} / {p}")));
        // Each cell: text and whether it is a ratio (Some(parity)).
        let mut table: Vec<Vec<(String, Option<bool>)>> = Vec::new();
        for (t, over) in thread_counts(&wrows) {
            let mut line = vec![(threads_label(t, over), None)];
            for (imp, _) in &impls {
                let cell = wrows
                    .iter()
                    .find(|r| r.threads == t && r.impl_name == *imp)
                    .map_or_else(
                        || "—".to_owned(),
                        |r| {
                            let mut cell = format!(
                                "{} ({}–{})",
                                num(r.stats.median / div),
                                num(r.stats.min / div),
                                num(r.stats.max / div)
                            );
                            if let Some(spread) = r.spread {
                                let _ = write!(cell, " ×{}", spread_text(spread));
                            }
                            cell
                        },
                    );
                line.push((cell, None));
            }
            for (s, p) in &pairs {
                let cell = wratios
                    .iter()
                    .find(|r| r.threads == t && r.strata_impl == *s && r.peer_impl == *p)
                    .map_or(("—".to_owned(), None), |r| {
                        (format!("{:.2}", r.ratio), Some(r.is_parity()))
                    });
                line.push(cell);
            }
            table.push(line);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|c| {
                table
                    .iter()
                    .map(|l| l[c].0.chars().count())
                    .chain([header[c].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let head: Vec<String> = header
            .iter()
            .zip(&widths)
            .map(|(h, &w)| pad(h, w))
            .collect();
        let _ = writeln!(out, "  {}", head.join("  ").trim_end());
        for line in &table {
            let cells: Vec<String> = line
                .iter()
                .zip(&widths)
                .map(|((text, parity), &w)| {
                    let fill = " ".repeat(w.saturating_sub(text.chars().count()));
                    match (parity, color) {
                        (Some(true), true) => format!("\x1b[32m{text}\x1b[0m{fill}"),
                        (Some(false), true) => format!("\x1b[31m{text}\x1b[0m{fill}"),
                        _ => format!("{text}{fill}"),
                    }
                })
                .collect();
            let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
        }
    }
    let _ = writeln!(
        out,
        "\n* = oversubscribed (more threads than the {cores} available cores). Ratio = Strata ÷ peer median throughput; ≥ 0.95 is parity."
    );
    out
}

// ---------------------------------------------------------------------------------------
// HTML and SVG

const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// A "nice" tick step (1, 2 or 5 × 10ⁿ) giving about five ticks up to `max`.
fn tick_step(max: f64) -> f64 {
    let raw = (max / 5.0).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// One workload's plot: throughput (linear, with ticks) against threads (log₂
/// positions), one polyline with points and min–max error bars per implementation, a
/// legend, and the oversubscribed region shaded and labelled.
pub fn svg(workload: &str, rows: &[&Row], cores: usize) -> String {
    const W: f64 = 760.0;
    const H: f64 = 340.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 540.0;
    const TOP: f64 = 30.0;
    const BOTTOM: f64 = 290.0;
    let impls = impl_names(rows);
    let counts = thread_counts(rows);
    let unit = unit_of(rows);
    let max = rows.iter().map(|r| r.stats.max).fold(0.0, f64::max);
    let (div, prefix) = scale(max);
    let step = tick_step(if max > 0.0 { max / div } else { 1.0 });
    let top_value = ((max / div) / step).ceil().max(1.0) * step;
    let y = |v: f64| BOTTOM - (v / div) / top_value * (BOTTOM - TOP);
    let lo = counts.first().map_or(0.0, |c| (c.0.max(1) as f64).log2());
    let hi = counts.last().map_or(0.0, |c| (c.0.max(1) as f64).log2());
    let x = |t: usize| {
        let l = (t.max(1) as f64).log2();
        if hi > lo {
            LEFT + 20.0 + (l - lo) / (hi - lo) * (RIGHT - LEFT - 40.0)
        } else {
            (LEFT + RIGHT) / 2.0
        }
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12" role="img" aria-label="{}">"#,
        escape(workload)
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>"#
    );
    // Oversubscribed region.
    if let Some(first_over) = counts.iter().position(|c| c.1) {
        let start = if first_over == 0 {
            LEFT
        } else {
            (x(counts[first_over - 1].0) + x(counts[first_over].0)) / 2.0
        };
        let _ = writeln!(
            s,
            r##"<rect x="{start:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="#ececec"/>"##,
            RIGHT - start,
            BOTTOM - TOP
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#777" font-size="11">oversubscribed (threads &gt; {cores} cores)</text>"##,
            start + 6.0,
            TOP + 14.0
        );
    }
    // Y ticks and grid.
    let n_ticks = (top_value / step).round() as usize;
    for i in 0..=n_ticks {
        let v = step * i as f64;
        let py = BOTTOM - v / top_value * (BOTTOM - TOP);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{RIGHT}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            py + 4.0,
            trim_float(v)
        );
    }
    // X ticks.
    for &(t, over) in &counts {
        let px = x(t);
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{BOTTOM}" x2="{px:.1}" y2="{:.1}" stroke="#333"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            BOTTOM + 5.0,
            BOTTOM + 18.0,
            threads_label(t, over)
        );
    }
    // Axes and titles.
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{BOTTOM}" stroke="#333"/><line x1="{LEFT}" y1="{BOTTOM}" x2="{RIGHT}" y2="{BOTTOM}" stroke="#333"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">threads (log₂ scale)</text>"#,
        (LEFT + RIGHT) / 2.0,
        BOTTOM + 38.0
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
        (TOP + BOTTOM) / 2.0,
        (TOP + BOTTOM) / 2.0,
        escape(&format!("throughput ({prefix}{unit})"))
    );
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="18" font-weight="bold">{}</text>"#,
        escape(workload)
    );
    // Series.
    for (i, (name, kind)) in impls.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut pts: Vec<&&Row> = rows.iter().filter(|r| r.impl_name == *name).collect();
        pts.sort_by_key(|r| r.threads);
        let dash = if *kind == Kind::Limit {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let points: Vec<String> = pts
            .iter()
            .map(|r| format!("{:.1},{:.1}", x(r.threads), y(r.stats.median)))
            .collect();
        let _ = writeln!(
            s,
            r#"<g class="series"><polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"><title>{}</title></polyline>"#,
            points.join(" "),
            escape(name)
        );
        for r in &pts {
            let (px, ymin, ymax) = (x(r.threads), y(r.stats.min), y(r.stats.max));
            let _ = writeln!(
                s,
                r#"<path d="M{px:.1},{ymin:.1}V{ymax:.1}M{:.1},{ymin:.1}H{:.1}M{:.1},{ymax:.1}H{:.1}" stroke="{color}" stroke-width="1"/><circle cx="{px:.1}" cy="{:.1}" r="3.5" fill="{color}"><title>{} at {} threads: {} (min {}, max {}) {prefix}{}</title></circle>"#,
                px - 3.0,
                px + 3.0,
                px - 3.0,
                px + 3.0,
                y(r.stats.median),
                escape(name),
                r.threads,
                num(r.stats.median / div),
                num(r.stats.min / div),
                num(r.stats.max / div),
                escape(&unit)
            );
        }
        let _ = writeln!(s, "</g>");
        // Legend entry.
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2"{dash}/><circle cx="{:.1}" cy="{ly:.1}" r="3.5" fill="{color}"/><text x="{:.1}" y="{:.1}">{} ({})</text>"#,
            RIGHT + 20.0,
            RIGHT + 50.0,
            RIGHT + 35.0,
            RIGHT + 58.0,
            ly + 4.0,
            escape(name),
            kind.as_str()
        );
    }
    s.push_str("</svg>\n");
    s
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// The self-contained HTML report: the machine header, then per workload its plot, its
/// throughput table and its ratio table.
pub fn html(
    meta: &Meta,
    rows: &[Row],
    all_ratios: &[Ratio],
    help: &dyn Fn(&str) -> Option<String>,
) -> String {
    let mut s = String::new();
    s.push_str(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>strata-bench report</title>
<style>
body { font-family: sans-serif; max-width: 960px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.good { background: #d9f2d9; } td.bad { background: #f8d7d7; }
.meta td { text-align: left; } h2 { margin-top: 2em; } p.help { color: #555; }
</style></head><body>
<h1>strata-bench report</h1>
"#,
    );
    s.push_str("<table class=\"meta\">\n");
    for (k, v) in meta.header_lines() {
        let _ = writeln!(s, "<tr><th>{k}</th><td>{}</td></tr>", escape(&v));
    }
    s.push_str("</table>\n<p>Each figure is the median of the runs, with the spread (min–max) as error bars. A ratio is Strata ÷ peer median throughput (higher is better); ≥ 0.95 is parity. <code>*</code> and the grey region mark oversubscribed thread counts (more threads than cores). Dashed lines are physical-limit baselines.</p>\n");
    for name in workload_names(rows) {
        let wrows: Vec<&Row> = rows.iter().filter(|r| r.workload == name).collect();
        let wratios: Vec<&Ratio> = all_ratios.iter().filter(|r| r.workload == name).collect();
        let counts = thread_counts(&wrows);
        let _ = writeln!(s, "<h2 id=\"{0}\">{0}</h2>", escape(name));
        if let Some(h) = help(name) {
            let _ = writeln!(s, "<p class=\"help\">{}</p>", escape(&h));
        }
        s.push_str(&svg(name, &wrows, meta.cores));
        // Throughput table.
        let max = wrows.iter().map(|r| r.stats.max).fold(0.0, f64::max);
        let (div, prefix) = scale(max);
        let _ = write!(
            s,
            "<table><tr><th>{}</th>",
            escape(&format!("{prefix}{}", unit_of(&wrows)))
        );
        for &(t, o) in &counts {
            let _ = write!(s, "<th>{}</th>", threads_label(t, o));
        }
        s.push_str("</tr>\n");
        for (imp, kind) in impl_names(&wrows) {
            let _ = write!(s, "<tr><td>{} ({})</td>", escape(&imp), kind.as_str());
            for &(t, _) in &counts {
                match wrows.iter().find(|r| r.threads == t && r.impl_name == imp) {
                    Some(r) => {
                        let _ = write!(
                            s,
                            "<td>{} <small>({}–{})</small></td>",
                            num(r.stats.median / div),
                            num(r.stats.min / div),
                            num(r.stats.max / div)
                        );
                    }
                    None => s.push_str("<td>—</td>"),
                }
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</table>\n");
        // Ratio table.
        let pairs = ratio_pairs(&wratios);
        if pairs.is_empty() {
            s.push_str("<p><em>No Strata ÷ peer ratios for this workload.</em></p>\n");
            continue;
        }
        s.push_str("<table><tr><th>Strata ÷ peer</th>");
        for &(t, o) in &counts {
            let _ = write!(s, "<th>{}</th>", threads_label(t, o));
        }
        s.push_str("</tr>\n");
        for (st, pe) in pairs {
            let _ = write!(s, "<tr><td>{} ÷ {}</td>", escape(&st), escape(&pe));
            for &(t, _) in &counts {
                match wratios
                    .iter()
                    .find(|r| r.threads == t && r.strata_impl == st && r.peer_impl == pe)
                {
                    Some(r) => {
                        let class = if r.is_parity() { "good" } else { "bad" };
                        let _ = write!(s, "<td class=\"{class}\">{:.2}</td>", r.ratio);
                    }
                    None => s.push_str("<td>—</td>"),
                }
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</table>\n");
    }
    s.push_str("</body></html>\n");
    s
}

// ---------------------------------------------------------------------------------------
// README

/// The Markdown that goes between the README markers: a line describing the machine,
/// then one row per (workload, Strata implementation, peer) with the median ratio at
/// each thread count.
pub fn readme_table(meta: &Meta, rows: &[Row]) -> String {
    let all = ratios(rows);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Measured on {}, {} cores, commit `{}`, {} (`strata-bench`, {} mode, median of {} runs). \
         Each cell is Strata ÷ peer median throughput (higher is better; ≥ 0.95 is parity). \
         `*` means oversubscribed: more threads than cores.",
        meta.cpu, meta.cores, meta.commit, meta.date, meta.mode, meta.runs
    );
    s.push('\n');
    let all_refs: Vec<&Row> = rows.iter().collect();
    let counts = thread_counts(&all_refs);
    if all.is_empty() {
        s.push_str("_No Strata ÷ peer comparisons in this report._\n");
        return s;
    }
    s.push_str("| workload | Strata | peer |");
    for &(t, o) in &counts {
        let _ = write!(s, " {} |", threads_label(t, o));
    }
    s.push_str("\n|---|---|---|");
    for _ in &counts {
        s.push_str("---:|");
    }
    s.push('\n');
    let mut keys: Vec<(&str, &str, &str)> = Vec::new();
    for r in &all {
        let k = (
            r.workload.as_str(),
            r.strata_impl.as_str(),
            r.peer_impl.as_str(),
        );
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for (w, st, pe) in keys {
        let _ = write!(
            s,
            "| {} | {} | {} |",
            md_escape(w),
            md_escape(st),
            md_escape(pe)
        );
        for &(t, _) in &counts {
            match all.iter().find(|r| {
                r.workload == w && r.strata_impl == st && r.peer_impl == pe && r.threads == t
            }) {
                Some(r) => {
                    let _ = write!(s, " {:.2} |", r.ratio);
                }
                None => s.push_str(" — |"),
            }
        }
        s.push('\n');
    }
    s.push_str(&spread_table(rows));
    s
}

/// A fairness spread as shown in tables: two decimals, `∞` if a thread did nothing.
fn spread_text(spread: f64) -> String {
    if spread.is_finite() {
        format!("{spread:.2}")
    } else {
        "∞".to_owned()
    }
}

/// The README's fairness table: one row per (workload, implementation) that reports a
/// spread, with the median spread at each thread count. Empty if no row has one.
fn spread_table(rows: &[Row]) -> String {
    let with: Vec<&Row> = rows.iter().filter(|r| r.spread.is_some()).collect();
    let mut s = String::new();
    if with.is_empty() {
        return s;
    }
    let counts = thread_counts(&with);
    s.push_str(
        "\nFairness: the most lock acquisitions of one thread ÷ the fewest, after a fixed time \
         (median over runs; 1.00 is even, ∞ means a thread never got the lock).\n\n",
    );
    s.push_str("| workload | implementation |");
    for &(t, o) in &counts {
        let _ = write!(s, " {} |", threads_label(t, o));
    }
    s.push_str("\n|---|---|");
    for _ in &counts {
        s.push_str("---:|");
    }
    s.push('\n');
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for r in &with {
        let k = (r.workload.as_str(), r.impl_name.as_str());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for (w, i) in keys {
        let _ = write!(s, "| {} | {} |", md_escape(w), md_escape(i));
        for &(t, _) in &counts {
            match with
                .iter()
                .find(|r| r.workload == w && r.impl_name == i && r.threads == t)
                .and_then(|r| r.spread)
            {
                Some(v) => {
                    let _ = write!(s, " {} |", spread_text(v));
                }
                None => s.push_str(" — |"),
            }
        }
        s.push('\n');
    }
    s
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Replaces the lines strictly between the marker lines of `readme` with `table`.
pub fn replace_between_markers(
    readme: &str,
    table: &str,
    path: &Path,
    markers: &Markers,
) -> Result<String, ReportError> {
    let lines: Vec<&str> = readme.split_inclusive('\n').collect();
    let find = |marker: &str| {
        lines
            .iter()
            .position(|l| l.trim() == marker)
            .ok_or_else(|| ReportError::MissingMarker {
                path: path.to_owned(),
                marker: marker.to_owned(),
                begin: markers.begin.clone(),
                end: markers.end.clone(),
            })
    };
    let begin = find(&markers.begin)?;
    let end = find(&markers.end)?;
    if end < begin {
        return Err(ReportError::MarkerOrder {
            path: path.to_owned(),
            begin: markers.begin.clone(),
            end: markers.end.clone(),
        });
    }
    let mut out: String = lines[..=begin].concat();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(table);
    if !table.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&lines[end..].concat());
    Ok(out)
}

/// Reads `report_csv`, computes the ratios and rewrites the table between the markers
/// of section `section` (the default markers for `None`) of `readme`.
pub fn update_readme(
    report_csv: &Path,
    readme: &Path,
    section: Option<&str>,
) -> Result<(), ReportError> {
    let (meta, rows) = read_report_csv(report_csv)?;
    let text = std::fs::read_to_string(readme).map_err(|source| ReportError::Read {
        path: readme.to_owned(),
        source,
    })?;
    let new = replace_between_markers(
        &text,
        &readme_table(&meta, &rows),
        readme,
        &Markers::section(section),
    )?;
    std::fs::write(readme, new).map_err(|source| ReportError::Write {
        path: readme.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            date: "2026-05-01T12:00:00Z".into(),
            commit: "abc1234-dirty".into(),
            rustc: "rustc 1.95.0 (59807616e 2026-04-14)".into(),
            cpu: "Test CPU @ 3.00GHz".into(),
            cores: 2,
            kernel: "6.1.0".into(),
            mode: "quick".into(),
            duration_ms: 100,
            runs: 5,
        }
    }

    fn row(workload: &str, name: &str, kind: Kind, threads: usize, median: f64) -> Row {
        Row {
            workload: workload.into(),
            impl_name: name.into(),
            kind,
            threads,
            oversubscribed: threads > 2,
            stats: Stats {
                runs: 5,
                median,
                min: median * 0.5,
                max: median * 1.5,
            },
            unit: "ops/s".into(),
            spread: None,
        }
    }

    fn sample_rows() -> Vec<Row> {
        let mut v = Vec::new();
        for t in [1, 2, 4, 8, 16] {
            v.push(row(
                "reclaim/pin",
                "strata-epoch",
                Kind::Strata,
                t,
                2.0e6 * t as f64,
            ));
            v.push(row(
                "reclaim/pin",
                "crossbeam-epoch",
                Kind::Peer,
                t,
                2.5e6 * t as f64,
            ));
            v.push(row("reclaim/pin", "fetch_add", Kind::Limit, t, 1.0e8));
        }
        v.push(row("baseline/with,comma", "x\"q", Kind::Limit, 1, 1234.5));
        for (t, spread) in [(2, 1.25), (4, f64::INFINITY)] {
            let mut r = row("lock/counter", "strata-adaptive", Kind::Strata, t, 1.0e7);
            r.spread = Some(spread);
            v.push(r);
        }
        v
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_777_636_861), "2026-05-01T12:01:01Z");
    }

    #[test]
    fn csv_round_trip() {
        let rows = sample_rows();
        let text = report_csv(&meta(), &rows);
        assert!(text.starts_with("# strata-bench report\n# date: 2026-05-01T12:00:00Z\n"));
        assert!(text.contains("\nworkload,impl,kind,threads,oversubscribed,runs,median_ops_per_s,min_ops_per_s,max_ops_per_s,unit,median_spread\n"));
        let (m, back) = parse_report_csv(&text, "test").unwrap();
        assert_eq!(m, meta());
        // Figures are written to 0.1 ops/s.
        assert_eq!(back.len(), rows.len());
        for (b, r) in back.iter().zip(&rows) {
            let close = |x: f64, y: f64| (x - y).abs() <= 0.05 + 1e-9;
            assert!(close(b.stats.median, r.stats.median) && close(b.stats.min, r.stats.min));
            assert!(close(b.stats.max, r.stats.max), "{b:?} vs {r:?}");
            let exact = Row {
                stats: r.stats,
                ..b.clone()
            };
            assert_eq!(&exact, r);
        }
        assert_eq!(ratios(&back), ratios(&rows));
    }

    #[test]
    fn csv_without_the_spread_column_still_reads() {
        let text = format!(
            "{REPORT_HEADER_V1}\nw,i,strata,2,false,5,10.0,9.0,11.0,ops/s\n"
        );
        let (_, rows) = parse_report_csv(&text, "old.csv").unwrap();
        assert_eq!((rows.len(), rows[0].spread, rows[0].stats.median), (1, None, 10.0));
        // The new header needs its eleventh field.
        let short = format!("{REPORT_HEADER}\nw,i,strata,2,false,5,10.0,9.0,11.0,ops/s\n");
        let e = parse_report_csv(&short, "x.csv").unwrap_err().to_string();
        assert!(e.contains("expected 11 fields, found 10"), "{e}");
    }

    #[test]
    fn readme_shows_the_fairness_spread() {
        let t = readme_table(&meta(), &sample_rows());
        assert!(t.contains("Fairness:"), "{t}");
        assert!(t.contains("| lock/counter | strata-adaptive | 1.25 | ∞ |"), "{t}");
        let none: Vec<Row> = sample_rows().into_iter().filter(|r| r.spread.is_none()).collect();
        assert!(!readme_table(&meta(), &none).contains("Fairness:"));
    }

    #[test]
    fn csv_errors_are_clear() {
        let e = parse_report_csv("# only comments\n", "x.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no column header"), "{e}");
        let e = parse_report_csv("a,b\n", "x.csv").unwrap_err().to_string();
        assert!(e.starts_with("x.csv:1:"), "{e}");
        let bad = format!("{REPORT_HEADER}\nw,i,strata,two,false,5,1,1,1,ops/s,\n");
        let e = parse_report_csv(&bad, "x.csv").unwrap_err().to_string();
        assert!(e.contains("x.csv:2:") && e.contains("threads `two`"), "{e}");
        let bad = format!("{REPORT_HEADER}\nw,i,alien,1,false,5,1,1,1,ops/s,\n");
        assert!(parse_report_csv(&bad, "x").is_err());
        let e = read_report_csv(Path::new("/nonexistent/report.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot read /nonexistent/report.csv"), "{e}");
    }

    #[test]
    fn ratios_csv_lists_pairs() {
        let text = ratios_csv(&ratios(&sample_rows()));
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(RATIOS_HEADER));
        assert_eq!(
            lines.next(),
            Some("reclaim/pin,1,false,strata-epoch,crossbeam-epoch,0.8000")
        );
        assert_eq!(text.lines().count(), 6);
        assert!(text.contains("reclaim/pin,16,true,"));
    }

    #[test]
    fn readme_markers() {
        let rows = sample_rows();
        let table = readme_table(&meta(), &rows);
        assert!(table.contains("Test CPU @ 3.00GHz, 2 cores, commit `abc1234-dirty`"));
        assert!(table.contains("| workload | Strata | peer | 1 | 2 | 4* | 8* | 16* |"));
        assert!(table.contains(
            "| reclaim/pin | strata-epoch | crossbeam-epoch | 0.80 | 0.80 | 0.80 | 0.80 | 0.80 |"
        ));
        let fixture = include_str!("../tests/fixtures/README.md");
        let p = Path::new("README.md");
        let m = Markers::section(None);
        let out = replace_between_markers(fixture, &table, p, &m).unwrap();
        assert!(out.starts_with("# Fixture\n"));
        assert!(out.contains(&format!("{BEGIN_MARKER}\n{table}{END_MARKER}\n")));
        assert!(!out.contains("old table"));
        assert!(out.ends_with("Text after the table.\n"));
        // Idempotent.
        assert_eq!(replace_between_markers(&out, &table, p, &m).unwrap(), out);

        let missing = fixture.replace(END_MARKER, "");
        let e = replace_between_markers(&missing, &table, p, &m).unwrap_err();
        assert!(matches!(
            &e,
            ReportError::MissingMarker { marker, .. } if marker == END_MARKER
        ));
        assert!(
            e.to_string()
                .contains("README.md: no line `<!-- strata-bench:end -->`")
        );
        let e = replace_between_markers("no markers\n", &table, p, &m).unwrap_err();
        assert!(matches!(
            &e,
            ReportError::MissingMarker { marker, .. } if marker == BEGIN_MARKER
        ));
        let swapped = format!("{END_MARKER}\n{BEGIN_MARKER}\n");
        assert!(matches!(
            replace_between_markers(&swapped, &table, p, &m),
            Err(ReportError::MarkerOrder { .. })
        ));

        // A named section leaves the default table alone, and the other way round.
        let sync = Markers::section(Some("sync"));
        let both = format!("{out}{}\nold sync table\n{}\n", sync.begin, sync.end);
        let replaced = replace_between_markers(&both, "sync table\n", p, &sync).unwrap();
        assert!(replaced.starts_with(&out));
        assert!(replaced.ends_with("<!-- strata-bench:begin sync -->\nsync table\n<!-- strata-bench:end sync -->\n"));
        let e = replace_between_markers(&out, &table, p, &sync).unwrap_err();
        assert!(e.to_string().contains("no line `<!-- strata-bench:begin sync -->`"));
    }

    #[test]
    fn update_readme_on_disk() {
        let dir = std::env::temp_dir().join(format!("strata-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("report.csv");
        let readme = dir.join("README.md");
        std::fs::write(&csv, report_csv(&meta(), &sample_rows())).unwrap();
        std::fs::write(&readme, include_str!("../tests/fixtures/README.md")).unwrap();
        update_readme(&csv, &readme, None).unwrap();
        let text = std::fs::read_to_string(&readme).unwrap();
        assert!(text.contains("| reclaim/pin | strata-epoch | crossbeam-epoch |"));
        std::fs::write(&readme, "no markers\n").unwrap();
        assert!(matches!(
            update_readme(&csv, &readme, None),
            Err(ReportError::MissingMarker { .. })
        ));
        assert!(matches!(
            update_readme(&dir.join("missing.csv"), &readme, None),
            Err(ReportError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn svg_is_well_formed_with_one_polyline_per_impl() {
        let rows = sample_rows();
        let wrows: Vec<&Row> = rows
            .iter()
            .filter(|r| r.workload == "reclaim/pin")
            .collect();
        let s = svg("reclaim/pin", &wrows, 2);
        assert!(s.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<svg").count(), 1);
        assert_eq!(s.matches("<polyline").count(), 3);
        assert_eq!(s.matches("</polyline>").count(), 3);
        assert!(s.contains("oversubscribed (threads &gt; 2 cores)"));
        assert!(s.contains(">16*</text>"));
        // Every point of every series, with its error bar.
        assert_eq!(s.matches("<circle").count(), 15 + 3);
        // Tags balance: every opened element is closed or self-closing.
        let opens = s.matches('<').count();
        let closes = s.matches("</").count();
        let self_closing = s.matches("/>").count();
        assert_eq!(opens, 2 * closes + self_closing, "unbalanced tags:\n{s}");
        // Text is escaped.
        let odd: Vec<&Row> = rows.iter().filter(|r| r.impl_name == "x\"q").collect();
        let s = svg("a<b", &odd, 2);
        assert!(s.contains("a&lt;b") && s.contains("x&quot;q") && !s.contains("oversubscribed"));
    }

    #[test]
    fn html_and_terminal_contain_every_workload() {
        let rows = sample_rows();
        let help = |w: &str| (w == "reclaim/pin").then(|| "Pins & unpins.".to_owned());
        let h = html(&meta(), &rows, &ratios(&rows), &help);
        assert_eq!(h.matches("<svg").count(), 3);
        assert!(h.contains("Pins &amp; unpins."));
        assert!(h.contains("<td class=\"bad\">0.80</td>"));
        let t = terminal(&rows, &help, 2, true);
        assert!(t.contains("reclaim/pin  [median (min–max), M ops/s]"));
        assert!(t.contains("×N: fairness spread") && t.contains(" ×1.25") && t.contains(" ×∞"));
        assert!(t.contains("strata-epoch / crossbeam-epoch"));
        assert!(t.contains("\x1b[31m0.80"));
        assert!(t.contains("\n  16*"));
        let plain = terminal(&rows, &help, 2, false);
        assert!(!plain.contains('\x1b'));
        assert!(plain.contains("baseline/with,comma  [median (min–max), k ops/s]"));
    }
}
