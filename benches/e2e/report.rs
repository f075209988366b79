//! The end-to-end figures, their table (both sources side by side, one column per size,
//! the growth from the smallest to the largest size and the goal at 2,000 pods) and its
//! place in docs/benchmarks.md (between `<!-- e2e:begin -->` and `<!-- e2e:end -->`).
use std::time::Duration;

/// What one source's `run` did at one size.
#[derive(Debug, Default)]
pub struct Figures {
    pub cold: Duration,
    pub cold_nb: Duration,
    pub cold_cpu: f64,
    pub edit: Vec<Duration>,
    pub edit_nb: Vec<Duration>,
    pub label: Vec<Duration>,
    pub new_pod: Vec<Duration>,
    pub pod_drift: Vec<Duration>,
    pub nb_drift: Vec<Duration>,
    /// Share of one core while nothing changed.
    pub idle: f64,
    /// KiB.
    pub rss_cold: u64,
    pub rss: u64,
    pub hwm: u64,
    /// Samples whose notifications were lost and which were timed from dumps instead.
    pub by_dump: usize,
    /// Load average (1 min) at the start and the end of this source's round.
    pub load: (f64, f64),
}

/// One size: the scripted baseline, `apply`, and `run` with each source.
#[derive(Debug, Default)]
pub struct Size {
    pub n: usize,
    pub routes: usize,
    pub scripted: Duration,
    pub apply_cold: Duration,
    pub apply_cold_peak: u64,
    pub apply_noop: Vec<Duration>,
    pub apply_noop_peak: u64,
    pub kube: Figures,
    pub file: Figures,
}

pub fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn pct(v: &[Duration], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort();
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)].as_secs_f64() * 1e3
}

fn lat(v: &[Duration]) -> String {
    format!("{:.0} / {:.0}", pct(v, 0.5), pct(v, 0.99))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn print(s: &Size) {
    println!(
        "  N = {}: scripted {:.2} s; apply cold {:.2} s (peak {:.1} MiB), no-op {} s",
        s.n,
        s.scripted.as_secs_f64(),
        s.apply_cold.as_secs_f64(),
        mib(s.apply_cold_peak),
        s.apply_noop
            .iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" / ")
    );
    for (name, f) in [("kubernetes", &s.kube), ("file", &s.file)] {
        println!(
            "  {name}: cold {:.2} s (NB {:.2} s, CPU {:.1} s); edit {} ms (NB {}); label {}; new pod {}; pod drift {}; NB drift {}; idle {:.2}% of a core; RSS {:.1} / {:.1} peak MiB; timed from dumps {}; load {:.1} -> {:.1}",
            f.cold.as_secs_f64(),
            f.cold_nb.as_secs_f64(),
            f.cold_cpu,
            lat(&f.edit),
            lat(&f.edit_nb),
            lat(&f.label),
            lat(&f.new_pod),
            lat(&f.pod_drift),
            lat(&f.nb_drift),
            f.idle * 100.0,
            mib(f.rss),
            mib(f.hwm),
            f.by_dump,
            f.load.0,
            f.load.1,
        );
    }
}

/// A row over the sizes: each cell `kubernetes / file`, then the growth of the
/// Kubernetes figure from the first size to the last, then the goal.
fn row(
    out: &mut String,
    rows: &[Size],
    name: &str,
    cell: &dyn Fn(&Figures) -> f64,
    unit: &str,
    digits: usize,
    goal: &str,
) {
    out.push_str(&format!("| {name} |"));
    for r in rows {
        out.push_str(&format!(
            " {:.*} / {:.*}{unit} |",
            digits,
            cell(&r.kube),
            digits,
            cell(&r.file)
        ));
    }
    match (rows.first(), rows.last()) {
        (Some(a), Some(b)) if rows.len() > 1 => {
            out.push_str(&format!(" {:.1}x |", cell(&b.kube) / cell(&a.kube)))
        }
        _ => out.push_str(" - |"),
    }
    out.push_str(&format!(" {goal} |\n"));
}

/// A row of one-off figures (no source): one cell per size.
fn plain(out: &mut String, rows: &[Size], name: &str, cell: &dyn Fn(&Size) -> String, goal: &str) {
    out.push_str(&format!("| {name} |"));
    for r in rows {
        out.push_str(&format!(" {} |", cell(r)));
    }
    out.push_str(&format!(" - | {goal} |\n"));
}

