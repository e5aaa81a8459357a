//! Image config → runtime `config.json`, as umoci and podman do, on top of `runc spec`'s defaults.
//!
//! The image's User is resolved against the rootfs's own `/etc/passwd` and `/etc/group`, opened
//! with RESOLVE_IN_ROOT so a symlinked `/etc/passwd` is followed as the container would see it and
//! never onto the host's.
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{LinuxCapabilities, LinuxDeviceCgroup, Mount, Spec};

use crate::unpack::resolve;

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The command-line overrides that shape the generated config.
#[derive(Debug, Clone, Default)]
pub struct ConfigOptions {
    pub rootless: bool,
    pub terminal: bool,
    pub hostname: Option<String>,
    /// `K=V`, replacing the image's value of K.
    pub env: Vec<String>,
    /// `type=T,source=S,destination=D[,OPTION...]`.
    pub mounts: Vec<String>,
    /// Replaces the image's Cmd.
    pub args: Option<Vec<String>>,
    /// Replaces the image's Entrypoint (and drops its Cmd unless `args` is given, as docker does).
    pub entrypoint: Option<Vec<String>>,
}

#[derive(Debug)]
pub enum BundleError {
    /// Entrypoint and Cmd are both empty and no override was given.
    NoCommand,
    /// The image's User cannot be resolved in the rootfs.
    User { user: String, reason: String },
    /// A file of the rootfs (passwd, group) exists but cannot be read.
    ReadRootfsFile {
        path: &'static str,
        source: std::io::Error,
    },
    /// The working directory cannot be created in the rootfs.
    WorkingDir {
        path: String,
        source: std::io::Error,
    },
    /// A `--env` value is not `KEY=VALUE`.
    BadEnv(String),
    /// A `--mount` value cannot be parsed.
    BadMount { spec: String, reason: String },
    /// Writing config.json failed.
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Opening the rootfs failed.
    OpenRootfs {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BundleError::NoCommand => write!(
                f,
                "image config: Entrypoint and Cmd are both empty: give --args or --entrypoint"
            ),
            BundleError::User { user, reason } => write!(f, "image config User {user:?}: {reason}"),
            BundleError::ReadRootfsFile { path, source } => {
                write!(f, "read rootfs {path}: {source}")
            }
            BundleError::WorkingDir { path, source } => {
                write!(
                    f,
                    "image config WorkingDir {path:?}: create in rootfs: {source}"
                )
            }
            BundleError::BadEnv(e) => write!(f, "--env {e:?}: expected KEY=VALUE"),
            BundleError::BadMount { spec, reason } => write!(f, "--mount {spec:?}: {reason}"),
            BundleError::Write { path, source } => write!(f, "write {}: {source}", path.display()),
            BundleError::OpenRootfs { path, source } => {
                write!(f, "open rootfs {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for BundleError {}

impl From<BundleError> for crate::error::Error {
    fn from(e: BundleError) -> Self {
        crate::error::Error::Unpack(e.to_string())
    }
}

/// The process identity the image asks for, resolved in its rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn read_rootfs_file(
    root: BorrowedFd<'_>,
    path: &'static str,
) -> Result<Option<String>, BundleError> {
    match resolve::open_file_in_root(root, path) {
        Ok(mut f) => {
            let mut s = String::new();
            // Bounded: a hostile image could make /etc/passwd a huge file or a FIFO.
            (&mut f)
                .take(16 << 20)
                .read_to_string(&mut s)
                .map_err(|source| BundleError::ReadRootfsFile { path, source })?;
            Ok(Some(s))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(BundleError::ReadRootfsFile { path, source }),
    }
}

fn parse_passwd(s: &str) -> Vec<PasswdEntry> {
    s.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f.get(5).copied().unwrap_or("").to_string(),
            })
        })
        .collect()
}

