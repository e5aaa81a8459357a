//! What the user names on the command line: a registry reference normalised as Docker does
//! (`alpine` → `docker.io/library/alpine:latest`), or a transport-prefixed source
//! (`oci:DIR[:tag]`, `docker-archive:FILE`, `oci-archive:FILE[:tag]`, `docker://NAME`).
use std::path::PathBuf;

use oci_client::Reference;

use crate::error::{Error, Result};

/// Docker's reference grammar (distribution/reference), ASCII only. oci-spec's `Reference`
/// parser compiles the same grammar with Unicode classes, which costs ~40 ms per process: most of
/// a warm pull. So we match here and build the `Reference` from its parts.
const REFERENCE_RE: &str = r"(?-u)^((?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)(?::([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(sha256:[0-9a-f]{64}))?$";

fn reference_re() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(REFERENCE_RE).expect("reference grammar compiles"))
}

/// Split a name into registry and repository as Docker does: the first component is a
/// registry only if it has a `.` or `:` or is `localhost`; Docker Hub names get `library/`.
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut rest) = match name.split_once('/') {
        Some((left, right)) if left.contains('.') || left.contains(':') || left == "localhost" => {
            (left.to_string(), right.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    if domain == "index.docker.io" {
        domain = "docker.io".into();
    }
    if domain == "docker.io" && !rest.contains('/') {
        rest = format!("library/{rest}");
    }
    (domain, rest)
}

/// Parse and normalise a registry reference (a short name goes through registries.conf first
/// when `--short-name-aliases` asked for it).
pub fn parse_reference(input: &str) -> Result<Reference> {
    match crate::registries_conf::expand_short(input) {
        Some(full) => parse_normalised(&full),
        None => parse_normalised(input),
    }
}

fn parse_normalised(input: &str) -> Result<Reference> {
    let p = parse_parts(input)?;
    let (registry, repository) = (p.registry, p.repository);
    Ok(match (p.tag, p.digest) {
        (Some(t), Some(d)) => Reference::with_tag_and_digest(registry, repository, t, d),
        (None, Some(d)) => Reference::with_digest(registry, repository, d),
        (Some(t), None) => Reference::with_tag(registry, repository, t),
        (None, None) => Reference::with_tag(registry, repository, "latest".into()),
    })
}

/// A reference normalised as Docker's `ParseNormalizedNamed` does, without adding `latest`:
/// signature identities must tell a name-only reference from a tagged one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Parts {
    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl std::fmt::Display for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Parse and normalise `input` (no short-name aliases, no default tag).
pub fn parse_parts(input: &str) -> Result<Parts> {
    let bad = |reason: &str| Error::InvalidReference {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    if input.is_empty() {
        return Err(bad("empty reference"));
    }
    if input.len() == 64 && input.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(
            "a 64-hex-digit name is an image ID, not a repository name",
        ));
    }
    let Some(c) = reference_re().captures(input) else {
        return Err(bad(
            if input.bytes().any(|b| b.is_ascii_uppercase()) && !input.contains('@') {
                "invalid reference format: repository name must be lowercase"
            } else if input.contains('@') {
                "invalid reference format: digest must be sha256: and 64 lowercase hex digits"
            } else {
                "invalid reference format"
            },
        ));
    };
    let name = &c[1];
    if name.len() > 255 {
        return Err(bad("repository name must not be more than 255 characters"));
    }
    let (registry, repository) = split_domain(name);
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad(
            "invalid reference format: repository name must be lowercase",
        ));
    }
    Ok(Parts {
        registry,
        repository,
        tag: c.get(2).map(|m| m.as_str().to_string()),
        digest: c.get(3).map(|m| m.as_str().to_string()),
    })
}

/// The `Parts` of an already parsed reference (which always has a tag or a digest).
pub fn parts_of(r: &Reference) -> Parts {
    Parts {
        registry: r.registry().to_string(),
        repository: r.repository().to_string(),
        tag: r.tag().map(str::to_string),
        digest: r.digest().map(str::to_string),
    }
}

