//! Sigstore signatures in the form containers/image (skopeo, podman) and cosign share:
//!
//! - the payload is "simple signing" JSON naming the image:
//!   `{"critical":{"identity":{"docker-reference":R},"image":{"docker-manifest-digest":D},
//!   "type":"cosign container image signature"},"optional":{"creator":…,"timestamp":…}}`;
//! - the signature is ECDSA P-256 over SHA-256 of the payload bytes, ASN.1 DER, base64, kept in
//!   the annotation `dev.cosignproject.cosign/signature` of the payload's descriptor;
//! - a registry keeps an image's signatures as the layers (media type
//!   `application/vnd.dev.cosign.simplesigning.v1+json`) of an OCI manifest tagged
//!   `sha256-<hex>.sig` in the image's repository, its config listing them as diff_ids.
//!
//! This file only builds and checks these bytes; transport/sigstore_attachments.rs moves
//! them to and from a registry.
use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use serde_json::{json, Value};

/// The media type of a signature payload layer.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const SIGNATURE_TYPE: &str = "cosign container image signature";

/// One sigstore signature, as found (untrusted until `verify` says otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub payload: Vec<u8>,
    pub annotations: BTreeMap<String, String>,
}

/// The tag under which a registry keeps the signatures of the manifest `digest`.
pub fn attachment_tag(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256-{hex}.sig"))
}

/// Whether an index entry named `name` holds signatures (`sha256-<hex>.sig`), not an image:
/// layouts keep signatures beside their image under that name.
pub fn is_attachment_tag(name: &str) -> bool {
    name.strip_prefix("sha256-")
        .and_then(|r| r.strip_suffix(".sig"))
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The manifest digest whose signatures an index entry named `name` holds, if it is an
/// attachment name (`sha256-<hex>.sig` → `sha256:<hex>`).
pub fn signed_digest(name: &str) -> Option<String> {
    is_attachment_tag(name).then(|| format!("sha256:{}", &name[7..name.len() - 4]))
}

/// Sign the manifest `digest` as the image `reference` (a full Docker reference).
pub fn sign(key: &SigningKey, digest: &str, reference: &str) -> Signature {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let payload = json!({
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": {
            "creator": concat!("imgtool ", env!("CARGO_PKG_VERSION")),
            "timestamp": timestamp,
        },
    })
    .to_string()
    .into_bytes();
    let sig: DerSignature = key.sign(&payload);
    let mut annotations = BTreeMap::new();
    annotations.insert(SIGNATURE_ANNOTATION.to_string(), B64.encode(sig.as_bytes()));
    Signature {
        payload,
        annotations,
    }
}

/// What a signature that verified claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub digest: String,
    pub reference: String,
}

/// Check `sig` against `key`, then read its payload as strictly as containers/image does
/// (exactly the expected fields in `critical`); the reason when it does not verify.
pub fn verify(sig: &Signature, key: &VerifyingKey) -> Result<Claim, String> {
    let b64 = sig
        .annotations
        .get(SIGNATURE_ANNOTATION)
        .ok_or("no signature annotation")?;
    let der = B64
        .decode(b64)
        .map_err(|e| format!("signature is not base64: {e}"))?;
    let parsed = p256::ecdsa::Signature::from_der(&der)
        .map_err(|_| "signature is not an ECDSA signature".to_string())?;
    key.verify(&sig.payload, &parsed)
        .map_err(|_| "cryptographic signature verification failed".to_string())?;
    parse_payload(&sig.payload)
}

/// An object with exactly the `keys`.
fn exact<'a>(
    v: &'a Value,
    what: &str,
    keys: &[&str],
) -> Result<&'a serde_json::Map<String, Value>, String> {
    let o = v
        .as_object()
        .ok_or_else(|| format!("payload {what} is not an object"))?;
    if o.len() != keys.len() || keys.iter().any(|k| !o.contains_key(*k)) {
        return Err(format!(
            "payload {what} must have exactly the fields {}",
            keys.join(", ")
        ));
    }
    Ok(o)
}

