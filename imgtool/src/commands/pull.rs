//! `imgtool pull IMAGE`: fetch into the store and print the image ID (as podman does).
use crate::context::Context;
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// Image: registry name (busybox, host:port/repo:tag, name@sha256:…), oci:DIR[:tag],
    /// oci-archive:FILE[:tag] or docker-archive:FILE[:name]
    pub image: String,
    /// No progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// Decompress each layer as it arrives and check its diff_id now (slower). By default a
    /// pull checks every blob's digest and each diff_id is checked by the pass that first
    /// unpacks the layer, before any rootfs built from it is used
    #[arg(long)]
    pub verify_diff_ids: bool,
}

pub fn run(ctx: &Context, args: PullArgs) -> Result<()> {
    let image = if crate::reference::Source::has_transport(&args.image) {
        crate::image::ensure_image(ctx, &args.image)?
    } else {
        // An explicit pull always asks the registry (a tag may have moved); only the blobs
        // already present are skipped.
        let source = crate::reference::Source::parse(&args.image)?;
        let store = std::sync::Arc::new(crate::store::Store::open(ctx)?);
        let progress = crate::progress::Progress::new(ctx.quiet);
        let digest = crate::transport::fetch(ctx, &store, &source, &progress)?;
        let image = crate::image::load(&store, &digest)?;
        image.layers()?;
        image
    };
    if ctx.verify_diff_ids {
        image.verify_diff_ids()?;
    }
    outln!("{}", image.id.trim_start_matches("sha256:"));
    Ok(())
}
