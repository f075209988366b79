//! What one round measured, printed beside the goals (issue 16, at 50,000 pods / 5,000
//! Routes on 2 cores), and the growth table over the sizes.
use std::time::Duration;

use super::figures::{Samples, fmt_ms};

/// Route status writes during a churn of pod label changes.
#[derive(Clone, Debug, Default)]
pub struct Churn {
    pub changes: usize,
    pub secs: f64,
    pub status_writes: usize,
    pub routes_written: usize,
    pub max_per_route: usize,
    /// Writes one Route may get in the window at one per interval.
    pub bound: usize,
    pub report_writes: usize,
}

#[derive(Clone, Debug, Default)]
pub struct Round {
    pub source: &'static str,
    pub pods: usize,
    pub routes: usize,
    /// Populating the API server, or writing the files.
    pub setup: Duration,
    pub input_bytes: u64,
    pub nb_load: Duration,
    /// Lease won (kubernetes) or process start (file) until the NB holds every row.
    pub cold: Option<Duration>,
    pub ready: Option<Duration>,
    /// Listing every kind the controller watches, in the benchmark (kube-rs, 500 a page).
    pub listing: Option<Duration>,
    pub floor: Duration,
    pub floor_ops: usize,
    pub edit: Samples,
    pub relabel: Samples,
    pub add: Samples,
    pub delete: Samples,
    pub service: Samples,
    pub ns_move: Samples,
    pub behind: Samples,
    pub idle_cpu: f64,
    pub idle_txns: usize,
    /// API writes (other than the Lease's) during the idle window (Kubernetes source).
    pub idle_api_writes: Option<usize>,
    pub rss: u64,
    pub hwm: u64,
    pub ovsdb_rss: u64,
    pub largest_txn: usize,
    pub txns: usize,
    pub churn: Option<Churn>,
    pub report_bytes: Option<usize>,
    /// Compaction + dropped watches -> a change made just after is in the NB; rows deleted
    /// meanwhile.
    pub relist: Option<(Option<Duration>, usize)>,
    pub audit_repairs: Option<f64>,
    pub held: Option<super::mem::Held>,
    /// After the Lease was won, until every Route's status had been written once; the status
    /// writes by then.
    pub statuses: Option<(Duration, usize)>,
    /// Gateway pod changes -> the NB's ECMP set (Kubernetes source).
    pub gateways: Option<super::gateways::GatewayFigures>,
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("not converged".into(), |d| {
        format!("{:.2} s", d.as_secs_f64())
    })
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

impl Round {
    /// The smoke round: every figure was measured and nothing was missed.
    pub fn check(&self) {
        assert!(self.cold.is_some(), "{}: never converged", self.source);
        for (name, s) in [
            ("edit", &self.edit),
            ("relabel", &self.relabel),
            ("add", &self.add),
            ("delete", &self.delete),
            ("service", &self.service),
            ("namespace move", &self.ns_move),
            ("behind", &self.behind),
        ] {
            assert!(
                !s.0.is_empty() && s.missed() == 0,
                "{}: {name}: {:?}",
                self.source,
                s
            );
        }
        assert!(self.rss > 0 && self.hwm >= self.rss && self.ovsdb_rss > 0);
        if let Some((d, deleted)) = self.relist {
            assert!(d.is_some(), "the change after the relist never showed");
            assert_eq!(deleted, 0, "the relist deleted rows");
        }
        if let Some(c) = &self.churn {
            assert!(
                c.max_per_route <= c.bound,
                "status writes over the bound: {c:?}"
            );
        }
        assert_eq!(self.audit_repairs.unwrap_or(0.0), 0.0);
        if let Some(g) = &self.gateways {
            for (name, s) in &g.kinds {
                assert!(!s.0.is_empty() && s.missed() == 0, "gateway {name}: {s:?}");
            }
        }
    }
}

pub fn print_round(r: &Round) {
    println!(
        "-- {} source, {} pods / {} Routes",
        r.source, r.pods, r.routes
    );
    println!(
        "setup {:.1} s ({} input bytes); NB base loaded in {:.1} s",
        r.setup.as_secs_f64(),
        r.input_bytes,
        r.nb_load.as_secs_f64()
    );
    println!(
        "cold {} (ready after {}); listing {}; raw floor {:.2} s ({} operations)",
        secs(r.cold),
        secs(r.ready),
        secs(r.listing),
        r.floor.as_secs_f64(),
        r.floor_ops
    );
    for (name, s) in [
        ("Route edit", &r.edit),
        ("pod relabel", &r.relabel),
        ("pod add", &r.add),
        ("pod delete", &r.delete),
        ("Service IP change", &r.service),
        ("namespace relabel (500 pods)", &r.ns_move),
        ("pod relabel right behind it", &r.behind),
    ] {
        println!("{name} -> NB p50 / p99: {}", s.show());
    }
    println!(
        "idle CPU {:.2}% of a core ({} NB transactions while idle); RSS {} steady, {} peak; ovsdb-server {}",
        r.idle_cpu,
        r.idle_txns,
        mib(r.rss),
        mib(r.hwm),
        mib(r.ovsdb_rss)
    );
    if let Some(n) = r.idle_api_writes {
        println!("API writes while idle (statuses, node reports; not the Lease): {n}");
    }
    println!(
        "largest NB transaction: {} rows of ours; {} transactions",
        r.largest_txn, r.txns
    );
    if let Some(c) = &r.churn {
        println!(
            "churn: {} pod label changes in {:.1} s: {} Route status writes over {} Routes, at most {} per Route (bound {}); {} node report writes",
            c.changes,
            c.secs,
            c.status_writes,
            c.routes_written,
            c.max_per_route,
            c.bound,
            c.report_writes
        );
    }
    if let Some((d, writes)) = r.statuses {
        println!(
            "every Route's status written {:.1} s after the Lease was won ({writes} status writes for {} Routes; the client's rate limit paces them)",
            d.as_secs_f64(),
            r.routes
        );
    }
    if let Some(b) = r.report_bytes {
        println!("this node's RouteNodeReport: {b} bytes");
    }
    if let Some(g) = &r.gateways {
        println!(
            "gateway pod change -> NB ECMP set p50 / p99 (goal <= 100 ms): all {}",
            g.all().show()
        );
        for (name, s) in &g.kinds {
            println!("   {name}: {}", s.show());
        }
    }
    if let Some((d, deleted)) = r.relist {
        println!(
            "relist after 410 -> a change made meanwhile in the NB: {}; rows deleted meanwhile: {deleted}",
            secs(d)
        );
    }
}

fn cell(s: &Samples) -> String {
    s.show()
}

/// The table of the largest size beside the goals, and the growth over sizes.
pub fn print_summary(rounds: &[Round]) {
    let Some(max) = rounds.iter().map(|r| r.pods).max() else {
        return;
    };
    println!("\n## At {max} pods");
    println!("| figure | goal | kubernetes | file |");
    println!("|---|---|---|---|");
    let at = |src: &str| rounds.iter().find(|r| r.pods == max && r.source == src);
    let (k, f) = (at("kubernetes"), at("file"));
    let row = |name: &str, goal: &str, g: &dyn Fn(&Round) -> String| {
        println!(
            "| {name} | {goal} | {} | {} |",
            k.map_or("-".into(), g),
            f.map_or("-".into(), g)
        );
    };
    row(
        "cold: Lease won (file: start) -> NB converged",
        "<= 1.5x floor + listing",
        &|r| secs(r.cold),
    );
    row("raw single-transaction floor (same rows)", "", &|r| {
        format!("{:.2} s", r.floor.as_secs_f64())
    });
    row("listing every kind (kube-rs, 500 a page)", "", &|r| {
        secs(r.listing)
    });
    row("ready after start", "", &|r| secs(r.ready));
    row(
        "Route edit -> NB p50 / p99",
        "p99 <= 5 ms (file 20 ms)",
        &|r| cell(&r.edit),
    );
    row("pod relabel -> NB", "p99 <= 5 ms (file 20 ms)", &|r| {
        cell(&r.relabel)
    });
    row("pod add -> NB", "p99 <= 5 ms (file 20 ms)", &|r| {
        cell(&r.add)
    });
    row("pod delete -> NB", "", &|r| cell(&r.delete));
    row("Service IP change -> NB", "", &|r| cell(&r.service));
    row("namespace relabel moving 500 pods", "<= 50 ms", &|r| {
        cell(&r.ns_move)
    });
    row(
        "pod relabel behind that relabel",
        "<= 100 ms behind",
        &|r| cell(&r.behind),
    );
    row("idle CPU", "<= 0.2% of a core", &|r| {
        format!("{:.2}%", r.idle_cpu)
    });
    row(
        "RSS steady / peak",
        "<= 300 MiB, below ovsdb-server",
        &|r| format!("{} / {}", mib(r.rss), mib(r.hwm)),
    );
    row("ovsdb-server RSS (same NB)", "", &|r| mib(r.ovsdb_rss));
    row("largest NB transaction (rows of ours)", "", &|r| {
        r.largest_txn.to_string()
    });
    println!("\n## Growth (kubernetes source; file source below)");
    for src in ["kubernetes", "file"] {
        let rs: Vec<&Round> = rounds.iter().filter(|r| r.source == src).collect();
        if rs.is_empty() {
            continue;
        }
        print!("| {src} |");
        for r in &rs {
            print!(" {} pods |", r.pods);
        }
        println!();
        println!("|---|{}", "---|".repeat(rs.len()));
        let line = |name: &str, f: &dyn Fn(&Round) -> String| {
            print!("| {name} |");
            for r in &rs {
                print!(" {} |", f(r));
            }
            println!();
        };
        line("cold", &|r| secs(r.cold));
        line("floor", &|r| format!("{:.2} s", r.floor.as_secs_f64()));
        line("Route edit p50 / p99", &|r| cell(&r.edit));
        line("pod relabel p50 / p99", &|r| cell(&r.relabel));
        line("pod add p50 / p99", &|r| cell(&r.add));
        line("namespace relabel p50 / p99", &|r| cell(&r.ns_move));
        line("idle CPU", &|r| format!("{:.2}%", r.idle_cpu));
        line("RSS / peak", &|r| {
            format!("{} / {}", mib(r.rss), mib(r.hwm))
        });
        line("ovsdb-server RSS", &|r| mib(r.ovsdb_rss));
        line("largest NB transaction", &|r| r.largest_txn.to_string());
        line("bytes per pod (RSS / pods)", &|r| {
            format!("{:.0}", r.rss as f64 * 1024.0 / r.pods as f64)
        });
        line("heap: World per pod", &|r| {
            r.held
                .map_or("-".into(), |h| format!("{:.0} B", h.world_per_pod))
        });
        line("heap: planner per pod / per Route", &|r| {
            r.held.map_or("-".into(), |h| {
                format!("{:.0} B / {:.0} B", h.planner_per_pod, h.planner_per_route)
            })
        });
    }
    let _ = fmt_ms;
}
