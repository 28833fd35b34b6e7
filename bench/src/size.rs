//! Bytes that linking manhole adds to a program: the same small program built with and without
//! `manhole::install`, in the profile this benchmark runs in, as built and stripped.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::report::Report;

/// Builds the two programs with the cargo that runs this benchmark; returns their paths.
fn build() -> Result<(PathBuf, PathBuf), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no target directory")?.to_owned();
    let release = dir.ends_with("release");
    let mut command = Command::new(cargo);
    command.args([
        "build",
        "-q",
        "-p",
        "manhole-bench",
        "--bin",
        "size-plain",
        "--bin",
        "size-manhole",
    ]);
    if release {
        command.arg("--release");
    }
    let status = command.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build failed: {status}"));
    }
    Ok((dir.join("size-plain"), dir.join("size-manhole")))
}

/// The file's size, and its size once stripped (when `strip` is installed).
fn sizes(path: &Path) -> (u64, Option<u64>) {
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    let stripped = std::env::temp_dir().join(format!(
        "manhole-bench-stripped-{}-{}",
        std::process::id(),
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    ));
    let ok = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    let stripped_size = ok.then(|| std::fs::metadata(&stripped).map_or(0, |m| m.len()));
    let _ = std::fs::remove_file(&stripped);
    (size, stripped_size)
}

fn kib(bytes: u64) -> String {
    format!("{:.0} KiB", bytes as f64 / 1024.0)
}

pub(crate) fn run(report: &mut Report) {
    println!("## Binary size added by linking manhole");
    println!();
    let (plain, with) = match build() {
        Ok(paths) => paths,
        Err(why) => {
            println!("not measured: {why}");
            report.check("binary size added by linking manhole", "reported", why, None);
            return;
        }
    };
    let (plain_size, plain_stripped) = sizes(&plain);
    let (with_size, with_stripped) = sizes(&with);
    println!("| program | as built | stripped |");
    println!("|---|---:|---:|");
    let show = |s: Option<u64>| s.map_or_else(|| "(no strip)".to_owned(), kib);
    println!(
        "| without manhole | {} | {} |",
        kib(plain_size),
        show(plain_stripped)
    );
    println!("| with manhole | {} | {} |", kib(with_size), show(with_stripped));
    let added = with_size.saturating_sub(plain_size);
    let added_stripped = with_stripped
        .zip(plain_stripped)
        .map(|(w, p)| w.saturating_sub(p));
    println!("| added | {} | {} |", kib(added), show(added_stripped));
    report.data(
        "size",
        json!({
            "plain_bytes": plain_size,
            "with_manhole_bytes": with_size,
            "plain_stripped_bytes": plain_stripped,
            "with_manhole_stripped_bytes": with_stripped,
        }),
    );
    report.reported(
        "binary size added by linking manhole",
        format!("{} stripped ({} as built)", show(added_stripped), kib(added)),
    );
}
