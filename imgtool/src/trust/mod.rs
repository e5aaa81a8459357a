//! Image trust, as containers/image does it: the signature policy (policy.rs, with scope.rs
//! for which entry applies and identity.rs for `signedIdentity`), sigstore signatures
//! (sigstore.rs: payloads, signing, verification, the attachment manifest), key files
//! (keys.rs) and registries.d (registries_d.rs: where signatures are kept). Nothing here does
//! I/O with a registry: transport/sigstore_attachments.rs fetches and stores signatures, and
//! accept.rs is the gate that asks this module whether an image may come in.
pub mod identity;
pub mod keys;
pub mod policy;
pub mod registries_d;
pub mod scope;
pub mod sigstore;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use p256::ecdsa::VerifyingKey;

use policy::Requirement;
use scope::Scoped;
use sigstore::Signature;

/// Whether one requirement is met by the image (`digest` is its top-level manifest's);
/// otherwise the reason, for the rejection message.
pub fn satisfied(
    req: &Requirement,
    image: &Scoped,
    digest: &str,
    sigs: &[Signature],
) -> Result<(), String> {
    match req {
        Requirement::InsecureAcceptAnything {} => Ok(()),
        Requirement::Reject {} => Err("the policy rejects every image in this scope".into()),
        Requirement::SignedBy { .. } => Err(
            "signedBy (GPG simple signing) requirements are not supported by imgtool; use sigstoreSigned"
                .into(),
        ),
        Requirement::SigstoreSigned {
            key_path,
            key_paths,
            key_data,
            fulcio,
            rekor_public_key_path,
            rekor_public_key_paths,
            rekor_public_key_data,
            signed_identity,
        } => {
            // Fail closed: accepting without the checks these ask for would be wrong.
            if fulcio.is_some()
                || rekor_public_key_path.is_some()
                || rekor_public_key_paths.is_some()
                || rekor_public_key_data.is_some()
            {
                return Err(
                    "sigstoreSigned with fulcio or rekor is not supported by imgtool (keys only)"
                        .into(),
                );
            }
            let keys = public_keys(key_path, key_paths, key_data)?;
            if sigs.is_empty() {
                return Err("a signature was required, but no signature exists".into());
            }
            let mut first_reason = None;
            for sig in sigs {
                let reason = match check_one(sig, &keys, image, digest, signed_identity) {
                    Ok(()) => return Ok(()),
                    Err(r) => r,
                };
                first_reason.get_or_insert(reason);
            }
            Err(format!(
                "no signature is accepted ({} found): {}",
                sigs.len(),
                first_reason.unwrap_or_default()
            ))
        }
    }
}

fn check_one(
    sig: &Signature,
    keys: &[VerifyingKey],
    image: &Scoped,
    digest: &str,
    identity: &identity::SignedIdentity,
) -> Result<(), String> {
    let mut reason = String::new();
    let claim = keys
        .iter()
        .find_map(|k| match sigstore::verify(sig, k) {
            Ok(c) => Some(c),
            Err(r) => {
                reason = r;
                None
            }
        })
        .ok_or(reason)?;
    if claim.digest != digest {
        return Err(format!(
            "signature is for manifest {}, not {digest}",
            claim.digest
        ));
    }
    if !identity.matches(image.docker_reference(), &claim.reference) {
        let intended = image
            .docker_reference()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "(no docker reference)".into());
        return Err(format!(
            "signature names {:?}, which signedIdentity {} does not accept for {intended}",
            claim.reference,
            identity_name(identity)
        ));
    }
    Ok(())
}

fn identity_name(i: &identity::SignedIdentity) -> &'static str {
    use identity::SignedIdentity::*;
    match i {
        MatchExact => "matchExact",
        MatchRepoDigestOrExact => "matchRepoDigestOrExact",
        MatchRepository => "matchRepository",
        ExactReference { .. } => "exactReference",
        ExactRepository { .. } => "exactRepository",
        RemapIdentity { .. } => "remapIdentity",
    }
}

/// The keys a sigstoreSigned requirement names (`keyData` is base64 of the PEM, as Go's JSON
/// encodes bytes).
fn public_keys(
    key_path: &Option<String>,
    key_paths: &Option<Vec<String>>,
    key_data: &Option<String>,
) -> Result<Vec<VerifyingKey>, String> {
    let mut out = vec![];
    let paths: Vec<PathBuf> = key_path
        .iter()
        .chain(key_paths.iter().flatten())
        .map(PathBuf::from)
        .collect();
    for p in &paths {
        out.push(keys::load_public(p).map_err(|e| e.to_string())?);
    }
    if let Some(d) = key_data {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(d)
            .map_err(|e| format!("keyData is not base64: {e}"))?;
        let pem = String::from_utf8(pem).map_err(|_| "keyData is not a PEM key".to_string())?;
        out.push(keys::parse_public(&pem, Path::new("keyData")).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Whether evaluating `req` needs the image's signatures.
pub fn needs_signatures(req: &Requirement) -> bool {
    matches!(req, Requirement::SigstoreSigned { .. })
}
