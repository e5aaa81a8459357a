//! gruntime as an unprivileged user: a test user made by the test (useradd, with /etc/subuid ranges),
//! removed afterwards. Runs on the host; cgroup delegation is for the VM tests.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use integration::{make_busybox_rootfs, run_via_files, stderr, stdout, unique_id};
use serde_json::json;

static USERADD: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    /// First id of its /etc/subuid range (and /etc/subgid, same start on Debian's useradd).
    sub_start: u32,
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Also takes its /etc/subuid and /etc/subgid lines.
        let _ = Command::new("userdel").arg("-r").arg(&self.name).output();
    }
}

fn make_user(name: &str) -> TestUser {
    let _guard = USERADD.lock().unwrap_or_else(|e| e.into_inner());
    let _ = Command::new("userdel").arg("-r").arg(name).output();
    let out = Command::new("useradd")
        .args(["-m", "-s", "/bin/sh", name])
        .output()
        .expect("useradd");
    assert!(
        out.status.success(),
        "useradd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = |flag: &str| -> u32 {
        String::from_utf8_lossy(
            &Command::new("id")
                .args([flag, name])
                .output()
                .unwrap()
                .stdout,
        )
        .trim()
        .parse()
        .unwrap()
    };
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap();
    let sub_start = subuid
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name}:"))
                .and_then(|r| r.split(':').next())
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or_else(|| panic!("useradd gave {name} no /etc/subuid range"));
    TestUser {
        name: name.into(),
        uid: id("-u"),
        gid: id("-g"),
        sub_start,
    }
}

/// Two fresh users for one test (useradd serialises on /etc/passwd's lock, so names are per test).
/// The names carry the test process's id: another checkout's tests may make theirs at the same
/// time, and users are host-wide.
fn users(tag: &str) -> (TestUser, TestUser) {
    remove_stale_users(tag);
    let pid = std::process::id();
    (
        make_user(&format!("grt-{tag}-{pid}a")),
        make_user(&format!("grt-{tag}-{pid}b")),
    )
}

/// Users of this test left by a test process that was killed before it could remove them: their
/// process is gone (or they predate the process id in the name).
fn remove_stale_users(tag: &str) {
    let prefix = format!("grt-{tag}-");
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for name in passwd.lines().filter_map(|l| l.split(':').next()) {
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let pid = rest.trim_end_matches(['a', 'b']);
        let alive = !pid.is_empty() && Path::new("/proc").join(pid).exists();
        if !alive {
            let _guard = USERADD.lock().unwrap_or_else(|e| e.into_inner());
            let _ = Command::new("userdel").arg("-r").arg(name).output();
        }
    }
}

struct Env {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Env {
    /// A bundle owned by `u`, plus a copy of gruntime the user can execute, in a world-traversable temp dir.
    fn new(u: &TestUser, args: &[&str]) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("gruntime-rootless-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.path().join("gruntime");
        std::fs::copy(integration::gruntime_bin(), &bin).unwrap();
        let bundle = dir.path().join("bundle");
        make_busybox_rootfs(&bundle.join("rootfs"));
        std::fs::create_dir_all(dir.path().join("xdg")).unwrap();
        chown_r(dir.path(), u.uid, u.gid);
        let e = Env { dir, bin };
        let out = e.as_user(
            u,
            &["spec", "--rootless", "--bundle", bundle.to_str().unwrap()],
        );
        assert!(out.status.success(), "spec --rootless: {}", stderr(&out));
        e.edit(|c| {
            c["process"]["terminal"] = false.into();
            c["process"]["args"] = args.iter().map(|a| json!(a)).collect();
        });
        e
    }

    fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }

    fn edit(&self, f: impl FnOnce(&mut serde_json::Value)) {
        let p = self.bundle().join("config.json");
        let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        f(&mut c);
        std::fs::write(&p, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    }

    /// gruntime ARGS as the user, with only XDG_RUNTIME_DIR set (as podman does), no --root.
    fn as_user(&self, u: &TestUser, args: &[&str]) -> Output {
        run_via_files(
            Command::new("setpriv")
                .args([
                    "--reuid",
                    &u.uid.to_string(),
                    "--regid",
                    &u.gid.to_string(),
                    "--init-groups",
                    "--reset-env",
                    "env",
                ])
                .arg(format!(
                    "XDG_RUNTIME_DIR={}",
                    self.dir.path().join("xdg").display()
                ))
                .arg(&self.bin)
                .args(args)
                .current_dir(self.bundle()),
        )
    }
}

impl Drop for Env {
    /// A failed assertion must not leave the user's containers running: force-delete what is listed.
    fn drop(&mut self) {
        let root = self.dir.path().join("xdg/gruntime");
        for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let _ = Command::new(&self.bin)
                .arg("--root")
                .arg(&root)
                .args(["delete", "--force"])
                .arg(e.file_name())
                .output();
        }
    }
}

