//! The cgroup-v2 test VM: run a batch of shell commands as root in a throw-away qemu guest whose
//! kernel has a pure cgroup v2 hierarchy with every controller enabled.
//!
//! The host's cgroups are a v1/v2 hybrid that belongs to the machine's supervisor, so tests that
//! need real cgroup v2 (resources, freezer, device filter, containerd, podman, rootless) run
//! there instead. The guest sees the host's `/` read-only (writes go to a tmpfs overlay and
//! vanish), so built binaries and test assets are at their host paths; host directories passed
//! with [`Vm::share`] are mounted read-write at the same path, and the only way results come
//! back besides the output. A workspace, target dir or cwd under a path the guest hides with its
//! own tmpfs (/tmp, /run, /var/tmp, ...) is shown to it read-only on its own, so a checkout may
//! live anywhere. See `tests/integration/vm/README.md`.
//!
//! Boot one VM per batch of checks, not per check: a boot costs several seconds of TCG.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// The default bound on one batch, boot included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Extra time the host side waits beyond the VM's own timeout (building the initramfs, waiting
/// for another test binary's build lock) before it kills run.sh itself.
const HOST_GRACE: Duration = Duration::from_secs(120);

/// Host environment variables handed to the guest command when set, so a test's choice of
/// binaries and logging carries over.
const PASSED_ENV: &[&str] = &["GRUNTIME_BIN", "IMGTOOL_BIN", "RUST_BACKTRACE", "RUST_LOG"];

/// One VM at a time per test binary: parallel test threads each booting a 3 GB TCG guest on
/// two cores would only slow all of them down and risk their timeouts.
static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What a batch printed and how it ended.
#[derive(Debug, Clone)]
pub struct VmOutput {
    /// The batch's exit status in the guest.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    /// The guest's kernel console, for diagnosing a failed check.
    pub console: String,
}

impl VmOutput {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// The lines printed after a `== NAME` line up to the next `== ` line: lets one batch
    /// carry the output of several named checks.
    pub fn section(&self, name: &str) -> String {
        let header = format!("== {name}");
        let mut lines = self.stdout.lines().skip_while(|l| *l != header);
        assert!(
            lines.next().is_some(),
            "no section `{header}` in the VM output:\n{self}"
        );
        lines
            .take_while(|l| !l.starts_with("== "))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// Section `name`, after asserting that each of `want` is one of its lines (trimmed): the
    /// check every batch-sharing test makes, failing with the whole batch's output.
    pub fn assert_lines(&self, name: &str, want: &[&str]) -> String {
        let s = self.section(name);
        for w in want {
            assert!(has_line(&s, w), "section {name}: missing `{w}`:\n{self}");
        }
        s
    }
}

/// Whether `line` is one of `text`'s lines, trimmed.
pub fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l.trim() == line)
}

impl fmt::Display for VmOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "guest exit status: {}", self.status)?;
        writeln!(f, "--- guest stdout ---\n{}", self.stdout)?;
        writeln!(f, "--- guest stderr ---\n{}", self.stderr)?;
        write!(
            f,
            "--- guest console (tail) ---\n{}",
            tail(&self.console, 25)
        )
    }
}

