//! `events`: runc's event stream for a container. `--stats` prints one stats event and exits; otherwise a
//! stats event every `--interval`, and an `oom` event as soon as memory.events counts a new OOM kill, until
//! the container's init is gone.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::cgroups::stats;
use crate::commands::Globals;
use crate::container::{proc_start_time, Container, Status};
use crate::error::{Error, Result};

/// How often memory.events is read for OOM kills between stats events.
const OOM_POLL: Duration = Duration::from_millis(100);

fn event(kind: &str, id: &str, data: Option<serde_json::Value>) -> String {
    let mut e = serde_json::json!({ "type": kind, "id": id });
    if let Some(d) = data {
        e["data"] = d;
    }
    e.to_string()
}

/// Go-style durations as runc takes them: `5s`, `500ms`, `1m`.
fn parse_interval(s: &str) -> Result<Duration> {
    let d = humantime::parse_duration(s)
        .map_err(|e| Error::InvalidArgument(format!("--interval {s:?}: {e}")))?;
    if d.is_zero() {
        return Err(Error::InvalidArgument(format!(
            "--interval {s:?}: must be greater than 0"
        )));
    }
    Ok(d)
}

pub fn run(g: &Globals, id: &str, stats_once: bool, interval: &str) -> Result<()> {
    let interval = parse_interval(interval)?;
    let c = Container::load(&g.root, id)?;
    c.require_status(&[Status::Created, Status::Running, Status::Paused], "watch")?;
    let Some(cg) = c.saved.cgroup.clone() else {
        return Err(Error::BadState {
            id: id.into(),
            reason: "no events: the container has no cgroup".into(),
        });
    };
    let (pid, start_time) = (c.saved.pid, c.saved.start_time);
    // Release the container's lock: a stream that runs for hours must not block kill or delete.
    drop(c);
    let mut out = std::io::stdout().lock();
    if stats_once {
        writeln!(out, "{}", event("stats", id, Some(stats::stats(&cg))))
            .map_err(|e| Error::io("write", "stdout", e))?;
        return Ok(());
    }
    let alive = || matches!(proc_start_time(pid), Some((t, s)) if t == start_time && s != 'Z');
    let mut ooms = stats::oom_kills(&cg);
    let mut next_stats = Instant::now() + interval;
    while alive() {
        std::thread::sleep(OOM_POLL.min(interval));
        let now_ooms = stats::oom_kills(&cg);
        let mut lines = Vec::new();
        if now_ooms > ooms {
            lines.push(event("oom", id, None));
            ooms = now_ooms;
        }
        if Instant::now() >= next_stats {
            next_stats += interval;
            lines.push(event("stats", id, Some(stats::stats(&cg))));
        }
        for l in lines {
            // The reader went away (e.g. `| head`): that ends the stream, not an error.
            if writeln!(out, "{l}").and_then(|_| out.flush()).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}
