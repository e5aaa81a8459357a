//! `imgtool generate-sigstore-key --output-prefix P`: a new ECDSA P-256 key pair for sigstore
//! signing, written as `P.private` (the encrypted private key, mode 0600) and `P.pub` (the
//! public key), in the format skopeo's and cosign's key files have (trust/keys.rs). Neither
//! file may exist already; both are written beside their final names and renamed, so a
//! failure leaves neither half written.
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::context::Context;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct GenerateSigstoreKeyArgs {
    /// Write the key pair to PREFIX.private and PREFIX.pub
    #[arg(long, value_name = "PREFIX")]
    pub output_prefix: PathBuf,
    /// Encrypt the private key with the first line of FILE (default: an empty passphrase)
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Write `data` to a temporary file beside `path` with `mode`; returns it, not yet renamed.
fn stage(path: &Path, data: &[u8], mode: u32) -> Result<tempfile::TempPath> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".imgtool-key-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
        .tempfile_in(dir)
        .map_err(Error::io("create key file in", dir))?;
    let (mut f, p) = tmp.into_parts();
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(Error::io("write", &p))?;
    Ok(p)
}

pub fn run(_ctx: &Context, args: GenerateSigstoreKeyArgs) -> Result<()> {
    let private = with_suffix(&args.output_prefix, ".private");
    let public = with_suffix(&args.output_prefix, ".pub");
    for p in [&private, &public] {
        if p.symlink_metadata().is_ok() {
            return Err(Error::InvalidArgument {
                arg: "--output-prefix",
                reason: format!("{} already exists", p.display()),
            });
        }
    }
    let pass = match &args.passphrase_file {
        Some(f) => crate::trust::keys::read_passphrase_file(f)?,
        None => vec![],
    };
    let (private_pem, public_pem) = crate::trust::keys::generate(&pass)?;
    let staged_private = stage(&private, private_pem.as_bytes(), 0o600)?;
    let staged_public = stage(&public, public_pem.as_bytes(), 0o644)?;
    // Renamed without replacing anything that appeared meanwhile; the private key first, and
    // it is taken back if the public key cannot follow.
    persist_new(staged_private, &private)?;
    if let Err(e) = persist_new(staged_public, &public) {
        let _ = std::fs::remove_file(&private);
        return Err(e);
    }
    outln!(
        "Key written to {} and {}",
        private.display(),
        public.display()
    );
    Ok(())
}

fn persist_new(tmp: tempfile::TempPath, to: &Path) -> Result<()> {
    tmp.persist_noclobber(to).map_err(|e| Error::Io {
        step: "write key",
        path: to.to_path_buf(),
        source: e.error,
    })
}
