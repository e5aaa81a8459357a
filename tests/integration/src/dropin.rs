//! The drop-in proof: containerd (ctr + containerd-shim-runc-v2), podman (+ conmon) and Docker
//! Engine (dockerd + its containerd) drive gruntime, and Debian's runc as a control, in the
//! cgroup-v2 VM: with the cgroupfs driver in the busybox-init guest, and with the systemd driver
//! (each client's default on a systemd host) in the systemd guest.
//!
//! One VM boot per client and driver runs every scenario for both runtimes
//! (`tests/integration/dropin/*.sh` print one `== <client>/<runtime>/<scenario>` section each,
//! ending in `rc=N`); the tests share that output and each checks one section. Booting per
//! scenario would cost minutes of TCG time.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::vm::{Init, Vm, VmOutput};
use crate::{gruntime_bin, make_busybox_rootfs, run, shell_quote, stderr, workspace_root};

/// A test module `name` of four tests, `{gruntime,runc}_under_{cgroupfs,systemd}`, each running
/// `$check(Driver, Runtime)`: every scenario of docker.rs and dropin.rs runs under both drivers with
/// gruntime and the control. The caller has `Driver` and `Runtime` in scope.
#[macro_export]
macro_rules! every_setup {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn gruntime_under_cgroupfs() {
                ($check)(Driver::Cgroupfs, Runtime::Gruntime)
            }
            #[test]
            fn runc_under_cgroupfs() {
                ($check)(Driver::Cgroupfs, Runtime::Runc)
            }
            #[test]
            fn gruntime_under_systemd() {
                ($check)(Driver::Systemd, Runtime::Gruntime)
            }
            #[test]
            fn runc_under_systemd() {
                ($check)(Driver::Systemd, Runtime::Runc)
            }
        }
    };
}

/// The runtime a scenario drove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Gruntime,
    /// Debian's runc: the control, so that a failure seen only with gruntime is known to be ours.
    Runc,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Gruntime => "gruntime",
            Runtime::Runc => "runc",
        }
    }
}

/// How a client has the runtime manage cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// The runtime writes the cgroup files itself (busybox-init guest).
    Cgroupfs,
    /// `--systemd-cgroup`: each container is a transient scope of systemd's (systemd guest).
    Systemd,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Cgroupfs => "cgroupfs",
            Driver::Systemd => "systemd",
        }
    }

    fn init(self) -> Init {
        match self {
            Driver::Cgroupfs => Init::Busybox,
            Driver::Systemd => Init::Systemd,
        }
    }
}

/// The container clients, each with its guest script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// containerd 1.6's `ctr` and runc shim (its runc options are those of a CRI runtime handler).
    Containerd,
    /// podman 4.3 + conmon.
    Podman,
    /// Docker Engine 20.10: dockerd, its own containerd and the runc shim.
    Docker,
}

impl Client {
    fn script(self) -> &'static str {
        match self {
            Client::Containerd => "containerd.sh",
            Client::Podman => "podman.sh",
            Client::Docker => "docker.sh",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Client::Containerd => "ctr",
            Client::Podman => "podman",
            Client::Docker => "docker",
        }
    }

    /// The section prefix of this client's batch under `driver`: `podman`, `podman-systemd`, ...
    fn prefix(self, driver: Driver) -> String {
        match driver {
            Driver::Cgroupfs => self.name().to_string(),
            Driver::Systemd => format!("{}-systemd", self.name()),
        }
    }
}

/// What one scenario printed, and the status of its key command.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub text: String,
    pub rc: i32,
}

impl Scenario {
    /// The value of the scenario's `KEY=VALUE` line (the scripts print the state they observed
    /// that way), or `None`.
    pub fn value(&self, key: &str) -> Option<&str> {
        let prefix = format!("{key}=");
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map(str::trim)
    }

    /// Like [`Scenario::value`], failing the test with the scenario's output when the key is missing.
    pub fn expect_value(&self, key: &str) -> &str {
        self.value(key)
            .unwrap_or_else(|| panic!("`{key}=` not printed by {self}"))
    }

    pub fn assert_ok(&self) {
        assert_eq!(self.rc, 0, "{self}");
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "scenario {} (rc={}):\n{}", self.name, self.rc, self.text)
    }
}

/// The busybox image the clients import, built offline on the host: `busybox-rootfs.tar` (for
/// `podman import`), `busybox-oci.tar`, an OCI image archive made with umoci (for
/// `ctr images import`), and `busybox-docker.tar`, the same image as a docker-archive written by
/// skopeo (Docker 20.10's `docker load` reads no OCI archive).
pub struct ImageDir {
    pub dir: tempfile::TempDir,
}