/// The full name an image gets in the store: `registry/repo:tag`, or `registry/repo@digest`
/// when pulled by digest only.
pub fn store_name(r: &Reference) -> String {
    let base = format!("{}/{}", r.registry(), r.repository());
    match (r.tag(), r.digest()) {
        (Some(t), _) => format!("{base}:{t}"),
        (None, Some(d)) => format!("{base}@{d}"),
        (None, None) => format!("{base}:latest"),
    }
}

/// Split a stored name into (repository, tag-or-`<none>`), for listings.
pub fn split_name(name: &str) -> (String, String) {
    if let Some((repo, _digest)) = name.split_once('@') {
        return (repo.to_string(), "<none>".to_string());
    }
    // The tag is after the last ':' that follows the last '/', so a registry port is not a tag.
    let slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    match name[slash..].rfind(':') {
        Some(i) => (
            name[..slash + i].to_string(),
            name[slash + i + 1..].to_string(),
        ),
        None => (name.to_string(), "latest".to_string()),
    }
}

/// Where an image comes from.
#[derive(Debug, Clone)]
pub enum Source {
    Registry(Reference),
    /// An OCI image layout directory and the `ref.name` to pick (the only image when `None`).
    OciLayout {
        dir: PathBuf,
        tag: Option<String>,
    },
    /// A `docker save` tarball; `name` picks one of its RepoTags when it holds several images.
    DockerArchive {
        path: PathBuf,
        name: Option<String>,
    },
    /// A tarball of an OCI image layout.
    OciArchive {
        path: PathBuf,
        tag: Option<String>,
    },
}

/// Split `PATH[:REF]` at the first colon, as containers/image does.
fn path_and_ref(rest: &str) -> (PathBuf, Option<String>) {
    match rest.split_once(':') {
        Some((p, r)) if !r.is_empty() => (PathBuf::from(p), Some(r.to_string())),
        Some((p, _)) => (PathBuf::from(p), None),
        None => (PathBuf::from(rest), None),
    }
}

impl Source {
    pub fn parse(input: &str) -> Result<Source> {
        let empty = |t: &str| Error::InvalidReference {
            input: input.to_string(),
            reason: format!("{t}: needs a path"),
        };
        if let Some(rest) = input.strip_prefix("oci:") {
            let (dir, tag) = path_and_ref(rest);
            if dir.as_os_str().is_empty() {
                return Err(empty("oci:"));
            }
            return Ok(Source::OciLayout { dir, tag });
        }
        if let Some(rest) = input.strip_prefix("oci-archive:") {
            let (path, tag) = path_and_ref(rest);
            if path.as_os_str().is_empty() {
                return Err(empty("oci-archive:"));
            }
            return Ok(Source::OciArchive { path, tag });
        }
        if let Some(rest) = input.strip_prefix("docker-archive:") {
            let (path, name) = path_and_ref(rest);
            if path.as_os_str().is_empty() {
                return Err(empty("docker-archive:"));
            }
            return Ok(Source::DockerArchive { path, name });
        }
        let name = input.strip_prefix("docker://").unwrap_or(input);
        Ok(Source::Registry(parse_reference(name)?))
    }

    /// Whether the input names a transport explicitly (not a plain image name).
    pub fn has_transport(input: &str) -> bool {
        ["oci:", "oci-archive:", "docker-archive:", "docker://"]
            .iter()
            .any(|p| input.starts_with(p))
    }
}

