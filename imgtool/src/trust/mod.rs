//! Image trust, as containers/image does it: the signature policy (policy.rs, with scope.rs
//! for which entry applies and identity.rs for `signedIdentity`), sigstore signatures
//! (sigstore.rs: payloads, signing, verification, the attachment manifest), key files
//! (keys.rs), GPG simple signing through gpg/gpgv (gpg.rs) and registries.d (registries_d.rs:
//! where signatures are kept). Nothing here talks to a registry or a layout:
//! transport/signatures.rs and transport/sigstore_attachments.rs fetch and store signatures,
//! transport/layout_signatures.rs keeps them in layouts and the store, and accept.rs is the
//! gate that asks this module whether an image may come in.
pub mod gpg;
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

/// The signatures found for an image, of both kinds.
#[derive(Debug, Default)]
pub struct Signatures {
    /// Sigstore signatures (registry attachments).
    pub sigstore: Vec<Signature>,
    /// GPG simple-signing signatures (lookaside files), each an OpenPGP signed message.
    pub simple: Vec<Vec<u8>>,
    /// Why a kind was not looked for (registries.d does not say where), for the message
    /// when the policy then finds none.
    pub not_looked: Vec<String>,
}

impl Signatures {
    /// The rejection when a requirement found no signature of its kind.
    fn none_found(&self) -> String {
        let mut m = "a signature was required, but no signature exists".to_string();
        for n in &self.not_looked {
            m.push_str(&format!(" ({n})"));
        }
        m
    }
}

/// Which kinds of signature evaluating a requirement list needs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Wants {
    pub sigstore: bool,
    pub simple: bool,
}

impl Wants {
    pub fn of(reqs: &[Requirement]) -> Wants {
        Wants {
            sigstore: reqs
                .iter()
                .any(|r| matches!(r, Requirement::SigstoreSigned { .. })),
            simple: reqs
                .iter()
                .any(|r| matches!(r, Requirement::SignedBy { .. })),
        }
    }

    pub fn any(&self) -> bool {
        self.sigstore || self.simple
    }
}

/// Whether one requirement is met by the image (`digest` is its top-level manifest's);
/// otherwise the reason, for the rejection message.
pub fn satisfied(
    req: &Requirement,
    image: &Scoped,
    digest: &str,
    sigs: &Signatures,
) -> Result<(), String> {
    match req {
        Requirement::InsecureAcceptAnything {} => Ok(()),
        Requirement::Reject {} => Err("the policy rejects every image in this scope".into()),
        Requirement::SignedBy {
            key_path,
            key_paths,
            key_data,
            signed_identity,
            ..
        } => {
            let keys = key_bytes(key_path, key_paths, key_data)?;
            if sigs.simple.is_empty() {
                return Err(sigs.none_found());
            }
            let ring = gpg::Keyring::new(&keys)?;
            first_accepted(
                sigs.simple.len(),
                sigs.simple.iter().map(|s| {
                    ring.verify(s)
                        .and_then(|c| check_claim(&c, image, digest, signed_identity))
                }),
            )
        }
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
            if sigs.sigstore.is_empty() {
                return Err(sigs.none_found());
            }
            first_accepted(
                sigs.sigstore.len(),
                sigs.sigstore.iter().map(|s| {
                    verify_sigstore(s, &keys)
                        .and_then(|c| check_claim(&c, image, digest, signed_identity))
                }),
            )
        }
    }
}

/// Accepted when any signature is (as containers/image: a bad signature beside a good one
/// does not reject the image); otherwise the first reason.
fn first_accepted(
    found: usize,
    results: impl Iterator<Item = Result<(), String>>,
) -> Result<(), String> {
    let mut first_reason = None;
    for r in results {
        match r {
            Ok(()) => return Ok(()),
            Err(reason) => {
                first_reason.get_or_insert(reason);
            }
        }
    }
    Err(format!(
        "no signature is accepted ({found} found): {}",
        first_reason.unwrap_or_default()
    ))
}

/// What the signature claims, when one of `keys` made it.
fn verify_sigstore(sig: &Signature, keys: &[VerifyingKey]) -> Result<sigstore::Claim, String> {
    let mut reason = String::new();
    keys.iter()
        .find_map(|k| match sigstore::verify(sig, k) {
            Ok(c) => Some(c),
            Err(r) => {
                reason = r;
                None
            }
        })
        .ok_or(reason)
}

/// Whether a verified claim is for this manifest and names an identity the policy accepts.
fn check_claim(
    claim: &sigstore::Claim,
    image: &Scoped,
    digest: &str,
    identity: &identity::SignedIdentity,
) -> Result<(), String> {
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

/// The raw key blocks a signedBy requirement names (`keyData` is base64, as Go's JSON
/// encodes bytes).
fn key_bytes(
    key_path: &Option<String>,
    key_paths: &Option<Vec<String>>,
    key_data: &Option<String>,
) -> Result<Vec<Vec<u8>>, String> {
    let mut out = vec![];
    for p in key_path.iter().chain(key_paths.iter().flatten()) {
        out.push(std::fs::read(p).map_err(|e| format!("read key {p}: {e}"))?);
    }
    if let Some(d) = key_data {
        out.push(
            base64::engine::general_purpose::STANDARD
                .decode(d)
                .map_err(|e| format!("keyData is not base64: {e}"))?,
        );
    }
    Ok(out)
}
