//! What the benchmarks found: every number, for the JSON file, and each DESIGN.md §9 target with
//! its verdict, for the summary table.

use std::path::Path;

use serde_json::{Value, json};

/// One target of DESIGN.md §9 and how it went.
pub(crate) struct Target {
    pub(crate) what: String,
    pub(crate) target: String,
    pub(crate) measured: String,
    /// `None` when it could not be measured here (a tool missing).
    pub(crate) met: Option<bool>,
    /// A number reported for its own sake, with no target to meet.
    pub(crate) informative: bool,
}

pub(crate) struct Report {
    pub(crate) machine: String,
    targets: Vec<Target>,
    results: serde_json::Map<String, Value>,
}

impl Report {
    pub(crate) fn new(machine: String) -> Report {
        Report {
            machine,
            targets: Vec::new(),
            results: serde_json::Map::new(),
        }
    }

    /// Records a target's verdict.
    pub(crate) fn check(
        &mut self,
        what: impl Into<String>,
        target: impl Into<String>,
        measured: impl Into<String>,
        met: Option<bool>,
    ) {
        self.targets.push(Target {
            what: what.into(),
            target: target.into(),
            measured: measured.into(),
            met,
            informative: false,
        });
    }

    /// Records a number that has no target, for the summary.
    pub(crate) fn reported(&mut self, what: impl Into<String>, measured: impl Into<String>) {
        self.targets.push(Target {
            what: what.into(),
            target: "—".into(),
            measured: measured.into(),
            met: None,
            informative: true,
        });
    }

    /// Records a benchmark's raw numbers.
    pub(crate) fn data(&mut self, benchmark: &str, value: Value) {
        self.results.insert(benchmark.to_owned(), value);
    }

    /// Prints the summary against the targets and writes everything to `json`.
    pub(crate) fn finish(self, json: &Path) {
        println!();
        println!("## Against DESIGN.md §9");
        println!();
        println!("| what | target | measured | verdict |");
        println!("|---|---|---|---|");
        for t in &self.targets {
            let verdict = match (t.met, t.informative) {
                (_, true) => "—",
                (Some(true), _) => "met",
                (Some(false), _) => "MISSED",
                (None, _) => "not measured",
            };
            println!("| {} | {} | {} | {verdict} |", t.what, t.target, t.measured);
        }
        let document = json!({
            "machine": self.machine,
            "results": self.results,
            "targets": self.targets.iter().map(|t| json!({
                "what": t.what,
                "target": t.target,
                "measured": t.measured,
                "met": t.met,
            })).collect::<Vec<_>>(),
        });
        if let Some(dir) = json.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        match std::fs::write(json, format!("{document:#}\n")) {
            Ok(()) => println!("\nAll numbers: {}", json.display()),
            Err(e) => eprintln!("manhole-bench: cannot write {}: {e}", json.display()),
        }
    }
}
