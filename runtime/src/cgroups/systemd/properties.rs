//! `linux.resources` → the systemd unit properties that express it, as runc's systemd driver sets them.
//!
//! The input is the cgroup v2 plan (`resources::Plan`), not the spec: the plan has already checked every
//! value and converted the v1-shaped fields, and `unified` keys arrive as the same files. What systemd
//! has a property for goes into the unit, so systemd keeps the value on its own reloads; the plan's files
//! are still written after the unit starts (see `systemd::Scope::start`), which covers the rest.
//!
//! Pure data: the D-Bus encoding is in `dbus.rs`, so this is unit-tested without a bus.

use super::super::devices::Rule;
use super::super::error::CgroupError;
use super::super::resources::Plan;

/// A property value, in the D-Bus types systemd's properties use.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(String),
    /// `ay`: AllowedCPUs / AllowedMemoryNodes bitmasks.
    Bytes(Vec<u8>),
    /// `au`: PIDs.
    U32s(Vec<u32>),
    /// `as`.
    Strs(Vec<String>),
    /// `a(ss)`: DeviceAllow.
    Pairs(Vec<(String, String)>),
}

pub type Property = (String, Value);

fn prop(name: &str, v: Value) -> Property {
    (name.to_string(), v)
}

/// systemd's "no limit" for every u64 resource property.
const INFINITY: u64 = u64::MAX;

fn limit(v: &str) -> Option<u64> {
    match v.trim() {
        "max" => Some(INFINITY),
        n => n.parse().ok(),
    }
}

/// The resource properties for `plan`, and the device properties for `rules` where systemd can say the
/// same thing (see `device_properties`).
pub fn from_plan(plan: &Plan, rules: Option<&[Rule]>) -> Vec<Property> {
    let mut out = Vec::new();
    for w in &plan.writes {
        let v = w.value.as_str();
        match w.file.as_str() {
            "memory.max" => out.extend(limit(v).map(|n| prop("MemoryMax", Value::U64(n)))),
            "memory.high" => out.extend(limit(v).map(|n| prop("MemoryHigh", Value::U64(n)))),
            "memory.low" => out.extend(limit(v).map(|n| prop("MemoryLow", Value::U64(n)))),
            "memory.min" => out.extend(limit(v).map(|n| prop("MemoryMin", Value::U64(n)))),
            "memory.swap.max" => out.extend(limit(v).map(|n| prop("MemorySwapMax", Value::U64(n)))),
            "pids.max" => out.extend(limit(v).map(|n| prop("TasksMax", Value::U64(n)))),
            "cpu.weight" => out.extend(v.parse().ok().map(|n| prop("CPUWeight", Value::U64(n)))),
            "cpu.max" => out.extend(cpu_max(v)),
            "cpuset.cpus" => out.extend(bitmask(v).map(|b| prop("AllowedCPUs", Value::Bytes(b)))),
            "cpuset.mems" => {
                out.extend(bitmask(v).map(|b| prop("AllowedMemoryNodes", Value::Bytes(b))))
            }
            // blockIO.weight: the plan writes io.bfq.weight with io.weight ("default N") as fallback;
            // systemd's IOWeight is the io.weight scale and it writes both files itself.
            "io.bfq.weight" | "io.weight" => {
                let iow = match (&w.fallback, w.file.as_str()) {
                    (Some((_, fv)), "io.bfq.weight") => fv.as_str(),
                    _ => v,
                };
                let n = iow.trim().trim_start_matches("default").trim();
                out.extend(n.parse().ok().map(|n| prop("IOWeight", Value::U64(n))));
            }
            _ => {}
        }
    }
    if let Some(rules) = rules {
        out.extend(device_properties(rules, &proc_devices()));
    }
    out
}

/// `cpu.max` "QUOTA PERIOD" → CPUQuotaPerSecUSec (+ CPUQuotaPeriodUSec). systemd stores the quota per
/// second at 10 ms granularity, so a quota is rounded up to it, as runc does; the exact value still
/// reaches cpu.max through the file written afterwards.
fn cpu_max(v: &str) -> Vec<Property> {
    let mut it = v.split_whitespace();
    let quota = it.next().unwrap_or("max");
    let period: Option<u64> = it.next().and_then(|p| p.parse().ok());
    let mut out = Vec::new();
    if let Some(p) = period {
        out.push(prop("CPUQuotaPeriodUSec", Value::U64(p)));
    }
    let per_sec = match quota {
        "max" => INFINITY,
        q => match q.parse::<u64>() {
            Ok(q) => {
                let p = period.unwrap_or(100_000).max(1);
                let us = q.saturating_mul(1_000_000) / p;
                us.div_ceil(10_000) * 10_000
            }
            Err(_) => return out,
        },
    };
    out.push(prop("CPUQuotaPerSecUSec", Value::U64(per_sec)));
    out
}

