//! Commands that look at the process: `stacks`, `info`, `fds`, `env`, `clients`, `report`.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::command::{Command, Effect, Group};
use super::{Context, Json, Outcome, Reply, no_arguments};
use crate::text::{escape_controls, human_bytes, human_duration, matches_pattern, quoted};
use crate::{procfs, redact, stacks};

pub(super) fn stacks(args: &[&str], _: &Context<'_>) -> Outcome {
    let mut full = false;
    let mut filters = Vec::new();
    for arg in args {
        match *arg {
            "--full" => full = true,
            flag if flag.starts_with('-') => {
                return Reply::fail(
                    "usage",
                    format!("stacks does not understand {}; see \"help stacks\"", quoted(flag)),
                )
                .into();
            }
            pattern => filters.push(pattern),
        }
    }
    // Asked for, so worth two more files a thread: how long each waiting thread has not run.
    let mut dump = stacks::capture_with(stacks::Want { last_ran: true });
    if !filters.is_empty() {
        dump.threads.retain(|t| {
            filters.iter().any(|f| {
                f.parse::<i32>()
                    .map_or_else(|_| matches_pattern(f, &t.name), |tid| tid == t.tid)
            })
        });
        if dump.threads.is_empty() {
            return Reply::fail("not_found", format!("no thread matches {}", filters.join(" "))).into();
        }
    }
    let mut text = String::new();
    stacks::render(&dump, full, &mut text);
    Reply::ok(text, stacks::to_json(&dump, full)).into()
}

