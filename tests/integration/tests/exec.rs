//! gruntime exec and terminals, black-box against real containers.

use std::time::Duration;

use integration::{stderr, stdout, unique_id, TestBundle};
use serde_json::json;

/// Drive `cmdline` through a real terminal: script(1) gives it a pty and `keys` is a shell snippet that types
/// into it (with sleeps between lines, as a person would).
fn through_a_terminal(cmdline: &str, keys: &str) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "({keys}) | timeout 25 script -qfec '{cmdline}' /dev/null"
        ))
        .output()
        .unwrap()
}

/// A bundle whose process is an interactive `sh` with `terminal: true`, and the `gruntime run` command line
/// (without a console socket) that starts it.
fn interactive_shell_run(tag: &str) -> (TestBundle, String) {
    let b = TestBundle::new(&["sh"]);
    b.edit(|c| c["process"]["terminal"] = true.into());
    let cmdline = format!(
        "\"{}\" --root {} run -b {} {}",
        integration::gruntime_bin().display(),
        b.root.path().display(),
        b.path().display(),
        unique_id(tag)
    );
    (b, cmdline)
}

fn running(b: &TestBundle) -> String {
    let id = unique_id("exec");
    let out = b.gruntime(&["run", "-d", "-b", b.path().to_str().unwrap(), &id]);
    assert!(out.status.success(), "run -d: {}", stderr(&out));
    id
}

