//! A checkout works wherever it lives: under the paths the test VM hides behind its own tmpfs
//! (/tmp, /var/tmp, /run), in a path with a space, and as a second copy beside the first; and
//! `make demo` shows the project alone, without a peer tool.
//!
//! These tests copy the checkout (its tracked and unignored files, as they are in the working
//! tree) instead of rebuilding it: the copy borrows this checkout's built binaries, so each test
//! costs one VM boot or one demo run, not a build.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use std::time::Duration;

use integration::vm::Vm;
use integration::{gruntime_bin, imgtool_bin, run, shell_quote, stderr, stdout, workspace_root};

/// One boot plus a few commands, under TCG on a busy host.
const VM_TIMEOUT: Duration = Duration::from_secs(300);

/// Tools the demo must not call: the peers it would otherwise lean on.
const PEER_TOOLS: &[&str] = &[
    "umoci", "skopeo", "python3", "python", "docker", "podman", "buildah", "crane", "ctr", "runc",
    "crun",
];

/// A fresh directory under `parent` (one of the paths the VM hides), removed on drop.
fn temp_under(parent: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("gruntime-anywhere-")
        .tempdir_in(parent)
        .unwrap_or_else(|e| panic!("temp dir under {parent}: {e}"));
    // mkdtemp's 0700 would hide the copy from the unprivileged users some scripts switch to.
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// Copy this checkout's files (tracked or new, not ignored; as they are now) to `dest`.
fn copy_checkout(dest: &Path) {
    let root = workspace_root();
    let out = run(Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(&root));
    assert!(out.status.success(), "git ls-files: {}", stderr(&out));
    for name in out.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let rel = Path::new(std::str::from_utf8(name).unwrap());
        let src = root.join(rel);
        let Ok(meta) = src.symlink_metadata() else {
            continue; // deleted in the working tree, not yet in the index
        };
        let dst = dest.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else {
            std::fs::copy(&src, &dst)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), dst.display()));
        }
    }
    assert!(dest.join("tests/integration/vm/run.sh").exists());
}

/// This checkout's gruntime, copied to `target/debug` of another (the guest must find it there,
/// through that checkout's own share).
fn install_gruntime(target: &Path) -> PathBuf {
    let debug = target.join("debug");
    std::fs::create_dir_all(&debug).unwrap();
    let g = debug.join("gruntime");
    std::fs::copy(gruntime_bin(), &g).unwrap();
    g
}

fn version_of(bin: &Path) -> String {
    let out = run(Command::new(bin).arg("--version"));
    assert!(
        out.status.success(),
        "{} --version: {}",
        bin.display(),
        stderr(&out)
    );
    stdout(&out).lines().next().unwrap_or_default().to_string()
}

#[test]
fn a_vm_batch_sees_a_checkout_under_tmp_whose_path_has_a_space() {
    let base = temp_under("/tmp");
    let ws = base.path().join("a b/gruntime");
    copy_checkout(&ws);
    std::fs::write(ws.join("marker"), "from-host\n").unwrap();
    let gruntime = install_gruntime(&ws.join("target"));
    // A share of its own inside the workspace: mounted over the workspace's, and read-write.
    let out_dir = ws.join("out");
    std::fs::create_dir(&out_dir).unwrap();

    let out = Vm::new()
        .harness_of(&ws)
        .cwd(&ws)
        .share(&out_dir)
        .timeout(VM_TIMEOUT)
        .run(
            r#"
echo "== cwd"; pwd
echo "== marker"; cat marker
echo "== binary"; target/debug/gruntime --version | head -n 1
echo "== write"; echo from-guest > marker && cat marker
echo "== share"; echo from-guest > out/result && echo written
"#,
        )
        .unwrap_or_else(|e| panic!("VM: {e}"));
    assert_eq!(out.status, 0, "{out}");
    assert_eq!(out.section("cwd"), format!("{}\n", ws.display()), "{out}");
    assert_eq!(out.section("marker"), "from-host\n", "{out}");
    assert_eq!(
        out.section("binary").trim_end(),
        version_of(&gruntime),
        "{out}"
    );
    // The guest may write in the workspace, as anywhere in the host's root; the host never sees it.
    assert_eq!(out.section("write"), "from-guest\n", "{out}");
    assert_eq!(
        std::fs::read_to_string(ws.join("marker")).unwrap(),
        "from-host\n"
    );
    assert_eq!(out.section("share"), "written\n", "{out}");
    assert_eq!(
        std::fs::read_to_string(out_dir.join("result")).unwrap(),
        "from-guest\n"
    );
}

