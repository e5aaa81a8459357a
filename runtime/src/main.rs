//! gruntime: an OCI container runtime with runc's command line.
//!
//! `create` clones the init with all its namespaces at once (spawn/create.rs ↔ spawn/init.rs over spawn/sync.rs),
//! the init sets up the container and waits on its start socket; `start` makes it exec. See ARCHITECTURE.md.

use clap::Parser;

use gruntime::{cli, commands, container, error, log, process, rootless, spawn};

use cli::{Cli, Cmd};
use error::Result;

fn main() {
    let args = cli::normalize_args(std::env::args().collect());
    let cli = Cli::parse_from(args);
    if matches!(
        cli.cmd,
        Some(
            Cmd::State { .. }
                | Cmd::List { .. }
                | Cmd::Ps { .. }
                | Cmd::Events { .. }
                | Cmd::Features
                | Cmd::Spec { .. }
        )
    ) {
        // Commands that only report die quietly when their reader goes away (`state ID | grep -q running`),
        // as runc does. The others keep Rust's SIGPIPE ignored: a hook that does not read its stdin must
        // not kill a half-done create.
        process::default_sigpipe();
    }
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
    let root = match (&cli.root, &cmd) {
        (Some(r), _) => r.clone(),
        (None, Cmd::Spec { .. } | Cmd::Features) => std::path::PathBuf::new(),
        (None, _) => crate::container::state::default_root()?,
    };
    let g = commands::Globals {
        root,
        systemd_cgroup: cli.systemd_cgroup,
        criu: cli.criu.clone(),
    };
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
        Cmd::Checkpoint(a) => checkpoint::run(&g, &a).map(|_| 0),
        Cmd::Restore(a) => restore::run(&g, &a),
    }
}
