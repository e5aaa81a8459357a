//! Registry credentials: `--creds`, then auth files in the order podman/skopeo read them
//! (`--authfile`, `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `~/.config/containers/auth.json`, Docker's `~/.docker/config.json`). `login`/`logout` write
//! the containers auth.json (or `--authfile`).
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::context::Context;
use crate::error::{Error, Result};

/// Keys Docker Hub credentials may be stored under.
const DOCKER_HUB_KEYS: &[&str] = &[
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "https://index.docker.io/v1/",
];

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into())
}

/// The file `login`/`logout` write.
pub fn write_path(ctx: &Context) -> PathBuf {
    if let Some(p) = &ctx.registry.authfile {
        return p.clone();
    }
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        return p.into();
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return Path::new(&d).join("containers/auth.json");
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/run/containers/0/auth.json");
    }
    home().join(".config/containers/auth.json")
}

/// Every file credentials are looked up in, most specific first.
fn read_paths(ctx: &Context) -> Vec<PathBuf> {
    if let Some(p) = &ctx.registry.authfile {
        return vec![p.clone()];
    }
    let mut v = vec![write_path(ctx), home().join(".config/containers/auth.json")];
    match std::env::var_os("DOCKER_CONFIG").filter(|p| !p.is_empty()) {
        Some(d) => v.push(Path::new(&d).join("config.json")),
        None => v.push(home().join(".docker/config.json")),
    }
    v.dedup();
    v
}

/// Normalise an `auths` key to `host[:port][/path]`: drop a scheme and Docker's `/v1/` suffix.
fn normalise_key(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k.strip_suffix("/v1/").unwrap_or(k);
    let k = k.trim_end_matches('/');
    if DOCKER_HUB_KEYS.contains(&k) {
        "docker.io".to_string()
    } else {
        k.to_string()
    }
}

fn read_auth_file(path: &Path) -> Result<Option<Map<String, Value>>> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read auth file", path)(e)),
    };
    parse_auth_file(path, &data).map(Some)
}

/// The `auths` map of an auth file's bytes (`path` names it in errors).
pub fn parse_auth_file(path: &Path, data: &[u8]) -> Result<Map<String, Value>> {
    let v: Value = serde_json::from_slice(data).map_err(|e| Error::AuthFile {
        path: path.to_path_buf(),
        reason: format!("not valid JSON: {e}"),
    })?;
    Ok(v.get("auths")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default())
}

/// The most specific entry of `auths` for `registry/repository` (`host/ns/repo`, then
/// `host/ns`, then `host`), decoded.
pub fn lookup(
    path: &Path,
    auths: &Map<String, Value>,
    registry: &str,
    repository: &str,
) -> Result<Option<(String, String)>> {
    let mut scope = format!("{}/{repository}", normalise_key(registry));
    loop {
        for (k, v) in auths {
            if normalise_key(k) == scope {
                if let Some(c) = decode_entry(path, k, v)? {
                    return Ok(Some(c));
                }
            }
        }
        match scope.rfind('/') {
            Some(i) => scope.truncate(i),
            None => return Ok(None),
        }
    }
}

/// Docker's credential helpers: `credHelpers.<registry>` or `credsStore` in a config file name a
/// `docker-credential-<helper>` program; `get` with the registry on stdin prints
/// `{"Username": …, "Secret": …}`.
fn from_credential_helper(path: &Path, registry: &str) -> Result<Option<(String, String)>> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(_) => return Ok(None),
    };
    let Ok(v) = serde_json::from_slice::<Value>(&data) else {
        return Ok(None);
    };
    let helper = v
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|h| {
            h.iter()
                .find(|(k, _)| normalise_key(k) == registry)
                .and_then(|(_, v)| v.as_str())
        })
        .or_else(|| v.get("credsStore").and_then(Value::as_str));
    let Some(helper) = helper.filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let program = format!("docker-credential-{helper}");
    let bad = |reason: String| Error::AuthFile {
        path: path.to_path_buf(),
        reason: format!("credential helper {program}: {reason}"),
    };
    let mut child = std::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| bad(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        stdin
            .write_all(registry.as_bytes())
            .map_err(|e| bad(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| bad(e.to_string()))?;
    if !out.status.success() {
        // Helpers exit non-zero with "credentials not found" when they have nothing for us.
        return Ok(None);
    }
    let v: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| bad(format!("output is not JSON: {e}")))?;
    match (
        v.get("Username").and_then(Value::as_str),
        v.get("Secret").and_then(Value::as_str),
    ) {
        (Some(u), Some(s)) => Ok(Some((u.to_string(), s.to_string()))),
        _ => Err(bad("output lacks Username/Secret".into())),
    }
}

fn decode_entry(path: &Path, key: &str, entry: &Value) -> Result<Option<(String, String)>> {
    let Some(b64) = entry.get("auth").and_then(Value::as_str) else {
        return Ok(None);
    };
    let bad = |reason: &str| Error::AuthFile {
        path: path.to_path_buf(),
        // The key is the file's text: its newlines stay escaped (found by the auth fuzz target).
        reason: format!("auths.{}.auth: {reason}", crate::error::printable(key)),
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| bad("not base64"))?;
    let s = String::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
    let (u, p) = s.split_once(':').ok_or_else(|| bad("not user:password"))?;
    Ok(Some((u.to_string(), p.to_string())))
}

