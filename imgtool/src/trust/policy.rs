//! containers' `policy.json` (containers-policy.json(5)): which file is read, what it says, and
//! which requirement list applies to an image.
//!
//! The file: `--policy FILE`, else `$HOME/.config/containers/policy.json` if it exists, else
//! `/etc/containers/policy.json` if it exists. With none of them every image is accepted, as
//! imgtool did before it read policies (skopeo refuses to run instead); `--insecure-policy`
//! skips the policy altogether.
//!
//! Requirements: `insecureAcceptAnything`, `reject`, `sigstoreSigned` (`keyPath`, `keyPaths`
//! or `keyData`, with a `signedIdentity`) and `signedBy` (`keyType: GPGKeys`, the same key
//! fields, signatures from the registries.d lookaside checked by gpgv). Every requirement of
//! the list that applies must be met. Unknown fields, types or transports are errors naming
//! the line.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::identity::SignedIdentity;
use super::scope::{valid_docker_scope, Scoped};
use crate::error::{Error, Result};

/// The transports containers/image names in policy.json; scopes of the ones imgtool has no
/// images from are accepted (a shared policy.json names them) and never consulted.
const TRANSPORTS: &[&str] = &[
    "atomic",
    "containers-storage",
    "dir",
    "docker",
    "docker-archive",
    "docker-daemon",
    "oci",
    "oci-archive",
    "ostree",
    "sif",
    "tarball",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Requirement {
    #[serde(rename = "insecureAcceptAnything")]
    InsecureAcceptAnything {},
    #[serde(rename = "reject")]
    Reject {},
    #[serde(rename = "signedBy")]
    SignedBy {
        #[serde(rename = "keyType")]
        key_type: String,
        #[serde(rename = "keyPath")]
        key_path: Option<String>,
        #[serde(rename = "keyPaths")]
        key_paths: Option<Vec<String>>,
        #[serde(rename = "keyData")]
        key_data: Option<String>,
        #[serde(rename = "signedIdentity", default)]
        signed_identity: SignedIdentity,
    },
    #[serde(rename = "sigstoreSigned")]
    SigstoreSigned {
        #[serde(rename = "keyPath")]
        key_path: Option<String>,
        #[serde(rename = "keyPaths")]
        key_paths: Option<Vec<String>>,
        #[serde(rename = "keyData")]
        key_data: Option<String>,
        fulcio: Option<serde_json::Value>,
        #[serde(rename = "rekorPublicKeyPath")]
        rekor_public_key_path: Option<String>,
        #[serde(rename = "rekorPublicKeyPaths")]
        rekor_public_key_paths: Option<Vec<String>>,
        #[serde(rename = "rekorPublicKeyData")]
        rekor_public_key_data: Option<String>,
        #[serde(rename = "signedIdentity", default)]
        signed_identity: SignedIdentity,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    default: Option<Vec<Requirement>>,
    #[serde(default)]
    transports: BTreeMap<String, BTreeMap<String, Vec<Requirement>>>,
}

/// A parsed policy.json.
#[derive(Debug)]
pub struct Policy {
    pub path: PathBuf,
    default: Vec<Requirement>,
    transports: BTreeMap<String, BTreeMap<String, Vec<Requirement>>>,
}

/// The requirements that apply to one image and the policy entry they came from.
pub struct Applied<'a> {
    /// `default`, `transports.docker[""]`, `transports.docker["reg.io/ns"]`, …
    pub scope: String,
    pub requirements: &'a [Requirement],
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::PolicyFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The policy file to read: the flag, else the user's, else the system's; `None` when there
/// is none.
pub fn locate(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_path_buf());
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        let user = Path::new(&home).join(".config/containers/policy.json");
        if user.exists() {
            return Some(user);
        }
    }
    let system = PathBuf::from("/etc/containers/policy.json");
    system.exists().then_some(system)
}

impl Policy {
    pub fn load(path: &Path) -> Result<Policy> {
        let text = std::fs::read_to_string(path).map_err(Error::io("read policy", path))?;
        Policy::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Policy> {
        let raw: Raw = serde_json::from_str(text).map_err(|e| bad(path, e.to_string()))?;
        let default = raw
            .default
            .ok_or_else(|| bad(path, "no \"default\" requirements"))?;
        let check = |what: &str, reqs: &[Requirement]| -> Result<()> {
            if reqs.is_empty() {
                return Err(bad(path, format!("{what}: an empty list of requirements")));
            }
            for r in reqs {
                validate(r).map_err(|e| bad(path, format!("{what}: {e}")))?;
            }
            Ok(())
        };
        check("default", &default)?;
        for (t, scopes) in &raw.transports {
            if !TRANSPORTS.contains(&t.as_str()) {
                return Err(bad(
                    path,
                    format!("unknown transport {t:?} in \"transports\""),
                ));
            }
            for (scope, reqs) in scopes {
                let what = format!("transports.{t}[{scope:?}]");
                if t == "docker" && !scope.is_empty() && !valid_docker_scope(scope) {
                    return Err(bad(
                        path,
                        format!("{what}: a docker scope must be a fully qualified name (host/repository) or *.domain"),
                    ));
                }
                check(&what, reqs)?;
            }
        }
        Ok(Policy {
            path: path.to_path_buf(),
            default,
            transports: raw.transports,
        })
    }

    /// The most specific entry for `image`.
    pub fn requirements_for(&self, image: &Scoped) -> Applied<'_> {
        let t = image.transport();
        if let Some(scopes) = self.transports.get(t) {
            for c in image.candidates() {
                if let Some(reqs) = scopes.get(&c) {
                    return Applied {
                        scope: format!("transports.{t}[{c:?}]"),
                        requirements: reqs,
                    };
                }
            }
            if let Some(reqs) = scopes.get("") {
                return Applied {
                    scope: format!("transports.{t}[\"\"]"),
                    requirements: reqs,
                };
            }
        }
        Applied {
            scope: "default".into(),
            requirements: &self.default,
        }
    }
}