/// "0-3,5" → the little-endian byte bitmask systemd's AllowedCPUs takes. The plan has checked the list.
pub fn bitmask(list: &str) -> Option<Vec<u8>> {
    let mut bytes: Vec<u8> = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
            None => {
                let n = part.parse::<usize>().ok()?;
                (n, n)
            }
        };
        // Bounded so a typo like 0-99999999 cannot allocate a huge mask.
        if b >= 1 << 16 {
            return None;
        }
        for bit in a..=b {
            if bytes.len() <= bit / 8 {
                bytes.resize(bit / 8 + 1, 0);
            }
            bytes[bit / 8] |= 1 << (bit % 8);
        }
    }
    Some(bytes)
}

/// /proc/devices: (is_block, major, name).
fn proc_devices() -> Vec<(bool, u32, String)> {
    let text = std::fs::read_to_string("/proc/devices").unwrap_or_default();
    parse_proc_devices(&text)
}

fn parse_proc_devices(text: &str) -> Vec<(bool, u32, String)> {
    let mut block = false;
    let mut out = Vec::new();
    for line in text.lines() {
        match line.trim() {
            "Character devices:" => block = false,
            "Block devices:" => block = true,
            l => {
                if let Some((n, name)) = l.split_once(' ') {
                    if let Ok(n) = n.trim().parse() {
                        out.push((block, n, name.trim().to_string()));
                    }
                }
            }
        }
    }
    out
}

/// DevicePolicy=strict + DeviceAllow when the rules are an allow-list systemd can express: a deny-all
/// followed only by allows, each naming a device class (`char-*`), a major systemd knows by name
/// (`char-pts`) or one device (`/dev/char/1:3`). Anything else (a default-allow list, a deny carved out
/// of an allow, an unnamed major) gets no device properties: systemd then attaches no device program and
/// ours alone — always installed, see `Scope::start` — enforces the exact rules. Were systemd given a
/// partial list, its program would deny what ours allows.
pub fn device_properties(rules: &[Rule], names: &[(bool, u32, String)]) -> Vec<Property> {
    let Some(reset) = rules
        .iter()
        .rposition(|r| r.typ.is_none() && r.major.is_none() && r.minor.is_none())
    else {
        return Vec::new();
    };
    if rules[reset].allow || rules[reset].access != super::super::devices::ACCESS_ALL {
        return Vec::new();
    }
    let mut allow = Vec::new();
    for r in &rules[reset + 1..] {
        if !r.allow {
            return Vec::new();
        }
        let Some(block) = r.typ.map(|t| t == super::super::devices::TYPE_BLOCK) else {
            return Vec::new();
        };
        let class = if block { "block" } else { "char" };
        let path = match (r.major, r.minor) {
            (None, None) => format!("{class}-*"),
            (Some(maj), None) => match names.iter().find(|(b, n, _)| *b == block && *n == maj) {
                Some((_, _, name)) => format!("{class}-{name}"),
                None => return Vec::new(),
            },
            (Some(maj), Some(min)) => format!("/dev/{class}/{maj}:{min}"),
            (None, Some(_)) => return Vec::new(),
        };
        allow.push((path, super::super::devices::access_letters(r.access)));
    }
    vec![
        prop("DevicePolicy", Value::Str("strict".into())),
        prop("DeviceAllow", Value::Pairs(allow)),
    ]
}

/// `org.systemd.property.NAME` annotations → extra unit properties, as runc passes them: NAME is a
/// property name (a capital letter, then letters and digits), the value is in GVariant text form
/// (`uint64 5000000`, `true`, `'string'`), and `…Sec` names in seconds become `…USec`.
pub fn from_annotations<'a>(
    annotations: impl Iterator<Item = (&'a String, &'a String)>,
) -> Result<Vec<Property>, CgroupError> {
    const PREFIX: &str = "org.systemd.property.";
    let mut out: Vec<Property> = Vec::new();
    let mut sorted: Vec<_> = annotations.filter(|(k, _)| k.starts_with(PREFIX)).collect();
    sorted.sort();
    for (key, text) in sorted {
        let field = format!("annotations[{key:?}]");
        let bad = |reason: String| CgroupError::BadValue {
            field: field.clone(),
            reason,
        };
        let name = &key[PREFIX.len()..];
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_uppercase())
            && chars.all(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(bad(format!(
                "{name:?} is not a systemd property name (a capital letter, then letters and digits)"
            )));
        }
        let mut value = parse_gvariant(text).map_err(|e| bad(format!("value {text:?}: {e}")))?;
        let mut name = name.to_string();
        if let Some(stem) = name.strip_suffix("Sec") {
            if stem.ends_with(|c: char| c.is_ascii_lowercase()) && !stem.ends_with('U') {
                value = sec_to_usec(&value).ok_or_else(|| {
                    bad(format!("value {text:?}: {name} takes a number of seconds"))
                })?;
                name = format!("{stem}USec");
            }
        }
        out.push((name, value));
    }
    Ok(out)
}

