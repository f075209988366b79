//! The end-to-end figures, their table (with the goals at 2,000 pods) and its place in
//! docs/benchmarks.md (between `<!-- e2e:begin -->` and `<!-- e2e:end -->`).
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Figures {
    pub scripted: Duration,
    pub cold: Duration,
    pub cold_nb: Duration,
    pub cold_pods: Duration,
    pub cold_cpu: f64,
    pub edit: Vec<Duration>,
    pub label: Vec<Duration>,
    pub new_pod: Vec<Duration>,
    pub pod_drift: Vec<Duration>,
    pub nb_drift: Vec<Duration>,
    /// KiB.
    pub rss_cold: u64,
    pub rss: u64,
    pub hwm: u64,
    pub cpu: f64,
    pub transactions: usize,
}

pub struct Size {
    pub n: usize,
    pub routes: usize,
    pub f: Figures,
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
    format!("{:.0} / {:.0} ms", pct(v, 0.5), pct(v, 0.99))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub fn print(s: &Size) {
    let f = &s.f;
    println!(
        "  cold {:.2} s (NB {:.2} s, pods {:.2} s) vs scripted {:.2} s; edit {}; label {}; new pod {}; pod route drift {}; NB row drift {}; RSS {} peak {}; CPU {:.1} s; {} NB transactions",
        f.cold.as_secs_f64(),
        f.cold_nb.as_secs_f64(),
        f.cold_pods.as_secs_f64(),
        f.scripted.as_secs_f64(),
        lat(&f.edit),
        lat(&f.label),
        lat(&f.new_pod),
        lat(&f.pod_drift),
        lat(&f.nb_drift),
        mib(f.rss),
        mib(f.hwm),
        f.cpu,
        f.transactions,
    );
}

/// One column per size; the goal column applies to 2,000 pods.
pub fn table(rows: &[Size]) -> String {
    let mut out = String::from("| figure (p50 / p99 where two) |");
    for r in rows {
        out.push_str(&format!(" N = {} ({} Routes) |", r.n, r.routes));
    }
    out.push_str(" goal at 2,000 |\n|---|");
    for _ in rows {
        out.push_str("---|");
    }
    out.push_str("---|\n");
    let mut line = |name: &str, cell: &dyn Fn(&Figures) -> String, goal: &str| {
        out.push_str(&format!("| {name} |"));
        for r in rows {
            out.push_str(&format!(" {} |", cell(&r.f)));
        }
        out.push_str(&format!(" {goal} |\n"));
    };
    line(
        "cold convergence, all pods and NB rows",
        &|f| format!("{:.2} s", f.cold.as_secs_f64()),
        "<= 3 s, ahead of scripted",
    );
    line(
        "of which NB rows / pod routes in place",
        &|f| {
            format!(
                "{:.2} / {:.2} s",
                f.cold_nb.as_secs_f64(),
                f.cold_pods.as_secs_f64()
            )
        },
        "",
    );
    line(
        "scripted baseline (one chained ovn-nbctl, ip -n NS -batch per pod)",
        &|f| format!("{:.2} s", f.scripted.as_secs_f64()),
        "",
    );
    line(
        "Route edit -> its pods and NB rows",
        &|f| lat(&f.edit),
        "p99 <= 250 ms",
    );
    line("pod label change -> NB and the pod", &|f| lat(&f.label), "");
    line(
        "new pod (netns ready) appears in the input -> its routes and NB",
        &|f| lat(&f.new_pod),
        "p99 <= 100 ms after its netns appears",
    );
    line(
        "pod route deleted by hand -> back",
        &|f| lat(&f.pod_drift),
        "p99 <= 1 s",
    );
    line(
        "NB policy deleted by hand -> back",
        &|f| lat(&f.nb_drift),
        "",
    );
    line("VmRSS after cold convergence", &|f| mib(f.rss_cold), "");
    line(
        "VmRSS steady / VmHWM peak",
        &|f| format!("{} / {}", mib(f.rss), mib(f.hwm)),
        "<= 40 MiB",
    );
    line(
        "CPU seconds: cold convergence / whole run",
        &|f| format!("{:.1} / {:.1} s", f.cold_cpu, f.cpu),
        "",
    );
    line(
        "NB transactions sent (NB log)",
        &|f| f.transactions.to_string(),
        "",
    );
    out
}

fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "Machine: nproc = {nproc}, kernel {}, load average at the end of the run {}.",
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
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
    std::fs::write(path, new).unwrap();
    println!("table written to {path}");
}
