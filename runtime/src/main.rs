//! gruntime: an OCI container runtime with runc's command line.
//!
//! `create` clones the init with all its namespaces at once (spawn/create.rs ↔ spawn/init.rs over spawn/sync.rs),
//! the init sets up the container and waits on its start socket; `start` makes it exec. See ARCHITECTURE.md.

mod cgroups;
mod cli;
mod commands;
mod container;
mod error;
mod hooks;
mod log;
mod mountinfo;
mod namespaces;
mod process;
mod rootfs;
mod rootless;
mod seccomp;
mod spawn;
mod sys;

use clap::Parser;

use cli::{Cli, Cmd};
use error::{Error, Result};

fn main() {
    // Rust starts with SIGPIPE ignored. runc and every C tool die of it quietly when their reader goes away
    // (`gruntime state ID | grep -q running`), and the container's process, a fork of ours, must not
    // inherit SIG_IGN through execve.
    // SAFETY: restoring a default disposition, before any thread or handler exists.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    let args = cli::normalize_args(std::env::args().collect());
    let cli = Cli::parse_from(args);
    let format = if cli.log_format == "json" {
        log::Format::Json
    } else {
        log::Format::Text
    };
    log::init(cli.log.clone(), format, cli.debug);
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            log::error(&e.to_string());
            1
        }
    };
    std::process::exit(code);
}

fn dispatch(cli: Cli) -> Result<i32> {
    if cli.version {
        println!(
            "gruntime version {}\nspec: {}",
            env!("CARGO_PKG_VERSION"),
            container::SPEC_VERSION
        );
        return Ok(0);
    }
    let Some(cmd) = cli.cmd else {
        Cli::parse_from(["gruntime", "--help"]);
        return Ok(0);
    };
    let cli_rootless = cli.rootless.clone();
    rootless::decide(cli_rootless.as_deref());
    if cli.systemd_cgroup {
        return Err(Error::Unsupported(
            "--systemd-cgroup: gruntime manages cgroupfs directly; drop the flag".into(),
        ));
    }
    let root = match (&cli.root, &cmd) {
        (Some(r), _) => r.clone(),
        (None, Cmd::Spec { .. } | Cmd::Features) => std::path::PathBuf::new(),
        (None, _) => crate::container::state::default_root()?,
    };
    let g = commands::Globals { root };
    use commands::*;
    match &cmd {
        Cmd::Create(a) | Cmd::Run { create: a, .. } => spawn::check_passed_fds(a.preserve_fds)?,
        Cmd::Exec(a) => spawn::check_passed_fds(a.preserve_fds)?,
        _ => {}
    }
    match cmd {
        Cmd::Create(a) => create::run(&g, &a).map(|_| 0),
        Cmd::Start { id } => start::run(&g, &id).map(|_| 0),
        Cmd::Run {
            create,
            detach,
            keep,
            no_subreaper,
        } => run::run(&g, &create, detach, keep, no_subreaper),
        Cmd::State { id } => state::run(&g, &id).map(|_| 0),
        Cmd::Kill { id, signal, all } => kill::run(&g, &id, signal.as_deref(), all).map(|_| 0),
        Cmd::Delete { id, force } => delete::run(&g, &id, force).map(|_| 0),
        Cmd::List { format, quiet } => list::run(&g, &format, quiet).map(|_| 0),
        Cmd::Spec { bundle } => {
            spec::run(&g, &bundle, cli_rootless.as_deref() == Some("true")).map(|_| 0)
        }
        Cmd::Features => features::run(&g).map(|_| 0),
        Cmd::Ps {
            id,
            format,
            ps_args,
        } => ps::run(&g, &id, &format, &ps_args).map(|_| 0),
        Cmd::Pause { id } => pause::pause(&g, &id).map(|_| 0),
        Cmd::Resume { id } => pause::resume(&g, &id).map(|_| 0),
        Cmd::Events {
            id,
            stats,
            interval,
        } => events::run(&g, &id, stats, &interval).map(|_| 0),
        Cmd::Update(a) => update::run(&g, &a).map(|_| 0),
        Cmd::Exec(a) => exec::run(&g, &a),
    }
}
