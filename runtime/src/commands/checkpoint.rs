//! `gruntime checkpoint`: dump a running container with CRIU (criu/dump.rs), then, as runc does, remove
//! it, unless `--leave-running` or `--pre-dump` keep it running.

use std::path::PathBuf;

use crate::cli::{CheckpointArgs, CriuArgs};
use crate::commands::{delete, Globals};
use crate::container::{Container, Status};
use crate::criu::dump::{self, DumpOpts};
use crate::criu::{self, CgMode, Opts};
use crate::error::{Error, Result};

/// The flags both commands share, checked; the ones gruntime does not implement are refused by name.
pub fn criu_opts(g: &Globals, a: &CriuArgs) -> Result<Opts> {
    if a.lazy_pages {
        return Err(Error::Unsupported(
            "--lazy-pages (CRIU's lazy-pages daemon) is not implemented by gruntime".into(),
        ));
    }
    if a.status_fd.is_some() {
        return Err(Error::Unsupported(
            "--status-fd (it only goes with --lazy-pages) is not implemented by gruntime".into(),
        ));
    }
    let empty_ns = criu::empty_ns_mask(&a.empty_ns)?;
    let image_path = match &a.image_path {
        Some(p) => p.clone(),
        // runc's default: ./checkpoint
        None => PathBuf::from("checkpoint"),
    };
    Ok(Opts {
        criu: g.criu.clone(),
        image_path: std::path::absolute(&image_path).unwrap_or(image_path),
        work_path: a
            .work_path
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
        tcp_established: a.tcp_established,
        ext_unix_sk: a.ext_unix_sk,
        shell_job: a.shell_job,
        file_locks: a.file_locks,
        manage_cgroups_mode: a
            .manage_cgroups_mode
            .as_deref()
            .map(CgMode::parse)
            .transpose()?,
        empty_ns,
        auto_dedup: a.auto_dedup,
    })
}

pub fn run(g: &Globals, a: &CheckpointArgs) -> Result<()> {
    if a.page_server.is_some() {
        return Err(Error::Unsupported(
            "--page-server (dumping memory to a CRIU page server) is not implemented by gruntime"
                .into(),
        ));
    }
    let opts = DumpOpts {
        criu: criu_opts(g, &a.criu)?,
        leave_running: a.leave_running,
        pre_dump: a.pre_dump,
        parent_path: a.parent_path.clone(),
        tcp_skip_in_flight: a.tcp_skip_in_flight,
        link_remap: a.link_remap,
    };
    let c = Container::load(&g.root, &a.id)?;
    c.require_status(&[Status::Running, Status::Paused], "checkpoint")?;
    let spec = c.dir.load_config()?;
    crate::log::debug("checkpoint: criu dump starts");
    dump::checkpoint(&c, &spec, &opts)?;
    crate::log::debug("checkpoint: criu dump done");
    if !(a.leave_running || a.pre_dump) {
        // CRIU has ended the processes; what is left is the record, the cgroup and poststop hooks.
        delete::destroy(c)?;
        crate::log::debug("checkpoint: container removed");
    }
    Ok(())
}