fn parse_group(s: &str) -> Vec<GroupEntry> {
    s.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|x| !x.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolve `user[:group]` (names or numbers) as runc/docker do: a numeric uid not in passwd is
/// used as is with gid 0; a name must exist; supplementary groups are the groups listing the user.
pub fn resolve_user(root: BorrowedFd<'_>, spec: &str) -> Result<ResolvedUser, BundleError> {
    let passwd = read_rootfs_file(root, "/etc/passwd")?
        .map(|s| parse_passwd(&s))
        .unwrap_or_default();
    let groups = read_rootfs_file(root, "/etc/group")?
        .map(|s| parse_group(&s))
        .unwrap_or_default();
    let err = |reason: String| BundleError::User {
        user: spec.to_string(),
        reason,
    };
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let entry =
        match user_part.parse::<u32>() {
            Ok(uid) => passwd.iter().find(|p| p.uid == uid),
            Err(_) => Some(passwd.iter().find(|p| p.name == user_part).ok_or_else(|| {
                err(format!("no user {user_part:?} in the rootfs's /etc/passwd"))
            })?),
        };
    let uid = match entry {
        Some(e) => e.uid,
        None => user_part
            .parse::<u32>()
            .expect("numeric: names were resolved above"),
    };
    let mut gid = entry.map(|e| e.gid).unwrap_or(0);
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| err(format!("no group {g:?} in the rootfs's /etc/group")))?,
        };
    }
    let mut additional_gids = Vec::new();
    if let Some(e) = entry {
        for g in &groups {
            if g.members.contains(&e.name) && g.gid != gid && !additional_gids.contains(&g.gid) {
                additional_gids.push(g.gid);
            }
        }
    }
    let home = entry
        .map(|e| e.home.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string());
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// Parse a `--args`/`--entrypoint` value: a JSON array of strings, or one word.
pub fn parse_command_override(values: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for v in values {
        if v.trim_start().starts_with('[') {
            let list: Vec<String> = serde_json::from_str(v)
                .map_err(|e| format!("{v:?}: not a JSON array of strings: {e}"))?;
            out.extend(list);
        } else {
            out.push(v.clone());
        }
    }
    Ok(out)
}

fn parse_mount(spec: &str) -> Result<Mount, BundleError> {
    let bad = |reason: &str| BundleError::BadMount {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let (mut typ, mut source, mut dest) = (None, None, None);
    let mut options = Vec::new();
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some(("type", v)) => typ = Some(v.to_string()),
            Some(("source" | "src", v)) => source = Some(v.to_string()),
            Some(("destination" | "dst" | "target", v)) => dest = Some(v.to_string()),
            Some(("options" | "opts", v)) => options.extend(v.split(':').map(String::from)),
            Some(_) => options.push(part.to_string()),
            None => options.push(part.to_string()),
        }
    }
    let dest = dest.ok_or_else(|| bad("destination= is missing"))?;
    if !dest.starts_with('/') {
        return Err(bad("destination must be an absolute path"));
    }
    let typ = typ.unwrap_or_else(|| "bind".to_string());
    let source = match (&source, typ.as_str()) {
        (Some(s), _) => s.clone(),
        (None, "bind") => return Err(bad("source= is missing for a bind mount")),
        (None, t) => t.to_string(),
    };
    if typ == "bind" && !options.iter().any(|o| o == "bind" || o == "rbind") {
        options.push("rbind".to_string());
    }
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some(typ));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(options));
    Ok(m)
}

fn set_env(env: &mut Vec<String>, kv: &str) {
    let key = kv.split_once('=').map(|(k, _)| k).unwrap_or(kv);
    env.retain(|e| e.split_once('=').map(|(k, _)| k).unwrap_or(e) != key);
    env.push(kv.to_string());
}

fn has_env(env: &[String], key: &str) -> bool {
    env.iter()
        .any(|e| e.split_once('=').map(|(k, _)| k) == Some(key))
}