fn sec_to_usec(v: &Value) -> Option<Value> {
    let us = match v {
        Value::U32(n) => u64::from(*n).checked_mul(1_000_000)?,
        Value::I32(n) if *n >= 0 => (*n as u64).checked_mul(1_000_000)?,
        Value::U64(n) => n.checked_mul(1_000_000)?,
        Value::I64(n) if *n >= 0 => (*n as u64).checked_mul(1_000_000)?,
        Value::F64(f) if *f >= 0.0 => (f * 1e6) as u64,
        _ => return None,
    };
    Some(Value::U64(us))
}

/// The part of GVariant's text format annotations use: typed and untyped numbers, booleans, strings,
/// and arrays of strings. An untyped integer is an int32, as in GVariant.
pub fn parse_gvariant(text: &str) -> Result<Value, String> {
    let t = text.trim();
    if t == "true" || t == "false" {
        return Ok(Value::Bool(t == "true"));
    }
    if let Some(s) = quoted(t) {
        return Ok(Value::Str(s));
    }
    if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let items: Result<Vec<String>, String> = inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| quoted(s).ok_or_else(|| format!("{s} is not a quoted string")))
            .collect();
        return items.map(Value::Strs);
    }
    let (ty, num) = match t.split_once(char::is_whitespace) {
        Some((ty, n)) => (ty, n.trim()),
        None => ("", t),
    };
    let err = || {
        format!(
            "{num:?} is not a {}",
            if ty.is_empty() { "value" } else { ty }
        )
    };
    Ok(match ty {
        "uint32" => Value::U32(num.parse().map_err(|_| err())?),
        "int32" => Value::I32(num.parse().map_err(|_| err())?),
        "uint64" => Value::U64(num.parse().map_err(|_| err())?),
        "int64" => Value::I64(num.parse().map_err(|_| err())?),
        "double" => Value::F64(num.parse().map_err(|_| err())?),
        "" if num.contains('.') => Value::F64(num.parse().map_err(|_| err())?),
        "" => Value::I32(num.parse().map_err(|_| err())?),
        other => return Err(format!("type {other:?} is not supported (use uint64, int64, uint32, int32, double, a boolean, a 'string' or ['strings'])")),
    })
}