pub fn table(rows: &[Size]) -> String {
    let mut out =
        String::from("| figure (cells: Kubernetes source / file source; p50 / p99 in ms) |");
    for r in rows {
        out.push_str(&format!(" N = {} ({}k routes) |", r.n, r.routes / 1000));
    }
    out.push_str(" growth, Kubernetes | goal at 2,000 |\n|---|");
    for _ in rows {
        out.push_str("---|");
    }
    out.push_str("---|---|\n");
    let o = &mut out;
    row(
        o,
        rows,
        "cold: every pod's routes and the NB rows in place (s)",
        &|f| f.cold.as_secs_f64(),
        "",
        2,
        "<= 3 s, linear",
    );
    row(
        o,
        rows,
        "of which the NB rows (s)",
        &|f| f.cold_nb.as_secs_f64(),
        "",
        2,
        "",
    );
    row(
        o,
        rows,
        "CPU seconds of the cold start",
        &|f| f.cold_cpu,
        "",
        1,
        "",
    );
    row(
        o,
        rows,
        "Route edit -> all affected pods, p50",
        &|f| pct(&f.edit, 0.5),
        "",
        0,
        "",
    );
    row(
        o,
        rows,
        "Route edit -> all affected pods, p99",
        &|f| pct(&f.edit, 0.99),
        "",
        0,
        "<= 250 ms",
    );
    row(
        o,
        rows,
        "of which the NB, p99",
        &|f| pct(&f.edit_nb, 0.99),
        "",
        0,
        "",
    );
    row(
        o,
        rows,
        "pod label change -> its routes and the NB, p99",
        &|f| pct(&f.label, 0.99),
        "",
        0,
        "",
    );
    row(
        o,
        rows,
        "new pod -> its routes and the NB, p50",
        &|f| pct(&f.new_pod, 0.5),
        "",
        0,
        "",
    );
    row(
        o,
        rows,
        "new pod -> its routes and the NB, p99",
        &|f| pct(&f.new_pod, 0.99),
        "",
        0,
        "<= 100 ms",
    );
    row(
        o,
        rows,
        "our route deleted by hand -> back, p99",
        &|f| pct(&f.pod_drift, 0.99),
        "",
        1,
        "<= 50 ms",
    );
    row(
        o,
        rows,
        "NB policy deleted by hand -> back, p99",
        &|f| pct(&f.nb_drift, 0.99),
        "",
        0,
        "",
    );
    row(
        o,
        rows,
        "idle CPU, % of a core",
        &|f| f.idle * 100.0,
        "",
        2,
        "<= 0.5%",
    );
    row(
        o,
        rows,
        "VmRSS after the cold start (MiB)",
        &|f| mib(f.rss_cold),
        "",
        1,
        "",
    );
    row(
        o,
        rows,
        "VmRSS steady (MiB)",
        &|f| mib(f.rss),
        "",
        1,
        "<= 40 MiB",
    );
    row(
        o,
        rows,
        "VmHWM peak (MiB)",
        &|f| mib(f.hwm),
        "",
        1,
        "<= 40 MiB",
    );
    plain(
        o,
        rows,
        "scripted baseline (one chained ovn-nbctl, ip -n NS -batch per pod)",
        &|s| format!("{:.2} s", s.scripted.as_secs_f64()),
        "",
    );
    plain(
        o,
        rows,
        "`apply` cold (file input), peak RSS",
        &|s| {
            format!(
                "{:.2} s, {:.0} MiB",
                s.apply_cold.as_secs_f64(),
                mib(s.apply_cold_peak)
            )
        },
        "",
    );
    plain(
        o,
        rows,
        "`apply` no-op, 3 runs, peak RSS",
        &|s| {
            let t: Vec<String> = s
                .apply_noop
                .iter()
                .map(|d| format!("{:.2}", d.as_secs_f64()))
                .collect();
            format!("{} s, {:.0} MiB", t.join(" / "), mib(s.apply_noop_peak))
        },
        "<= 0.3 s",
    );
    plain(
        o,
        rows,
        "load average (1 min) during the Kubernetes / file rounds",
        &|s| {
            format!(
                "{:.1}-{:.1} / {:.1}-{:.1}",
                s.kube.load.0, s.kube.load.1, s.file.load.0, s.file.load.1
            )
        },
        "",
    );
    plain(
        o,
        rows,
        "samples timed from dumps (listener lost notifications)",
        &|s| format!("{} / {}", s.kube.by_dump, s.file.by_dump),
        "",
    );
    out
}

fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "Machine: nproc = {nproc}, kernel {}; load average (1 min) per round in the last rows.",
        kernel.trim(),
    )
}

/// Replaces the text between the markers in docs/benchmarks.md (appends the section when
/// the markers are missing).
pub fn write_docs(table: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/benchmarks.md");
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    let (begin, end) = ("<!-- e2e:begin -->", "<!-- e2e:end -->");
    let body = format!("{begin}\n{}\n\n{table}{end}", machine());
    let new = match (doc.find(begin), doc.find(end)) {
        (Some(b), Some(e)) if b < e => format!("{}{body}{}", &doc[..b], &doc[e + end.len()..]),
        _ => format!("{doc}\n## End to end\n\n{body}\n"),
    };
    std::fs::write(path, new).expect("docs/benchmarks.md");
    println!("table written to {path}");
}