/// runc spec's defaults (oci-spec's Default follows them), adjusted where runc 1.1 differs:
/// no inheritable/ambient capabilities, a deny-all device cgroup rule, a writable root.
fn base_spec(rootless: bool) -> Spec {
    let mut spec = if rootless {
        Spec::rootless(
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    } else {
        Spec::default()
    };
    spec.set_hostname(None);
    let mut root = oci_spec::runtime::Root::default();
    root.set_path(PathBuf::from("rootfs"));
    root.set_readonly(Some(false));
    spec.set_root(Some(root));
    if let Some(p) = spec.process_mut() {
        let mut caps = LinuxCapabilities::default();
        caps.set_inheritable(None);
        caps.set_ambient(None);
        p.set_capabilities(Some(caps));
    }
    if !rootless {
        if let Some(linux) = spec.linux_mut() {
            if let Some(res) = linux.resources_mut() {
                let mut deny = LinuxDeviceCgroup::default();
                deny.set_allow(false);
                deny.set_access(Some("rwm".to_string()));
                res.set_devices(Some(vec![deny]));
            }
        }
    }
    spec
}

/// Build the runtime spec for `image` whose rootfs is `rootfs` (already unpacked).
pub fn make_spec(
    image: &ImageConfiguration,
    rootfs: &Path,
    opts: &ConfigOptions,
) -> Result<Spec, BundleError> {
    let rootfd = resolve::open_root(rootfs).map_err(|source| BundleError::OpenRootfs {
        path: rootfs.to_path_buf(),
        source,
    })?;
    let cfg = image.config().clone().unwrap_or_default();
    let mut spec = base_spec(opts.rootless);

    // args = Entrypoint + Cmd, docker's override rules.
    let entrypoint = opts
        .entrypoint
        .clone()
        .unwrap_or_else(|| cfg.entrypoint().clone().unwrap_or_default());
    let cmd = match (&opts.args, &opts.entrypoint) {
        (Some(a), _) => a.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => cfg.cmd().clone().unwrap_or_default(),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(BundleError::NoCommand);
    }

    let user_spec = cfg.user().clone().unwrap_or_default();
    let user = resolve_user(rootfd.as_fd(), &user_spec)?;

    let mut env: Vec<String> = cfg.env().clone().unwrap_or_default();
    if !has_env(&env, "PATH") {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    if !has_env(&env, "HOME") {
        env.push(format!("HOME={}", user.home));
    }
    if opts.terminal && !has_env(&env, "TERM") {
        env.push("TERM=xterm".to_string());
    }
    for kv in &opts.env {
        if !kv.contains('=') || kv.starts_with('=') {
            return Err(BundleError::BadEnv(kv.clone()));
        }
        set_env(&mut env, kv);
    }

    let cwd = match cfg.working_dir().as_deref() {
        Some(w) if !w.is_empty() => {
            if w.starts_with('/') {
                w.to_string()
            } else {
                format!("/{w}")
            }
        }
        _ => "/".to_string(),
    };
    resolve::mkdir_all_in_root(rootfd.as_fd(), &cwd).map_err(|source| BundleError::WorkingDir {
        path: cwd.clone(),
        source,
    })?;

    let process = spec.process_mut().get_or_insert_with(Default::default);
    process.set_args(Some(args));
    process.set_env(Some(env));
    process.set_cwd(PathBuf::from(&cwd));
    process.set_terminal(Some(opts.terminal));
    let mut u = oci_spec::runtime::User::default();
    u.set_uid(user.uid);
    u.set_gid(user.gid);
    if !user.additional_gids.is_empty() {
        u.set_additional_gids(Some(user.additional_gids.clone()));
    }
    process.set_user(u);

    if let Some(h) = &opts.hostname {
        spec.set_hostname(Some(h.clone()));
    }

    let mut mounts = spec.mounts().clone().unwrap_or_default();
    let mut volumes: Vec<String> = cfg.volumes().clone().unwrap_or_default();
    volumes.sort();
    for v in volumes {
        let mut m = Mount::default();
        m.set_destination(PathBuf::from(&v));
        m.set_typ(Some("tmpfs".to_string()));
        m.set_source(Some(PathBuf::from("tmpfs")));
        m.set_options(Some(vec![
            "nosuid".into(),
            "nodev".into(),
            "mode=755".into(),
        ]));
        mounts.retain(|x| x.destination() != m.destination());
        mounts.push(m);
    }
    for s in &opts.mounts {
        let m = parse_mount(s)?;
        mounts.retain(|x| x.destination() != m.destination());
        mounts.push(m);
    }
    spec.set_mounts(Some(mounts));

    let mut ann: HashMap<String, String> = cfg.labels().clone().unwrap_or_default();
    let conv = "org.opencontainers.image";
    if let Some(p) = cfg.exposed_ports().clone().filter(|p| !p.is_empty()) {
        let mut p = p;
        p.sort();
        ann.insert(format!("{conv}.exposedPorts"), p.join(","));
    }
    if let Some(s) = cfg.stop_signal() {
        ann.insert(format!("{conv}.stopSignal"), s.clone());
    }
    ann.insert(format!("{conv}.os"), image.os().to_string());
    ann.insert(
        format!("{conv}.architecture"),
        image.architecture().to_string(),
    );
    if let Some(a) = image.author() {
        ann.insert(format!("{conv}.author"), a.clone());
    }
    if let Some(c) = image.created() {
        ann.insert(format!("{conv}.created"), c.clone());
    }
    spec.set_annotations(Some(ann));
    Ok(spec)
}

/// Write `spec` as `bundle/config.json` (pretty, as runc spec does).
pub fn write_config(bundle: &Path, spec: &Spec) -> Result<(), BundleError> {
    let path = bundle.join("config.json");
    let json = render_config(spec).map_err(|e| BundleError::Write {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&path, json).map_err(|source| BundleError::Write { path, source })
}

/// `spec` as JSON, the same bytes for the same spec: oci-spec keeps annotations in a HashMap
/// and capabilities in HashSets, whose order changes from one run to the next, so two unpacks
/// of one image would give config.json files that differ for no reason (and defeat anyone
/// comparing or caching them). Object keys and capability lists are sorted.
fn render_config(spec: &Spec) -> serde_json::Result<Vec<u8>> {
    let mut v = serde_json::to_value(spec)?;
    if let Some(caps) = v
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    {
        for list in caps.values_mut() {
            if let Some(list) = list.as_array_mut() {
                list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }
    serde_json::to_vec_pretty(&sorted_keys(v))
}

/// Rebuilt with every object's keys in sorted order, whichever map serde_json was built with.
fn sorted_keys(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut entries: Vec<_> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sorted_keys(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(sorted_keys).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs_with(passwd: &str, group: &str) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/passwd"), passwd).unwrap();
        std::fs::write(t.path().join("etc/group"), group).unwrap();
        t
    }

    #[test]
    fn users_resolve_like_runc() {
        let t = rootfs_with(
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            "root:x:0:\napp:x:1000:\nwheel:x:10:app,root\naudio:x:29:app\n",
        );
        let fd = resolve::open_root(t.path()).unwrap();
        let r = |s: &str| resolve_user(fd.as_fd(), s);
        assert_eq!(
            r("").unwrap(),
            ResolvedUser {
                uid: 0,
                gid: 0,
                additional_gids: vec![10],
                home: "/root".into()
            }
        );
        assert_eq!(
            r("app").unwrap(),
            ResolvedUser {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![10, 29],
                home: "/home/app".into()
            }
        );
        assert_eq!(r("app:wheel").unwrap().gid, 10);
        assert_eq!(r("1000:5").unwrap().gid, 5);
        assert_eq!(
            r("4242").unwrap(),
            ResolvedUser {
                uid: 4242,
                gid: 0,
                additional_gids: vec![],
                home: "/".into()
            }
        );
        assert!(r("nobody")
            .unwrap_err()
            .to_string()
            .contains("no user \"nobody\""));
        assert!(r("app:nogroup")
            .unwrap_err()
            .to_string()
            .contains("no group"));
    }

    #[test]
    fn passwd_symlink_is_resolved_inside_the_rootfs() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::create_dir_all(t.path().join("lib")).unwrap();
        std::fs::write(t.path().join("lib/pw"), "svc:x:77:77::/srv:/bin/sh\n").unwrap();
        // An absolute link means the container's /lib/pw, not the host's.
        std::os::unix::fs::symlink("/lib/pw", t.path().join("etc/passwd")).unwrap();
        let fd = resolve::open_root(t.path()).unwrap();
        assert_eq!(resolve_user(fd.as_fd(), "svc").unwrap().uid, 77);
        // Pointing at the host's /etc/passwd via ../../.. still stays inside.
        std::fs::remove_file(t.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc/passwd", t.path().join("etc/passwd"))
            .unwrap();
        assert!(resolve_user(fd.as_fd(), "root").is_err());
    }

    #[test]
    fn spec_from_image_config() {
        let t = rootfs_with("root:x:0:0:root:/root:/bin/sh\n", "root:x:0:\n");
        let img: ImageConfiguration = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
                "config":{"Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"],"Env":["A=1"],
                "WorkingDir":"/work/dir","Volumes":{"/data":{}},"ExposedPorts":{"80/tcp":{}},
                "StopSignal":"SIGTERM","Labels":{"l":"v"}}}"#,
        )
        .unwrap();
        let spec = make_spec(
            &img,
            t.path(),
            &ConfigOptions {
                env: vec!["A=2".into()],
                ..Default::default()
            },
        )
        .unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &["/bin/sh", "-c", "echo hi"]);
        let env = p.env().as_ref().unwrap();
        assert!(env.contains(&"A=2".to_string()) && !env.contains(&"A=1".to_string()));
        assert!(env.contains(&DEFAULT_PATH.to_string()) && env.contains(&"HOME=/root".to_string()));
        assert_eq!(p.cwd(), Path::new("/work/dir"));
        assert!(t.path().join("work/dir").is_dir());
        let ann = spec.annotations().as_ref().unwrap();
        assert_eq!(ann["org.opencontainers.image.exposedPorts"], "80/tcp");
        assert_eq!(ann["l"], "v");
        assert!(spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.destination() == Path::new("/data")));
        let err = make_spec(
            &serde_json::from_str(
                r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
            )
            .unwrap(),
            t.path(),
            &ConfigOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, BundleError::NoCommand));
    }

    #[test]
    fn config_json_is_the_same_bytes_for_the_same_image() {
        let t = rootfs_with("root:x:0:0:root:/root:/bin/sh\n", "root:x:0:\n");
        let labels: serde_json::Map<String, serde_json::Value> = (0..16)
            .map(|i| (format!("label.{i}"), format!("v{i}").into()))
            .collect();
        let image: ImageConfiguration = serde_json::from_value(serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Labels": labels, "StopSignal": "SIGQUIT"},
            "rootfs": {"type": "layers", "diff_ids": []}
        }))
        .unwrap();
        // Every spec has its own HashMap and HashSets, each with its own iteration order.
        let render = || {
            let spec = make_spec(&image, t.path(), &ConfigOptions::default()).unwrap();
            render_config(&spec).unwrap()
        };
        let first = render();
        for _ in 0..8 {
            assert!(
                render() == first,
                "config.json differs between two renderings"
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&first).unwrap();
        let bounding = &v["process"]["capabilities"]["bounding"];
        assert_eq!(
            bounding,
            &serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
        );
    }
}
