//! `imgtool push NAME [DEST]`: `copy` from the store. DEST defaults to the registry the name
//! says (`localhost:5000/app:1` → `docker://localhost:5000/app:1`); a DEST without a transport
//! is a registry name too, as `podman push` takes it.
use crate::commands::copy::{run_copy, CopyFlags};
use crate::context::Context;
use crate::copy::name::ImageName;
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// Image in the store: name, ID or ID prefix
    pub image: String,
    /// Where to: docker://NAME (the default, from the image's name), oci:DIR[:REF],
    /// oci-archive:FILE[:REF], docker-archive:FILE[:NAME:TAG]; a bare name is a registry name
    pub destination: Option<String>,
    #[command(flatten)]
    pub flags: CopyFlags,
}

pub fn run(ctx: &Context, args: PushArgs) -> Result<()> {
    let src = ImageName::Store(args.image.clone());
    let dest_text = args.destination.as_deref().unwrap_or(&args.image);
    let dest = match ImageName::parse(dest_text)? {
        ImageName::Store(n) => ImageName::Registry(crate::reference::parse_reference(&n)?),
        other => other,
    };
    run_copy(ctx, &src, &dest, &args.flags)
}
