//! `pause` / `resume`: freeze or thaw every process of the container through its cgroup.freeze, and wait
//! until the kernel reports the whole cgroup frozen (or thawed).

use crate::cgroups;
use crate::commands::Globals;
use crate::container::{Container, Status};
use crate::error::{Error, Result};

fn cgroup_of(c: &Container, what: &str) -> Result<std::path::PathBuf> {
    c.saved.cgroup.clone().ok_or_else(|| Error::BadState {
        id: c.id().into(),
        reason: format!("cannot {what}: the container has no cgroup (no cgroup v2 hierarchy when it was created)"),
    })
}

pub fn pause(g: &Globals, id: &str) -> Result<()> {
    let c = Container::load(&g.root, id)?;
    c.require_status(&[Status::Running, Status::Created], "pause")?;
    cgroups::freeze(&cgroup_of(&c, "pause")?)
}

pub fn resume(g: &Globals, id: &str) -> Result<()> {
    let c = Container::load(&g.root, id)?;
    c.require_status(&[Status::Paused], "resume")?;
    cgroups::thaw(&cgroup_of(&c, "resume")?)
}
