//! `gruntime exec`: runc's flags, or a whole process JSON with --process.

use oci_spec::runtime::{Capability, Process, User};

use crate::cli::ExecArgs;
use crate::commands::{run::wait_child_forwarding, Globals};
use crate::container::{Container, Status};
use crate::error::{Error, Result};
use crate::spawn::console;
use crate::spawn::exec::{self, ExecOpts};
use crate::spawn::Console;

pub fn run(g: &Globals, a: &ExecArgs) -> Result<i32> {
    if a.apparmor.as_deref().is_some_and(|p| !p.is_empty()) {
        return Err(Error::Unsupported(
            "--apparmor: AppArmor is not enabled on this host".into(),
        ));
    }
    if a.process_label.as_deref().is_some_and(|p| !p.is_empty()) {
        return Err(Error::Unsupported(
            "--process-label: SELinux is not enabled on this host".into(),
        ));
    }
    if a.cgroup.as_deref().is_some_and(|c| !c.is_empty()) {
        return Err(Error::Unsupported(
            "--cgroup: exec into a sub-cgroup is not supported".into(),
        ));
    }
    let c = Container::load(&g.root, &a.id)?;
    match c.status() {
        Status::Running | Status::Created => {}
        Status::Paused if a.ignore_paused => {}
        Status::Paused => {
            return Err(Error::BadState {
                id: a.id.clone(),
                reason: "cannot exec in a paused container (use --ignore-paused)".into(),
            })
        }
        _ => {
            return Err(Error::BadState {
                id: a.id.clone(),
                reason: "container not running".into(),
            })
        }
    }
    let spec = c.dir.load_config()?;
    let process = build_process(a, spec.process().as_ref())?;
    let terminal = process.terminal().unwrap_or(false);
    let console = match (&a.console_socket, terminal, a.detach) {
        (Some(p), _, _) => Console::Socket(p.clone()),
        (None, true, false) => Console::Receive,
        (None, true, true) => {
            return Err(Error::InvalidArgument(
                "exec -t -d needs --console-socket".into(),
            ))
        }
        _ => Console::None,
    };
    let spawned = exec::spawn(
        &c,
        &spec,
        ExecOpts {
            process,
            console,
            pid_file: a.pid_file.as_deref(),
            preserve_fds: a.preserve_fds,
        },
    )?;
    if a.detach {
        return Ok(0);
    }
    drop(c); // release the container's lock while the process runs
    if let Some(sock) = spawned.console_master {
        console::relay(&sock)?;
    }
    Ok(wait_child_forwarding(spawned.pid.as_raw()))
}

fn parse_user(u: &str) -> Result<(u32, Option<u32>)> {
    let bad = || Error::InvalidArgument(format!("--user {u:?}: want uid[:gid]"));
    let (uid, gid) = match u.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (u, None),
    };
    Ok((
        uid.parse().map_err(|_| bad())?,
        gid.map(|g| g.parse().map_err(|_| bad())).transpose()?,
    ))
}

/// `--process FILE`, or the container's process with runc's overrides.
fn build_process(a: &ExecArgs, base: Option<&Process>) -> Result<Process> {
    if let Some(path) = &a.process {
        let data = std::fs::read(path).map_err(|e| Error::ReadConfig {
            path: path.clone(),
            source: e,
        })?;
        let p: Process = crate::container::config::parse_process(path, &data)?;
        if p.args().as_ref().is_none_or(|v| v.is_empty()) {
            return Err(Error::config(path, "args: must not be empty"));
        }
        return Ok(p);
    }
    if a.args.is_empty() {
        return Err(Error::InvalidArgument(
            "exec: give the command to run, or --process FILE".into(),
        ));
    }
    let mut p = base.cloned().unwrap_or_default();
    p.set_args(Some(a.args.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &a.env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = parse_user(u)?;
        let mut user = User::default();
        user.set_uid(uid);
        user.set_gid(gid.unwrap_or(0));
        user.set_umask(p.user().umask());
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(a.additional_gids.clone()));
        p.set_user(user);
    }
    if !a.cap.is_empty() {
        let mut lc = p.capabilities().clone().unwrap_or_default();
        for name in &a.cap {
            let cap: Capability = serde_json::from_value(serde_json::Value::String(name.clone()))
                .map_err(|_| {
                Error::InvalidArgument(format!("--cap {name:?}: unknown capability"))
            })?;
            for set in [
                lc.bounding().clone(),
                lc.effective().clone(),
                lc.permitted().clone(),
            ]
            .iter_mut()
            .enumerate()
            {
                let mut s = set.1.clone().unwrap_or_default();
                s.insert(cap);
                match set.0 {
                    0 => lc.set_bounding(Some(s)),
                    1 => lc.set_effective(Some(s)),
                    _ => lc.set_permitted(Some(s)),
                };
            }
        }
        p.set_capabilities(Some(lc));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}
