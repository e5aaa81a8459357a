//! policy.json's `signedIdentity`: which Docker reference a signature may claim for the image
//! being checked, with containers/image's semantics for each kind. The image's own reference
//! ("intended") is the one the user named (a `docker://` one; other transports have none, so
//! only `exactReference` and `exactRepository` can match their signatures).
use serde::Deserialize;

use crate::reference::{parse_parts, Parts};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum SignedIdentity {
    /// The signature names exactly the image's reference (which must have a tag or digest).
    #[serde(rename = "matchExact")]
    MatchExact,
    /// As `matchExact` for a tagged image; for one named by digest, any tag or digest of the
    /// same repository (the digest itself is checked against the signed manifest digest).
    #[serde(rename = "matchRepoDigestOrExact")]
    MatchRepoDigestOrExact,
    /// Any reference in the same repository.
    #[serde(rename = "matchRepository")]
    MatchRepository,
    /// The signature names exactly `dockerReference`, whatever the image is called.
    #[serde(rename = "exactReference")]
    ExactReference {
        #[serde(rename = "dockerReference")]
        docker_reference: String,
    },
    /// The signature names any reference in `dockerRepository`.
    #[serde(rename = "exactRepository")]
    ExactRepository {
        #[serde(rename = "dockerRepository")]
        docker_repository: String,
    },
    /// The image's reference with `prefix` replaced by `signedPrefix`, then as
    /// `matchRepoDigestOrExact` (for mirrors that serve images signed under another name).
    #[serde(rename = "remapIdentity")]
    RemapIdentity {
        prefix: String,
        #[serde(rename = "signedPrefix")]
        signed_prefix: String,
    },
}

impl Default for SignedIdentity {
    /// containers/image's default when a requirement names none.
    fn default() -> Self {
        SignedIdentity::MatchRepoDigestOrExact
    }
}