impl ImageDir {
    pub fn build() -> ImageDir {
        let dir = tempfile::Builder::new()
            .prefix("gruntime-dropin-")
            .tempdir()
            .expect("temp dir for the drop-in image");
        let rootfs = dir.path().join("rootfs");
        make_busybox_rootfs(&rootfs);
        tar_dir(&rootfs, &dir.path().join("busybox-rootfs.tar"));
        let layout = dir.path().join("oci");
        let image = format!("{}:latest", layout.display());
        umoci(&["init", "--layout", layout.to_str().unwrap()]);
        umoci(&["new", "--image", &image]);
        umoci(&["insert", "--image", &image, rootfs.to_str().unwrap(), "/"]);
        umoci(&[
            "config",
            "--image",
            &image,
            "--config.cmd",
            "sh",
            "--config.env",
            "PATH=/bin:/usr/bin:/sbin:/usr/sbin",
            "--config.workingdir",
            "/",
        ]);
        tar_dir(&layout, &dir.path().join("busybox-oci.tar"));
        let docker_archive = format!(
            "docker-archive:{}:localhost/busybox:latest",
            dir.path().join("busybox-docker.tar").display()
        );
        let out = run(Command::new("skopeo").args([
            "copy",
            "--quiet",
            &format!("oci:{image}"),
            &docker_archive,
        ]));
        assert!(
            out.status.success(),
            "skopeo copy to {docker_archive} (apt-get install skopeo): {}",
            stderr(&out)
        );
        ImageDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn umoci(args: &[&str]) {
    let out = run(Command::new("umoci").args(args));
    assert!(
        out.status.success(),
        "umoci {args:?} (apt-get install umoci): {}",
        stderr(&out)
    );
}

fn tar_dir(dir: &Path, archive: &Path) {
    let out = run(Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(archive)
        .arg("."));
    assert!(
        out.status.success(),
        "tar of {}: {}",
        dir.display(),
        stderr(&out)
    );
}

/// Directories that are fresh tmpfs in the guest rather than the host's (see vm/README.md).
const GUEST_TMPFS: &[&str] = &["/tmp", "/var/tmp", "/run", "/dev/shm"];

/// Bound on one client's batch: every scenario, both runtimes, under TCG. Docker's are the
/// longest (each `docker` call starts a 45 MB Go client, and dockerd relays to containerd).
fn batch_timeout(client: Client) -> Duration {
    match client {
        Client::Docker => Duration::from_secs(1800),
        Client::Containerd | Client::Podman => Duration::from_secs(900),
    }
}

/// Run a client's guest script under a driver once per test binary (the first test to ask boots
/// the VM, the others wait for it) and return its output.
pub fn batch(client: Client, driver: Driver) -> &'static VmOutput {
    static BATCHES: [OnceLock<VmOutput>; 6] = [const { OnceLock::new() }; 6];
    let cell = &BATCHES[client as usize * 2 + driver as usize];
    cell.get_or_init(|| run_client(client, driver))
}

fn run_client(client: Client, driver: Driver) -> VmOutput {
    let image = ImageDir::build();
    let script = workspace_root()
        .join("tests/integration/dropin")
        .join(client.script());
    let gruntime = gruntime_bin();
    let mut vm = Vm::new().init(driver.init()).share(image.path());
    // The guest has its own tmpfs on these: a GRUNTIME_BIN there is only visible when shared.
    if GUEST_TMPFS.iter().any(|d| gruntime.starts_with(d)) {
        vm = vm.share(gruntime.parent().unwrap());
    }
    vm.env("GRUNTIME", gruntime_bin().to_str().unwrap())
        .env("DROPIN_WORK", image.path().to_str().unwrap())
        .env("DROPIN_CGROUP_DRIVER", driver.name())
        .timeout(batch_timeout(client))
        // The batch reads its shares and writes only to guest tmpfs, so it can run again. Two
        // retries: the lockup has only ever hit this batch, and one retry passed in CI.
        .retry_on_lockup(2)
        .run(&format!("bash {}", shell_quote(&script)))
        .unwrap_or_else(|e| {
            panic!(
                "{client:?} batch ({} driver) in the VM failed: {e}",
                driver.name()
            )
        })
}

/// One scenario of a client's batch, for one runtime.
pub fn scenario(client: Client, driver: Driver, runtime: Runtime, name: &str) -> Scenario {
    section(client, driver, &format!("{}/{name}", runtime.name()))
}

/// A client-wide section (the image import).
pub fn section(client: Client, driver: Driver, name: &str) -> Scenario {
    let out = batch(client, driver);
    let full = format!("{}/{name}", client.prefix(driver));
    let header = format!("== {full}");
    assert!(
        out.stdout.lines().any(|l| l == header),
        "no section `{full}`: the guest script stopped early\n{out}"
    );
    let text = out.section(&full);
    let rc = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("rc="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("section `{full}` has no rc= line\n{text}"));
    Scenario {
        name: full,
        text,
        rc,
    }
}

/// The calls a client made to a runtime (the logging wrapper's `ARGV ...` lines), with the
/// `ENV ...` line that follows each.
pub fn calls(client: Client, driver: Driver, runtime: Runtime) -> Vec<(Vec<String>, Vec<String>)> {
    let s = scenario(client, driver, runtime, "calls");
    let mut out = Vec::new();
    let mut lines = s.text.lines();
    while let Some(l) = lines.next() {
        if let Some(argv) = l.strip_prefix("ARGV") {
            let env = lines
                .next()
                .and_then(|e| e.strip_prefix("ENV"))
                .unwrap_or("");
            out.push((
                argv.split_whitespace().map(String::from).collect(),
                env.split_whitespace().map(String::from).collect(),
            ));
        }
    }
    out
}
