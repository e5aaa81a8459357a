//! imgtool: registries → a local content-addressed store → OCI runtime bundles.
//!
//! Parse the command line (clap), build the `Context`, dispatch; every error is printed as one
//! line `imgtool: <error>` and the exit status is 1.

use std::path::PathBuf;

use imgtool::{accept, commands, context, error, output, registries_conf, store};

use clap::{ArgAction, Parser, Subcommand};

use context::{Context, Platform, RegistryOptions};
use error::{Error, Result};

#[derive(Parser, Debug)]
#[command(
    name = "imgtool",
    version,
    about = "Pull OCI/Docker images into a local store and unpack them into OCI runtime bundles"
)]
struct Cli {
    /// Image store directory [default: $IMGTOOL_STORE, /var/lib/imgtool as root,
    /// $XDG_DATA_HOME/imgtool otherwise]
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,

    /// Registry credentials USER:PASSWORD (wins over auth files)
    #[arg(long, global = true, value_name = "USER:PASS")]
    creds: Option<String>,

    /// Auth file to read credentials from (and login/logout write)
    #[arg(long, global = true, value_name = "FILE")]
    authfile: Option<PathBuf>,

    /// Verify registry TLS certificates (--tls-verify=false to skip)
    #[arg(long, global = true, action = ArgAction::Set, num_args = 0..=1,
          default_value_t = true, default_missing_value = "true", require_equals = true,
          value_name = "BOOL")]
    tls_verify: bool,

    /// Directory of extra CA certificates (*.crt) to trust
    #[arg(long, global = true, value_name = "DIR")]
    cert_dir: Option<PathBuf>,

    /// Use plain HTTP (allowed for localhost/127.0.0.1 registries only)
    #[arg(long, global = true)]
    plain_http: bool,

    /// Platform to choose from a multi-arch image: os/arch[/variant] [default: the host's]
    #[arg(long, global = true, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,

    /// How many times a transient registry failure is retried
    #[arg(long, global = true, default_value_t = 3, value_name = "N")]
    retry_times: u32,

    /// Seconds a registry may send nothing (while connecting, or between two reads) before
    /// the request fails as stalled (and is retried)
    #[arg(long, global = true, default_value_t = 30, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    timeout: u64,

    /// registries.conf to read instead of $CONTAINERS_REGISTRIES_CONF,
    /// ~/.config/containers/registries.conf or /etc/containers/registries.conf(.d)
    #[arg(long, global = true, value_name = "FILE")]
    registries_conf: Option<PathBuf>,

    /// Resolve short names (no registry part) with registries.conf's [aliases] and first
    /// unqualified-search-registries entry instead of Docker's docker.io/library
    #[arg(long, global = true)]
    short_name_aliases: bool,

    /// Signature policy file instead of ~/.config/containers/policy.json or
    /// /etc/containers/policy.json
    #[arg(long, global = true, value_name = "FILE")]
    policy: Option<PathBuf>,

    /// Accept every image without reading a signature policy
    #[arg(long, global = true)]
    insecure_policy: bool,

    /// registries.d directory (where signatures are kept) instead of
    /// ~/.config/containers/registries.d or /etc/containers/registries.d
    #[arg(long = "registries.d", global = true, value_name = "DIR")]
    registries_d: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Pull an image from a registry (or import oci:, oci-archive:, docker-archive: sources)
    Pull(commands::pull::PullArgs),
    /// List images in the store
    Images(commands::images::ImagesArgs),
    /// Show an image's manifest, config, layers and history
    Inspect(commands::inspect::InspectArgs),
    /// Remove images (untag names, delete images, garbage-collect blobs)
    Rmi(commands::rmi::RmiArgs),
    /// Give an image another name
    Tag(commands::tag::TagArgs),
    /// Write images to a docker-archive or oci-archive tarball
    Save(commands::save::SaveArgs),
    /// Load images from a docker-archive or oci-archive tarball
    Load(commands::load::LoadArgs),
    /// Log in to a registry (credentials are checked, then written to auth.json)
    Login(commands::login::LoginArgs),
    /// Remove a registry's credentials from auth.json
    Logout(commands::login::LogoutArgs),
    /// Unpack an image into an OCI runtime bundle
    Unpack(commands::unpack::UnpackArgs),
    /// Manage bundles made by unpack
    #[command(subcommand)]
    Bundle(commands::unpack::BundleCmd),
    /// Copy an image between registries, layouts, archives and the store (as skopeo copy)
    Copy(commands::copy::CopyArgs),
    /// Copy an image from the store to a registry (or another destination)
    Push(commands::push::PushArgs),
    /// List a registry repository's tags
    ListTags(commands::list_tags::ListTagsArgs),
    /// Delete an image from a registry
    Delete(commands::delete::DeleteArgs),
    /// Make a key pair for sigstore signing (copy --sign-by-sigstore-private-key)
    GenerateSigstoreKey(commands::generate_sigstore_key::GenerateSigstoreKeyArgs),
    /// Check the store: rehash every blob, resolve every reference, list orphans and debris
    Fsck(commands::fsck::FsckArgs),
}

