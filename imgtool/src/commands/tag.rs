//! `imgtool tag SOURCE TARGET`: add a name to an image already in the store.
use std::sync::Arc;

use crate::context::Context;
use crate::error::Result;
use crate::store::Store;

#[derive(clap::Args, Debug)]
pub struct TagArgs {
    /// Image name, ID or ID prefix
    pub source: String,
    /// New name (normalised: busybox:mine → docker.io/library/busybox:mine)
    pub target: String,
}

pub fn run(ctx: &Context, args: TagArgs) -> Result<()> {
    let target = crate::reference::parse_reference(&args.target)?;
    if target.digest().is_some() {
        return Err(crate::error::Error::InvalidReference {
            input: args.target,
            reason: "a tag target cannot contain a digest".into(),
        });
    }
    let store = Arc::new(Store::open(ctx)?);
    let img = crate::image::find_in(&store, &args.source)?;
    let media_type = crate::manifest::manifest_media_type(&img.manifest_raw);
    crate::transport::record::record_image(
        &store,
        crate::transport::record::Record {
            manifest_digest: &img.manifest_digest,
            media_type: &media_type,
            size: img.manifest_raw.len() as u64,
            name: Some(crate::reference::store_name(&target)),
            repo_digest: None,
            signatures: &[],
        },
    )
}