fn quoted(s: &str) -> Option<String> {
    let inner = s
        .strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|r| r.strip_suffix('"')))?;
    Some(inner.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::super::resources;
    use super::*;
    use oci_spec::runtime::LinuxResources;

    fn plan_of(json: &str) -> Plan {
        let r: LinuxResources = serde_json::from_str(json).unwrap();
        resources::plan(&r, None).unwrap()
    }

    fn find<'a>(props: &'a [Property], name: &str) -> Option<&'a Value> {
        props.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    #[test]
    fn memory_pids_and_cpu_limits_become_the_properties_runc_sets() {
        let p = plan_of(
            r#"{"memory":{"limit":67108864,"reservation":33554432,"swap":134217728},
                "pids":{"limit":42},
                "cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0-1,3","mems":"0"}}"#,
        );
        let props = from_plan(&p, None);
        assert_eq!(find(&props, "MemoryMax"), Some(&Value::U64(67108864)));
        assert_eq!(find(&props, "MemoryLow"), Some(&Value::U64(33554432)));
        assert_eq!(find(&props, "MemorySwapMax"), Some(&Value::U64(67108864)));
        assert_eq!(find(&props, "TasksMax"), Some(&Value::U64(42)));
        assert_eq!(find(&props, "CPUWeight"), Some(&Value::U64(39)));
        assert_eq!(
            find(&props, "CPUQuotaPerSecUSec"),
            Some(&Value::U64(500_000))
        );
        assert_eq!(
            find(&props, "CPUQuotaPeriodUSec"),
            Some(&Value::U64(100_000))
        );
        assert_eq!(
            find(&props, "AllowedCPUs"),
            Some(&Value::Bytes(vec![0b1011]))
        );
        assert_eq!(
            find(&props, "AllowedMemoryNodes"),
            Some(&Value::Bytes(vec![1]))
        );
    }

    #[test]
    fn unlimited_values_are_systemds_infinity_and_quotas_round_up_to_ten_milliseconds() {
        let p = plan_of(
            r#"{"memory":{"limit":-1},"pids":{"limit":0},"cpu":{"quota":12345,"period":100000}}"#,
        );
        let props = from_plan(&p, None);
        assert_eq!(find(&props, "MemoryMax"), Some(&Value::U64(u64::MAX)));
        assert_eq!(find(&props, "TasksMax"), Some(&Value::U64(u64::MAX)));
        assert_eq!(
            find(&props, "CPUQuotaPerSecUSec"),
            Some(&Value::U64(130_000))
        );
    }

    #[test]
    fn unified_keys_and_blkio_weight_map_to_the_same_properties() {
        let p = plan_of(
            r#"{"unified":{"memory.high":"1000000","pids.max":"max"},"blockIO":{"weight":500}}"#,
        );
        let props = from_plan(&p, None);
        assert_eq!(find(&props, "MemoryHigh"), Some(&Value::U64(1_000_000)));
        assert_eq!(find(&props, "TasksMax"), Some(&Value::U64(u64::MAX)));
        assert_eq!(find(&props, "IOWeight"), Some(&Value::U64(4950)));
    }

    #[test]
    fn an_allow_list_after_deny_all_becomes_device_policy_strict() {
        let names =
            parse_proc_devices("Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  8 sd\n");
        let list: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"b","major":8,"minor":0,"access":"r"}]"#,
        )
        .unwrap();
        let rules = super::super::super::devices::rules(&list, &[]).unwrap();
        let props = device_properties(&rules, &names);
        assert_eq!(
            find(&props, "DevicePolicy"),
            Some(&Value::Str("strict".into()))
        );
        let Some(Value::Pairs(allow)) = find(&props, "DeviceAllow") else {
            panic!("no DeviceAllow in {props:?}")
        };
        assert!(allow.contains(&("/dev/block/8:0".into(), "r".into())));
        assert!(allow.contains(&("char-pts".into(), "rwm".into())));
        assert!(allow.contains(&("char-*".into(), "m".into())));
        assert!(allow.contains(&("/dev/char/1:3".into(), "rwm".into())));
    }

    #[test]
    fn rules_systemd_cannot_express_get_no_device_properties() {
        let names = parse_proc_devices("Character devices:\n  1 mem\n");
        let rules_of = |json: &str| {
            let list: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
                serde_json::from_str(json).unwrap();
            super::super::super::devices::rules(&list, &[]).unwrap()
        };
        // Default allow: nothing to say, systemd's default policy allows too.
        assert!(device_properties(&rules_of("[]"), &names).is_empty());
        // A deny carved out after the reset: systemd has no deny entries.
        let carved = rules_of(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"access":"rwm"},{"allow":false,"type":"c","major":1,"minor":3}]"#,
        );
        assert!(device_properties(&carved, &names).is_empty());
        // char 136 (pts, one of the defaults) is not named in this /proc/devices.
        assert!(
            device_properties(&rules_of(r#"[{"allow":false,"access":"rwm"}]"#), &names).is_empty()
        );
    }

    #[test]
    fn annotations_are_parsed_as_runc_parses_them() {
        let a: std::collections::HashMap<String, String> = [
            ("org.systemd.property.TimeoutStopSec", "uint64 7"),
            ("org.systemd.property.CollectMode", "'inactive-or-failed'"),
            ("org.systemd.property.CPUQuotaPeriodUSec", "uint64 50000"),
            ("io.kubernetes.other", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let props = from_annotations(a.iter()).unwrap();
        assert_eq!(props.len(), 3);
        assert_eq!(
            find(&props, "TimeoutStopUSec"),
            Some(&Value::U64(7_000_000))
        );
        assert_eq!(
            find(&props, "CollectMode"),
            Some(&Value::Str("inactive-or-failed".into()))
        );
        assert_eq!(find(&props, "CPUQuotaPeriodUSec"), Some(&Value::U64(50000)));
    }

    #[test]
    fn a_bad_annotation_is_an_error_naming_it() {
        let one = |k: &str, v: &str| {
            let a: std::collections::HashMap<String, String> =
                [(k.to_string(), v.to_string())].into_iter().collect();
            from_annotations(a.iter()).unwrap_err().to_string()
        };
        let e = one("org.systemd.property.bad-name", "1");
        assert!(
            e.contains("org.systemd.property.bad-name") && e.contains("property name"),
            "{e}"
        );
        let e = one("org.systemd.property.TasksMax", "uint64 lots");
        assert!(e.contains("TasksMax") && e.contains("\"lots\""), "{e}");
        let e = one("org.systemd.property.TimeoutStopSec", "'soon'");
        assert!(e.contains("seconds"), "{e}");
    }

    #[test]
    fn cpu_lists_become_little_endian_bitmasks() {
        assert_eq!(bitmask("0"), Some(vec![1]));
        assert_eq!(bitmask("8-9"), Some(vec![0, 3]));
        assert_eq!(bitmask(""), Some(vec![]));
        assert_eq!(bitmask("0-99999999"), None);
    }
}
