//! `imgtool unpack IMAGE DIR` and `imgtool bundle rm|info DIR` (one file: `bundle` reads the
//! record that `unpack` writes).
//!
//! An unpack either completes (DIR/config.json + DIR/rootfs, plus DIR/imgtool-bundle.json
//! recording how it was made) or leaves nothing behind: every failure after DIR was claimed
//! unmounts and removes what this run created.
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::bundle::{self, ConfigOptions};
use crate::bundle_dir::{self, remove_tree, BundleRecord, SnapshotMode, State, Unfinished};
use crate::context::Context;
use crate::error::Error;
use crate::image::{Image, PullInProgress};
use crate::reference::Source;
use crate::snapshot;
use crate::store::Store;
use crate::unpack::{self, ApplyOptions, LayerInput, WhiteoutMode};

#[derive(clap::Args, Debug)]
pub struct UnpackArgs {
    /// The image: a name or ID in the store, a registry reference (pulled if missing),
    /// oci:DIR[:tag], oci-archive:FILE[:tag] or docker-archive:FILE
    pub image: String,
    /// The bundle directory to create (must not exist, or be empty)
    pub dir: PathBuf,
    /// How to make the rootfs
    #[arg(long, value_enum, default_value = "copy")]
    pub snapshot: SnapshotMode,
    /// Unpack as an unprivileged user: no chown, no device nodes; config.json gets a user
    /// namespace mapping root to the caller
    #[arg(long)]
    pub rootless: bool,
    /// Give the process a terminal in config.json
    #[arg(long)]
    pub terminal: bool,
    /// The container's hostname
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Set an environment variable (repeatable), replacing the image's value
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Add a mount (repeatable): type=T,source=S,destination=D[,OPTION...]
    #[arg(long = "mount", value_name = "SPEC")]
    pub mounts: Vec<String>,
    /// Replace the image's Cmd: a JSON array, or one word per --args (repeatable)
    #[arg(long = "args", value_name = "ARG", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Replace the image's Entrypoint: a JSON array, or one word per --entrypoint (repeatable)
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub entrypoint: Vec<String>,
    /// No progress output while pulling
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum BundleCmd {
    /// Unmount (overlay) and remove a bundle made by `imgtool unpack`
    Rm {
        /// The bundle directory
        dir: PathBuf,
    },
    /// Print a bundle's sizes as JSON: SizeRw (its own writes) and SizeRootFs (everything)
    Info {
        /// The bundle directory
        dir: PathBuf,
    },
    /// Remove cached overlay layers that no live bundle uses
    Prune,
}

fn unpack_err(msg: String) -> Error {
    Error::Unpack(msg)
}

/// Everything this run created in DIR, removed on drop unless `keep` was called.
struct Cleanup {
    dir: PathBuf,
    created_dir: bool,
    mounted: Option<PathBuf>,
    refs: Option<(PathBuf, Vec<String>)>,
    keep: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Some(m) = &self.mounted {
            let _ = snapshot::unmount(m);
        }
        if let Some((store, ids)) = &self.refs {
            snapshot::remove_refs(store, ids, &self.dir);
        }
        if self.created_dir {
            let _ = bundle_dir::remove_bundle_dir(&self.dir);
        } else {
            for n in [
                "rootfs",
                "config.json",
                "overlay",
                bundle_dir::RECORD,
                bundle_dir::UNFINISHED,
            ] {
                let _ = remove_tree(&self.dir.join(n));
            }
        }
    }
}

fn config_options(args: &UnpackArgs) -> Result<ConfigOptions, Error> {
    let cmd = |v: &[String], arg: &'static str| -> Result<Option<Vec<String>>, Error> {
        if v.is_empty() {
            return Ok(None);
        }
        bundle::parse_command_override(v)
            .map(Some)
            .map_err(|reason| Error::InvalidArgument { arg, reason })
    };
    for e in &args.env {
        if !e.contains('=') || e.starts_with('=') {
            return Err(bundle::BundleError::BadEnv(e.clone()).into());
        }
    }
    Ok(ConfigOptions {
        rootless: args.rootless,
        terminal: args.terminal,
        hostname: args.hostname.clone(),
        env: args.env.clone(),
        mounts: args.mounts.clone(),
        args: cmd(&args.args, "--args")?,
        entrypoint: cmd(&args.entrypoint, "--entrypoint")?,
    })
}