/// What `info` shows, gathered once and shown as text or data.
struct Facts {
    rows: Vec<(&'static str, String, Json)>,
}

fn facts(context: &Context<'_>) -> Facts {
    let host = context.host;
    let stat = procfs::process_stat();
    let unknown = || "?".to_owned();
    let mut rows: Vec<(&'static str, String, Json)> = Vec::new();
    let pid = std::process::id();
    let ppid = stat.ppid.map_or_else(unknown, |p| p.to_string());
    rows.push((
        "pid",
        format!("{pid} (parent {ppid})"),
        Json::obj([("pid", Json::from(pid)), ("ppid", Json::from(stat.ppid))]),
    ));
    let exe = procfs::exe().map(|p| p.display().to_string());
    rows.push(("exe", exe.clone().unwrap_or_else(unknown), Json::from(exe)));
    // `--password X`, `--token=X`, `postgres://user:pw@…`: shown redacted.
    let argv = redact::argv(&procfs::cmdline());
    rows.push(("argv", argv.join(" "), Json::from(argv)));
    let cwd = std::env::current_dir().ok().map(|p| p.display().to_string());
    rows.push(("cwd", cwd.clone().unwrap_or_else(unknown), Json::from(cwd)));
    let (uid, euid, gid, egid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getgid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    rows.push((
        "user",
        format!("uid {uid} euid {euid} gid {gid} egid {egid}"),
        Json::obj([
            ("uid", uid.into()),
            ("euid", euid.into()),
            ("gid", gid.into()),
            ("egid", egid.into()),
        ]),
    ));
    rows.push((
        "uptime",
        stat.uptime.map_or_else(unknown, human_duration),
        Json::from(stat.uptime.map(|d| d.as_secs_f64())),
    ));
    rows.push((
        "threads",
        stat.threads.map_or_else(unknown, |t| t.to_string()),
        Json::from(stat.threads),
    ));
    let open = procfs::open_fd_count();
    let limits = crate::sys::fd_limits();
    let fds_text = match (open, limits) {
        (Some(open), Some((soft, hard))) => format!("{open} open of {soft} allowed (hard limit {hard})"),
        (open, _) => format!("{} open", open.map_or_else(unknown, |n| n.to_string())),
    };
    rows.push((
        "fds",
        fds_text,
        Json::obj([
            ("open", Json::from(open)),
            ("soft_limit", Json::from(limits.map(|l| l.0))),
            ("hard_limit", Json::from(limits.map(|l| l.1))),
        ]),
    ));
    rows.push((
        "memory",
        format!(
            "RSS {}, virtual {}",
            stat.rss_bytes.map_or_else(unknown, human_bytes),
            stat.vm_bytes.map_or_else(unknown, human_bytes)
        ),
        Json::obj([
            ("rss_bytes", Json::from(stat.rss_bytes)),
            ("virtual_bytes", Json::from(stat.vm_bytes)),
        ]),
    ));
    let secs = |d: Option<Duration>| d.map_or_else(unknown, |d| format!("{:.2} s", d.as_secs_f64()));
    rows.push((
        "cpu",
        format!("user {}, system {}", secs(stat.user_cpu), secs(stat.system_cpu)),
        Json::obj([
            ("user_seconds", Json::from(stat.user_cpu.map(|d| d.as_secs_f64()))),
            (
                "system_seconds",
                Json::from(stat.system_cpu.map(|d| d.as_secs_f64())),
            ),
        ]),
    ));
    let open_sessions = host.sessions().len();
    rows.push((
        "sessions",
        format!("{open_sessions} open (at most {})", host.max_sessions()),
        Json::obj([
            ("open", Json::from(open_sessions)),
            ("max", Json::from(host.max_sessions())),
        ]),
    ));
    let calls = super::values::CALLS_RUNNING.load(std::sync::atomic::Ordering::Acquire);
    let most = super::values::MAX_CALLS_RUNNING;
    rows.push((
        "calls",
        format!("{calls} running (at most {most})"),
        Json::obj([("running", Json::from(calls)), ("max", Json::from(most))]),
    ));
    let stuck = super::values::reads_stuck();
    let most = super::values::MAX_READS_RUNNING;
    rows.push((
        "reads",
        format!("{stuck} stuck in a value's Debug (at most {most})"),
        Json::obj([("stuck", Json::from(stuck)), ("max", Json::from(most))]),
    ));
    let socket = host.socket_path().map(|p| p.display().to_string());
    rows.push((
        "socket",
        socket.clone().unwrap_or_else(unknown),
        Json::from(socket),
    ));
    let up = host.started().elapsed();
    rows.push(("manhole up", human_duration(up), Json::from(up.as_secs_f64())));
    let kernel = kernel();
    rows.push((
        "versions",
        format!("manhole {}, {kernel}", env!("CARGO_PKG_VERSION")),
        Json::obj([
            ("manhole", Json::from(env!("CARGO_PKG_VERSION"))),
            ("kernel", Json::from(kernel)),
        ]),
    ));
    Facts { rows }
}

impl Facts {
    fn text(&self) -> String {
        let width = self.rows.iter().map(|(k, _, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (key, value, _) in &self.rows {
            // The executable's path, its arguments and its directory are the program's data.
            let _ = writeln!(out, "{key:width$}  {}", escape_controls(value));
        }
        out
    }

    fn json(&self) -> Json {
        Json::obj(self.rows.iter().map(|(k, _, v)| (k.replace(' ', "_"), v.clone())))
    }
}

pub(super) fn info(args: &[&str], context: &Context<'_>) -> Outcome {
    if let Some(err) = no_arguments("info", args) {
        return err;
    }
    let facts = facts(context);
    Reply::ok(facts.text(), facts.json()).into()
}

fn kernel() -> String {
    match nix::sys::utsname::uname() {
        Ok(u) => format!(
            "{} {} {}",
            u.sysname().to_string_lossy(),
            u.release().to_string_lossy(),
            u.machine().to_string_lossy()
        ),
        Err(_) => std::env::consts::OS.to_owned(),
    }
}

/// One open file descriptor.
struct Fd {
    fd: i32,
    target: String,
    kind: &'static str,
    manhole: bool,
}

fn open_fds(context: &Context<'_>) -> Vec<Fd> {
    let own = context.host.own_fds();
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut fds: Vec<Fd> = dir
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let fd: i32 = entry.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(entry.path()).ok()?.display().to_string();
            // The directory handle this very listing uses.
            if target.starts_with("/proc/") && target.ends_with("/fd") {
                return None;
            }
            let kind = match target.as_str() {
                t if t.starts_with("socket:") => "socket",
                t if t.starts_with("pipe:") => "pipe",
                t if t.starts_with("anon_inode:") => "anon_inode",
                t if t.starts_with("/dev/") => "device",
                t if t.starts_with('/') => "file",
                _ => "other",
            };
            Some(Fd {
                fd,
                target,
                kind,
                manhole: own.contains(&fd),
            })
        })
        .collect();
    fds.sort_by_key(|f| f.fd);
    fds
}

pub(super) fn fds(args: &[&str], context: &Context<'_>) -> Outcome {
    if let Some(err) = no_arguments("fds", args) {
        return err;
    }
    let fds = open_fds(context);
    let mut text = String::new();
    for f in &fds {
        let _ = writeln!(
            text,
            "{:>5}  {:10}  {}{}",
            f.fd,
            f.kind,
            escape_controls(&f.target),
            if f.manhole { "  (manhole)" } else { "" }
        );
    }
    let limit = crate::sys::fd_limits().map(|l| l.0);
    let _ = writeln!(
        text,
        "{} open{}",
        fds.len(),
        limit.map_or_else(String::new, |l| format!(" of {l} allowed"))
    );
    Reply::ok(text, fds_json(&fds)).into()
}

fn fds_json(fds: &[Fd]) -> Json {
    Json::Arr(
        fds.iter()
            .map(|f| {
                Json::obj([
                    ("fd", Json::from(f.fd)),
                    ("kind", Json::from(f.kind)),
                    ("target", Json::from(f.target.as_str())),
                    ("manhole", Json::from(f.manhole)),
                ])
            })
            .collect(),
    )
}

fn environment(pattern: Option<&str>) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .filter(|(k, _)| pattern.is_none_or(|p| matches_pattern(p, k)))
        .map(|(k, v)| {
            let shown = redact::env_value(&k, &v).into_owned();
            (k, shown)
        })
        .collect();
    vars.sort();
    vars
}

pub(super) fn env(args: &[&str], _: &Context<'_>) -> Outcome {
    let pattern = match args {
        [] => None,
        [p] => Some(*p),
        [_, extra, ..] => {
            return Reply::fail(
                "usage",
                format!("env takes one pattern (got also {})", quoted(extra)),
            )
            .into();
        }
    };
    let vars = environment(pattern);
    let mut text = String::new();
    for (k, v) in &vars {
        let _ = writeln!(text, "{}={}", escape_controls(k), escape_controls(v));
    }
    Reply::ok(text, Json::obj(vars.into_iter().map(|(k, v)| (k, Json::from(v))))).into()
}

fn clients_list(context: &Context<'_>) -> Vec<(Json, String)> {
    let now = SystemTime::now();
    context
        .host
        .sessions()
        .into_iter()
        .map(|s| {
            let program = s
                .peer
                .pid
                .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok())
                .map(|c| c.trim_end().to_owned());
            let since = now.duration_since(s.opened).unwrap_or_default();
            let pid = s.peer.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
            let text = format!(
                "#{:<4} pid {:<8} uid {:<6} {:<16} connected {}{}",
                s.id,
                pid,
                s.peer.uid,
                program
                    .as_deref()
                    .map_or_else(|| "?".to_owned(), |p| escape_controls(p).into_owned()),
                human_duration(since),
                if s.is_current { "  (you)" } else { "" }
            );
            let data = Json::obj([
                ("id", Json::from(s.id)),
                ("pid", Json::from(s.peer.pid)),
                ("uid", Json::from(s.peer.uid)),
                ("program", Json::from(program)),
                ("connected_seconds", Json::from(since.as_secs_f64())),
                ("you", Json::from(s.is_current)),
            ]);
            (data, text)
        })
        .collect()
}

pub(super) fn clients(args: &[&str], context: &Context<'_>) -> Outcome {
    if let Some(err) = no_arguments("clients", args) {
        return err;
    }
    let list = clients_list(context);
    let mut text = String::new();
    for (_, line) in &list {
        text.push_str(line);
        text.push('\n');
    }
    Reply::ok(text, Json::Arr(list.into_iter().map(|(d, _)| d).collect())).into()
}

pub(super) fn report(args: &[&str], context: &Context<'_>) -> Outcome {
    if let Some(err) = no_arguments("report", args) {
        return err;
    }
    let (dump, locks, doctor) = super::diagnose::for_report();
    let document = Json::obj([
        ("manhole", Json::from(env!("CARGO_PKG_VERSION"))),
        (
            "taken_at_unix",
            Json::from(
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
            ),
        ),
        ("info", facts(context).json()),
        ("threads", stacks::to_json(&dump, true)),
        ("locks", locks),
        ("doctor", doctor),
        ("exposed", super::values::snapshot(context)),
        ("fds", fds_json(&open_fds(context))),
        (
            "env",
            Json::obj(environment(None).into_iter().map(|(k, v)| (k, Json::from(v)))),
        ),
        (
            "clients",
            Json::Arr(clients_list(context).into_iter().map(|(d, _)| d).collect()),
        ),
    ]);
    let mut text = document.to_line();
    text.push('\n');
    Reply::ok(text, document).into()
}

/// This family's commands (see `console::ALL`).
pub(super) const COMMANDS: &[Command] = &[
    Command {
        name: "stacks",
        aliases: &["threads", "bt"],
        usage: "stacks [--full] [NAME|TID…]",
        summary: "every thread's stack, as on connect",
        details: "Lists every thread with its id, name, why it waits and its stack, under a\n\
                  summary (how many run, idle, wait on each lock, do I/O; what to look at\n\
                  first). The reason names the lock (Mutex POOL, the exposed static or symbol\n\
                  holding it), the descriptor (fd 3 (pipe:[1234])), the joined thread, and\n\
                  the holder where the kernel or library records one (glibc and PI mutexes,\n\
                  joins; std's Mutex records none, so none is shown). \"waiting 12.4 s\" is\n\
                  a lower bound: since it last ran, or since the first dump that found it in\n\
                  the same wait. Each thread unwinds itself when signalled, pausing for\n\
                  microseconds; threads that cannot answer (signal blocked, stopped,\n\
                  uninterruptible sleep) are shown from /proc.\n\
                  Threads with the same stack are listed together. Runtime frames (thread\n\
                  start, lang_start) and library frames between the program's own are\n\
                  folded, and std's and dependencies' paths shortened; --full shows all.\n\
                  NAME (with * and ?) or TID keeps only matching threads.\n\
                  Examples: stacks worker-*   stacks --full 4242",
        group: Group::Look,
        effect: Effect::PausesThreads,
        watchable: true,
        run: stacks,
    },
    Command {
        name: "info",
        aliases: &[],
        usage: "info",
        summary: "pid, exe, uptime, threads, fds, memory, CPU",
        details: "Shows pid and parent, executable, arguments, working directory, user,\n\
                  uptime, thread count, open fds against their limit, memory, CPU time,\n\
                  open sessions and versions. Secrets in the arguments are shown as\n\
                  <redacted>: the one after --password, --token and other secret-looking\n\
                  flags, --token=…, passwords and user names in URLs, password=….",
        group: Group::Look,
        effect: Effect::ReadsOnly,
        watchable: true,
        run: info,
    },
    Command {
        name: "fds",
        aliases: &[],
        usage: "fds",
        summary: "open file descriptors and what they point to",
        details: "Lists every open file descriptor with its target: a path, a socket, a pipe,\n\
                  an anonymous inode. Descriptors manhole itself holds are marked.",
        group: Group::Look,
        effect: Effect::ReadsOnly,
        watchable: true,
        run: fds,
    },
    Command {
        name: "env",
        aliases: &[],
        usage: "env [PATTERN]",
        summary: "environment variables, secrets redacted",
        details: "Lists the process's environment, sorted. Values of variables whose names\n\
                  suggest a secret (PASS, PWD, TOKEN, SECRET, KEY, CREDENTIAL, AUTH, COOKIE,\n\
                  SESSION, DSN, …) are shown as <redacted>, and so are, in every value, the\n\
                  credentials of each URL (scheme://user:<redacted>@host) and the values\n\
                  of password=, token=, secret=, key= and the like. PATTERN filters names.",
        group: Group::Look,
        effect: Effect::ReadsOnly,
        watchable: true,
        run: env,
    },
    Command {
        name: "clients",
        aliases: &[],
        usage: "clients",
        summary: "the sessions open now",
        details: "Lists open sessions: the client's pid, uid and program, and for how long it\n\
                  has been connected. Yours is marked.",
        group: Group::Look,
        effect: Effect::ReadsOnly,
        watchable: true,
        run: clients,
    },
    Command {
        name: "report",
        aliases: &[],
        usage: "report",
        summary: "all of this, locks and doctor as one JSON document",
        details: "One JSON document with info, every thread's stack and why it waits, locks,\n\
                  doctor's findings, every exposed value, the fds, the environment and the\n\
                  sessions: attach it to a ticket. Secrets are redacted as in info, env and\n\
                  print (report has no --reveal).",
        group: Group::Look,
        effect: Effect::PausesThreads,
        watchable: true,
        run: report,
    },
];