/// Exactly one of the key fields, and an identity that makes sense.
fn validate(r: &Requirement) -> std::result::Result<(), String> {
    let (key_path, key_paths, key_data, identity, kind) = match r {
        Requirement::InsecureAcceptAnything {} | Requirement::Reject {} => return Ok(()),
        Requirement::SignedBy {
            key_type,
            key_path,
            key_paths,
            key_data,
            signed_identity,
        } => {
            if key_type != "GPGKeys" && key_type != "signedByGPGKeys" {
                return Err(format!("signedBy: unknown keyType {key_type:?}"));
            }
            (key_path, key_paths, key_data, signed_identity, "signedBy")
        }
        Requirement::SigstoreSigned {
            key_path,
            key_paths,
            key_data,
            fulcio,
            signed_identity,
            ..
        } => {
            let keys = [key_path.is_some(), key_paths.is_some(), key_data.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if keys + usize::from(fulcio.is_some()) != 1 {
                return Err(
                    "sigstoreSigned: exactly one of keyPath, keyPaths, keyData or fulcio".into(),
                );
            }
            (
                key_path,
                key_paths,
                key_data,
                signed_identity,
                "sigstoreSigned",
            )
        }
    };
    if matches!(r, Requirement::SignedBy { .. })
        && [key_path.is_some(), key_paths.is_some(), key_data.is_some()]
            .iter()
            .filter(|b| **b)
            .count()
            != 1
    {
        return Err(format!(
            "{kind}: exactly one of keyPath, keyPaths or keyData"
        ));
    }
    if key_paths.as_ref().is_some_and(Vec::is_empty) {
        return Err(format!("{kind}: keyPaths is empty"));
    }
    identity
        .validate()
        .map_err(|e| format!("{kind}: signedIdentity: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::parse_parts;

    fn parse(text: &str) -> Result<Policy> {
        Policy::parse(text, Path::new("/p.json"))
    }

    #[test]
    fn the_most_specific_docker_scope_wins_then_the_transport_default_then_default() {
        let p = parse(
            r#"{"default":[{"type":"reject"}],
                "transports":{"docker":{
                    "":[{"type":"insecureAcceptAnything"}],
                    "reg.io/ns":[{"type":"reject"}],
                    "reg.io/ns/app:1":[{"type":"insecureAcceptAnything"}]}}}"#,
        )
        .unwrap();
        let scope = |r: &str| {
            p.requirements_for(&Scoped::Docker(parse_parts(r).unwrap()))
                .scope
        };
        assert_eq!(
            scope("reg.io/ns/app:1"),
            r#"transports.docker["reg.io/ns/app:1"]"#
        );
        assert_eq!(
            scope("reg.io/ns/app:2"),
            r#"transports.docker["reg.io/ns"]"#
        );
        assert_eq!(scope("other.io/x:1"), r#"transports.docker[""]"#);
        let oci = Scoped::Path {
            transport: "oci",
            path: "/x".into(),
            reference: None,
        };
        assert_eq!(p.requirements_for(&oci).scope, "default");
    }

    #[test]
    fn a_misspelt_field_is_an_error_naming_it_and_its_line() {
        let e = parse("{\"default\": [\n {\"type\": \"sigstoreSigned\", \"keyPth\": \"/k\"}]}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("keyPth") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn bad_policies_are_refused_with_the_reason() {
        for (text, want) in [
            (r#"{}"#, "no \"default\""),
            (r#"{"default":[]}"#, "empty list"),
            (
                r#"{"default":[{"type":"sigstoreSigned"}]}"#,
                "exactly one of",
            ),
            (r#"{"default":[{"type":"rejct"}]}"#, "rejct"),
            (
                r#"{"default":[{"type":"reject"}],"transports":{"dokcer":{}}}"#,
                "unknown transport",
            ),
            (
                r#"{"default":[{"type":"reject"}],"transports":{"docker":{"busybox":[{"type":"reject"}]}}}"#,
                "fully qualified",
            ),
            (
                r#"{"default":[{"type":"sigstoreSigned","keyPath":"/k","signedIdentity":{"type":"exactReference","dockerReference":"reg.io/a"}}]}"#,
                "needs a tag",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(
                e.starts_with("/p.json: ") && e.contains(want),
                "{text}: {e}"
            );
        }
    }
}