/// Claim DIR: create it, or accept an existing empty directory.
fn claim_dir(dir: &Path) -> Result<bool, Error> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = fs::symlink_metadata(dir).map_err(Error::io("stat bundle dir", dir))?;
            if !meta.is_dir() {
                return Err(unpack_err(format!(
                    "bundle dir {}: exists and is not a directory",
                    dir.display()
                )));
            }
            let mut rd = fs::read_dir(dir).map_err(Error::io("read bundle dir", dir))?;
            if rd.next().is_some() {
                return Err(unpack_err(format!(
                    "bundle dir {}: exists and is not empty",
                    dir.display()
                )));
            }
            Ok(false)
        }
        Err(e) => Err(Error::io("create bundle dir", dir)(e)),
    }
}

/// Where an unpack's layers come from: an image already in the store (or imported from a
/// local source), or a registry pull still running whose layers are read as they arrive.
enum ImageSource {
    Stored(Box<Image>),
    Pulling(PullInProgress),
}

impl ImageSource {
    fn open(ctx: &Context, input: &str) -> Result<ImageSource, Error> {
        if !Source::has_transport(input) {
            let store = Arc::new(Store::open(ctx)?);
            if let Some(d) = crate::image::lookup(&store, input)? {
                let image = crate::image::load(&store, &d)?;
                return Ok(ImageSource::Stored(Box::new(image)));
            }
            if let Source::Registry(r) = Source::parse(input)? {
                return Ok(ImageSource::Pulling(crate::image::start_pull(
                    ctx, store, r,
                )?));
            }
        }
        Ok(ImageSource::Stored(Box::new(crate::image::ensure_image(
            ctx, input,
        )?)))
    }

    fn store_root(&self) -> PathBuf {
        match self {
            ImageSource::Stored(image) => image.store().root().to_path_buf(),
            ImageSource::Pulling(p) => p.store().root().to_path_buf(),
        }
    }

    /// The layers to apply, and for each whether the store already verified its diff_id.
    fn layers(&self) -> Result<(Vec<LayerInput>, Vec<bool>), Error> {
        let mut out = (vec![], vec![]);
        match self {
            ImageSource::Stored(image) => {
                for l in image.layers()? {
                    out.0.push(LayerInput {
                        blob: l.blob_path,
                        media_type: l.descriptor.media_type().to_string(),
                        digest: l.descriptor.digest().to_string(),
                        diff_id: l.diff_id,
                        follow: None,
                    });
                    out.1.push(l.verified);
                }
            }
            ImageSource::Pulling(p) => {
                for l in &p.layers {
                    let digest = l.descriptor.digest().to_string();
                    out.0.push(LayerInput {
                        blob: p.store().blob_path(&digest)?,
                        media_type: l.descriptor.media_type().to_string(),
                        digest,
                        diff_id: l.diff_id.clone(),
                        follow: Some(Arc::clone(&l.follow)),
                    });
                    out.1.push(false);
                }
            }
        }
        Ok(out)
    }

    /// The image, once the layers are applied (`applied`: which were read and so checked).
    /// A pull still running is waited for, and its error wins: a blob digest mismatch or a
    /// registry failure is the cause of any read error the unpack saw.
    fn finish(self, applied: Result<Vec<bool>, Error>) -> Result<(Image, Vec<bool>), Error> {
        match self {
            ImageSource::Stored(image) => Ok((*image, applied?)),
            ImageSource::Pulling(p) => {
                if applied.is_err() {
                    p.cancel();
                }
                match (p.finish(), applied) {
                    (Ok(image), Ok(checked)) => Ok((image, checked)),
                    (Err(e), _) if !matches!(e, Error::PullCancelled { .. }) => Err(e),
                    (_, Err(e)) | (Err(e), _) => Err(e),
                }
            }
        }
    }
}

