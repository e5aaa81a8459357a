use crate::commands::Globals;
use crate::container::{Container, Status};
use crate::error::Result;
use crate::hooks;
use crate::spawn;

pub fn run(g: &Globals, id: &str) -> Result<()> {
    let mut c = Container::load(&g.root, id)?;
    start(&mut c)
}

/// created → running: the init execs, then poststart hooks run before we return (a failing one only warns).
pub fn start(c: &mut Container) -> Result<()> {
    c.require_status(&[Status::Created], "start")?;
    let spec = c.dir.load_config()?;
    spawn::start_init(c, &spawn::listener_of(&spec))?;
    c.saved.started = true;
    c.dir.save(&c.saved)?;
    if let Some(hs) = spec.hooks().as_ref().and_then(|h| h.poststart().as_ref()) {
        // The lifecycle says "running" here, even if a short process has already exited.
        let state =
            crate::container::oci_state_json(&c.saved, Status::Running, c.saved.pid).to_string();
        hooks::run_all_warn("poststart", hs, &state);
    }
    Ok(())
}
