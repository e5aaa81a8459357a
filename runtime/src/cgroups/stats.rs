//! Resource statistics of a cgroup v2 directory in runc's `events --stats` shape
//! (runc types/events.go: cpu, memory, pids, blkio, hugetlb), plus the OOM counters `events` watches.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

/// A single-number file; "max" is reported as u64::MAX as runc does.
fn number(dir: &Path, file: &str) -> Option<u64> {
    let s = read(dir, file)?;
    match s.trim() {
        "max" => Some(u64::MAX),
        v => v.parse().ok(),
    }
}

/// A flat-keyed file such as cpu.stat or memory.events: `key value` per line.
pub fn keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    read(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// OOM kills seen by the cgroup so far (memory.events `oom_kill`).
pub fn oom_kills(dir: &Path) -> u64 {
    keyed(dir, "memory.events")
        .get("oom_kill")
        .copied()
        .unwrap_or(0)
}

/// Drop zero values, as runc's `omitempty` does.
fn put(m: &mut Map<String, Value>, key: &str, v: u64) {
    if v != 0 {
        m.insert(key.into(), json!(v));
    }
}

fn cpu(dir: &Path) -> Value {
    let s = keyed(dir, "cpu.stat");
    let g = |k: &str| s.get(k).copied().unwrap_or(0);
    let mut usage = Map::new();
    put(&mut usage, "total", g("usage_usec") * 1000);
    usage.insert("kernel".into(), json!(g("system_usec") * 1000));
    usage.insert("user".into(), json!(g("user_usec") * 1000));
    let mut throttling = Map::new();
    put(&mut throttling, "periods", g("nr_periods"));
    put(&mut throttling, "throttledPeriods", g("nr_throttled"));
    put(&mut throttling, "throttledTime", g("throttled_usec") * 1000);
    json!({ "usage": usage, "throttling": throttling })
}

fn memory(dir: &Path) -> Value {
    let raw = keyed(dir, "memory.stat");
    let events = keyed(dir, "memory.events");
    let usage_now = number(dir, "memory.current").unwrap_or(0);
    let mut usage = Map::new();
    usage.insert(
        "limit".into(),
        json!(number(dir, "memory.max").unwrap_or(u64::MAX)),
    );
    put(&mut usage, "usage", usage_now);
    put(&mut usage, "max", number(dir, "memory.peak").unwrap_or(0));
    usage.insert(
        "failcnt".into(),
        json!(events.get("max").copied().unwrap_or(0)),
    );
    let mut m = Map::new();
    put(&mut m, "cache", raw.get("file").copied().unwrap_or(0));
    m.insert("usage".into(), Value::Object(usage));
    // runc reports v2 swap as memory+swap, the v1 meaning of the field.
    if let Some(swap_now) = number(dir, "memory.swap.current") {
        let mut swap = Map::new();
        let limit = match (number(dir, "memory.swap.max"), number(dir, "memory.max")) {
            (Some(s), Some(m)) if s != u64::MAX && m != u64::MAX => s + m,
            _ => u64::MAX,
        };
        swap.insert("limit".into(), json!(limit));
        put(&mut swap, "usage", swap_now + usage_now);
        swap.insert("failcnt".into(), json!(0));
        m.insert("swap".into(), Value::Object(swap));
    }
    m.insert("kernel".into(), json!({ "limit": 0, "failcnt": 0 }));
    m.insert("kernelTCP".into(), json!({ "limit": 0, "failcnt": 0 }));
    if !raw.is_empty() {
        m.insert("raw".into(), json!(raw));
    }
    Value::Object(m)
}

fn pids(dir: &Path) -> Value {
    let mut m = Map::new();
    put(&mut m, "current", number(dir, "pids.current").unwrap_or(0));
    let limit = number(dir, "pids.max").unwrap_or(0);
    put(&mut m, "limit", if limit == u64::MAX { 0 } else { limit });
    Value::Object(m)
}

fn blkio(dir: &Path) -> Value {
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for line in read(dir, "io.stat").unwrap_or_default().lines() {
        let mut it = line.split_whitespace();
        let Some((major, minor)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse::<u64>(), minor.parse::<u64>()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<u64>() else { continue };
            let entry = |op: &str| json!({ "major": major, "minor": minor, "op": op, "value": v });
            match k {
                "rbytes" => bytes.push(entry("Read")),
                "wbytes" => bytes.push(entry("Write")),
                "rios" => ios.push(entry("Read")),
                "wios" => ios.push(entry("Write")),
                _ => {}
            }
        }
    }
    let mut m = Map::new();
    if !bytes.is_empty() {
        m.insert("ioServiceBytesRecursive".into(), json!(bytes));
    }
    if !ios.is_empty() {
        m.insert("ioServicedRecursive".into(), json!(ios));
    }
    Value::Object(m)
}

fn hugetlb(dir: &Path) -> Value {
    let mut m = Map::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Value::Object(m);
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|s| s.strip_suffix(".current"))
        else {
            continue;
        };
        let mut h = Map::new();
        put(&mut h, "usage", number(dir, &name).unwrap_or(0));
        put(
            &mut h,
            "max",
            number(dir, &format!("hugetlb.{size}.max"))
                .filter(|v| *v != u64::MAX)
                .unwrap_or(0),
        );
        let ev = keyed(dir, &format!("hugetlb.{size}.events"));
        h.insert("failcnt".into(), json!(ev.get("max").copied().unwrap_or(0)));
        m.insert(size.to_string(), Value::Object(h));
    }
    Value::Object(m)
}

/// The `data` of a runc stats event.
pub fn stats(dir: &Path) -> Value {
    json!({
        "cpu": cpu(dir),
        "memory": memory(dir),
        "pids": pids(dir),
        "blkio": blkio(dir),
        "hugetlb": hugetlb(dir),
    })
}
