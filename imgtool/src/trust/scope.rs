//! Which policy.json / registries.d entries can apply to an image, most specific first, as
//! containers/image looks them up. For `docker`: the reference with its tag or digest, the
//! repository, each parent namespace, the host (with its port), then `*.`-wildcards of the
//! host's parent domains. For the path transports (`oci`, `oci-archive`, `docker-archive`):
//! the absolute path with its `:ref`, the path, then each parent directory. The transport's
//! `""` entry and the global `default` come after these (policy.rs).
use std::path::Path;

use crate::reference::Parts;

/// The image being checked, as the policy sees it.
#[derive(Debug, Clone)]
pub enum Scoped {
    /// A registry image, by the reference the user gave (normalised).
    Docker(Parts),
    /// A local image by transport name (`oci`, `oci-archive`, `docker-archive`), its absolute
    /// path and the reference inside it, if any.
    Path {
        transport: &'static str,
        path: std::path::PathBuf,
        reference: Option<String>,
    },
}

impl Scoped {
    /// The transport's name in policy.json.
    pub fn transport(&self) -> &'static str {
        match self {
            Scoped::Docker(_) => "docker",
            Scoped::Path { transport, .. } => transport,
        }
    }

    /// The Docker reference signatures are matched against (none for a local path).
    pub fn docker_reference(&self) -> Option<&Parts> {
        match self {
            Scoped::Docker(p) => Some(p),
            Scoped::Path { .. } => None,
        }
    }

    /// Candidate scope keys, most specific first.
    pub fn candidates(&self) -> Vec<String> {
        match self {
            Scoped::Docker(p) => docker_candidates(p),
            Scoped::Path {
                path, reference, ..
            } => path_candidates(path, reference.as_deref()),
        }
    }
}

fn docker_candidates(p: &Parts) -> Vec<String> {
    let mut out = vec![];
    let whole = p.to_string();
    let name = p.name();
    if whole != name {
        out.push(whole);
    }
    // The repository, then each parent namespace down to the host.
    let mut cur = name.as_str();
    out.push(cur.to_string());
    while let Some(i) = cur.rfind('/') {
        cur = &cur[..i];
        out.push(cur.to_string());
    }
    // Wildcards of the host's parent domains: a.b.c gives *.b.c, *.c (never the host itself).
    let host = p.registry.split(':').next().unwrap_or(&p.registry);
    let mut h = host;
    while let Some(i) = h.find('.') {
        h = &h[i + 1..];
        out.push(format!("*.{h}"));
    }
    out
}

fn path_candidates(path: &Path, reference: Option<&str>) -> Vec<String> {
    let mut out = vec![];
    let p = path.display().to_string();
    if let Some(r) = reference {
        out.push(format!("{p}:{r}"));
    }
    let mut cur = Some(path);
    while let Some(c) = cur {
        if c.as_os_str() != "/" && !c.as_os_str().is_empty() {
            out.push(c.display().to_string());
        }
        cur = c.parent();
    }
    out
}

/// Whether `key` is usable as a docker scope: `*.domain`, or a fully qualified name whose
/// first component is a host (has a `.` or `:`, or is `localhost`).
pub fn valid_docker_scope(key: &str) -> bool {
    if let Some(d) = key.strip_prefix("*.") {
        return !d.is_empty() && !d.contains('/') && !d.contains('*');
    }
    let host = key.split('/').next().unwrap_or("");
    !key.contains(char::is_whitespace)
        && !key.contains("://")
        && !key.contains('*')
        && (host.contains('.') || host.contains(':') || host == "localhost")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::parse_parts;

    #[test]
    fn a_docker_image_is_looked_up_from_its_tag_to_its_host_then_wildcards() {
        let c = Scoped::Docker(parse_parts("reg.example.com:5000/ns/app:1").unwrap()).candidates();
        assert_eq!(
            c,
            [
                "reg.example.com:5000/ns/app:1",
                "reg.example.com:5000/ns/app",
                "reg.example.com:5000/ns",
                "reg.example.com:5000",
                "*.example.com",
                "*.com",
            ]
        );
    }

    #[test]
    fn a_layout_is_looked_up_from_its_reference_to_its_parent_directories() {
        let c = Scoped::Path {
            transport: "oci",
            path: "/srv/images/app".into(),
            reference: Some("v1".into()),
        }
        .candidates();
        assert_eq!(
            c,
            [
                "/srv/images/app:v1",
                "/srv/images/app",
                "/srv/images",
                "/srv"
            ]
        );
    }

    #[test]
    fn docker_scopes_must_be_fully_qualified() {
        assert!(valid_docker_scope("docker.io/library/busybox"));
        assert!(valid_docker_scope("localhost/app:1"));
        assert!(valid_docker_scope("*.example.com"));
        assert!(!valid_docker_scope("busybox"));
        assert!(!valid_docker_scope("https://reg.io/x"));
    }
}
