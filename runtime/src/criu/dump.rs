//! `checkpoint`: dump a running container's process tree into an image directory with CRIU, described
//! as runc describes it (root, external mounts and namespaces, the cgroup v2 freezer, the init's stdio in
//! descriptors.json), so the images restore with gruntime or runc, here or elsewhere.
//!
//! A pre-dump (`--pre-dump`) copies memory while the container keeps running, for a later dump with
//! `--parent-path` that writes only what changed since. Removing the container after a full dump (unless
//! `--leave-running`) is the command's business, not this file's.

use std::os::fd::AsFd;
use std::path::PathBuf;

use oci_spec::runtime::Spec;
use rust_criu::rust_criu_protobuf::rpc::{Criu_req_type, Ext_mount_map};

use crate::container::Container;
use crate::criu::{descriptors, failure, mounts, namespaces, open_dir, rpc, Opts};
use crate::error::{Error, Result};

pub struct DumpOpts {
    pub criu: Opts,
    pub leave_running: bool,
    pub pre_dump: bool,
    /// A previous (pre-)dump, relative to the image directory as CRIU takes it.
    pub parent_path: Option<PathBuf>,
    pub tcp_skip_in_flight: bool,
    pub link_remap: bool,
}

pub fn checkpoint(c: &Container, spec: &Spec, d: &DumpOpts) -> Result<()> {
    if crate::rootless::is_rootless() {
        return Err(Error::Unsupported(
            "checkpoint of a rootless container (CRIU needs root)".into(),
        ));
    }
    let criu = crate::criu::locate(&d.criu.criu)?;
    let o = &d.criu;
    let pid = c.saved.pid;
    let images = open_dir(&o.image_path, true, "image directory")?;
    let work = match &o.work_path {
        Some(p) => Some(open_dir(p, true, "work directory")?),
        None => None,
    };
    let log_file = "dump.log";
    let mut opts = o.base(log_file);
    opts.set_pid(pid);
    opts.set_root(c.saved.rootfs.to_string_lossy().into_owned());
    opts.set_leave_running(d.leave_running);
    opts.set_tcp_skip_in_flight(d.tcp_skip_in_flight);
    opts.set_link_remap(d.link_remap);
    {
        use std::os::fd::AsRawFd;
        opts.set_images_dir_fd(images.as_raw_fd());
        if let Some(w) = &work {
            opts.set_work_dir_fd(w.as_raw_fd());
        }
    }
    // CRIU freezes the tree with the cgroup v2 freezer (3.14+) instead of stopping each task with ptrace.
    if let Some(cg) = &c.saved.cgroup {
        opts.set_freeze_cgroup(cg.to_string_lossy().into_owned());
    }
    if let Some(parent) = &d.parent_path {
        opts.set_parent_img(parent.to_string_lossy().into_owned());
        opts.set_track_mem(true);
    }
    opts.external = namespaces::for_dump(spec)?;
    let kind = if d.pre_dump {
        // Memory changes are tracked from here on, for the dump that follows.
        opts.set_track_mem(true);
        Criu_req_type::PRE_DUMP
    } else {
        let root = format!("/proc/{pid}/root");
        let masked_is_file = |p: &str| {
            std::fs::metadata(format!("{root}/{}", p.trim_start_matches('/')))
                .is_ok_and(|m| !m.is_dir())
        };
        opts.ext_mnt = mounts::for_dump(spec, masked_is_file)
            .into_iter()
            .map(|(key, val)| {
                let mut m = Ext_mount_map::new();
                m.set_key(key);
                m.set_val(val);
                m
            })
            .collect();
        descriptors::save(pid, &o.image_path)?;
        Criu_req_type::DUMP
    };
    let mut pass = vec![images.as_fd()];
    if let Some(w) = &work {
        pass.push(w.as_fd());
    }
    let call = rpc::Call {
        kind,
        opts,
        pass,
        inherit_stdio: false,
    };
    let what = if d.pre_dump {
        "checkpoint: criu pre-dump failed"
    } else {
        "checkpoint: criu dump failed"
    };
    // The notifications of a dump ("pre-dump", "post-dump", "network-lock"/"-unlock") ask nothing of us.
    rpc::call(&criu, call, |_, _| Ok(()), &mut |_, _, _| Ok(()))
        .map(drop)
        .map_err(|e| failure(e, what, &criu, o.log_path(log_file)))
}