/// Extract (or reuse) every layer's cache dir, take refs on them, and mount the bundle's rootfs
/// as their overlay with the bundle's own upper and work dirs. Returns which layers were
/// extracted (their diff_ids checked) by this call.
fn overlay_rootfs(
    store: &Path,
    layers: &[LayerInput],
    dir: &Path,
    rootfs: &Path,
    cleanup: &mut Cleanup,
) -> Result<Vec<bool>, Error> {
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let ids = snapshot::chain_ids(&diff_ids);
    let mut lowers = Vec::with_capacity(layers.len());
    let mut extracted = Vec::with_capacity(layers.len());
    for (i, (l, chain)) in layers.iter().zip(&ids).enumerate() {
        let (fs_dir, fresh) = snapshot::ensure_layer(store, i, l, chain, &lowers)?;
        lowers.push(fs_dir);
        extracted.push(fresh);
    }
    snapshot::add_refs(store, &ids, dir)?;
    cleanup.refs = Some((store.to_path_buf(), ids));
    let (upper, work) = (dir.join("overlay/upper"), dir.join("overlay/work"));
    for d in [&upper, &work] {
        fs::create_dir_all(d).map_err(Error::io("create overlay dir", d))?;
    }
    if lowers.is_empty() {
        // overlayfs needs at least one lower dir.
        let empty = dir.join("overlay/empty");
        fs::create_dir_all(&empty).map_err(Error::io("create overlay dir", &empty))?;
        lowers.push(empty);
    }
    snapshot::mount_overlay(&lowers, &upper, &work, rootfs)?;
    cleanup.mounted = Some(rootfs.to_path_buf());
    Ok(extracted)
}

pub fn run_unpack(ctx: &Context, args: UnpackArgs) -> Result<(), Error> {
    let opts = config_options(&args)?;
    let root = nix::unistd::geteuid().is_root();
    if !root && !args.rootless {
        return Err(unpack_err(
            "unpacking as a non-root user needs --rootless (owners and devices cannot be set)"
                .into(),
        ));
    }
    if args.snapshot == SnapshotMode::Overlay && (args.rootless || !root) {
        return Err(unpack_err(
            "--snapshot overlay needs root (it mounts overlayfs)".into(),
        ));
    }
    // Check the options are usable before pulling anything.
    for m in &args.mounts {
        if !m.contains("destination=") && !m.contains("dst=") && !m.contains("target=") {
            return Err(bundle::BundleError::BadMount {
                spec: m.clone(),
                reason: "destination= is missing".into(),
            }
            .into());
        }
    }

    // Refuse an unusable DIR before pulling anything (it is claimed for real after the pull).
    take_over_dead_unpack(&args.dir)?;
    if let Ok(mut rd) = fs::read_dir(&args.dir) {
        if rd.next().is_some() {
            return Err(unpack_err(format!(
                "bundle dir {}: exists and is not empty",
                args.dir.display()
            )));
        }
    }
    let mut pull_ctx = ctx.clone();
    pull_ctx.quiet |= args.quiet;
    let source = ImageSource::open(&pull_ctx, &args.image)?;
    let (layers, verified) = source.layers()?;
    let store = source.store_root();

    let created = claim_dir(&args.dir)?;
    crate::interrupt::install();
    let dir = args
        .dir
        .canonicalize()
        .map_err(Error::io("resolve bundle dir", &args.dir))?;
    let mut cleanup = Cleanup {
        dir: dir.clone(),
        created_dir: created,
        mounted: None,
        refs: None,
        keep: false,
    };
    let unfinished = Unfinished {
        pid: std::process::id() as i32,
        snapshot: args.snapshot,
        store: store.clone(),
        chain_ids: match args.snapshot {
            SnapshotMode::Overlay => {
                snapshot::chain_ids(&layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>())
            }
            SnapshotMode::Copy => Vec::new(),
        },
    };
    bundle_dir::write_unfinished(&dir, &unfinished)?;
    let rootfs = dir.join("rootfs");
    fs::create_dir(&rootfs).map_err(Error::io("create rootfs", &rootfs))?;

    // Every layer read below is hashed in the same pass and refused on a diff_id mismatch;
    // the ones read (and so checked) are recorded, so the store knows them as verified.
    let applied = match args.snapshot {
        SnapshotMode::Copy => {
            let opts = ApplyOptions {
                rootless: args.rootless,
                whiteouts: WhiteoutMode::Apply,
            };
            unpack::unpack_layers(&rootfs, &layers, opts)
                .map(|()| vec![true; layers.len()])
                .map_err(Error::from)
        }
        SnapshotMode::Overlay => overlay_rootfs(&store, &layers, &dir, &rootfs, &mut cleanup),
    };
    let (image, checked) = source.finish(applied)?;
    for ((l, checked), verified) in layers.iter().zip(checked).zip(verified) {
        if checked && !verified {
            image.store().record_diff_id(&l.digest, &l.diff_id)?;
        }
    }

    let spec = bundle::make_spec(image.config(), &rootfs, &opts)?;
    bundle::write_config(&dir, &spec)?;
    let record = BundleRecord {
        image: args.image.clone(),
        image_id: image.id.clone(),
        snapshot: args.snapshot,
        store,
        layers: layers.iter().map(|l| l.diff_id.clone()).collect(),
        chain_ids: unfinished.chain_ids,
    };
    bundle_dir::write_record(&dir, &record)?;
    let marker = dir.join(bundle_dir::UNFINISHED);
    fs::remove_file(&marker).map_err(Error::io("remove", &marker))?;
    cleanup.keep = true;
    Ok(())
}

