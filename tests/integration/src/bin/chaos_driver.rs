//! The driver of the gruntime chaos soak (tests/gruntime_chaos.rs runs it in the VM, as root, on a
//! pure cgroup v2 guest). A few container slots go through create, start, exec, kill and delete
//! again and again; half of the commands get a SIGKILL at a random moment, delivered to a random
//! gruntime process (the command itself, the container's init before its exec, an exec's child, the
//! pre-start init of another slot) or to the container's init. After each disturbed command every
//! slot's `state` must agree with the kernel; at the end `list` must agree with reality,
//! `delete --force` must clean every id, and no cgroup, mount, state dir, fd, process or zombie may
//! be left.
//!
//! Environment: `GRUNTIME` (the binary), `CHAOS_BUNDLE` (a bundle whose process runs for a long
//! time), `CHAOS_ROOT` (gruntime's --root, must not exist yet), `CHAOS_ITERATIONS` (default 1000),
//! `CHAOS_SEED` (default: from the clock; printed first), `CHAOS_SLOTS` (default 3), `CHAOS_SYSTEMD=1`
//! (every command with `--systemd-cgroup`, in a systemd-booted guest: containers are `gruntime-<id>.scope`
//! units in system.slice, and no unit, failed or not, may be left either).
//! Output: `defect: ...` lines (the first few of each kind), then a `== summary`. Exit status 0
//! when no defect was found, 1 otherwise, 2 when the driver itself could not run.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::ExitStatusExt;

/// splitmix64, as in the imgtool soak: the same choices for the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Create,
    Start,
    Exec,
    Kill,
    Delete,
    ForceDelete,
}

/// What a slot's container is known to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    Absent,
    Created,
    Running,
    Stopped,
    /// A kill may have changed it: ask `state`.
    Unsure,
}

struct Slot {
    id: String,
    known: Known,
    generation: u32,
}

/// How a command ended.
struct Ran {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    took: Duration,
    /// Someone was SIGKILLed while it ran.
    killed: Option<Victim>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Victim {
    /// The gruntime command itself.
    Command,
    /// Another gruntime process: a child of the command, or an init that has not exec'd yet.
    Helper,
    /// The container's init (exec'd or not).
    Init,
}

struct Chaos {
    gruntime: PathBuf,
    driver: Driver,
    /// (dev, ino) of the gruntime binary: how its processes are found.
    exe: (u64, u64),
    bundle: PathBuf,
    root: PathBuf,
    out_dir: PathBuf,
    slots: Vec<Slot>,
    rng: Rng,
    durations: BTreeMap<Op, Duration>,
    defects: BTreeMap<String, Vec<String>>,
    kills: BTreeMap<Victim, u64>,
    missed: u64,
    commands: u64,
    iteration: u64,
    every_id: BTreeSet<String>,
    /// Processes SIGKILLed by the last command's chaos: waited for before anything is checked.
    victims: Vec<i32>,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn need_env(name: &str) -> PathBuf {
    match std::env::var_os(name) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => {
            eprintln!("chaos_driver: {name} is not set");
            std::process::exit(2)
        }
    }
}

fn dev_ino(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Every process of the system: (pid, state letter, ppid).
fn processes() -> Vec<(i32, char, i32)> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut f = rest.split_whitespace();
            let state = f.next()?.chars().next()?;
            let ppid = f.next()?.parse().ok()?;
            Some((pid, state, ppid))
        })
        .collect()
}

fn alive(pid: i32) -> bool {
    pid > 0
        && processes()
            .iter()
            .any(|&(p, s, _)| p == pid && s != 'Z' && s != 'X')
}

/// Wait (at most 5 s) until a process is dead: a SIGKILL takes effect soon, not at once.
fn wait_gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

fn fds_of(pid: i32) -> Vec<String> {
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .flatten()
        .map(|e| {
            let target = fs::read_link(e.path())
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            format!("{}->{target}", e.file_name().to_string_lossy())
        })
        .collect();
    v.sort();
    v
}

fn mounts() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(' ').skip(4).take(1).collect())
        .collect()
}

/// Where the containers' cgroups are: the default parent gruntime's cgroupfs driver uses, or the scopes
/// of its systemd driver (`system.slice:gruntime:<id>` when the bundle has no cgroupsPath).
#[derive(Clone, Copy)]
enum Driver {
    Cgroupfs,
    Systemd,
}