#[test]
fn exec_joins_the_containers_namespaces_and_returns_the_exit_status() {
    let b = TestBundle::new(&["sleep", "1000"]);
    b.edit(|c| c["hostname"] = "exec-host".into());
    let id = running(&b);
    let out = b.gruntime(&[
        "exec",
        &id,
        "sh",
        "-c",
        "hostname; tr '\\0' ' ' < /proc/1/cmdline; echo; readlink /proc/1/exe; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(|l| l.trim().to_string()).collect();
    assert_eq!(lines[0], "exec-host");
    assert_eq!(
        lines[1], "sleep 1000",
        "the container's pid 1 must be visible: {lines:?}"
    );
    assert_eq!(lines[2], "/bin/busybox");
    // Env, cwd and user overrides.
    let out = b.gruntime(&[
        "exec",
        "-e",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "-u",
        "1000:1001",
        "--additional-gids",
        "7",
        &id,
        "sh",
        "-c",
        "echo $FOO; pwd; id -u; id -g; id -G",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(&lines[..4], &["bar", "/tmp", "1000", "1001"]);
    assert!(lines[4].split_whitespace().any(|g| g == "7"), "{o}");
    assert!(b.gruntime(&["delete", "--force", &id]).status.success());
}

#[test]
fn exec_process_json_and_detach_with_pid_file() {
    let b = TestBundle::new(&["sleep", "1000"]);
    b.edit(|c| c["root"]["readonly"] = false.into());
    let id = running(&b);
    let proc_file = b.path().join("process.json");
    let marker = "/tmp/exec-marker";
    std::fs::write(
        &proc_file,
        serde_json::to_vec(&json!({
            "terminal": false, "user": { "uid": 0, "gid": 0 }, "cwd": "/", "env": ["PATH=/bin"],
            "args": ["sh", "-c", format!("echo detached > {marker}; sleep 1000")]
        }))
        .unwrap(),
    )
    .unwrap();
    let pidfile = b.path().join("exec.pid");
    let out = b.gruntime(&[
        "exec",
        "--process",
        proc_file.to_str().unwrap(),
        "--detach",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let mut seen = String::new();
    for _ in 0..100 {
        seen = std::fs::read_to_string(b.rootfs().join("tmp/exec-marker")).unwrap_or_default();
        if !seen.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The rootfs is the bind-mounted bundle dir, so the marker shows up on the host.
    assert_eq!(seen.trim(), "detached");
    assert!(b.gruntime(&["delete", "--force", &id]).status.success());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/exe")).exists(),
        "exec'd process outlived delete --force"
    );
}

#[test]
fn exec_into_a_stopped_container_or_a_missing_binary_is_a_clear_error() {
    let b = TestBundle::new(&["sleep", "1000"]);
    let id = running(&b);
    let out = b.gruntime(&["exec", &id, "no-such-binary"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("executable file not found in $PATH"),
        "{}",
        stderr(&out)
    );
    assert!(b.gruntime(&["kill", &id, "KILL"]).status.success());
    std::thread::sleep(Duration::from_millis(200));
    let out = b.gruntime(&["exec", &id, "true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("container not running"),
        "{}",
        stderr(&out)
    );
    assert!(b.gruntime(&["delete", &id]).status.success());
}

#[test]
fn exec_never_exposes_the_host_binary() {
    let b = TestBundle::new(&["sleep", "1000"]);
    let id = running(&b);
    // Every process visible in the container runs a binary from the container's rootfs.
    let out = b.gruntime(&[
        "exec",
        &id,
        "sh",
        "-c",
        "for p in /proc/[0-9]*; do readlink $p/exe; done",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    for exe in stdout(&out).lines() {
        assert_eq!(exe, "/bin/busybox", "{}", stdout(&out));
    }
    assert!(b.gruntime(&["delete", "--force", &id]).status.success());
}

/// `run -t` without a console socket, driven through a real terminal (script(1) gives gruntime a pty).
#[test]
fn run_with_a_terminal_relays_an_interactive_shell() {
    let (b, cmdline) = interactive_shell_run("tty");
    let out = through_a_terminal(
        &cmdline,
        "sleep 0.5; printf 'tty; echo answer-$((6*7))\\n'; sleep 0.5; printf 'exit 5\\n'",
    );
    let text = stdout(&out);
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("answer-42"), "{text}");
    assert_eq!(out.status.code(), Some(5), "{text} {}", stderr(&out));
    assert!(b.listed().is_empty());
}

/// `exec -t` without a console socket: gruntime relays its own terminal (script(1) provides it), and the
/// exit status of the interactive shell comes back.
#[test]
fn exec_with_a_terminal_relays_an_interactive_shell() {
    let b = TestBundle::new(&["sleep", "1000"]);
    let id = running(&b);
    let cmdline = format!(
        "\"{}\" --root {} exec -t {} sh",
        integration::gruntime_bin().display(),
        b.root.path().display(),
        id
    );
    let out = through_a_terminal(
        &cmdline,
        "sleep 0.5; printf 'tty; echo answer-$((6*7))\\n'; sleep 0.5; printf 'exit 4\\n'",
    );
    let text = stdout(&out);
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("answer-42"), "{text}");
    assert_eq!(out.status.code(), Some(4), "{text} {}", stderr(&out));
    assert!(b.gruntime(&["delete", "--force", &id]).status.success());
}

#[test]
fn exec_into_a_paused_container_is_refused_unless_ignore_paused() {
    let b = TestBundle::new(&["sleep", "1000"]);
    let id = running(&b);
    let out = b.gruntime(&["pause", &id]);
    assert!(out.status.success(), "pause: {}", stderr(&out));
    let out = b.gruntime(&["exec", &id, "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("paused"), "{}", stderr(&out));
    assert!(b.gruntime(&["resume", &id]).status.success());
    let out = b.gruntime(&["exec", &id, "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.gruntime(&["delete", "--force", &id]).status.success());
}

/// Ctrl-C typed at gruntime's terminal reaches the process in the container (raw mode relay), and the
/// shell goes on.
#[test]
fn ctrl_c_reaches_the_container_through_the_relayed_terminal() {
    let (_bundle, cmdline) = interactive_shell_run("ctrlc"); // kept alive for the run
    let started = std::time::Instant::now();
    let out = through_a_terminal(&cmdline, "sleep 0.5; printf 'sleep 30; echo not-interrupted\\n'; sleep 0.7; printf '\\003'; sleep 0.5; printf 'exit 6\\n'");
    let text = stdout(&out);
    // SIGINT ends the `sleep 30` line at once (ash drops the rest of an interrupted line) and the shell
    // goes on to `exit 6`: well under the 30 s the sleep would take.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "Ctrl-C did not interrupt: {text}"
    );
    // Once, in the echo of the typed line: the `echo` itself never ran.
    assert_eq!(text.matches("not-interrupted").count(), 1, "{text}");
    assert!(text.contains("^C"), "{text}");
    assert_eq!(out.status.code(), Some(6), "{text} {}", stderr(&out));
}