pub fn run_bundle(ctx: &Context, cmd: BundleCmd) -> Result<(), Error> {
    match cmd {
        BundleCmd::Rm { dir } => bundle_rm(&dir),
        BundleCmd::Info { dir } => bundle_info(&dir),
        BundleCmd::Prune => {
            // Opening the store sweeps what dead unpacks left in the layer cache. The GC lock
            // keeps unpacks (which take layers they found cached) out meanwhile.
            let store = Store::open(ctx)?;
            let (removed, n) = store.with_gc_lock(|| {
                let removed = remove_dead_unfinished(store.root());
                let layers = snapshot::layers_dir(store.root());
                let n = snapshot::prune_unused(store.root())
                    .map_err(Error::io("prune layer cache", &layers))?;
                Ok((removed, n))
            })?;
            if removed > 0 {
                outln!("removed {removed} unfinished bundles");
            }
            outln!("removed {n} unused cached layers");
            Ok(())
        }
    }
}

/// Remove the unfinished bundles (their unpack died) that hold refs on this store's cached
/// layers, so that the refs stop pinning the layers; returns how many were removed.
fn remove_dead_unfinished(store: &Path) -> usize {
    let mut n = 0;
    for bundle in snapshot::referencing_bundles(store) {
        let st = bundle_dir::state(&bundle);
        let State::Unfinished(Some(u)) = &st else {
            continue;
        };
        if u.store == store
            && st.is_dead_unpack()
            && bundle_dir::remove_unfinished(&bundle, Some(u)).is_ok()
        {
            n += 1;
        }
    }
    n
}

/// A DIR that an unpack killed before it finished left behind is ours to clear: a new unpack
/// into it undoes the dead one first, as `bundle rm` would.
fn take_over_dead_unpack(dir: &Path) -> Result<(), Error> {
    let st = bundle_dir::state(dir);
    if !st.is_dead_unpack() {
        return Ok(());
    }
    let State::Unfinished(u) = st else {
        return Ok(());
    };
    let dir = dir
        .canonicalize()
        .map_err(Error::io("resolve bundle dir", dir))?;
    bundle_dir::remove_unfinished(&dir, u.as_ref())
}

