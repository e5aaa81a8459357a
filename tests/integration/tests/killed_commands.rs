//! gruntime commands SIGKILLed at the moments the chaos soak (gruntime_chaos.rs, in the VM) found
//! to leave something behind, pinned here on the host, each at one deterministic moment.

use std::process::Stdio;
use std::time::{Duration, Instant};

use integration::{stderr, stdout, unique_id, TestBundle};

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

#[test]
fn an_init_whose_create_is_killed_after_the_record_exits_holds_no_lock_and_the_container_is_stopped(
) {
    let b = TestBundle::new(&["sleep", "100"]);
    let id = unique_id("killed-create");
    // create writes the pid file (through `.pid.tmp`) after its last record and before it lets
    // the init wait for start: a FIFO there holds it at that moment.
    let pid_dir = tempfile::tempdir().unwrap();
    nix::unistd::mkfifo(
        &pid_dir.path().join(".pid.tmp"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let pid_file = pid_dir.path().join("pid");
    let mut create = b
        .cmd(&[
            "create",
            "--bundle",
            b.path().to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state_file = b.root.path().join(&id).join("state.json");
    let record = || -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(&state_file).ok()?).ok()
    };
    wait_until("create's last record", || {
        record().is_some_and(|r| r.get("creating").is_none() && r["pid"].as_i64() > Some(0))
    });
    let init = record().unwrap()["pid"].as_i64().unwrap();
    // The state dir's lock is create's alone: an init holding a copy of its fd would keep every
    // later command on the id waiting for as long as it lives, once a killed create never unlocks.
    let dir = b.root.path().join(&id);
    let held: Vec<_> = std::fs::read_dir(format!("/proc/{init}/fd"))
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == dir))
        .collect();
    assert!(held.is_empty(), "the init holds the state dir's lock fd");
    create.kill().unwrap();
    create.wait().unwrap();
    // Before the fix the init waited for a start forever (and `state` said created).
    wait_until("the init to exit", || !alive(init));
    let out = b.gruntime(&["state", &id]);
    assert!(out.status.success(), "state: {}", stderr(&out));
    let st: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(st["status"], "stopped", "{st}");
    let out = b.gruntime(&["delete", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert!(b.listed().is_empty(), "left: {:?}", b.listed());
}

#[test]
fn the_leftovers_of_a_killed_create_and_a_killed_delete_are_swept_and_keep_no_id_taken() {
    let b = TestBundle::new(&["true"]);
    let root = b.root.path();
    // What a create killed before its rename and a delete killed after its rename leave (the pid
    // is above any pid_max: a dead command).
    for name in ["~new.999999999.c1", "~gone.999999999.c2"] {
        std::fs::create_dir_all(root.join(name)).unwrap();
        std::fs::write(root.join(name).join("state.json"), b"{}").unwrap();
    }
    let out = b.gruntime(&["list", "-q"]);
    assert_eq!(stdout(&out).trim(), "", "list shows leftovers");
    let out = b.gruntime(&["delete", "--force", "c1"]);
    assert!(out.status.success(), "delete --force: {}", stderr(&out));
    assert!(b.listed().is_empty(), "left: {:?}", b.listed());
}
