//! `imgtool inspect docker://REF`: a registry's image without pulling it, printed as skopeo's
//! inspect JSON (`Name`, `Digest` of what the reference points at, `RepoTags`, `Created`,
//! `Architecture`, `Os`, `Layers`, `LayersData`, `Env`, `Labels`), plus `Platforms` when the
//! reference is an index; the image described is the one for `--platform`.
use oci_spec::image::ImageIndex;

use crate::commands::inspect::InspectArgs;
use crate::context::Context;
use crate::copy::name::ImageName;
use crate::error::{Error, Result};
use crate::manifest::{choose_platform, is_index, manifest_media_type};
use crate::transport::registry;

pub fn run(ctx: &Context, args: &InspectArgs) -> Result<()> {
    let ImageName::Registry(r) = ImageName::parse(&args.image)? else {
        return Err(Error::InvalidReference {
            input: args.image.clone(),
            reason: "expected docker://NAME".into(),
        });
    };
    let rt = registry::runtime()?;
    rt.block_on(async {
        let (conn, raw, digest) = registry::connect_for_pull(ctx, &r).await?;
        if args.raw {
            outln!("{}", String::from_utf8_lossy(&raw));
            return Ok(());
        }
        let parse = |what: String, e: serde_json::Error| Error::Parse {
            what,
            reason: e.to_string(),
        };
        let mut platforms = None;
        let manifest_raw = if is_index(&manifest_media_type(&raw)) {
            let index: ImageIndex =
                serde_json::from_slice(&raw).map_err(|e| parse(format!("index {digest}"), e))?;
            platforms = Some(
                index
                    .manifests()
                    .iter()
                    .filter_map(|m| m.platform().as_ref())
                    .map(|p| {
                        let mut s = format!("{}/{}", p.os(), p.architecture());
                        if let Some(v) = p.variant() {
                            s.push('/');
                            s.push_str(v);
                        }
                        s
                    })
                    .collect::<Vec<_>>(),
            );
            let chosen = choose_platform(&index, &ctx.registry.platform).map_err(|available| {
                Error::NoMatchingPlatform {
                    reference: r.whole(),
                    platform: ctx.registry.platform.to_string(),
                    available,
                }
            })?;
            let child = conn
                .reference
                .clone_with_digest(chosen.digest().to_string());
            registry::fetch_manifest(&conn.client, &conn.auth, &child, conn.retries)
                .await?
                .0
        } else {
            raw
        };
        let manifest: serde_json::Value = serde_json::from_slice(&manifest_raw)
            .map_err(|e| parse(format!("manifest of {}", r.whole()), e))?;
        let config_digest = manifest
            .pointer("/config/digest")
            .and_then(|d| d.as_str())
            .ok_or_else(|| Error::Parse {
                what: format!("manifest of {}", r.whole()),
                reason: "no config digest".into(),
            })?
            .to_string();
        // The config and the tag list are independent: one round trip for both.
        let config_fetch = async {
            registry::with_retries(&conn.reference, "fetch config", conn.retries, || async {
                let mut buf = Vec::new();
                conn.client
                    .pull_blob(&conn.reference, config_digest.as_str(), &mut buf)
                    .await
                    .map(|()| buf)
            })
            .await
            .map_err(|e| registry::registry_err(&conn.reference, "fetch config", e))
        };
        let tags_fetch = async {
            if args.no_tags || args.config {
                Ok(vec![])
            } else {
                crate::transport::remote::list_tags(&conn).await
            }
        };
        let (config_raw, tags) = tokio::join!(config_fetch, tags_fetch);
        let (config_raw, tags) = (config_raw?, tags?);
        let actual = crate::verify::sha256_digest(&config_raw);
        if actual != config_digest {
            return Err(Error::DigestMismatch {
                what: "config",
                digest: config_digest,
                actual,
            });
        }
        if args.config {
            outln!("{}", String::from_utf8_lossy(&config_raw));
            return Ok(());
        }
        let config: serde_json::Value = serde_json::from_slice(&config_raw)
            .map_err(|e| parse(format!("image config {config_digest}"), e))?;
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        let out = Inspect {
            name: format!("{}/{}", r.registry(), r.repository()),
            digest,
            repo_tags: tags,
            created: config.get("created").cloned(),
            docker_version: config
                .get("docker_version")
                .cloned()
                .unwrap_or_else(|| "".into()),
            labels: config.pointer("/config/Labels").cloned(),
            architecture: config.get("architecture").cloned(),
            variant: config.get("variant").cloned(),
            os: config.get("os").cloned(),
            layers: layers.iter().map(|l| l["digest"].clone()).collect(),
            layers_data: layers
                .iter()
                .map(|l| LayerData {
                    mime_type: l["mediaType"].clone(),
                    digest: l["digest"].clone(),
                    size: l["size"].clone(),
                    annotations: l.get("annotations").cloned(),
                })
                .collect(),
            env: config.pointer("/config/Env").cloned(),
            platforms,
        };
        outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        Ok(())
    })
}

/// skopeo's inspect output, fields in its order.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    name: String,
    digest: String,
    repo_tags: Vec<String>,
    created: Option<serde_json::Value>,
    docker_version: serde_json::Value,
    labels: Option<serde_json::Value>,
    architecture: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<serde_json::Value>,
    os: Option<serde_json::Value>,
    layers: Vec<serde_json::Value>,
    layers_data: Vec<LayerData>,
    env: Option<serde_json::Value>,
    /// Not in skopeo's output: the platforms an index offers.
    #[serde(skip_serializing_if = "Option::is_none")]
    platforms: Option<Vec<String>>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct LayerData {
    #[serde(rename = "MIMEType")]
    mime_type: serde_json::Value,
    digest: serde_json::Value,
    size: serde_json::Value,
    annotations: Option<serde_json::Value>,
}