fn chown_r(p: &Path, uid: u32, gid: u32) {
    let out = Command::new("chown")
        .args(["-R", "-h", &format!("{uid}:{gid}")])
        .arg(p)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn rootless_container_with_a_single_mapping_and_a_subordinate_range() {
    let (a, _b) = users("single");
    let a = &a;
    let e = Env::new(a, &["sh", "-c", "id -u; cat /proc/self/uid_map"]);
    let out = e.as_user(a, &["run", &unique_id("rl")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    let lines: Vec<Vec<&str>> = o.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], vec!["0"]);
    assert_eq!(lines[1], vec!["0", &a.uid.to_string(), "1"], "{o}");

    let maps = json!([{ "containerID": 0, "hostID": a.uid, "size": 1 }, { "containerID": 1, "hostID": a.sub_start, "size": 65536 }]);
    let gmaps = json!([{ "containerID": 0, "hostID": a.gid, "size": 1 }, { "containerID": 1, "hostID": a.sub_start, "size": 65536 }]);
    e.edit(|c| {
        c["linux"]["uidMappings"] = maps;
        c["linux"]["gidMappings"] = gmaps;
    });
    let out = e.as_user(a, &["run", &unique_id("rl")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let words: Vec<String> = stdout(&out).split_whitespace().map(String::from).collect();
    let want = [
        "1".to_string(),
        a.sub_start.to_string(),
        "65536".to_string(),
    ];
    assert!(words.windows(3).any(|w| w == want), "{}", stdout(&out));

    // A range the user does not own is refused, naming it.
    e.edit(|c| c["linux"]["uidMappings"][1]["hostID"] = json!(1));
    let out = e.as_user(a, &["run", &unique_id("rl")]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("linux.uidMappings") && stderr(&out).contains("not allowed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rootless_lifecycle_exec_kill_delete_and_state_dir_is_private() {
    let (a, b) = users("life");
    let (a, b) = (&a, &b);
    let e = Env::new(a, &["sleep", "1000"]);
    let id = unique_id("rl-life");
    assert!(e.as_user(a, &["create", &id]).status.success());
    assert!(e.as_user(a, &["start", &id]).status.success());
    let st: serde_json::Value =
        serde_json::from_str(&stdout(&e.as_user(a, &["state", &id]))).unwrap();
    assert_eq!(st["status"], "running");
    let out = e.as_user(a, &["exec", &id, "id", "-u"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "0");
    let root = e.dir.path().join("xdg/gruntime");
    assert_eq!(
        std::fs::metadata(&root).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(std::fs::metadata(&root).unwrap().uid(), a.uid);
    // Another user can neither list nor kill it.
    let other = run_via_files(
        Command::new("setpriv")
            .args([
                "--reuid",
                &b.uid.to_string(),
                "--regid",
                &b.gid.to_string(),
                "--init-groups",
                "--reset-env",
            ])
            .arg(&e.bin)
            .args(["--root", root.to_str().unwrap(), "kill", &id, "KILL"]),
    );
    assert!(!other.status.success());
    let st: serde_json::Value =
        serde_json::from_str(&stdout(&e.as_user(a, &["state", &id]))).unwrap();
    assert_eq!(st["status"], "running", "another user killed it");
    assert!(e.as_user(a, &["kill", &id, "KILL"]).status.success());
    assert!(e.as_user(a, &["delete", "--force", &id]).status.success());
    assert!(std::fs::read_dir(&root).unwrap().next().is_none());
}

#[test]
fn rootless_bind_mounts_keep_host_ownership_and_root_only_files_stay_unreadable() {
    let (a, _b) = users("bind");
    let a = &a;
    let e = Env::new(
        a,
        &[
            "sh",
            "-c",
            "echo hi > /data/made-inside; cat /secret/root-only 2>&1; id -u",
        ],
    );
    let data = e.dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    chown_r(&data, a.uid, a.gid);
    let secret = e.dir.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(secret.join("root-only"), "top secret").unwrap();
    std::fs::set_permissions(
        secret.join("root-only"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    e.edit(|c| {
        c["root"]["readonly"] = false.into();
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({ "destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rw"] }));
        m.push(json!({ "destination": "/secret", "type": "bind", "source": secret, "options": ["rbind", "ro"] }));
    });
    let out = e.as_user(a, &["run", &unique_id("rl-bind")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Permission denied"),
        "root-only file was readable: {}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("top secret"));
    let made = std::fs::metadata(data.join("made-inside")).unwrap();
    assert_eq!(
        made.uid(),
        a.uid,
        "file made by container root must belong to the caller on the host"
    );
}

#[test]
fn rootless_resource_limits_without_delegation_are_refused_and_nothing_is_left() {
    let (a, _b) = users("res");
    let a = &a;
    let e = Env::new(a, &["true"]);
    e.edit(|c| c["linux"]["resources"] = json!({ "memory": { "limit": 67108864 } }));
    let out = e.as_user(a, &["run", &unique_id("rl-res")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("linux.resources"), "{}", stderr(&out));
    let root = e.dir.path().join("xdg/gruntime");
    assert!(std::fs::read_dir(&root)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true));
}

/// The README's rootless example: `imgtool unpack --rootless oci:… b && gruntime run -b b id`, as a normal user
/// with the store under $XDG_DATA_HOME.
#[test]
fn rootless_imgtool_unpack_then_gruntime_run() {
    use integration::unpack::{tar_of_dir, Compression, OciImage};
    let (a, _b) = users("img");
    let a = &a;
    let e = Env::new(a, &["true"]);
    let src = e.dir.path().join("src-rootfs");
    make_busybox_rootfs(&src);
    let img = e.dir.path().join("img");
    OciImage::new(&["sh", "-c", "id -u; cat /proc/self/uid_map"])
        .layer(tar_of_dir(&src), Compression::Gzip)
        .write(&img, "latest");
    let imgtool = e.dir.path().join("imgtool");
    std::fs::copy(integration::imgtool_bin(), &imgtool).unwrap();
    chown_r(e.dir.path(), a.uid, a.gid);
    let as_user = |args: &[&str]| {
        run_via_files(
            Command::new("setpriv")
                .args([
                    "--reuid",
                    &a.uid.to_string(),
                    "--regid",
                    &a.gid.to_string(),
                    "--init-groups",
                    "--reset-env",
                    "env",
                ])
                .arg(format!(
                    "XDG_RUNTIME_DIR={}",
                    e.dir.path().join("xdg").display()
                ))
                .arg(format!(
                    "XDG_DATA_HOME={}",
                    e.dir.path().join("data").display()
                ))
                .args(args)
                .current_dir(e.dir.path()),
        )
    };
    let out = as_user(&[
        imgtool.to_str().unwrap(),
        "unpack",
        "--rootless",
        &format!("oci:{}:latest", img.display()),
        "b",
    ]);
    assert!(
        out.status.success(),
        "imgtool unpack --rootless: {}",
        stderr(&out)
    );
    let out = as_user(&[
        e.bin.to_str().unwrap(),
        "run",
        "-b",
        "b",
        &unique_id("rl-img"),
    ]);
    assert!(out.status.success(), "gruntime run: {}", stderr(&out));
    let o = stdout(&out);
    let words: Vec<&str> = o.split_whitespace().collect();
    assert_eq!(words[0], "0", "{o}");
    assert_eq!(&words[1..4], &["0", &a.uid.to_string(), "1"], "{o}");
    assert!(
        e.dir.path().join("data/imgtool").exists(),
        "store not under $XDG_DATA_HOME"
    );
}

/// In the cgroup-v2 VM: a cgroup subtree delegated to a user (chown, as systemd's Delegate=yes does), and a
/// rootless container whose limits land inside it; without delegation the same config is refused (see
/// rootless_resource_limits_without_delegation_are_refused_and_nothing_is_left on the host).
#[test]
fn rootless_limits_apply_inside_a_delegated_cgroup_in_the_vm() {
    let gruntime = integration::gruntime_bin();
    let script = format!(
        r#"
set -e
# A path without spaces, for the unquoted $G below and in the user's shell: the checkout's may have some.
mkdir -p /run/gt-bin && ln -s {gq} /run/gt-bin/gruntime
G=/run/gt-bin/gruntime
useradd -m deleg
mkdir -p /sys/fs/cgroup/deleg/shell
chown -R deleg:deleg /sys/fs/cgroup/deleg
echo "+memory +pids" > /sys/fs/cgroup/deleg/cgroup.subtree_control
B=/tmp/b; mkdir -p $B/rootfs/bin $B/rootfs/proc $B/rootfs/sys $B/rootfs/dev $B/rootfs/tmp /tmp/xdg
cp /bin/busybox $B/rootfs/bin/; for a in sh cat; do ln -s busybox $B/rootfs/bin/$a; done
chown -R deleg:deleg $B /tmp/xdg
cat > /tmp/user.sh <<'U'
set -e
cd /tmp/b
$G spec --rootless
python3 - <<'P'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "echo == inside; id -u; cat /sys/fs/cgroup/deleg/ctr/memory.max /sys/fs/cgroup/deleg/ctr/pids.max"]
c["linux"]["resources"] = {{"memory": {{"limit": 67108864}}, "pids": {{"limit": 50}}}}
c["linux"]["cgroupsPath"] = "/deleg/ctr"
json.dump(c, open("config.json", "w"))
P
$G run c1
U
sh -c 'echo $$ > /sys/fs/cgroup/deleg/shell/cgroup.procs; exec setpriv --reuid=deleg --regid=deleg --init-groups env G='$G' XDG_RUNTIME_DIR=/tmp/xdg PATH=/usr/bin:/bin sh /tmp/user.sh'
echo "== after"
ls -d /sys/fs/cgroup/deleg/*/ | xargs -n1 basename
"#,
        gq = integration::shell_quote(&gruntime)
    );
    let out = integration::vm::run_batch(&script);
    assert_eq!(out.status, 0, "{out}");
    let inside: Vec<String> = out
        .section("inside")
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    assert_eq!(&inside[..3], &["0", "67108864", "50"], "{out}");
    assert_eq!(
        out.section("after").trim(),
        "shell",
        "the container's cgroup must be gone after run: {out}"
    );
}

/// Podman's rootless mode in the cgroup-v2 VM: a user with subordinate ranges runs `podman run --rm` and a
/// run -d / exec / stop / rm cycle with gruntime, and the same with Debian's crun as the control. Podman runs
/// the runtime as root inside its own user namespace, without a delegated cgroup (no systemd in the VM).
#[test]
fn podman_rootless_runs_gruntime_like_crun_in_the_vm() {
    let dir = tempfile::Builder::new()
        .prefix("gruntime-podman-rl-")
        .tempdir()
        .unwrap();
    let rootfs = dir.path().join("rootfs");
    make_busybox_rootfs(&rootfs);
    let tar = dir.path().join("busybox.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let script = format!(
        r#"
set -e
useradd -m pu
cp {tar} /home/pu/busybox.tar
cat > /home/pu/t.sh <<'U'
export XDG_RUNTIME_DIR=/tmp/pu-run; mkdir -p $XDG_RUNTIME_DIR ~/.config/containers
cat > ~/.config/containers/containers.conf <<C
[engine]
runtime_supports_json = ["crun", "runc", "gruntime"]
[engine.runtimes]
gruntime = ["{g}"]
C
P="podman --storage-driver vfs --cgroup-manager cgroupfs --events-backend file"
$P import -q ~/busybox.tar localhost/busybox >/dev/null
for rt in gruntime crun; do
  echo "== run-$rt"
  $P --runtime $rt run --rm --network=none localhost/busybox sh -c 'id -u; cat /proc/self/uid_map' 2>&1 || echo "failed rc=$?"
  echo "== cycle-$rt"
  ( $P --runtime $rt run -d --name c-$rt --network=none localhost/busybox sleep 100 >/dev/null &&
    $P --runtime $rt exec c-$rt echo exec-ok &&
    $P --runtime $rt stop -t 1 c-$rt >/dev/null 2>&1 &&
    $P --runtime $rt rm c-$rt >/dev/null && echo cycle-ok ) 2>&1 || echo "failed rc=$?"
done
U
chown -R pu:pu /home/pu
su - pu -c "sh /home/pu/t.sh"
"#,
        tar = tar.display(),
        g = integration::gruntime_bin().display()
    );
    let out = integration::vm::Vm::new()
        .share(dir.path())
        .run(&script)
        .unwrap_or_else(|e| panic!("VM: {e}"));
    assert_eq!(out.status, 0, "{out}");
    for rt in ["gruntime", "crun"] {
        let run = out.section(&format!("run-{rt}"));
        let words: Vec<&str> = run.split_whitespace().collect();
        assert_eq!(words.first(), Some(&"0"), "{rt}: {out}");
        assert!(
            words.windows(3).any(|w| w[0] == "1" && w[2] == "65536"),
            "{rt}: subordinate range missing: {out}"
        );
        let cycle = out.section(&format!("cycle-{rt}"));
        assert!(
            cycle.contains("exec-ok") && cycle.contains("cycle-ok"),
            "{rt}: {out}"
        );
    }
}