impl SignedIdentity {
    /// Whether the fields are usable (references that parse, prefixes that are names).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            SignedIdentity::ExactReference { docker_reference } => {
                let p = parse_parts(docker_reference).map_err(|e| e.to_string())?;
                if p.tag.is_none() && p.digest.is_none() {
                    return Err(format!(
                        "exactReference {docker_reference:?} needs a tag or digest"
                    ));
                }
                Ok(())
            }
            SignedIdentity::ExactRepository { docker_repository } => {
                let p = parse_parts(docker_repository).map_err(|e| e.to_string())?;
                if p.tag.is_some() || p.digest.is_some() {
                    return Err(format!(
                        "exactRepository {docker_repository:?} must be a repository, without tag or digest"
                    ));
                }
                Ok(())
            }
            SignedIdentity::RemapIdentity {
                prefix,
                signed_prefix,
            } => {
                for (k, v) in [("prefix", prefix), ("signedPrefix", signed_prefix)] {
                    if !valid_prefix(v) {
                        return Err(format!(
                            "remapIdentity {k} {v:?} is not a registry, namespace or repository"
                        ));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Whether a signature claiming `signed` (its `docker-reference`, as written) is
    /// acceptable for the image known as `intended`.
    pub fn matches(&self, intended: Option<&Parts>, signed: &str) -> bool {
        let Ok(signed) = parse_parts(signed) else {
            return false;
        };
        let name_only = |p: &Parts| p.tag.is_none() && p.digest.is_none();
        match self {
            SignedIdentity::MatchExact => match intended {
                Some(i) => !name_only(i) && !name_only(&signed) && signed == *i,
                None => false,
            },
            SignedIdentity::MatchRepoDigestOrExact => match intended {
                Some(i) => repo_digest_or_exact(i, &signed),
                None => false,
            },
            SignedIdentity::MatchRepository => match intended {
                Some(i) => signed.name() == i.name(),
                None => false,
            },
            SignedIdentity::ExactReference { docker_reference } => {
                match parse_parts(docker_reference) {
                    Ok(want) => !name_only(&want) && !name_only(&signed) && signed == want,
                    Err(_) => false,
                }
            }
            SignedIdentity::ExactRepository { docker_repository } => {
                match parse_parts(docker_repository) {
                    Ok(want) => signed.name() == want.name(),
                    Err(_) => false,
                }
            }
            SignedIdentity::RemapIdentity {
                prefix,
                signed_prefix,
            } => {
                let Some(i) = intended else { return false };
                let whole = i.to_string();
                let remapped = match remap(&whole, prefix, signed_prefix) {
                    Some(r) => match parse_parts(&r) {
                        Ok(p) => p,
                        Err(_) => return false,
                    },
                    None => i.clone(),
                };
                repo_digest_or_exact(&remapped, &signed)
            }
        }
    }
}

fn repo_digest_or_exact(intended: &Parts, signed: &Parts) -> bool {
    if signed.tag.is_none() && signed.digest.is_none() {
        return false;
    }
    if intended.tag.is_some() {
        signed == intended
    } else if intended.digest.is_some() {
        signed.name() == intended.name()
    } else {
        false
    }
}

/// A prefix as remapIdentity takes it: a host, or a host and path, with no tag or digest.
fn valid_prefix(p: &str) -> bool {
    if p.is_empty() || p.contains('@') || p.split('/').any(str::is_empty) {
        return false;
    }
    // A ':' may only be the host's port, never a tag.
    match p.split_once('/') {
        Some((_, path)) => !path.contains(':'),
        None => true,
    }
}

/// `whole` with `prefix` replaced by `signed_prefix` when `prefix` covers it as a whole name
/// component (`a/b` covers `a/b`, `a/b/c`, `a/b:t`, `a/b@d`, not `a/bc`).
fn remap(whole: &str, prefix: &str, signed_prefix: &str) -> Option<String> {
    let rest = whole.strip_prefix(prefix)?;
    if rest.is_empty() || rest.starts_with('/') || rest.starts_with(':') || rest.starts_with('@') {
        Some(format!("{signed_prefix}{rest}"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Parts {
        parse_parts(s).unwrap()
    }

    const D: &str = "sha256:0123456789012345678901234567890123456789012345678901234567890123";

    #[test]
    fn match_exact_wants_the_same_tagged_reference() {
        let i = p("reg.io/a/b:1");
        assert!(SignedIdentity::MatchExact.matches(Some(&i), "reg.io/a/b:1"));
        assert!(!SignedIdentity::MatchExact.matches(Some(&i), "reg.io/a/b:2"));
        assert!(!SignedIdentity::MatchExact.matches(Some(&i), "reg.io/a/b"));
        assert!(!SignedIdentity::MatchExact.matches(None, "reg.io/a/b:1"));
    }

    #[test]
    fn match_repo_digest_or_exact_lets_a_digest_image_take_any_tag_of_its_repository() {
        let by_digest = p(&format!("reg.io/a/b@{D}"));
        let m = SignedIdentity::MatchRepoDigestOrExact;
        assert!(m.matches(Some(&by_digest), "reg.io/a/b:anything"));
        assert!(!m.matches(Some(&by_digest), "reg.io/a/c:anything"));
        assert!(!m.matches(Some(&p("reg.io/a/b:1")), "reg.io/a/b:2"));
        assert!(m.matches(Some(&p("busybox:1")), "docker.io/library/busybox:1"));
    }

    #[test]
    fn match_repository_and_exact_repository_ignore_the_tag() {
        assert!(SignedIdentity::MatchRepository.matches(Some(&p("reg.io/a/b:1")), "reg.io/a/b:2"));
        let e = SignedIdentity::ExactRepository {
            docker_repository: "other.io/x".into(),
        };
        assert!(e.matches(None, "other.io/x:7"));
        assert!(!e.matches(None, "other.io/y:7"));
    }

    #[test]
    fn exact_reference_ignores_the_images_own_name() {
        let e = SignedIdentity::ExactReference {
            docker_reference: "other.io/x:7".into(),
        };
        assert!(e.matches(Some(&p("reg.io/a/b:1")), "other.io/x:7"));
        assert!(!e.matches(Some(&p("reg.io/a/b:1")), "other.io/x:8"));
    }

    #[test]
    fn remap_identity_rewrites_a_whole_component_prefix() {
        let r = SignedIdentity::RemapIdentity {
            prefix: "mirror.io/m".into(),
            signed_prefix: "origin.io/o".into(),
        };
        assert!(r.matches(Some(&p("mirror.io/m/app:1")), "origin.io/o/app:1"));
        assert!(!r.matches(Some(&p("mirror.io/m/app:1")), "mirror.io/m/app:2"));
        assert!(!r.matches(Some(&p("mirror.io/mx/app:1")), "origin.io/ox/app:1"));
        // Not under the prefix: compared unchanged.
        assert!(r.matches(Some(&p("else.io/app:1")), "else.io/app:1"));
    }
}