/// Why a batch did not run to completion.
#[derive(Debug)]
pub enum VmError {
    /// run.sh could not be started at all.
    SpawnRunScript { script: PathBuf, source: io::Error },
    /// A step of preparing the batch on the host failed (temp dir, reading results).
    HostIo {
        step: &'static str,
        source: io::Error,
    },
    /// The VM could not run the batch: no qemu, no kernel, a guest boot failure. `reason` is
    /// run.sh's own explanation.
    Harness { reason: String, console: String },
    /// The batch ran past its timeout and the VM was killed. `job_dir` was the host directory
    /// shared with that VM (its name appears on the qemu command line).
    Timeout {
        /// How long run.sh ran, from its spawn to its exit: excludes the wait for
        /// [`ONE_VM_AT_A_TIME`], which another test's batch may hold for minutes.
        ran: Duration,
        job_dir: PathBuf,
        stdout: String,
        stderr: String,
        console: String,
    },
    /// The guest kernel locked up (a CPU stuck in it for a minute, reported by its watchdog) and
    /// run.sh killed the VM without waiting for the timeout. `line` is the watchdog's line.
    GuestLockup {
        line: String,
        stdout: String,
        stderr: String,
        console: String,
    },
    /// run.sh itself did not finish within the timeout plus grace and was killed.
    RunScriptHung { waited: Duration, log: String },
    /// run.sh ended without recording an outcome.
    NoResult { status: ExitStatus, log: String },
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmError::SpawnRunScript { script, source } => {
                write!(f, "cannot start {}: {source}", script.display())
            }
            VmError::HostIo { step, source } => write!(f, "{step}: {source}"),
            VmError::Harness { reason, console } => write!(
                f,
                "the VM could not run the batch: {reason}\n--- guest console (tail) ---\n{}",
                tail(console, 25)
            ),
            VmError::Timeout {
                ran,
                stdout,
                stderr,
                console,
                ..
            } => write!(
                f,
                "the batch ran past its timeout and the VM was killed after {} s\n--- guest stdout ---\n\
                 {stdout}\n--- guest stderr ---\n{stderr}\n--- guest console (tail) ---\n{}",
                ran.as_secs(),
                tail(console, 25)
            ),
            VmError::GuestLockup {
                line,
                stdout,
                stderr,
                console,
            } => write!(
                f,
                "the guest kernel locked up and the VM was killed: {line}\n--- guest stdout ---\n\
                 {stdout}\n--- guest stderr ---\n{stderr}\n--- guest console, from the first \
                 lockup report ---\n{}",
                from_first_lockup(console, 120)
            ),
            VmError::RunScriptHung { waited, log } => write!(
                f,
                "run.sh did not finish within {}s and was killed; its output:\n{log}",
                waited.as_secs()
            ),
            VmError::NoResult { status, log } => {
                write!(
                    f,
                    "run.sh ended ({status}) without a result; its output:\n{log}"
                )
            }
        }
    }
}

impl std::error::Error for VmError {}

/// The harness script, `tests/integration/vm/run.sh`.
pub fn run_script() -> PathBuf {
    crate::workspace_root().join("tests/integration/vm/run.sh")
}

/// A batch to run in a fresh VM.
#[derive(Debug, Clone)]
pub struct Vm {
    script: PathBuf,
    host_env: Vec<(String, OsString)>,
    timeout: Duration,
    shares: Vec<PathBuf>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
    lockup_retries: u32,
    init: Init,
}

/// The guest's PID 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// run.sh's busybox init: the batch is the only thing running, in the root cgroup, with every
    /// controller enabled there.
    Busybox,
    /// The host's systemd, booted to a small target with the system bus (`run.sh --init
    /// systemd`); the batch runs from a service once `systemctl is-system-running` says running
    /// or degraded. For the clients' systemd cgroup drivers.
    Systemd,
}

impl Init {
    fn name(self) -> &'static str {
        match self {
            Init::Busybox => "busybox",
            Init::Systemd => "systemd",
        }
    }
}

impl Default for Vm {
    fn default() -> Self {
        Self::new()
    }
}

impl Vm {
    pub fn new() -> Self {
        Vm {
            script: run_script(),
            host_env: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            shares: Vec::new(),
            env: PASSED_ENV
                .iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
                .collect(),
            cwd: crate::workspace_root(),
            lockup_retries: 0,
            init: Init::Busybox,
        }
    }

    /// A VM whose guest boots Debian's systemd as PID 1 (see [`Init::Systemd`]). A boot costs
    /// some 15 s more than the busybox guest's under TCG: batch what needs it.
    pub fn systemd() -> Self {
        Self::new().init(Init::Systemd)
    }

