//! What `copy` and `push` accept on either side, as skopeo spells it: `docker://NAME`,
//! `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`, `docker-archive:FILE[:NAME[:TAG]]`, and the local
//! store by a bare name (as `pull` and `unpack` take them) or `store:NAME`. Any other
//! `transport:` that skopeo knows, and any `scheme://`, is refused naming the transport.
use std::path::PathBuf;

use oci_client::Reference;

use crate::error::{Error, Result};
use crate::reference::parse_reference;

/// One side of a copy.
#[derive(Debug, Clone)]
pub enum ImageName {
    Registry(Reference),
    /// A name or ID in the local store, as the user gave it.
    Store(String),
    Oci {
        dir: PathBuf,
        tag: Option<String>,
    },
    OciArchive {
        path: PathBuf,
        tag: Option<String>,
    },
    DockerArchive {
        path: PathBuf,
        name: Option<String>,
    },
}

/// skopeo's transports imgtool does not implement: named so that `dir:x` is "unsupported",
/// not an attempt to find an image called `dir` with tag `x` in the store.
const OTHER_TRANSPORTS: &[&str] = &[
    "containers-storage",
    "dir",
    "docker-daemon",
    "ostree",
    "sif",
    "tarball",
    "docker",
];

/// Split `PATH[:REF]` at the first colon, as containers/image does.
fn path_and_ref(input: &str, transport: &str, rest: &str) -> Result<(PathBuf, Option<String>)> {
    let (p, r) = match rest.split_once(':') {
        Some((p, r)) => (p, (!r.is_empty()).then(|| r.to_string())),
        None => (rest, None),
    };
    if p.is_empty() {
        return Err(Error::InvalidReference {
            input: input.to_string(),
            reason: format!("{transport}: needs a path"),
        });
    }
    Ok((PathBuf::from(p), r))
}

impl ImageName {
    pub fn parse(input: &str) -> Result<ImageName> {
        if let Some(rest) = input.strip_prefix("docker://") {
            return Ok(ImageName::Registry(parse_reference(rest)?));
        }
        if let Some(rest) = input.strip_prefix("oci:") {
            let (dir, tag) = path_and_ref(input, "oci:", rest)?;
            return Ok(ImageName::Oci { dir, tag });
        }
        if let Some(rest) = input.strip_prefix("oci-archive:") {
            let (path, tag) = path_and_ref(input, "oci-archive:", rest)?;
            return Ok(ImageName::OciArchive { path, tag });
        }
        if let Some(rest) = input.strip_prefix("docker-archive:") {
            let (path, name) = path_and_ref(input, "docker-archive:", rest)?;
            return Ok(ImageName::DockerArchive { path, name });
        }
        if let Some(rest) = input.strip_prefix("store:") {
            return Ok(ImageName::Store(rest.to_string()));
        }
        let unknown = |t: &str| {
            Error::InvalidReference {
            input: input.to_string(),
            reason: format!(
                "unknown transport {t:?} (imgtool copies docker://, oci:, oci-archive:, docker-archive: and store names)"
            ),
        }
        };
        if let Some((scheme, _)) = input.split_once("://") {
            return Err(unknown(scheme));
        }
        if let Some((t, _)) = input.split_once(':') {
            if OTHER_TRANSPORTS.contains(&t) {
                return Err(unknown(t));
            }
        }
        // A store name: checked as a reference unless it may be an image ID (prefix).
        if !input.bytes().all(|b| b.is_ascii_hexdigit()) {
            parse_reference(input)?;
        }
        Ok(ImageName::Store(input.to_string()))
    }

    /// How the image is named to people and to the acceptance gate.
    pub fn display(&self) -> String {
        match self {
            ImageName::Registry(r) => format!("docker://{}", r.whole()),
            ImageName::Store(n) => n.clone(),
            ImageName::Oci { dir, tag } => with_ref("oci", dir, tag),
            ImageName::OciArchive { path, tag } => with_ref("oci-archive", path, tag),
            ImageName::DockerArchive { path, name } => with_ref("docker-archive", path, name),
        }
    }
}

fn with_ref(t: &str, p: &std::path::Path, r: &Option<String>) -> String {
    match r {
        Some(r) => format!("{t}:{}:{r}", p.display()),
        None => format!("{t}:{}", p.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transport_parses_and_bare_names_are_the_store() {
        assert!(matches!(
            ImageName::parse("docker://localhost:5000/a:b").unwrap(),
            ImageName::Registry(_)
        ));
        assert!(matches!(
            ImageName::parse("busybox:latest").unwrap(),
            ImageName::Store(_)
        ));
        assert!(matches!(
            ImageName::parse("localhost:5000/a:b").unwrap(),
            ImageName::Store(_)
        ));
        match ImageName::parse("docker-archive:/t/a.tar:x/y:1").unwrap() {
            ImageName::DockerArchive { path, name } => {
                assert_eq!(path, PathBuf::from("/t/a.tar"));
                assert_eq!(name.as_deref(), Some("x/y:1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_transport_is_refused_naming_it() {
        for bad in [
            "ftp://x/y",
            "dir:/tmp/x",
            "containers-storage:busybox",
            "docker:busybox",
        ] {
            let e = ImageName::parse(bad).unwrap_err().to_string();
            assert!(e.contains("unknown transport"), "{bad}: {e}");
        }
    }
}
