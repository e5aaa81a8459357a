//! `imgtool copy SRC DEST`: skopeo's copy between `docker://`, `oci:`, `oci-archive:`,
//! `docker-archive:` and the local store (bare names or `store:NAME`), with the source's and
//! the destination's registry options apart (`--src-*`, `--dest-*`; the global flags apply to
//! both), and signing (`--sign-by-sigstore-private-key`, `--sign-by`). Prints nothing but
//! progress; `--digestfile` gets the written manifest's digest.
use std::path::PathBuf;

use clap::ArgAction;

use crate::context::Context;
use crate::copy::convert::{Compress, Format, Want};
use crate::copy::name::ImageName;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct CopyArgs {
    /// Source: docker://NAME[:TAG|@DIGEST], oci:DIR[:REF], oci-archive:FILE[:REF],
    /// docker-archive:FILE[:NAME:TAG], or a store name (bare, or store:NAME)
    pub source: String,
    /// Destination, in the same forms
    pub destination: String,
    #[command(flatten)]
    pub flags: CopyFlags,
}

/// What `copy` and `push` share.
#[derive(clap::Args, Debug)]
pub struct CopyFlags {
    /// Copy every platform of an index and the index itself (default: the --platform one)
    #[arg(short, long)]
    pub all: bool,
    /// Manifest format at the destination: oci or v2s2 (default: as the source)
    #[arg(short, long, value_name = "oci|v2s2")]
    pub format: Option<String>,
    /// Recompress layers (new digests; diff_ids unchanged)
    #[arg(long, value_name = "gzip|zstd")]
    pub dest_compress_format: Option<String>,
    /// No progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the digest of the manifest written at the destination to FILE
    #[arg(long, value_name = "FILE")]
    pub digestfile: Option<PathBuf>,
    /// Source registry credentials USER:PASSWORD
    #[arg(long, value_name = "USER:PASS")]
    pub src_creds: Option<String>,
    /// Destination registry credentials USER:PASSWORD
    #[arg(long, value_name = "USER:PASS")]
    pub dest_creds: Option<String>,
    /// Auth file for the source registry
    #[arg(long, value_name = "FILE")]
    pub src_authfile: Option<PathBuf>,
    /// Auth file for the destination registry
    #[arg(long, value_name = "FILE")]
    pub dest_authfile: Option<PathBuf>,
    /// Verify the source registry's TLS certificate (=false: no verification, and plain HTTP
    /// when it does not speak TLS)
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          require_equals = true, value_name = "BOOL")]
    pub src_tls_verify: Option<bool>,
    /// Verify the destination registry's TLS certificate (as --src-tls-verify)
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          require_equals = true, value_name = "BOOL")]
    pub dest_tls_verify: Option<bool>,
    /// Extra CA certificates (*.crt) for the source registry
    #[arg(long, value_name = "DIR")]
    pub src_cert_dir: Option<PathBuf>,
    /// Extra CA certificates (*.crt) for the destination registry
    #[arg(long, value_name = "DIR")]
    pub dest_cert_dir: Option<PathBuf>,
    /// Sign the manifest written at the destination with this sigstore private key
    /// (ENCRYPTED SIGSTORE PRIVATE KEY PEM, as generate-sigstore-key or cosign make it)
    #[arg(long, value_name = "KEY")]
    pub sign_by_sigstore_private_key: Option<PathBuf>,
    /// Sign the manifest written at the destination with this GPG key (simple signing,
    /// stored in the registries.d lookaside, file:// only)
    #[arg(
        long,
        value_name = "FINGERPRINT",
        conflicts_with = "sign_by_sigstore_private_key"
    )]
    pub sign_by: Option<String>,
    /// Read the signing key's passphrase from the first line of FILE
    #[arg(long, value_name = "FILE")]
    pub sign_passphrase_file: Option<PathBuf>,
    /// The reference the signature names (default: the destination)
    #[arg(long, value_name = "REF")]
    pub sign_identity: Option<String>,
    /// Do not copy the source's signatures
    #[arg(long)]
    pub remove_signatures: bool,
}

