//! Checks `linux.seccomp` in the raw config.json before oci-spec parses it, so that a bad value
//! gets an error naming the entry (`linux.seccomp.syscalls[3].action: unknown action "X"`)
//! instead of serde's "unknown variant ... at line 40 column 7".

use serde_json::Value;

use super::SeccompError;

const ACTIONS: [&str; 9] = [
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
];

/// Every comparison the spec defines; all of them are compiled (features.rs lists these).
pub(super) const OPERATORS: [&str; 7] = [
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

const FLAGS: [&str; 4] = [
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/// `config` is the whole config.json. Ok when there is no `linux.seccomp`.
pub fn validate_raw(config: &Value) -> Result<(), SeccompError> {
    let Some(seccomp) = config.get("linux").and_then(|l| l.get("seccomp")) else {
        return Ok(());
    };
    if seccomp.is_null() {
        return Ok(());
    }
    let base = "linux.seccomp";
    let obj = seccomp
        .as_object()
        .ok_or_else(|| bad(base, "not an object"))?;
    let action = |v: Option<&Value>, field: &str| match v {
        None => Err(bad(field, "missing")),
        Some(v) => one_of(v, field, "action", &ACTIONS),
    };
    action(obj.get("defaultAction"), &format!("{base}.defaultAction"))?;
    u32_field(
        obj.get("defaultErrnoRet"),
        &format!("{base}.defaultErrnoRet"),
    )?;
    for (i, a) in array(obj.get("architectures"), &format!("{base}.architectures"))?
        .iter()
        .enumerate()
    {
        let field = format!("{base}.architectures[{i}]");
        let name = a.as_str().ok_or_else(|| bad(&field, "not a string"))?;
        if serde_json::from_value::<oci_spec::runtime::Arch>(a.clone()).is_err() {
            return Err(unknown(&field, "architecture", name));
        }
    }
    for (i, f) in array(obj.get("flags"), &format!("{base}.flags"))?
        .iter()
        .enumerate()
    {
        one_of(f, &format!("{base}.flags[{i}]"), "flag", &FLAGS)?;
    }
    for key in ["listenerPath", "listenerMetadata"] {
        if let Some(v) = obj.get(key) {
            if !v.is_string() && !v.is_null() {
                return Err(bad(&format!("{base}.{key}"), "not a string"));
            }
        }
    }
    for (i, s) in array(obj.get("syscalls"), &format!("{base}.syscalls"))?
        .iter()
        .enumerate()
    {
        let field = format!("{base}.syscalls[{i}]");
        let s = s.as_object().ok_or_else(|| bad(&field, "not an object"))?;
        let names = s
            .get("names")
            .ok_or_else(|| bad(&format!("{field}.names"), "missing"))?;
        for (j, n) in array(Some(names), &format!("{field}.names"))?
            .iter()
            .enumerate()
        {
            if !n.is_string() {
                return Err(bad(&format!("{field}.names[{j}]"), "not a string"));
            }
        }
        action(s.get("action"), &format!("{field}.action"))?;
        u32_field(s.get("errnoRet"), &format!("{field}.errnoRet"))?;
        for (k, a) in array(s.get("args"), &format!("{field}.args"))?
            .iter()
            .enumerate()
        {
            let af = format!("{field}.args[{k}]");
            let a = a.as_object().ok_or_else(|| bad(&af, "not an object"))?;
            for key in ["index", "value"] {
                if a.get(key).and_then(Value::as_u64).is_none() {
                    return Err(bad(
                        &format!("{af}.{key}"),
                        "missing or not an unsigned integer",
                    ));
                }
            }
            if let Some(v) = a.get("valueTwo") {
                if !v.is_null() && v.as_u64().is_none() {
                    return Err(bad(&format!("{af}.valueTwo"), "not an unsigned integer"));
                }
            }
            match a.get("op") {
                None => return Err(bad(&format!("{af}.op"), "missing")),
                Some(op) => one_of(op, &format!("{af}.op"), "operator", &OPERATORS)?,
            }
        }
    }
    Ok(())
}

fn bad(field: &str, reason: &str) -> SeccompError {
    SeccompError::BadField {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

fn unknown(field: &str, kind: &'static str, value: &str) -> SeccompError {
    SeccompError::UnknownValue {
        field: field.to_string(),
        kind,
        value: value.to_string(),
    }
}

fn one_of(
    v: &Value,
    field: &str,
    kind: &'static str,
    allowed: &[&str],
) -> Result<(), SeccompError> {
    let s = v.as_str().ok_or_else(|| bad(field, "not a string"))?;
    if !allowed.contains(&s) {
        return Err(unknown(field, kind, s));
    }
    Ok(())
}

fn array<'a>(v: Option<&'a Value>, field: &str) -> Result<&'a [Value], SeccompError> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(bad(field, "not an array")),
    }
}

fn u32_field(v: Option<&Value>, field: &str) -> Result<(), SeccompError> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(v) if v.as_u64().is_some_and(|n| n <= u64::from(u32::MAX)) => Ok(()),
        Some(_) => Err(bad(field, "not an unsigned 32-bit integer")),
    }
}