#[test]
fn a_vm_batch_sees_its_workspace_under_run_its_target_dir_under_var_tmp_and_its_cwd_under_tmp() {
    let (run_base, var_tmp_base, tmp_base) = (
        temp_under("/run"),
        temp_under("/var/tmp"),
        temp_under("/tmp"),
    );
    let ws = run_base.path().join("gruntime");
    copy_checkout(&ws);
    let target = var_tmp_base.path().join("target dir");
    let gruntime = install_gruntime(&target);
    let cwd = tmp_base.path().join("some cwd");
    std::fs::create_dir(&cwd).unwrap();
    std::fs::write(cwd.join("marker"), "cwd-marker\n").unwrap();

    let script = format!(
        r#"
echo "== cwd"; pwd; cat marker
echo "== workspace"; head -n 1 {readme}
echo "== binary"; {gruntime} --version | head -n 1
"#,
        readme = shell_quote(&ws.join("README.md")),
        gruntime = shell_quote(&gruntime),
    );
    let out = Vm::new()
        .harness_of(&ws)
        .host_env("CARGO_TARGET_DIR", &target)
        .cwd(&cwd)
        .timeout(VM_TIMEOUT)
        .run(&script)
        .unwrap_or_else(|e| panic!("VM: {e}"));
    assert_eq!(out.status, 0, "{out}");
    assert_eq!(
        out.section("cwd"),
        format!("{}\ncwd-marker\n", cwd.display()),
        "{out}"
    );
    let readme = std::fs::read_to_string(ws.join("README.md")).unwrap();
    assert_eq!(
        out.section("workspace"),
        format!("{}\n", readme.lines().next().unwrap()),
        "{out}"
    );
    assert_eq!(
        out.section("binary").trim_end(),
        version_of(&gruntime),
        "{out}"
    );
    // The VM's caches went to that target dir, not to this checkout's.
    assert!(target.join("vm").is_dir(), "{out}");
}

/// A directory whose `umoci`, `skopeo`, ... record that they were called and fail.
fn poisoned_peers(dir: &Path, log: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for tool in PEER_TOOLS {
        let p = dir.join(tool);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho \"{tool} $*\" >> {}\nexit 127\n",
                shell_quote(log)
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// This checkout's imgtool and gruntime side by side, as `make demo-run DEMO_BIN=DIR` wants them.
fn built_bin_dir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::os::unix::fs::symlink(imgtool_bin(), dir.join("imgtool")).unwrap();
    std::os::unix::fs::symlink(gruntime_bin(), dir.join("gruntime")).unwrap();
}

#[test]
fn make_demo_runs_from_a_second_checkout_whose_path_has_a_space_without_any_peer_tool() {
    let base = temp_under("/var/tmp");
    let clone = base.path().join("a b/gruntime");
    copy_checkout(&clone);
    let bins = base.path().join("built bins");
    built_bin_dir(&bins);
    let peers = base.path().join("peers");
    let log = base.path().join("peer-calls.log");
    poisoned_peers(&peers, &log);
    let path = format!(
        "{}:{}",
        peers.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let out = run(Command::new("make")
        .arg("-C")
        .arg(&clone)
        .arg("demo-run")
        .arg(format!("DEMO_BIN={}", bins.display()))
        .env("PATH", &path)
        .env_remove("MAKEFLAGS")
        .stdin(std::process::Stdio::null()));
    let text = format!("{}\n{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "make demo-run: {text}");
    assert!(
        text.contains("hello from gruntime-demo, I am pid 1 as uid=0(root)"),
        "{text}"
    );
    assert!(text.contains("== imgtool pull oci:"), "{text}");
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(calls.is_empty(), "the demo called peer tools:\n{calls}");
    // Nor by absolute path, which the PATH above would not catch.
    let script = std::fs::read_to_string(clone.join("bundles/demo.sh")).unwrap();
    for tool in PEER_TOOLS {
        assert!(
            !script
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| w == *tool),
            "bundles/demo.sh names {tool}"
        );
    }
    // Everything it made stays in that checkout: its image layout and its own store.
    assert!(clone.join("bundles/busybox-image/index.json").is_file());
    assert!(clone.join("bundles/imgtool-store").is_dir());
}

#[test]
fn the_demo_without_built_binaries_says_so_in_one_line() {
    let empty = tempfile::tempdir().unwrap();
    let out = run(Command::new("bash")
        .arg(workspace_root().join("bundles/demo.sh"))
        .arg(empty.path())
        .stdin(std::process::Stdio::null()));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("imgtool: not built"), "{err}");
}

/// The apt packages a `make -n TARGET` would install, from the dry run's `for p in ...` line.
fn apt_packages_of(target: &str) -> Vec<String> {
    let out = run(Command::new("make")
        .args(["-n", "--no-print-directory", target])
        .current_dir(workspace_root())
        .env_remove("MAKEFLAGS"));
    assert!(out.status.success(), "make -n {target}: {}", stderr(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.contains("dpkg -s"))
        .unwrap_or_else(|| panic!("make -n {target} installs nothing:\n{text}"));
    let list = line
        .split("for p in ")
        .nth(1)
        .and_then(|r| r.split("; do").next())
        .unwrap_or_else(|| panic!("no package list in: {line}"));
    list.split_whitespace().map(String::from).collect()
}

#[test]
fn make_demo_installs_only_what_the_demo_needs_and_make_test_everything() {
    let demo = apt_packages_of("demo");
    let test = apt_packages_of("test");
    assert!(demo.iter().any(|p| p == "busybox-static"), "{demo:?}");
    for heavy in [
        "qemu-system-x86",
        "linux-image-amd64",
        "containerd",
        "podman",
        "umoci",
        "skopeo",
        "runc",
        "crun",
        "python3",
    ] {
        assert!(
            !demo.iter().any(|p| p == heavy),
            "make demo installs {heavy}"
        );
        assert!(test.iter().any(|p| p == heavy), "make test lacks {heavy}");
    }
    for p in &demo {
        assert!(test.contains(p), "make test lacks the demo's {p}");
    }
}
