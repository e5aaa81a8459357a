//! gruntime's systemd cgroup driver (`--systemd-cgroup`), black-box.
//!
//! On the host (no systemd as init here): what is refused before systemd is asked, and what a create
//! that cannot reach systemd leaves behind (nothing). The driver against a real systemd — scopes,
//! properties, update, pause, kill, delete, the user manager — runs in the systemd-booted VM guest
//! (`systemd_guest_*` tests below, one boot).

use std::path::Path;

use integration::{stderr, stdout, unique_id, TestBundle};

fn sh(script: &str) -> TestBundle {
    TestBundle::new(&["sh", "-c", script])
}

/// `gruntime --systemd-cgroup run` with the given system-bus address.
fn run_systemd(b: &TestBundle, id: &str, bus: &str) -> std::process::Output {
    integration::run_via_files(
        b.cmd(&[
            "--systemd-cgroup",
            "run",
            "--bundle",
            b.path().to_str().unwrap(),
            id,
        ])
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus),
    )
}

fn assert_nothing_left(b: &TestBundle) {
    assert!(b.listed().is_empty(), "state left: {:?}", b.listed());
    assert!(
        b.leftover_processes().is_empty(),
        "processes left: {:?}",
        b.leftover_processes()
    );
    assert!(
        b.leftover_mounts().is_empty(),
        "mounts left: {:?}",
        b.leftover_mounts()
    );
}

#[test]
fn a_malformed_systemd_cgroups_path_is_refused_naming_the_value_before_anything_exists() {
    let b = sh("echo should-not-run");
    for (path, words) in [
        ("/sys/fs/cgroup/mine", "slice:prefix:name"),
        ("system.slice:docker", "slice:prefix:name"),
        ("system:docker:abc", "must end in .slice"),
        ("kube--pods.slice:cri:abc", "empty component"),
        ("system.slice:docker:", "name"),
        ("system.slice:doc ker:abc", "not a valid systemd unit name"),
    ] {
        b.edit(|c| c["linux"]["cgroupsPath"] = path.into());
        let out = run_systemd(&b, &unique_id("sdbad"), "unix:path=/nonexistent/bus");
        let err = stderr(&out);
        assert!(!out.status.success(), "{path}: accepted");
        assert!(
            err.contains("linux.cgroupsPath") && err.contains(path) && err.contains(words),
            "{path}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{path}: not one line: {err}");
        assert!(!stdout(&out).contains("should-not-run"), "{path}: ran");
        assert_nothing_left(&b);
    }
}

#[test]
fn a_bad_systemd_property_annotation_is_refused_naming_the_annotation() {
    let b = sh("echo should-not-run");
    b.edit(|c| {
        c["annotations"] = serde_json::json!({"org.systemd.property.TasksMax": "uint64 many"})
    });
    let out = run_systemd(&b, &unique_id("sdann"), "unix:path=/nonexistent/bus");
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("org.systemd.property.TasksMax")
            && err.contains("many")
            && err.contains("uint64"),
        "{err}"
    );
    assert_nothing_left(&b);
}

#[test]
fn without_a_reachable_systemd_create_names_the_socket_and_leaves_nothing() {
    // Where systemd is this host's init its private socket answers, which is the fallback this test
    // would otherwise check: the systemd guest's tests cover that host.
    if Path::new("/run/systemd/private").exists() {
        eprintln!("skipped: systemd runs on this host");
        return;
    }
    let b = sh("echo should-not-run");
    let id = unique_id("sdnobus");
    let out = run_systemd(&b, &id, "unix:path=/nonexistent/system_bus_socket");
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("--systemd-cgroup")
            && err.contains("/nonexistent/system_bus_socket")
            && err.contains("/run/systemd/private"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(!stdout(&out).contains("should-not-run"));
    assert_nothing_left(&b);
}

#[test]
fn features_reports_the_systemd_drivers() {
    let b = sh("true");
    let out = b.gruntime(&["features"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let f: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(f["linux"]["cgroup"]["systemd"], true, "{f}");
    assert_eq!(f["linux"]["cgroup"]["systemdUser"], true, "{f}");
}
