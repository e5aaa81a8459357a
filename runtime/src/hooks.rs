//! Lifecycle hooks: run with the container state on stdin, their args/env, and a timeout.
//! prestart/createRuntime/poststart/poststop run in the runtime's namespaces, createContainer and
//! startContainer from the init, in the container's.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

#[derive(Debug)]
pub struct HookError {
    pub index: usize,
    pub reason: String,
}

pub fn run_all(kind: &str, hooks: &[Hook], state_json: &str) -> Result<(), HookError> {
    for (i, h) in hooks.iter().enumerate() {
        run_one(h, state_json).map_err(|r| HookError {
            index: i,
            reason: format!("{kind} hook #{i} {}: {r}", h.path().display()),
        })?;
    }
    Ok(())
}

fn run_one(h: &Hook, state_json: &str) -> Result<(), String> {
    let path = h.path();
    let args = h.args().clone().unwrap_or_default();
    let mut cmd = Command::new(path);
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    cmd.args(args.iter().skip(1));
    cmd.env_clear();
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin must not make us fail: ignore EPIPE.
        let _ = stdin.write_all(state_json.as_bytes());
    }
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut nap = Duration::from_micros(200);
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(s) => break s,
            None => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "timed out after {}s",
                        h.timeout().unwrap_or_default()
                    ));
                }
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(20));
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut out = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut out);
    }
    if out.trim().is_empty() {
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
    }
    Err(format!(
        "{status}{}",
        if out.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", out.trim().lines().last().unwrap_or_default())
        }
    ))
}

/// poststart and poststop: a failing hook is a warning, and the hooks after it still run (runtime-spec).
pub fn run_all_warn(kind: &str, hooks: &[Hook], state_json: &str) {
    for (i, h) in hooks.iter().enumerate() {
        if let Err(r) = run_one(h, state_json) {
            crate::log::warn(&format!("{kind} hook #{i} {}: {r}", h.path().display()));
        }
    }
}