impl Driver {
    fn dir(self) -> &'static str {
        match self {
            Driver::Cgroupfs => "/sys/fs/cgroup/gruntime",
            Driver::Systemd => "/sys/fs/cgroup/system.slice",
        }
    }

    /// The container id a child cgroup of `dir()` belongs to, if it is a container's.
    fn id_of(self, name: &str) -> Option<String> {
        match self {
            Driver::Cgroupfs => Some(name.to_string()),
            Driver::Systemd => name
                .strip_prefix("gruntime-")
                .and_then(|n| n.strip_suffix(".scope"))
                .map(String::from),
        }
    }

    /// The containers' cgroups that exist: (container id, cgroup directory).
    fn cgroups(self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = fs::read_dir(self.dir())
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        self.id_of(&name)
                            .map(|id| (id, format!("{}/{name}", self.dir())))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// The systemd units of gruntime's containers still loaded (active, failed or anything else).
fn container_units() -> Vec<String> {
    Command::new("systemctl")
        .args([
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "gruntime-*.scope",
        ])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl Chaos {
    fn defect(&mut self, kind: &str, detail: String) {
        let list = self.defects.entry(kind.to_string()).or_default();
        if list.len() < 5 {
            println!("defect: [{kind}] iteration {}: {detail}", self.iteration);
        }
        list.push(detail);
    }

    fn gruntime_pids(&self) -> Vec<i32> {
        let me = std::process::id() as i32;
        processes()
            .into_iter()
            .filter(|&(p, s, _)| p != me && s != 'Z')
            .filter(|&(p, _, _)| dev_ino(Path::new(&format!("/proc/{p}/exe"))) == Some(self.exe))
            .map(|(p, _, _)| p)
            .collect()
    }

    /// The init pid a slot's state file records (0 when there is none).
    fn saved_pid(&self, id: &str) -> i32 {
        fs::read(self.root.join(id).join("state.json"))
            .ok()
            .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
            .and_then(|v| v["pid"].as_i64())
            .unwrap_or(0) as i32
    }

    fn args_of(&self, op: Op, id: &str) -> Vec<String> {
        let b = self.bundle.display().to_string();
        let a: Vec<&str> = match op {
            Op::Create => vec!["create", "--bundle", &b, id],
            Op::Start => vec!["start", id],
            Op::Exec => vec!["exec", id, "sh", "-c", "sleep 0.05"],
            Op::Kill => vec!["kill", id, "KILL"],
            Op::Delete => vec!["delete", id],
            Op::ForceDelete => vec!["delete", "--force", id],
        };
        a.into_iter().map(String::from).collect()
    }

    fn spawn(&self, args: &[String], name: &str) -> std::io::Result<Child> {
        let out = File::create(self.out_dir.join(format!("{name}.out")))?;
        let err = File::create(self.out_dir.join(format!("{name}.err")))?;
        let mut cmd = Command::new(&self.gruntime);
        if let Driver::Systemd = self.driver {
            cmd.arg("--systemd-cgroup");
        }
        cmd.arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
    }

    /// Run a gruntime command; with `kill_after`, SIGKILL a random victim after that delay.
    fn run(&mut self, args: &[String], kill_after: Option<(Duration, i32)>) -> Ran {
        self.commands += 1;
        let t0 = Instant::now();
        let mut child = match self.spawn(args, "cmd") {
            Ok(c) => c,
            Err(e) => {
                self.defect("driver", format!("spawn gruntime {args:?}: {e}"));
                return Ran {
                    status: None,
                    stdout: String::new(),
                    stderr: String::new(),
                    took: Duration::ZERO,
                    killed: None,
                };
            }
        };
        let mut killed = None;
        if let Some((delay, init)) = kill_after {
            std::thread::sleep(delay);
            killed = self.kill_one(child.id() as i32, init);
        }
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if t0.elapsed() > Duration::from_secs(60) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(_) => break None,
            }
        };
        let took = t0.elapsed();
        for pid in std::mem::take(&mut self.victims) {
            wait_gone(pid);
        }
        let read = |ext: &str| {
            fs::read_to_string(self.out_dir.join(format!("cmd.{ext}"))).unwrap_or_default()
        };
        let ran = Ran {
            status,
            stdout: read("out"),
            stderr: read("err"),
            took,
            killed,
        };
        self.check_output(args, &ran);
        ran
    }

    /// SIGKILL one process: the container's init a quarter of the time, else any gruntime process.
    fn kill_one(&mut self, command: i32, init: i32) -> Option<Victim> {
        let pick_init = init > 0 && alive(init) && self.rng.below(4) == 0;
        let (pid, victim) = if pick_init {
            (init, Victim::Init)
        } else {
            let pids = self.gruntime_pids();
            if pids.is_empty() {
                self.missed += 1;
                return None;
            }
            let p = pids[self.rng.below(pids.len() as u64) as usize];
            let v = if p == command {
                Victim::Command
            } else if p == init {
                Victim::Init
            } else {
                Victim::Helper
            };
            (p, v)
        };
        // SAFETY: kill(2) with a pid read from /proc; at worst it signals nothing (ESRCH).
        if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
            self.missed += 1;
            return None;
        }
        *self.kills.entry(victim).or_default() += 1;
        self.victims.push(pid);
        Some(victim)
    }

    fn check_output(&mut self, args: &[String], ran: &Ran) {
        let what = format!("gruntime {}", args.join(" "));
        let Some(status) = ran.status else {
            self.defect("hang", format!("{what}: still running after 60 s"));
            return;
        };
        if ran.stderr.contains("panicked") || status.code() == Some(101) {
            self.defect("panic", format!("{what}: {}", ran.stderr.trim()));
        }
        if let Some(sig) = status.signal() {
            if sig != libc::SIGKILL || ran.killed != Some(Victim::Command) {
                self.defect(
                    "signal",
                    format!("{what}: killed by signal {sig} (victim {:?})", ran.killed),
                );
            }
        }
        // exec exits with its process's status: a killed container makes it 137, with no message.
        let execs_status = args.first().is_some_and(|a| a == "exec") && ran.killed.is_some();
        if !status.success() && status.signal().is_none() && !execs_status {
            let lines = ran
                .stderr
                .lines()
                .filter(|l| !l.contains("level=warn"))
                .count();
            if lines != 1 {
                self.defect(
                    "error-format",
                    format!("{what}: {lines} lines: {}", ran.stderr.trim()),
                );
            }
        }
    }

    /// Ask `state` and compare it with the kernel: returns what the slot is.
    fn verify(&mut self, slot: usize) -> Known {
        let id = self.slots[slot].id.clone();
        let ran = self.run(&["state".into(), id.clone()], None);
        let Some(status) = ran.status else {
            return Known::Unsure;
        };
        if !status.success() {
            if !ran.stderr.contains("does not exist") {
                self.defect("state", format!("state {id}: {}", ran.stderr.trim()));
                return Known::Unsure;
            }
            if self.root.join(&id).exists() {
                let left: Vec<String> = fs::read_dir(self.root.join(&id))
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                self.defect(
                    "debris",
                    format!("state {id}: does not exist, yet its state dir holds {left:?}"),
                );
                return Known::Unsure;
            }
            return Known::Absent;
        }
        let v: serde_json::Value = match serde_json::from_str(&ran.stdout) {
            Ok(v) => v,
            Err(e) => {
                self.defect(
                    "state",
                    format!("state {id}: not JSON ({e}): {}", ran.stdout),
                );
                return Known::Unsure;
            }
        };
        let pid = v["pid"].as_i64().unwrap_or(-1) as i32;
        let st = v["status"].as_str().unwrap_or("").to_string();
        self.check_status(&id, &st, pid)
    }

    /// Does a reported (status, pid) match the kernel?
    fn check_status(&mut self, id: &str, st: &str, pid: i32) -> Known {
        let exe = self.exe;
        let is_gruntime = |p: i32| dev_ino(Path::new(&format!("/proc/{p}/exe"))) == Some(exe);
        match st {
            "created" | "running" | "paused" | "creating" => {
                if !alive(pid) {
                    self.defect(
                        "state-vs-kernel",
                        format!("{id} is {st} with pid {pid}, which is not alive"),
                    );
                    return Known::Unsure;
                }
                let execd = !is_gruntime(pid);
                if st == "created" && execd {
                    self.defect(
                        "state-vs-kernel",
                        format!(
                            "{id} is created but its init {pid} has exec'd `{}`",
                            cmdline(pid)
                        ),
                    );
                }
                if st == "running" && !execd {
                    self.defect(
                        "state-vs-kernel",
                        format!("{id} is running but its init {pid} has not exec'd"),
                    );
                }
                if st == "running" && execd {
                    let fds = fds_of(pid);
                    let extra: Vec<&String> = fds
                        .iter()
                        .filter(|f| !["0->", "1->", "2->"].iter().any(|p| f.starts_with(p)))
                        .collect();
                    if !extra.is_empty() {
                        self.defect(
                            "fd-leak",
                            format!("{id}: the running init {pid} holds {extra:?}"),
                        );
                    }
                }
                match st {
                    "created" => Known::Created,
                    "running" => Known::Running,
                    _ => Known::Unsure,
                }
            }
            "stopped" => {
                if pid != 0 {
                    self.defect("state-vs-kernel", format!("{id} is stopped with pid {pid}"));
                }
                let saved = self.saved_pid(id);
                // An init whose create died exits on its own (EOF on its socket): give it a moment.
                if saved > 0 && !wait_gone(saved) && is_gruntime(saved) {
                    self.defect(
                        "state-vs-kernel",
                        format!("{id} is stopped but its init {saved} is alive"),
                    );
                }
                Known::Stopped
            }
            other => {
                self.defect("state", format!("{id}: status {other:?}"));
                Known::Unsure
            }
        }
    }

    /// The next command for a slot in a known state.
    fn next_op(&mut self, known: Known) -> Op {
        let r = self.rng.below(10);
        match known {
            Known::Absent => Op::Create,
            Known::Created => match r {
                0 => Op::ForceDelete,
                1 => Op::Kill,
                _ => Op::Start,
            },
            Known::Running => match r {
                0..=4 => Op::Exec,
                5..=7 => Op::Kill,
                _ => Op::ForceDelete,
            },
            Known::Stopped | Known::Unsure => {
                if r < 8 {
                    Op::Delete
                } else {
                    Op::ForceDelete
                }
            }
        }
    }

    /// The state after a command that was not disturbed.
    fn expect_after(&mut self, op: Op, slot: usize, ran: &Ran) -> Known {
        let ok = ran.status.is_some_and(|s| s.success());
        let id = self.slots[slot].id.clone();
        let before = self.slots[slot].known;
        if !ok {
            self.defect(
                "undisturbed-failure",
                format!(
                    "{op:?} {id} (was {before:?}) failed with nothing killed: {}",
                    ran.stderr.trim()
                ),
            );
            return Known::Unsure;
        }
        match op {
            Op::Create => Known::Created,
            Op::Start | Op::Exec => Known::Running,
            // The init dies soon after the signal, not at once.
            Op::Kill => {
                let pid = self.saved_pid(&id);
                if wait_gone(pid) {
                    Known::Stopped
                } else {
                    self.defect(
                        "kill",
                        format!("kill {id} KILL: init {pid} still alive after 5 s"),
                    );
                    Known::Unsure
                }
            }
            Op::Delete | Op::ForceDelete => Known::Absent,
        }
    }

    fn iterate(&mut self) {
        let slot = self.rng.below(self.slots.len() as u64) as usize;
        if self.slots[slot].known == Known::Unsure {
            let k = self.verify(slot);
            self.slots[slot].known = k;
        }
        let known = self.slots[slot].known;
        let op = self.next_op(known);
        let id = self.slots[slot].id.clone();
        let args = self.args_of(op, &id);
        let chaos = self.rng.below(2) == 0;
        let typical = self
            .durations
            .get(&op)
            .copied()
            .unwrap_or(Duration::from_millis(50));
        let kill_after = chaos.then(|| {
            let us = (typical.as_micros() as u64 * 12 / 10).max(1);
            (
                Duration::from_micros(self.rng.below(us)),
                self.saved_pid(&id),
            )
        });
        // Inits of the other slots that have not exec'd yet may be the victim too.
        let others: Vec<(usize, i32)> = (0..self.slots.len())
            .filter(|&s| s != slot)
            .map(|s| (s, self.saved_pid(&self.slots[s].id.clone())))
            .collect();
        let ran = self.run(&args, kill_after);
        if ran.killed.is_none() {
            self.durations.insert(op, ran.took);
            let k = self.expect_after(op, slot, &ran);
            self.slots[slot].known = k;
        } else {
            self.slots[slot].known = Known::Unsure;
            for (s, pid) in others {
                if pid > 0 && !alive(pid) {
                    self.slots[s].known = Known::Unsure;
                }
            }
            let k = self.verify(slot);
            self.slots[slot].known = k;
            if k == Known::Unsure {
                self.recover(slot);
            }
        }
    }

    /// A slot whose state could not be made sense of: `delete --force`, then a fresh id.
    fn recover(&mut self, slot: usize) {
        let id = self.slots[slot].id.clone();
        let ran = self.run(&["delete".into(), "--force".into(), id.clone()], None);
        if !ran.status.is_some_and(|s| s.success()) || self.root.join(&id).exists() {
            self.defect(
                "force-delete",
                format!(
                    "delete --force {id} left {} (exit {:?}): {}",
                    if self.root.join(&id).exists() {
                        "its state dir"
                    } else {
                        "nothing"
                    },
                    ran.status,
                    ran.stderr.trim()
                ),
            );
            let s = &mut self.slots[slot];
            s.generation += 1;
            s.id = format!("chaos{slot}-{}", s.generation);
            self.every_id.insert(s.id.clone());
        }
        self.slots[slot].known = Known::Absent;
    }

    /// `list` against reality: every listed container as `state` would be checked, every state dir
    /// listed, every container cgroup owned by a listed container.
    fn check_list(&mut self) -> Vec<String> {
        let ran = self.run(&["list".into(), "--format".into(), "json".into()], None);
        let listed: Vec<serde_json::Value> = match serde_json::from_str(&ran.stdout) {
            Ok(serde_json::Value::Array(v)) => v,
            _ => {
                self.defect("list", format!("list: not a JSON array: {}", ran.stdout));
                return Vec::new();
            }
        };
        let mut ids = Vec::new();
        for c in &listed {
            let id = c["id"].as_str().unwrap_or("").to_string();
            let st = c["status"].as_str().unwrap_or("").to_string();
            let pid = c["pid"].as_i64().unwrap_or(-1) as i32;
            self.check_status(&id, &st, pid);
            ids.push(id);
        }
        let dirs: Vec<String> = fs::read_dir(&self.root)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        // `~` marks what a killed create or delete left (no id holds one): swept by the next
        // create or delete --force, and checked at the end.
        for d in dirs.into_iter().filter(|d| !d.contains('~')) {
            if !ids.contains(&d) {
                self.defect("list", format!("{d} is in the state root but not listed"));
            }
        }
        for (id, cg) in self.driver.cgroups() {
            if !ids.contains(&id) {
                let procs = fs::read_to_string(format!("{cg}/cgroup.procs")).unwrap_or_default();
                self.defect(
                    "cgroup-leak",
                    format!(
                        "cgroup {cg} belongs to no listed container (procs: {:?})",
                        procs
                            .split_whitespace()
                            .map(|p| format!("{p}:{}", cmdline(p.parse().unwrap_or(0))))
                            .collect::<Vec<_>>()
                    ),
                );
            }
        }
        ids
    }
}