/// The first 12 hex digits of a `sha256:` digest: how images and blobs are named to people
/// (listings, progress lines, messages), as Docker shows IDs.
pub fn short_id(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let n = |s: &str| store_name(&parse_reference(s).unwrap());
        assert_eq!(n("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(n("user/app"), "docker.io/user/app:latest");
        assert_eq!(n("localhost:5000/ns/app:v1"), "localhost:5000/ns/app:v1");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            n(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert!(parse_reference("UPPER/case").is_err());
        assert!(parse_reference("busybox@sha256:abc").is_err());
        // The ASCII grammar agrees with oci-spec's parser on what it accepts.
        for ok in [
            "alpine",
            "a/b/c:1.0",
            "localhost/x",
            "my.reg:5000/x_y__z-w:t",
            "index.docker.io/x",
        ] {
            let ours = parse_reference(ok).unwrap();
            let theirs: Reference = ok.parse().unwrap();
            assert_eq!(ours.whole(), theirs.whole(), "{ok}");
        }
        for bad in ["a:b:c", "-a", "a//b", "a/", "a@sha256:XYZ"] {
            assert!(parse_reference(bad).is_err(), "{bad}");
            assert!(bad.parse::<Reference>().is_err(), "{bad}");
        }
    }

    #[test]
    fn splits_names() {
        assert_eq!(
            split_name("localhost:5000/a/b:v1"),
            ("localhost:5000/a/b".into(), "v1".into())
        );
        assert_eq!(
            split_name("localhost:5000/a/b"),
            ("localhost:5000/a/b".into(), "latest".into())
        );
    }

    #[test]
    fn a_digest_is_shown_by_its_first_twelve_hex_digits() {
        let d = format!("sha256:0123456789ab{}", "f".repeat(52));
        assert_eq!(short_id(&d), "0123456789ab");
    }

    #[test]
    fn a_short_id_of_fewer_than_twelve_digits_is_the_whole_of_them() {
        assert_eq!(short_id("sha256:abc"), "abc");
        assert_eq!(short_id("deadbeef"), "deadbeef");
    }

    #[test]
    fn a_bare_name_gets_docker_io_library_and_latest() {
        let r = parse_reference("alpine").unwrap();
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "library/alpine");
        assert_eq!(r.tag(), Some("latest"));
    }

    #[test]
    fn index_docker_io_is_the_same_registry_as_docker_io() {
        let r = parse_reference("index.docker.io/alpine:3").unwrap();
        assert_eq!(store_name(&r), "docker.io/library/alpine:3");
    }

    #[test]
    fn a_first_component_is_a_registry_only_with_a_dot_a_port_or_localhost() {
        let registry = |s: &str| parse_reference(s).unwrap().registry().to_string();
        assert_eq!(registry("team/app"), "docker.io");
        assert_eq!(registry("quay.io/app"), "quay.io");
        assert_eq!(registry("myhost:5000/app"), "myhost:5000");
        assert_eq!(registry("localhost/app"), "localhost");
    }

    #[test]
    fn a_sixty_four_hex_digit_name_is_taken_for_an_image_id_and_refused() {
        let err = parse_reference(&"ab".repeat(32)).unwrap_err().to_string();
        assert!(err.contains("image ID"), "{err}");
        assert!(parse_reference(&"ab".repeat(31)).is_ok());
    }

    #[test]
    fn a_name_stored_by_digest_lists_with_no_tag() {
        let name = format!("docker.io/library/busybox@sha256:{}", "a".repeat(64));
        assert_eq!(
            split_name(&name),
            ("docker.io/library/busybox".into(), "<none>".into())
        );
    }

    #[test]
    fn a_transport_source_splits_path_and_ref_at_the_first_colon() {
        match Source::parse("oci:/tmp/layout:v1:extra").unwrap() {
            Source::OciLayout { dir, tag } => {
                assert_eq!(dir, PathBuf::from("/tmp/layout"));
                assert_eq!(tag.as_deref(), Some("v1:extra"));
            }
            other => panic!("{other:?}"),
        }
        match Source::parse("docker-archive:/tmp/a.tar:").unwrap() {
            Source::DockerArchive { path, name } => {
                assert_eq!(path, PathBuf::from("/tmp/a.tar"));
                assert_eq!(name, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(Source::parse("oci-archive:").is_err());
    }

    #[test]
    fn docker_prefix_names_the_same_image_as_no_prefix() {
        let name = |s: &str| match Source::parse(s).unwrap() {
            Source::Registry(r) => store_name(&r),
            other => panic!("{other:?}"),
        };
        assert_eq!(name("docker://busybox:1"), name("busybox:1"));
    }
}
