//! Wake-ups of manhole's threads while nobody is connected: each time a thread runs, it has
//! blocked and been woken, which the kernel counts as a context switch of that thread.

use std::time::Duration;

use serde_json::json;

use crate::Workload;
use crate::report::Report;

/// How long each window watches the idle threads.
const WINDOW: Duration = Duration::from_secs(10);

/// The manhole threads of `pid`, with their context switches so far.
fn switches(pid: u32) -> Vec<(String, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| {
            let dir = task.ok()?.path();
            let name = std::fs::read_to_string(dir.join("comm"))
                .ok()?
                .trim_end()
                .to_owned();
            // manhole's threads are named manhole or manhole-…; the main thread carries the
            // program's name, which here starts alike.
            let main = dir.file_name()?.to_str()? == pid.to_string();
            if main || !(name == "manhole" || name.starts_with("manhole-")) {
                return None;
            }
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            let count = status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split(':').nth(1)?.trim().parse::<u64>().ok())
                .sum();
            Some((format!("{name} ({})", dir.file_name()?.to_string_lossy()), count))
        })
        .collect()
}

/// Wake-ups per second over one window, and the threads watched.
fn window(pid: u32) -> (f64, Vec<String>) {
    let before = switches(pid);
    std::thread::sleep(WINDOW);
    let after = switches(pid);
    let woken: u64 = after
        .iter()
        .map(|(name, n)| {
            let was = before.iter().find(|(b, _)| b == name).map_or(0, |(_, n)| *n);
            n.saturating_sub(was)
        })
        .sum();
    (
        woken as f64 / WINDOW.as_secs_f64(),
        after.into_iter().map(|(name, _)| name).collect(),
    )
}

pub(crate) fn run(report: &mut Report) {
    println!("## Idle wake-ups ({} s windows)", WINDOW.as_secs());
    println!();
    let workload = Workload::start_quiet(10);
    let pid = workload.pid();
    eprint!("  idle: after install");
    let (fresh, threads) = window(pid);
    // A session comes and goes; then manhole must be as quiet as before.
    let mut session = workload.session();
    session.command("stacks");
    drop(session);
    std::thread::sleep(Duration::from_millis(300));
    eprintln!(", after a session");
    let (after_session, _) = window(pid);
    println!("| when | manhole threads | wake-ups per second |");
    println!("|---|---|---:|");
    println!("| after install | {} | {fresh:.2} |", threads.join(", "));
    println!(
        "| after a session ended | {} | {after_session:.2} |",
        threads.len()
    );
    report.data(
        "idle",
        json!({
            "window_s": WINDOW.as_secs(),
            "threads": threads,
            "after_install_per_s": fresh,
            "after_session_per_s": after_session,
        }),
    );
    let worst = fresh.max(after_session);
    report.check(
        "manhole threads' wake-ups while idle",
        "0 per second",
        format!("{worst:.2} per second"),
        Some(worst == 0.0),
    );
}
