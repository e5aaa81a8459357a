//! `ps`: the container's processes — every pid in its cgroup tree. `--format json` prints them as a JSON
//! array; `table` runs the host's `ps` (with the given ps arguments, `-ef` by default) and keeps the
//! header plus the lines of those pids, as runc does.

use std::process::Command;

use crate::cgroups;
use crate::commands::Globals;
use crate::container::Container;
use crate::error::{Error, Result};

fn container_pids(c: &Container) -> Vec<i32> {
    let mut pids = match &c.saved.cgroup {
        Some(cg) => cgroups::pids(cg),
        None if c.init_alive() => vec![c.saved.pid],
        None => Vec::new(),
    };
    pids.sort_unstable();
    pids.dedup();
    pids
}

pub fn run(g: &Globals, id: &str, format: &str, ps_args: &[String]) -> Result<()> {
    let c = Container::load(&g.root, id)?;
    let pids = container_pids(&c);
    drop(c);
    if format == "json" {
        println!("{}", serde_json::to_string(&pids).expect("pids serialise"));
        return Ok(());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| Error::io("run", "ps", e))?;
    if !out.status.success() {
        return Err(Error::InvalidArgument(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(col) = header.split_whitespace().position(|h| h == "PID") else {
        return Err(Error::InvalidArgument(format!(
            "ps {}: its output has no PID column",
            args.join(" ")
        )));
    };
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}
