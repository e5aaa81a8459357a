//! containers-registries.d(5): per-registry signature storage settings, of which imgtool uses
//! `use-sigstore-attachments` (whether a registry's `sha256-<digest>.sig` tags are read and
//! written, as skopeo does only when it is true). The directory: `--registries.d DIR`, else
//! `$HOME/.config/containers/registries.d` if it exists, else `/etc/containers/registries.d`.
//! Every `*.yaml` file there is read; `docker:` namespaces are matched most specific first
//! (scope.rs), then `default-docker:`. A namespace given in two files is an error, as in
//! containers/image.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::scope::Scoped;
use crate::error::{Error, Result};
use crate::reference::Parts;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Namespace {
    #[serde(rename = "use-sigstore-attachments")]
    use_sigstore_attachments: Option<bool>,
    /// Where GPG simple signatures are read (`sigstore` is its old name).
    lookaside: Option<String>,
    sigstore: Option<String>,
    /// Where simple signatures are written, when not to `lookaside` (`sigstore-staging` is
    /// its old name).
    #[serde(rename = "lookaside-staging")]
    lookaside_staging: Option<String>,
    #[serde(rename = "sigstore-staging")]
    sigstore_staging: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(rename = "default-docker")]
    default_docker: Option<Namespace>,
    #[serde(default)]
    docker: BTreeMap<String, Namespace>,
}

/// The settings of every file in the directory.
#[derive(Debug, Default)]
pub struct RegistriesD {
    default: Option<Namespace>,
    docker: BTreeMap<String, Namespace>,
}

fn locate(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(d) = flag {
        return Some(d.to_path_buf());
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        let user = Path::new(&home).join(".config/containers/registries.d");
        if user.is_dir() {
            return Some(user);
        }
    }
    let system = PathBuf::from("/etc/containers/registries.d");
    system.is_dir().then_some(system)
}

impl RegistriesD {
    pub fn load(flag: Option<&Path>) -> Result<RegistriesD> {
        let Some(dir) = locate(flag) else {
            return Ok(RegistriesD::default());
        };
        let entries = std::fs::read_dir(&dir).map_err(Error::io("read registries.d", &dir))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        let mut out = RegistriesD::default();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(Error::io("read", &f))?;
            let bad = |reason: String| Error::PolicyFile {
                path: f.clone(),
                reason,
            };
            // An empty file is a valid (empty) configuration.
            let parsed: File = if text.trim().is_empty() {
                File::default()
            } else {
                serde_yaml_ng::from_str(&text).map_err(|e| bad(e.to_string()))?
            };
            if let Some(d) = parsed.default_docker {
                if out.default.is_some() {
                    return Err(bad("default-docker is defined in another file too".into()));
                }
                out.default = Some(d);
            }
            for (k, v) in parsed.docker {
                if out.docker.contains_key(&k) {
                    return Err(bad(format!(
                        "docker namespace {k:?} is defined in another file too"
                    )));
                }
                out.docker.insert(k, v);
            }
        }
        Ok(out)
    }

    /// The lookaside URL (`file://` or `http(s)://`) where simple signatures of `image` are
    /// read, if any: the most specific namespace that names one, else default-docker's.
    pub fn lookaside(&self, image: &Parts) -> Option<String> {
        let pick = |n: &Namespace| n.lookaside.clone().or_else(|| n.sigstore.clone());
        Scoped::Docker(image.clone())
            .candidates()
            .into_iter()
            .filter_map(|c| self.docker.get(&c))
            .find_map(pick)
            .or_else(|| self.default.as_ref().and_then(pick))
    }

    /// Where simple signatures of `image` are written: the staging location if one is set,
    /// else the lookaside.
    pub fn lookaside_write(&self, image: &Parts) -> Option<String> {
        let pick = |n: &Namespace| {
            n.lookaside_staging
                .clone()
                .or_else(|| n.sigstore_staging.clone())
                .or_else(|| n.lookaside.clone())
                .or_else(|| n.sigstore.clone())
        };
        Scoped::Docker(image.clone())
            .candidates()
            .into_iter()
            .filter_map(|c| self.docker.get(&c))
            .find_map(pick)
            .or_else(|| self.default.as_ref().and_then(pick))
    }

    /// Whether signatures of `image` are kept as sigstore attachments in its registry.
    pub fn use_sigstore_attachments(&self, image: &Parts) -> bool {
        let ns = Scoped::Docker(image.clone())
            .candidates()
            .into_iter()
            .find_map(|c| self.docker.get(&c))
            .or(self.default.as_ref());
        // A namespace entry that does not set it falls back to default-docker's value.
        ns.and_then(|n| n.use_sigstore_attachments)
            .or_else(|| {
                self.default
                    .as_ref()
                    .and_then(|d| d.use_sigstore_attachments)
            })
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::parse_parts;

    #[test]
    fn the_most_specific_namespace_decides_and_default_docker_fills_in() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "default-docker:\n  use-sigstore-attachments: true\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "docker:\n  reg.io/off:\n    use-sigstore-attachments: false\n  reg.io/other:\n    lookaside: file:///x\n",
        )
        .unwrap();
        let d = RegistriesD::load(Some(dir.path())).unwrap();
        assert!(d.use_sigstore_attachments(&parse_parts("x.io/a:1").unwrap()));
        assert!(!d.use_sigstore_attachments(&parse_parts("reg.io/off/a:1").unwrap()));
        assert!(d.use_sigstore_attachments(&parse_parts("reg.io/other:1").unwrap()));
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.yaml");
        std::fs::write(&f, "default-docker:\n  use-sigstore-attachment: true\n").unwrap();
        let e = RegistriesD::load(Some(dir.path())).unwrap_err().to_string();
        assert!(
            e.contains(&f.display().to_string())
                && e.contains("use-sigstore-attachment")
                && e.contains("line 2"),
            "{e}"
        );
    }
}