fn parse_payload(payload: &[u8]) -> Result<Claim, String> {
    let v: Value =
        serde_json::from_slice(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
    let top = exact(&v, "", &["critical", "optional"])?;
    let critical = exact(&top["critical"], "critical", &["type", "image", "identity"])?;
    if critical["type"].as_str() != Some(SIGNATURE_TYPE) {
        return Err(format!("unrecognized signature type {}", critical["type"]));
    }
    let image = exact(
        &critical["image"],
        "critical.image",
        &["docker-manifest-digest"],
    )?;
    let identity = exact(
        &critical["identity"],
        "critical.identity",
        &["docker-reference"],
    )?;
    let digest = image["docker-manifest-digest"]
        .as_str()
        .ok_or("docker-manifest-digest is not a string")?;
    let reference = identity["docker-reference"]
        .as_str()
        .ok_or("docker-reference is not a string")?;
    Ok(Claim {
        digest: digest.to_string(),
        reference: reference.to_string(),
    })
}

/// A payload layer of an attachment manifest: its digest, size and annotations.
pub type PayloadLayer = (String, u64, BTreeMap<String, String>);

/// The signature descriptors of an attachment manifest: (digest, size, annotations) of each
/// payload layer; other layers are skipped, as containers/image skips them.
pub fn attachment_layers(manifest: &[u8]) -> Result<Vec<PayloadLayer>, String> {
    let v: Value =
        serde_json::from_slice(manifest).map_err(|e| format!("signature manifest: {e}"))?;
    let layers = v["layers"]
        .as_array()
        .ok_or("signature manifest has no layers")?;
    let mut out = vec![];
    for l in layers {
        if l["mediaType"].as_str() != Some(PAYLOAD_MEDIA_TYPE) {
            continue;
        }
        let digest = l["digest"].as_str().ok_or("layer without digest")?;
        let size = l["size"].as_u64().ok_or("layer without size")?;
        let annotations = l["annotations"]
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        out.push((digest.to_string(), size, annotations));
    }
    Ok(out)
}

/// The attachment manifest and its config for `sigs` (each payload is a layer, by digest).
pub fn attachment_manifest(sigs: &[Signature]) -> (Vec<u8>, Vec<u8>) {
    let digests: Vec<String> = sigs
        .iter()
        .map(|s| crate::verify::sha256_digest(&s.payload))
        .collect();
    let config = json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": digests},
    })
    .to_string()
    .into_bytes();
    let layers: Vec<Value> = sigs
        .iter()
        .zip(&digests)
        .map(|(s, d)| {
            json!({
                "mediaType": PAYLOAD_MEDIA_TYPE,
                "digest": d,
                "size": s.payload.len(),
                "annotations": s.annotations,
            })
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": crate::verify::sha256_digest(&config),
            "size": config.len(),
        },
        "layers": layers,
    })
    .to_string()
    .into_bytes();
    (manifest, config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    const D: &str = "sha256:0123456789012345678901234567890123456789012345678901234567890123";

    #[test]
    fn a_signature_verifies_with_its_key_and_names_what_was_signed() {
        let key = SigningKey::random(&mut OsRng);
        let sig = sign(&key, D, "reg.io/a/b:1");
        let claim = verify(&sig, key.verifying_key()).unwrap();
        assert_eq!(claim.digest, D);
        assert_eq!(claim.reference, "reg.io/a/b:1");
    }

    #[test]
    fn another_key_or_a_changed_payload_does_not_verify() {
        let key = SigningKey::random(&mut OsRng);
        let other = SigningKey::random(&mut OsRng);
        let sig = sign(&key, D, "reg.io/a/b:1");
        assert!(verify(&sig, other.verifying_key()).is_err());
        let mut tampered = sig.clone();
        let text = String::from_utf8(tampered.payload).unwrap();
        tampered.payload = text.replace("reg.io/a/b:1", "reg.io/a/b:2").into_bytes();
        assert!(verify(&tampered, key.verifying_key())
            .unwrap_err()
            .contains("verification failed"));
    }

    #[test]
    fn a_payload_with_extra_critical_fields_is_refused() {
        let p = br#"{"critical":{"identity":{"docker-reference":"a/b:1"},"image":{"docker-manifest-digest":"sha256:00"},"type":"cosign container image signature","x":1},"optional":null}"#;
        assert!(parse_payload(p).unwrap_err().contains("exactly"));
    }

    #[test]
    fn the_attachment_manifest_lists_each_payload_and_reads_back() {
        let key = SigningKey::random(&mut OsRng);
        let sigs = vec![sign(&key, D, "reg.io/a/b:1"), sign(&key, D, "reg.io/a/b:2")];
        let (m, _config) = attachment_manifest(&sigs);
        let layers = attachment_layers(&m).unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[1].2, sigs[1].annotations);
        assert_eq!(
            attachment_tag(D).unwrap(),
            format!("sha256-{}.sig", &D[7..])
        );
        assert_eq!(signed_digest(&attachment_tag(D).unwrap()).unwrap(), D);
        assert_eq!(signed_digest("v1"), None);
    }
}
