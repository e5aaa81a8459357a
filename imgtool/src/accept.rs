//! The one gate every image passes before any of it is stored, unpacked or copied: a registry
//! pull (and so an `unpack` that pulls), an `oci:`/`oci-archive:`/`docker-archive:` import or
//! `load`, and `copy` open a `Gate` for the image as the user named it, fetch the signatures
//! `wants` says the policy needs (transport/signatures.rs), and call `check` with the digest of the
//! top-level manifest that was read (a docker-archive, which has none, by its config's) before
//! the first blob is written anywhere. A rejection is one error naming the image, the policy
//! file, the scope that applied and the reason.
//!
//! The trust options (`--policy`, `--insecure-policy`, `--registries.d`) are set once by
//! `main` through `configure`, so that the importers deep in transport/ need no extra
//! parameters; the policy file is read when a gate opens.
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::reference::Parts;
use crate::trust::policy::{self, Policy};
use crate::trust::registries_d::RegistriesD;
use crate::trust::scope::Scoped;
use crate::trust::{Signatures, Wants};

/// The global trust flags.
#[derive(Debug, Default, Clone)]
pub struct TrustOptions {
    /// `--policy FILE`.
    pub policy: Option<PathBuf>,
    /// `--insecure-policy`: accept every image without reading a policy.
    pub insecure_policy: bool,
    /// `--registries.d DIR`.
    pub registries_d: Option<PathBuf>,
}

static OPTIONS: OnceLock<TrustOptions> = OnceLock::new();

/// Set the trust flags for this process (first call wins; `main` calls it once).
pub fn configure(opts: TrustOptions) {
    let _ = OPTIONS.set(opts);
}

fn options() -> TrustOptions {
    OPTIONS.get().cloned().unwrap_or_default()
}

/// registries.d as the flags say.
pub fn registries_d() -> Result<RegistriesD> {
    RegistriesD::load(options().registries_d.as_deref())
}

/// Whether signatures of the registry image `image` are kept as sigstore attachments.
pub fn uses_attachments(image: &Parts) -> Result<bool> {
    Ok(registries_d()?.use_sigstore_attachments(image))
}

/// The policy decision for one image.
pub struct Gate {
    image: Scoped,
    display: String,
    /// `None`: no policy applies (`--insecure-policy`, or no policy file at all).
    policy: Option<Policy>,
}

impl Gate {
    /// Open the gate for `image`, shown as `display` in messages; reads the policy file.
    pub fn new(image: Scoped, display: impl Into<String>) -> Result<Gate> {
        let opts = options();
        let policy = if opts.insecure_policy {
            None
        } else {
            match policy::locate(opts.policy.as_deref()) {
                Some(p) => Some(Policy::load(&p)?),
                None => None,
            }
        };
        Ok(Gate {
            image,
            display: display.into(),
            policy,
        })
    }

    /// Which signatures `check` will look at (so the caller fetches them first): none when a
    /// `reject` decides without them.
    pub fn wants(&self) -> Wants {
        let Some(p) = &self.policy else {
            return Wants::default();
        };
        let reqs = p.requirements_for(&self.image).requirements;
        if reqs
            .iter()
            .any(|r| matches!(r, policy::Requirement::Reject {}))
        {
            return Wants::default();
        }
        Wants::of(reqs)
    }

    /// Accept or reject the image whose top-level manifest has `digest`, given its
    /// signatures.
    pub fn check(&self, digest: &str, sigs: &Signatures) -> Result<()> {
        let Some(p) = &self.policy else {
            tracing::debug!("accepting {} ({digest}): no policy", self.display);
            return Ok(());
        };
        let applied = p.requirements_for(&self.image);
        for r in applied.requirements {
            if let Err(reason) = crate::trust::satisfied(r, &self.image, digest, sigs) {
                return Err(Error::Rejected {
                    image: self.display.clone(),
                    path: p.path.clone(),
                    scope: applied.scope,
                    reason,
                });
            }
        }
        tracing::debug!("accepting {} ({digest}) by {}", self.display, applied.scope);
        Ok(())
    }
}

/// The gate for a local image at `path` of `transport` (`oci`, `oci-archive`,
/// `docker-archive`), checked at once with the sigstore signatures the layout keeps.
pub fn accept_local(
    transport: &'static str,
    path: &std::path::Path,
    reference: Option<&str>,
    digest: &str,
    sigstore: Vec<crate::trust::sigstore::Signature>,
) -> Result<()> {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let display = match reference {
        Some(r) => format!("{transport}:{}:{r}", path.display()),
        None => format!("{transport}:{}", path.display()),
    };
    let gate = Gate::new(
        Scoped::Path {
            transport,
            path: abs,
            reference: reference.map(str::to_string),
        },
        display,
    )?;
    gate.check(
        digest,
        &Signatures {
            sigstore,
            ..Signatures::default()
        },
    )
}
