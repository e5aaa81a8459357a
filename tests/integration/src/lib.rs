//! Shared helpers for the black-box tests: where the built binaries are, and how to make test rootfses.
//!
//! The tests drive the built binaries (`target/debug/gruntime`, `target/debug/imgtool` unless
//! `GRUNTIME_BIN` / `IMGTOOL_BIN` say otherwise) as root against the real kernel.

pub mod seccomp;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod cgroups;
pub mod dropin;
pub mod imgstore;
pub mod private_tmpfs;
pub mod registry;
pub mod unpack;
pub mod vm;

/// `path` as one POSIX shell word, for scripts that name a binary or a file of the checkout: the
/// checkout may live in a path with spaces (or quotes).
pub fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

fn built_binary(env_var: &str, name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env_var) {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    let p = target.join("debug").join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace` first (or set {env_var})",
        p.display()
    );
    p
}

pub fn gruntime_bin() -> PathBuf {
    built_binary("GRUNTIME_BIN", "gruntime")
}

pub fn imgtool_bin() -> PathBuf {
    built_binary("IMGTOOL_BIN", "imgtool")
}

/// Debian's busybox-static, installed by `make test` / `.ci/run`.
pub const BUSYBOX: &str = "/bin/busybox";

/// Make a minimal busybox rootfs at `rootfs`: /bin/busybox plus one symlink per applet, and the
/// directories a runtime mounts onto.
pub fn make_busybox_rootfs(rootfs: &Path) {
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} missing: apt-get install busybox-static"
    );
    for d in [
        "bin", "dev", "proc", "sys", "tmp", "etc", "root", "run", "usr/bin", "sbin",
    ] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    let out = Command::new(BUSYBOX).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let link = rootfs.join("bin").join(applet);
        if applet != "busybox" && !link.exists() {
            std::os::unix::fs::symlink("busybox", &link).unwrap();
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

/// Run a command with stdout/stderr going to temp files (see `TestBundle::gruntime`) and stdin closed.
pub fn run_via_files(cmd: &mut Command) -> Output {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let status = cmd
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    Output {
        status,
        stdout: read(out),
        stderr: read(err),
    }
}

/// Run a command and return its output; panics with context when it cannot be started at all.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Send `sig` to `child` once `ready()` holds, failing the test if the child ends first or `ready` never
/// comes within a minute: a signal at a real moment of the child's work, not after a guessed sleep.
pub fn signal_when(
    child: &mut std::process::Child,
    sig: nix::sys::signal::Signal,
    ready: impl Fn() -> bool,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "the child never got ready"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child ended before it got {sig}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
}

/// SIGINT back to its default action in the child, as a shell gives it to a foreground command.
/// imgtool keeps a SIGINT that was ignored when it started ignored (as `nohup` means it), and a test
/// run started in the background from a script (`make test &`) inherits exactly that: a test that
/// interrupts a command must not depend on how the test run was started.
pub fn sigint_as_from_a_shell(cmd: &mut std::process::Command) -> &mut std::process::Command {
    // SAFETY: the closure runs between fork and exec and only calls signal(2), which is
    // async-signal-safe; it touches no memory shared with the parent.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            if libc::signal(libc::SIGINT, libc::SIG_DFL) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Ctrl-C (SIGINT) once `ready()` holds.
pub fn interrupt_when(child: &mut std::process::Child, ready: impl Fn() -> bool) {
    signal_when(child, nix::sys::signal::Signal::SIGINT, ready)
}

/// A unique id for a test container or image, so tests can run in parallel.
pub fn unique_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A bundle in a temp dir (busybox rootfs + `gruntime spec` config with `terminal: false`) and a private
/// state root, so tests run in parallel and leave nothing behind: dropping it force-deletes every container
/// still listed under its root.
pub struct TestBundle {
    pub dir: tempfile::TempDir,
    pub root: tempfile::TempDir,
}

impl TestBundle {
    pub fn new(args: &[&str]) -> TestBundle {
        let dir = tempfile::Builder::new()
            .prefix("gruntime-test-")
            .tempdir()
            .unwrap();
        let root = tempfile::Builder::new()
            .prefix("gruntime-root-")
            .tempdir()
            .unwrap();
        make_busybox_rootfs(&dir.path().join("rootfs"));
        let out = run(Command::new(gruntime_bin())
            .args(["spec", "--bundle"])
            .arg(dir.path()));
        assert!(out.status.success(), "gruntime spec: {}", stderr(&out));
        let b = TestBundle { dir, root };
        b.edit(|c| {
            c["process"]["terminal"] = false.into();
            c["process"]["args"] = args.iter().map(|a| serde_json::Value::from(*a)).collect();
        });
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn config(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.path().join("config.json")).unwrap()).unwrap()
    }

    pub fn edit(&self, f: impl FnOnce(&mut serde_json::Value)) {
        let mut c = self.config();
        f(&mut c);
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&c).unwrap(),
        )
        .unwrap();
    }

    /// `gruntime --root <root> ARGS...` run in the bundle directory.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(gruntime_bin());
        c.arg("--root")
            .arg(self.root.path())
            .args(args)
            .current_dir(self.path());
        c
    }

    /// Output is captured through files, not pipes: a container's init inherits gruntime's stdio, and a pipe
    /// would keep the reader waiting for as long as the container lives.
    pub fn gruntime(&self, args: &[&str]) -> Output {
        run_via_files(&mut self.cmd(args))
    }

    /// `run` a container to completion and return its output (stdin closed).
    pub fn run_container(&self, id: &str) -> Output {
        run_via_files(&mut self.cmd(&["run", "--bundle", self.path().to_str().unwrap(), id]))
    }

    /// Ids still listed under the state root.
    pub fn listed(&self) -> Vec<String> {
        std::fs::read_dir(self.root.path())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Mounts that mention this bundle (there must be none once a container is gone).
    pub fn leftover_mounts(&self) -> Vec<String> {
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let p = self.path().to_string_lossy().into_owned();
        mi.lines()
            .filter(|l| l.contains(&p))
            .map(String::from)
            .collect()
    }

    /// Processes whose root or cwd is inside this bundle (a stray init would show up here).
    pub fn leftover_processes(&self) -> Vec<i32> {
        let p = self.path().to_path_buf();
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                for link in ["root", "cwd"] {
                    if std::fs::read_link(format!("/proc/{pid}/{link}"))
                        .map(|l| l.starts_with(&p))
                        .unwrap_or(false)
                    {
                        out.push(pid);
                        break;
                    }
                }
            }
        }
        out
    }
}

impl Drop for TestBundle {
    fn drop(&mut self) {
        for id in self.listed() {
            let _ = self.cmd(&["delete", "--force", &id]).output();
        }
    }
}