/// Credentials for `registry/repository`: `--creds`, else the most specific auth file entry
/// (`host/ns/repo`, then `host/ns`, then `host`).
pub fn credentials_for(
    ctx: &Context,
    registry: &str,
    repository: &str,
) -> Result<Option<(String, String)>> {
    if let Some(c) = &ctx.registry.creds {
        return Ok(Some(c.clone()));
    }
    let registry = normalise_key(registry);
    for path in read_paths(ctx) {
        if let Some(c) = from_credential_helper(&path, &registry)? {
            return Ok(Some(c));
        }
        let Some(auths) = read_auth_file(&path)? else {
            continue;
        };
        if let Some(c) = lookup(&path, &auths, &registry, repository)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// Record credentials for `registry` in the auth file `login` writes.
pub fn store_credentials(ctx: &Context, registry: &str, user: &str, pass: &str) -> Result<PathBuf> {
    let path = write_path(ctx);
    let mut root: Value = match std::fs::read(&path) {
        Ok(d) => serde_json::from_slice(&d).map_err(|e| Error::AuthFile {
            path: path.clone(),
            reason: format!("not valid JSON: {e}"),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Object(Map::new()),
        Err(e) => return Err(Error::io("read auth file", &path)(e)),
    };
    let obj = root.as_object_mut().ok_or_else(|| Error::AuthFile {
        path: path.clone(),
        reason: "top level is not an object".into(),
    })?;
    let auths = obj
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| Error::AuthFile {
            path: path.clone(),
            reason: "auths is not an object".into(),
        })?;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    auths.insert(
        normalise_key(registry),
        serde_json::json!({ "auth": token }),
    );
    write_private(&path, &root)?;
    Ok(path)
}

/// Remove credentials for `registry`; `Ok(false)` when there were none.
pub fn remove_credentials(ctx: &Context, registry: &str) -> Result<bool> {
    let path = write_path(ctx);
    let Some(_) = read_auth_file(&path)? else {
        return Ok(false);
    };
    let data = std::fs::read(&path).map_err(Error::io("read auth file", &path))?;
    let mut root: Value = serde_json::from_slice(&data).map_err(|e| Error::AuthFile {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let want = normalise_key(registry);
    let Some(auths) = root.get_mut("auths").and_then(Value::as_object_mut) else {
        return Ok(false);
    };
    let keys: Vec<String> = auths
        .keys()
        .filter(|k| normalise_key(k) == want)
        .cloned()
        .collect();
    if keys.is_empty() {
        return Ok(false);
    }
    for k in keys {
        auths.remove(&k);
    }
    write_private(&path, &root)?;
    Ok(true)
}

/// Remove every registry's credentials; returns how many there were.
pub fn remove_all_credentials(ctx: &Context) -> Result<usize> {
    let path = write_path(ctx);
    let Some(auths) = read_auth_file(&path)? else {
        return Ok(0);
    };
    let data = std::fs::read(&path).map_err(Error::io("read auth file", &path))?;
    let mut root: Value = serde_json::from_slice(&data).map_err(|e| Error::AuthFile {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if let Some(obj) = root.as_object_mut() {
        obj.insert("auths".into(), Value::Object(Map::new()));
    }
    write_private(&path, &root)?;
    Ok(auths.len())
}

/// Auth files hold passwords: created 0600, replaced atomically.
fn write_private(path: &Path, v: &Value) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io("create auth file directory", dir))?;
    }
    let data = serde_json::to_vec_pretty(v).map_err(|e| Error::AuthFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    crate::store::write_file_atomic(path, &data)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(Error::io("chmod auth file", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_entry_under_a_key_with_a_newline_is_a_one_line_error_naming_the_file() {
        let path = Path::new("/a/auth.json");
        let auths =
            parse_auth_file(path, br#"{"auths": {"reg\nistry.io": {"auth": "!!"}}}"#).unwrap();
        let e = lookup(path, &auths, "reg\nistry.io", "x/y")
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(
            e.contains("/a/auth.json") && e.contains("auths.reg\\nistry.io.auth: not base64"),
            "{e}"
        );
    }

    #[test]
    fn the_most_specific_entry_wins() {
        let path = Path::new("/a/auth.json");
        let auths = parse_auth_file(
            path,
            br#"{"auths": {"r.io": {"auth": "YTpi"}, "r.io/ns": {"auth": "Yzpk"}}}"#,
        )
        .unwrap();
        let got = lookup(path, &auths, "r.io", "ns/repo").unwrap();
        assert_eq!(got, Some(("c".into(), "d".into())));
        let got = lookup(path, &auths, "r.io", "other/repo").unwrap();
        assert_eq!(got, Some(("a".into(), "b".into())));
    }
}