/// `USER:PASSWORD` from a `--*-creds` flag.
pub fn parse_creds(arg: &'static str, c: &str) -> Result<(String, String)> {
    let (u, p) = c.split_once(':').ok_or_else(|| Error::InvalidArgument {
        arg,
        reason: "expected USER:PASSWORD".into(),
    })?;
    if u.is_empty() {
        return Err(Error::InvalidArgument {
            arg,
            reason: "empty user name".into(),
        });
    }
    Ok((u.to_string(), p.to_string()))
}

/// The global options with one side's overrides.
fn side(
    ctx: &Context,
    creds: (&'static str, &Option<String>),
    authfile: &Option<PathBuf>,
    tls_verify: Option<bool>,
    cert_dir: &Option<PathBuf>,
) -> Result<Context> {
    let mut c = ctx.clone();
    if let Some(s) = creds.1 {
        c.registry.creds = Some(parse_creds(creds.0, s)?);
    }
    if let Some(a) = authfile {
        c.registry.authfile = Some(a.clone());
    }
    if let Some(v) = tls_verify {
        c.registry.tls_verify = v;
    }
    if let Some(d) = cert_dir {
        c.registry.cert_dir = Some(d.clone());
    }
    Ok(c)
}

impl CopyFlags {
    pub fn source_context(&self, ctx: &Context) -> Result<Context> {
        side(
            ctx,
            ("--src-creds", &self.src_creds),
            &self.src_authfile,
            self.src_tls_verify,
            &self.src_cert_dir,
        )
    }

    pub fn dest_context(&self, ctx: &Context) -> Result<Context> {
        side(
            ctx,
            ("--dest-creds", &self.dest_creds),
            &self.dest_authfile,
            self.dest_tls_verify,
            &self.dest_cert_dir,
        )
    }

    pub fn options(&self) -> Result<crate::copy::Options> {
        Ok(crate::copy::Options {
            all: self.all,
            want: Want {
                format: self.format.as_deref().map(Format::parse).transpose()?,
                compress: self
                    .dest_compress_format
                    .as_deref()
                    .map(Compress::parse)
                    .transpose()?,
            },
            quiet: self.quiet,
            sign: self.signing_key()?,
            sign_by: self.sign_by.clone(),
            gpg_passphrase_file: self.sign_by.as_ref().and(self.sign_passphrase_file.clone()),
            sign_identity: self.sign_identity.clone(),
            remove_signatures: self.remove_signatures,
        })
    }

    /// The key `--sign-by-sigstore-private-key` names, opened with the passphrase file (an
    /// empty passphrase without one: there is no interactive prompt).
    fn signing_key(&self) -> Result<Option<p256::ecdsa::SigningKey>> {
        let signs = self.sign_by_sigstore_private_key.is_some() || self.sign_by.is_some();
        if !signs && (self.sign_passphrase_file.is_some() || self.sign_identity.is_some()) {
            return Err(Error::InvalidArgument {
                arg: "--sign-passphrase-file/--sign-identity",
                reason: "only with --sign-by-sigstore-private-key or --sign-by".into(),
            });
        }
        let Some(key) = &self.sign_by_sigstore_private_key else {
            return Ok(None);
        };
        let pass = match &self.sign_passphrase_file {
            Some(f) => crate::trust::keys::read_passphrase_file(f)?,
            None => vec![],
        };
        crate::trust::keys::load_private(key, &pass).map(Some)
    }
}

/// Copy, then write the digest file (beside it, renamed, so it is never half written).
pub fn run_copy(ctx: &Context, src: &ImageName, dest: &ImageName, flags: &CopyFlags) -> Result<()> {
    let opts = flags.options()?;
    let digest = crate::copy::copy(
        &flags.source_context(ctx)?,
        &flags.dest_context(ctx)?,
        src,
        dest,
        &opts,
    )?;
    if let Some(f) = &flags.digestfile {
        crate::store::write_file_atomic(f, digest.as_bytes())?;
    }
    Ok(())
}

pub fn run(ctx: &Context, args: CopyArgs) -> Result<()> {
    let src = ImageName::parse(&args.source)?;
    let dest = ImageName::parse(&args.destination)?;
    run_copy(ctx, &src, &dest, &args.flags)
}