fn main() {
    let gruntime = need_env("GRUNTIME");
    let bundle = need_env("CHAOS_BUNDLE");
    let root = need_env("CHAOS_ROOT");
    let iterations = env_u64("CHAOS_ITERATIONS").unwrap_or(1000);
    let nslots = env_u64("CHAOS_SLOTS").unwrap_or(3).max(1);
    let seed = env_u64("CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    println!("seed {seed}, {iterations} iterations, {nslots} slots");
    if std::env::var("CHAOS_SYSTEMD").is_ok_and(|v| v == "1") {
        println!("driver: systemd");
    }
    let Some(exe) = dev_ino(&gruntime) else {
        eprintln!("chaos_driver: {}: not found", gruntime.display());
        std::process::exit(2)
    };
    let out_dir = std::env::temp_dir().join(format!("gruntime-chaos-{}", std::process::id()));
    if let Err(e) = fs::create_dir_all(&out_dir) {
        eprintln!("chaos_driver: {}: {e}", out_dir.display());
        std::process::exit(2)
    }
    let base_mounts = mounts();
    let base_fds = fds_of(std::process::id() as i32);
    let base_pids: BTreeSet<i32> = processes().iter().map(|p| p.0).collect();
    let slots: Vec<Slot> = (0..nslots)
        .map(|i| Slot {
            id: format!("chaos{i}-0"),
            known: Known::Absent,
            generation: 0,
        })
        .collect();
    let driver = if std::env::var("CHAOS_SYSTEMD").is_ok_and(|v| v == "1") {
        Driver::Systemd
    } else {
        Driver::Cgroupfs
    };
    let mut c = Chaos {
        gruntime,
        driver,
        exe,
        bundle,
        root,
        out_dir: out_dir.clone(),
        every_id: slots.iter().map(|s| s.id.clone()).collect(),
        victims: Vec::new(),
        slots,
        rng: Rng(seed),
        durations: BTreeMap::new(),
        defects: BTreeMap::new(),
        kills: BTreeMap::new(),
        missed: 0,
        commands: 0,
        iteration: 0,
    };
    let t0 = Instant::now();
    for i in 0..iterations {
        c.iteration = i;
        c.iterate();
        if i % 100 == 99 {
            c.check_list();
            println!(
                "iteration {} at {:.0}s: {} commands, {} kills, {} defects",
                i + 1,
                t0.elapsed().as_secs_f64(),
                c.commands,
                c.kills.values().sum::<u64>(),
                c.defects.values().map(Vec::len).sum::<usize>()
            );
        }
    }
    c.iteration = iterations;
    // The end: list agrees with reality, then delete --force cleans every id.
    let listed = c.check_list();
    let ids: BTreeSet<String> = listed.into_iter().chain(c.every_id.clone()).collect();
    for id in &ids {
        let ran = c.run(&["delete".into(), "--force".into(), id.clone()], None);
        if !ran.status.is_some_and(|s| s.success()) {
            c.defect(
                "force-delete",
                format!("delete --force {id}: {}", ran.stderr.trim()),
            );
        }
    }
    // delete --force waits for the init; anything else it killed may take a moment to be reaped.
    let deadline = Instant::now() + Duration::from_secs(10);
    let leftovers = |base: &BTreeSet<i32>| -> Vec<(i32, char, i32)> {
        let me = std::process::id() as i32;
        processes()
            .into_iter()
            .filter(|p| !base.contains(&p.0) && p.0 != me && p.0 != 2 && p.2 != 2)
            .collect()
    };
    while !leftovers(&base_pids).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for (pid, state, ppid) in leftovers(&base_pids) {
        let kind = if state == 'Z' {
            "zombie"
        } else {
            "process-leak"
        };
        c.defect(
            kind,
            format!(
                "pid {pid} ({state}, parent {ppid}) `{}` is left",
                cmdline(pid)
            ),
        );
    }
    let dirs: Vec<String> = fs::read_dir(&c.root)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if !dirs.is_empty() {
        c.defect(
            "state-dir-leak",
            format!("left in the state root: {dirs:?}"),
        );
    }
    let cgs = c.driver.cgroups();
    if !cgs.is_empty() {
        let children = |dir: &str| -> Vec<String> {
            fs::read_dir(dir)
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let detail: Vec<String> = cgs
            .iter()
            .map(|(_, dir)| {
                let events = fs::read_to_string(format!("{dir}/cgroup.events")).unwrap_or_default();
                format!(
                    "{dir} (children {:?}, {})",
                    children(dir),
                    events.replace('\n', " ")
                )
            })
            .collect();
        c.defect("cgroup-leak", format!("left: {detail:?}"));
    }
    if let Driver::Systemd = c.driver {
        for unit in container_units() {
            let show = Command::new("systemctl")
                .args([
                    "show",
                    "-p",
                    "ActiveState,SubState,LoadState,ControlGroup",
                    &unit,
                ])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).replace('\n', " "))
                .unwrap_or_default();
            c.defect("unit-leak", format!("unit left: {unit} ({})", show.trim()));
        }
    }
    let now_mounts = mounts();
    if now_mounts != base_mounts {
        let new: Vec<&String> = now_mounts
            .iter()
            .filter(|m| !base_mounts.contains(m))
            .collect();
        c.defect("mount-leak", format!("mounts changed: new {new:?}"));
    }
    let now_fds = fds_of(std::process::id() as i32);
    if now_fds.len() != base_fds.len() {
        c.defect(
            "fd-leak",
            format!("the driver's fds: {base_fds:?} then {now_fds:?}"),
        );
    }
    let zombies: Vec<(i32, char, i32)> = processes().into_iter().filter(|p| p.1 == 'Z').collect();
    for (pid, _, ppid) in zombies {
        c.defect("zombie", format!("pid {pid} (parent {ppid}) is a zombie"));
    }
    let _ = fs::remove_dir_all(&out_dir);
    println!("== summary");
    println!("seed {seed}");
    println!("iterations {iterations}");
    println!("seconds {:.0}", t0.elapsed().as_secs_f64());
    println!("commands {}", c.commands);
    for (v, n) in &c.kills {
        println!("kills {v:?} {n}");
    }
    println!("kills missed {}", c.missed);
    let total: usize = c.defects.values().map(Vec::len).sum();
    for (k, v) in &c.defects {
        println!("defects {k} {}", v.len());
    }
    println!("defects total {total}");
    std::process::exit(if total == 0 { 0 } else { 1 });
}