/// `bundle rm DIR`; then the store the bundle was made from is swept of what dead commands
/// left (a killed unpack leaves temp blobs there as well as DIR).
fn bundle_rm(dir: &Path) -> Result<(), Error> {
    let store = match bundle_dir::state(dir) {
        State::Unfinished(Some(u)) => Some(u.store),
        State::Finished => bundle_dir::read_record(dir).ok().map(|r| r.store),
        _ => None,
    };
    let removed = remove_bundle(dir);
    if let Some(s) = store.filter(|s| s.is_absolute()) {
        if let Ok(store) = Store::open_existing(&s) {
            store.sweep();
        }
    }
    removed
}

fn remove_bundle(dir: &Path) -> Result<(), Error> {
    let st = bundle_dir::state(dir);
    if let State::Unfinished(u) = &st {
        let dir = dir
            .canonicalize()
            .map_err(Error::io("resolve bundle dir", dir))?;
        if let Some(u) = u.as_ref().filter(|_| !st.is_dead_unpack()) {
            return Err(unpack_err(format!(
                "{}: still being unpacked by process {}",
                dir.display(),
                u.pid
            )));
        }
        return bundle_dir::remove_unfinished(&dir, u.as_ref());
    }
    // An empty directory is what a `bundle rm` killed after removing the record leaves (or an
    // unpack killed before it wrote anything): nothing in it can be lost.
    if matches!(st, State::Foreign) && fs::read_dir(dir).is_ok_and(|mut rd| rd.next().is_none()) {
        return fs::remove_dir(dir).map_err(Error::io("remove bundle", dir));
    }
    let rec = bundle_dir::read_record(dir)?;
    let dir = dir
        .canonicalize()
        .map_err(Error::io("resolve bundle dir", dir))?;
    let rootfs = dir.join("rootfs");
    if rec.snapshot == SnapshotMode::Overlay {
        // A bundle recorded before store paths were made absolute: its relative path meant
        // the directory unpack ran in, and from here it may name no store or another one.
        if rec.store.is_relative() && !rec.store.join(".imgtool").is_dir() {
            return Err(unpack_err(format!(
                "{}: made with the relative store path {}, which names no store from here; \
                 run bundle rm from the directory the unpack ran in",
                dir.display(),
                rec.store.display()
            )));
        }
        if snapshot::is_mountpoint(&rootfs) {
            snapshot::unmount(&rootfs)?;
        }
        snapshot::remove_refs(&rec.store, &rec.chain_ids, &dir);
    }
    // Never remove through a still-mounted rootfs: that would delete from the layers.
    if snapshot::is_mountpoint(&rootfs) {
        return Err(unpack_err(format!(
            "{}: still mounted, not removing",
            rootfs.display()
        )));
    }
    bundle_dir::remove_bundle_dir(&dir)
}

fn bundle_info(dir: &Path) -> Result<(), Error> {
    let rec = bundle_dir::read_record(dir)?;
    let (rw, total) = match rec.snapshot {
        SnapshotMode::Overlay => {
            let rw = snapshot::tree_size(&dir.join("overlay/upper"));
            let layers: u64 = rec
                .chain_ids
                .iter()
                .map(|d| snapshot::tree_size(&snapshot::layer_dir(&rec.store, d).join("fs")))
                .sum();
            (rw, layers + rw)
        }
        // A copy bundle's whole rootfs is its own writable copy.
        SnapshotMode::Copy => {
            let all = snapshot::tree_size(&dir.join("rootfs"));
            (all, all)
        }
    };
    let out = serde_json::json!({
        "Image": rec.image,
        "ImageID": rec.image_id,
        "Snapshot": rec.snapshot,
        "SizeRw": rw,
        "SizeRootFs": total,
    });
    outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(())
}
