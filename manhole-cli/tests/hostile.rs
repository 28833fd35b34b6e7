//! manhole-cli against listeners that are not what they claim: squatters of another uid, an
//! impostor whose socket outlived its creator, listeners that say nothing, flood without a
//! prompt, or send terminal control sequences. Each is served by a copy of this binary
//! (`fake_listener_main`), as another user where the test needs one.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{Fake, is_root, run};

/// Runs as a stand-in listener when `Fake::start` starts this binary.
#[test]
fn fake_listener_main() {
    support::fake_listener_main();
}

#[test]
fn root_given_a_path_refuses_a_listener_of_another_uid() {
    if !is_root() {
        eprintln!("skipped: a squatter of another uid and a root client need root");
        return;
    }
    let path = PathBuf::from("/tmp/manhole-99999");
    let mut squatter = Fake::start("mimic", &path, Some(65534));
    let (code, out, err) = run(&[path.to_str().unwrap(), "info"], "");
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("is served by process") && err.contains("of uid 65534, not by you (uid 0) or root"),
        "{err}"
    );
    assert!(out.is_empty(), "nothing of the squatter's was shown: {out}");
    assert_eq!(squatter.received(), 0, "not a byte was sent to the squatter");
}

#[test]
fn a_listener_that_outlived_its_creator_is_not_that_process() {
    if !is_root() {
        eprintln!("skipped: an impostor of another uid and a root client need root");
        return;
    }
    let mut impostor = Fake::start_orphaned("mimic", Some(65534));
    let creator = impostor.creator.to_string();
    // The creator is gone; its socket is still served, by its child.
    let (code, out, err) = run(&[&creator, "info"], "");
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains(&format!("no process {creator}; not connecting")),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");

    // The pid reused by a process of another user (root here): the listener's pid matches,
    // its uid does not. The next pid is chosen through ns_last_pid, which other tests'
    // children may race for; a few tries.
    for _ in 0..20 {
        let _ = std::fs::write("/proc/sys/kernel/ns_last_pid", (impostor.creator - 1).to_string());
        let mut victim = Command::new("sleep").arg("30").spawn().expect("sleep");
        if victim.id() != impostor.creator {
            let _ = victim.kill();
            let _ = victim.wait();
            continue;
        }
        let (code, out, err) = run(&[&creator, "info"], "");
        let _ = victim.kill();
        let _ = victim.wait();
        assert_eq!(code, Some(4), "{err}");
        assert!(
            err.contains(&format!(
                "is served by uid 65534, but process {creator} runs as uid 0"
            )),
            "{err}"
        );
        assert!(out.is_empty(), "{out}");
        assert_eq!(impostor.received(), 0, "not a byte was sent to the impostor");
        return;
    }
    eprintln!("partly skipped: could not get pid {creator} reused within 20 tries");
}
