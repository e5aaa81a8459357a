//! What an image manifest is, apart from where it comes from: the media types imgtool reads and
//! writes, the type a manifest has when it does not say, and which entry of an index is the
//! image for our platform. Every transport and the commands that re-record an image decide
//! these the same way, so they live below all of them.
use oci_spec::image::{Descriptor, ImageIndex};

use crate::context::Platform;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// An image index (OCI) or manifest list (Docker): a choice among platforms, not an image.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// The `mediaType` a manifest declares, or what its shape says when it declares none.
pub fn manifest_media_type(raw: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(raw).unwrap_or_default();
    match v.get("mediaType").and_then(|m| m.as_str()) {
        Some(m) => m.to_string(),
        None if v.get("manifests").is_some() => OCI_INDEX.to_string(),
        None => OCI_MANIFEST.to_string(),
    }
}

/// Choose the manifest for `want` from an index. The variant is matched properly: an empty
/// wanted variant accepts any; `arm64` treats no variant and `v8` as the same.
pub fn choose_platform(
    index: &ImageIndex,
    want: &Platform,
) -> std::result::Result<Descriptor, String> {
    let norm_variant = |arch: &str, v: &str| -> String {
        if arch == "arm64" && v == "v8" {
            String::new()
        } else {
            v.to_string()
        }
    };
    let want_variant = norm_variant(&want.architecture, &want.variant);
    let mut available = Vec::new();
    let mut candidates = Vec::new();
    for m in index.manifests() {
        let Some(p) = m.platform() else { continue };
        let os = p.os().to_string();
        let arch = p.architecture().to_string();
        let variant = p.variant().clone().unwrap_or_default();
        available.push(if variant.is_empty() {
            format!("{os}/{arch}")
        } else {
            format!("{os}/{arch}/{variant}")
        });
        if os != want.os || arch != want.architecture {
            continue;
        }
        let have = norm_variant(&arch, &variant);
        if want_variant.is_empty() || have == want_variant {
            candidates.push((have, m.clone()));
        }
    }
    // With no variant asked for, prefer an entry without one (the plain architecture), then
    // the first listed, as the index order is the publisher's preference.
    candidates.sort_by_key(|(v, _)| !v.is_empty());
    candidates
        .into_iter()
        .next()
        .map(|(_, m)| m)
        .ok_or_else(|| available.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(os: &str, architecture: &str, variant: &str) -> Platform {
        Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant: variant.into(),
        }
    }

    /// An index whose entries have these `os/arch[/variant]` platforms, in this order; entry
    /// `i` has the digest `sha256:` followed by 64 times the hex digit `i`.
    fn index(platforms: &[&str]) -> ImageIndex {
        let manifests: Vec<serde_json::Value> = platforms
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut parts = p.split('/');
                let mut plat = serde_json::json!({
                    "os": parts.next().unwrap(),
                    "architecture": parts.next().unwrap(),
                });
                if let Some(v) = parts.next() {
                    plat["variant"] = v.into();
                }
                serde_json::json!({
                    "mediaType": OCI_MANIFEST,
                    "digest": format!("sha256:{}", format!("{i:x}").repeat(64)),
                    "size": 1,
                    "platform": plat,
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }))
        .unwrap()
    }

    fn chosen(platforms: &[&str], want: &Platform) -> Result<usize, String> {
        let d = choose_platform(&index(platforms), want)?;
        let hex = d.digest().to_string();
        Ok(usize::from_str_radix(&hex["sha256:".len()..][..1], 16).unwrap())
    }

    #[test]
    fn a_declared_media_type_wins_over_the_shape() {
        let raw = format!(r#"{{"mediaType":"{DOCKER_LIST}","manifests":[]}}"#);
        assert_eq!(manifest_media_type(raw.as_bytes()), DOCKER_LIST);
    }

    #[test]
    fn an_undeclared_manifest_that_lists_manifests_is_an_index() {
        assert_eq!(manifest_media_type(br#"{"manifests":[]}"#), OCI_INDEX);
        assert_eq!(manifest_media_type(br#"{"layers":[]}"#), OCI_MANIFEST);
    }

    #[test]
    fn only_index_and_manifest_list_count_as_indexes() {
        assert!(is_index(OCI_INDEX));
        assert!(is_index(DOCKER_LIST));
        assert!(!is_index(OCI_MANIFEST));
        assert!(!is_index(DOCKER_MANIFEST));
    }

    #[test]
    fn the_entry_for_our_os_and_architecture_is_chosen() {
        let list = ["linux/amd64", "linux/arm64", "windows/arm64"];
        assert_eq!(chosen(&list, &platform("linux", "arm64", "")), Ok(1));
        assert_eq!(chosen(&list, &platform("windows", "arm64", "")), Ok(2));
    }

    #[test]
    fn arm64_without_a_variant_and_arm64_v8_are_the_same_platform() {
        assert_eq!(
            chosen(&["linux/arm64"], &platform("linux", "arm64", "v8")),
            Ok(0)
        );
        assert_eq!(
            chosen(&["linux/arm64/v8"], &platform("linux", "arm64", "v8")),
            Ok(0)
        );
    }

    #[test]
    fn with_no_variant_asked_an_entry_without_one_comes_before_listed_variants() {
        let list = ["linux/arm/v6", "linux/arm/v7", "linux/arm"];
        assert_eq!(chosen(&list, &platform("linux", "arm", "")), Ok(2));
        // Without a plain entry, the publisher's order decides.
        assert_eq!(chosen(&list[..2], &platform("linux", "arm", "")), Ok(0));
    }

    #[test]
    fn a_wanted_variant_takes_only_that_variant() {
        let list = ["linux/arm/v6", "linux/arm/v7"];
        assert_eq!(chosen(&list, &platform("linux", "arm", "v7")), Ok(1));
    }

    #[test]
    fn a_missing_platform_is_reported_with_what_the_index_offers() {
        let list = ["linux/amd64", "linux/arm/v7"];
        assert_eq!(
            chosen(&list, &platform("linux", "s390x", "")),
            Err("linux/amd64, linux/arm/v7".to_string())
        );
    }
}