    /// Choose the guest's PID 1.
    pub fn init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    /// Boot with the harness of the checkout at `workspace` instead of this one's: its run.sh,
    /// which takes that checkout for the workspace to show the guest and keeps its caches in that
    /// checkout's target dir. For tests of where a checkout may live.
    pub fn harness_of(mut self, workspace: impl AsRef<Path>) -> Self {
        self.script = workspace.as_ref().join("tests/integration/vm/run.sh");
        self
    }

    /// Set an environment variable for run.sh itself, on the host (e.g. `CARGO_TARGET_DIR`);
    /// [`Vm::env`] sets one for the batch.
    pub fn host_env(mut self, name: &str, value: impl AsRef<OsStr>) -> Self {
        self.host_env
            .push((name.to_string(), value.as_ref().to_os_string()));
        self
    }

    /// Bound the whole batch, boot included; the VM is killed when it is reached.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Mount host directory `dir` read-write at the same path in the guest. Needed for anything
    /// under the host's /tmp (the guest has its own tmpfs there) other than the workspace, the
    /// target dir and the cwd (which run.sh shows the guest on its own, read-only), and for
    /// results that must come back as files.
    pub fn share(mut self, dir: impl AsRef<Path>) -> Self {
        self.shares.push(dir.as_ref().to_path_buf());
        self
    }

    /// Set an environment variable for the batch.
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_string(), value.into()));
        self
    }

    /// The batch's working directory (default: the workspace root). Under /tmp, /run or /var/tmp
    /// it is shown to the guest read-only unless shared.
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = dir.as_ref().to_path_buf();
        self
    }

    /// Boot the batch again, up to `retries` times, when the guest kernel locks up. Under TCG
    /// the guest kernel has locked up for good with both CPUs spinning in podman and conmon
    /// (once in CI and once locally, at the podman batch's first container), and the same batch
    /// booted again passed. Its cause is not known yet; the stacks of the next one will be in the
    /// retry's report. Only for batches that can run twice: each boot starts from a fresh guest,
    /// but shared directories keep what the first run wrote. Every retry is reported on stderr
    /// with the watchdog's line.
    pub fn retry_on_lockup(mut self, retries: u32) -> Self {
        self.lockup_retries = retries;
        self
    }

    /// Boot a VM, run `script` with `bash -c` as root in the guest, and return its outcome.
    pub fn run(&self, script: &str) -> Result<VmOutput, VmError> {
        let _one = ONE_VM_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut boots = 0;
        loop {
            match self.run_once(script) {
                Err(VmError::GuestLockup { line, console, .. }) if boots < self.lockup_retries => {
                    boots += 1;
                    // Straight to stderr, past the test harness's capture: a retry that then
                    // passes must still show in the log.
                    let _ = writeln!(
                        io::stderr(),
                        "vm: the guest kernel locked up ({line}); booting the batch again \
                         ({boots} of {} retries)\n--- guest console, from the first lockup \
                         report ---\n{}",
                        self.lockup_retries,
                        from_first_lockup(&console, 60)
                    );
                }
                outcome => return outcome,
            }
        }
    }

    fn run_once(&self, script: &str) -> Result<VmOutput, VmError> {
        let work = tempfile::Builder::new()
            .prefix("gruntime-vm-")
            .tempdir()
            .map_err(|source| VmError::HostIo {
                step: "make a temp dir for the VM job",
                source,
            })?;
        let job_dir = work.path().join("job");
        let log_path = work.path().join("run.log");
        let log = std::fs::File::create(&log_path).map_err(|source| VmError::HostIo {
            step: "create the run.sh log",
            source,
        })?;
        let log_err = log.try_clone().map_err(|source| VmError::HostIo {
            step: "duplicate the run.sh log handle",
            source,
        })?;

        let script_path = self.script.clone();
        let mut cmd = Command::new("bash");
        cmd.arg(&script_path)
            .arg("--timeout")
            .arg(self.timeout.as_secs().max(1).to_string())
            .arg("--output-dir")
            .arg(&job_dir);
        // Busybox is run.sh's default: left unsaid, so a harness_of() checkout without --init works.
        if self.init != Init::Busybox {
            cmd.arg("--init").arg(self.init.name());
        }
        for dir in &self.shares {
            cmd.arg("--share").arg(dir);
        }
        for (name, value) in &self.env {
            cmd.arg("--env").arg(format!("{name}={value}"));
        }
        cmd.args(["--", "bash", "-c", script])
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        for (name, value) in &self.host_env {
            cmd.env(name, value);
        }
        // Its own process group, so the guard can kill run.sh and qemu together.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        // Being in its own group, run.sh does not get the terminal's ^C; a parent-death signal
        // ends it (and, through qemu's own, qemu) when the test process dies without unwinding.
        // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
        // async-signal-safe; it touches no memory shared with the parent.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)
            });
        }
        let spawned = Instant::now();
        let child = cmd.spawn().map_err(|source| VmError::SpawnRunScript {
            script: script_path.clone(),
            source,
        })?;
        let mut guard = KillOnDrop(Some(child));

        let waited = self.timeout + HOST_GRACE;
        let status = match guard.wait_until(Instant::now() + waited) {
            Some(status) => status,
            None => {
                drop(guard);
                return Err(VmError::RunScriptHung {
                    waited,
                    log: read_lossy(&log_path),
                });
            }
        };
        let ran = spawned.elapsed();
        collect_outcome(&job_dir, status, &read_lossy(&log_path), ran)
    }
}