fn context(cli: &Cli) -> Result<Context> {
    let store_dir = match (&cli.store, std::env::var_os("IMGTOOL_STORE")) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) if !d.is_empty() => PathBuf::from(d),
        _ => Context::default_store_dir(),
    };
    // Absolute from here on: the store's path is recorded in bundles, and a relative one would
    // name another store (or none) when `bundle rm` runs from another directory.
    let store_dir = std::path::absolute(&store_dir).map_err(|e| Error::InvalidArgument {
        arg: "--store",
        reason: format!("{}: {e}", store_dir.display()),
    })?;
    let creds = match &cli.creds {
        Some(c) => {
            let (u, p) = c.split_once(':').ok_or_else(|| Error::InvalidArgument {
                arg: "--creds",
                reason: "expected USER:PASSWORD".into(),
            })?;
            if u.is_empty() {
                return Err(Error::InvalidArgument {
                    arg: "--creds",
                    reason: "empty user name".into(),
                });
            }
            Some((u.to_string(), p.to_string()))
        }
        None => None,
    };
    let platform = match &cli.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    Ok(Context {
        store_dir,
        registry: RegistryOptions {
            creds,
            authfile: cli.authfile.clone(),
            tls_verify: cli.tls_verify,
            cert_dir: cli.cert_dir.clone(),
            plain_http: cli.plain_http,
            platform,
            retries: cli.retry_times,
            timeout: std::time::Duration::from_secs(cli.timeout),
            registries_conf: cli.registries_conf.clone(),
        },
        quiet: false,
        verify_diff_ids: false,
    })
}

fn run(cli: Cli) -> Result<()> {
    let ctx = context(&cli)?;
    if cli.insecure_policy && cli.policy.is_some() {
        return Err(Error::InvalidArgument {
            arg: "--insecure-policy",
            reason: "cannot be used with --policy".into(),
        });
    }
    accept::configure(accept::TrustOptions {
        policy: cli.policy.clone(),
        insecure_policy: cli.insecure_policy,
        registries_d: cli.registries_d.clone(),
    });
    if cli.short_name_aliases {
        registries_conf::enable_short_names(&ctx)?;
    }
    let writes_store = matches!(
        cli.command,
        Command::Pull(_) | Command::Load(_) | Command::Unpack(_) | Command::Copy(_)
    );
    let r = dispatch(ctx.clone(), cli.command);
    if let Err(e) = &r {
        if writes_store && e.out_of_space() {
            reclaim(&ctx);
        }
    }
    r
}

/// After a command that failed for want of space: the blobs it had added and no image uses
/// are removed, so the disk is as full as before it (and the store as it was), unless another
/// imgtool has the store open; then they wait for the next `rmi` or `fsck --repair`. Other
/// failures keep them: a pull that is run again reuses every blob that arrived whole.
fn reclaim(ctx: &Context) {
    if let Ok(store) = store::Store::open_existing(&ctx.store_dir) {
        let _ = store.try_gc();
    }
}

fn dispatch(mut ctx: Context, command: Command) -> Result<()> {
    match command {
        Command::Pull(a) => {
            ctx.quiet = a.quiet;
            ctx.verify_diff_ids = a.verify_diff_ids;
            commands::pull::run(&ctx, a)
        }
        Command::Images(a) => commands::images::run(&ctx, a),
        Command::Inspect(a) if a.image.starts_with("docker://") => {
            commands::inspect_remote::run(&ctx, &a)
        }
        Command::Inspect(a) => commands::inspect::run(&ctx, a),
        Command::Rmi(a) => commands::rmi::run(&ctx, a),
        Command::Tag(a) => commands::tag::run(&ctx, a),
        Command::Save(a) => commands::save::run(&ctx, a),
        Command::Load(a) => {
            ctx.quiet = a.quiet;
            commands::load::run(&ctx, a)
        }
        Command::Login(a) => commands::login::run_login(&ctx, a),
        Command::Logout(a) => commands::login::run_logout(&ctx, a),
        Command::Unpack(a) => commands::unpack::run_unpack(&ctx, a),
        Command::Bundle(c) => commands::unpack::run_bundle(&ctx, c),
        Command::Copy(a) => commands::copy::run(&ctx, a),
        Command::Push(a) => commands::push::run(&ctx, a),
        Command::ListTags(a) => commands::list_tags::run(&ctx, a),
        Command::Delete(a) => commands::delete::run(&ctx, a),
        Command::GenerateSigstoreKey(a) => commands::generate_sigstore_key::run(&ctx, a),
        Command::Fsck(a) => commands::fsck::run(&ctx, a),
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        output::write_err_line(format_args!("imgtool: {e}"));
        std::process::exit(1);
    }
    if let Some(e) = output::failure() {
        output::write_err_line(format_args!("imgtool: write to stdout: {e}"));
        std::process::exit(1);
    }
}
