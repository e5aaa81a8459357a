//! `imgtool delete docker://REF`: delete the manifest a tag or digest names from its registry
//! (the registry must allow deletes; blobs go with its own garbage collection, as for skopeo).
use crate::context::Context;
use crate::copy::name::ImageName;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// Image: docker://NAME:TAG or docker://NAME@DIGEST
    pub image: String,
}

pub fn run(ctx: &Context, args: DeleteArgs) -> Result<()> {
    let r = match ImageName::parse(&args.image)? {
        ImageName::Registry(r) => r,
        _ => {
            return Err(Error::InvalidReference {
                input: args.image,
                reason: "delete removes an image from a registry: give docker://NAME:TAG".into(),
            })
        }
    };
    let rt = crate::transport::registry::runtime()?;
    rt.block_on(async {
        let conn = crate::transport::remote::connect_for_delete(ctx, &r).await?;
        // A tag is resolved to the digest it points at: registries delete by digest only.
        let digest = match r.digest() {
            Some(d) => d.to_string(),
            None => {
                crate::transport::registry::fetch_manifest(
                    &conn.client,
                    &conn.auth,
                    &conn.reference,
                    conn.retries,
                )
                .await?
                .1
            }
        };
        crate::transport::remote::delete_manifest(ctx, &conn, &digest).await
    })
}