/// Boot a VM, run `script` in it with the default settings, and return its outcome; panics
/// with the reason when the VM could not run it (a missing qemu or kernel is a test failure,
/// never a skip).
pub fn run_batch(script: &str) -> VmOutput {
    Vm::new()
        .run(script)
        .unwrap_or_else(|e| panic!("VM batch failed: {e}"))
}

/// Turn the files run.sh left in the job directory into the batch's outcome.
fn collect_outcome(
    job_dir: &Path,
    status: ExitStatus,
    log: &str,
    ran: Duration,
) -> Result<VmOutput, VmError> {
    let read = |name: &str| read_lossy(&job_dir.join(name));
    let result = read("result");
    let result = result.trim_end();
    if let Some(code) = result.strip_prefix("exit ") {
        let status = code.parse().map_err(|_| VmError::NoResult {
            status,
            log: format!("unparsable result `{result}`\n{log}"),
        })?;
        return Ok(VmOutput {
            status,
            stdout: read("stdout"),
            stderr: read("stderr"),
            console: read("console.log"),
        });
    }
    if result.starts_with("timeout ") {
        return Err(VmError::Timeout {
            ran,
            job_dir: job_dir.to_path_buf(),
            stdout: read("stdout"),
            stderr: read("stderr"),
            console: read("console.log"),
        });
    }
    if let Some(line) = result.strip_prefix("lockup ") {
        return Err(VmError::GuestLockup {
            line: line.to_string(),
            stdout: read("stdout"),
            stderr: read("stderr"),
            console: read("console.log"),
        });
    }
    if let Some(reason) = result.strip_prefix("error ") {
        return Err(VmError::Harness {
            reason: reason.to_string(),
            console: read("console.log"),
        });
    }
    Err(VmError::NoResult {
        status,
        log: log.to_string(),
    })
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Up to `lines` lines of `console` from the first watchdog report on: its stacks show where the
/// guest's CPUs were spinning.
fn from_first_lockup(console: &str, lines: usize) -> String {
    match console.find("soft lockup - CPU#") {
        // From the start of that line.
        Some(at) => {
            let start = console[..at].rfind('\n').map_or(0, |nl| nl + 1);
            console[start..]
                .lines()
                .take(lines)
                .collect::<Vec<_>>()
                .join("\n")
        }
        None => tail(console, lines),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// run.sh's process; dropping it kills run.sh's whole process group (qemu included) so that a
/// panicking or timed-out test never leaves a VM behind.
struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    /// Wait for the child to exit, up to `deadline`; `None` when it is still running then.
    fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        let child = self.0.as_mut()?;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.0 = None;
                    return Some(status);
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            // The group id is the child's pid (process_group(0)); qemu also has a parent-death
            // signal, so killing the group is belt and braces.
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
