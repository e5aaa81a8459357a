//! `imgtool list-tags docker://NAME`: the repository's tags as skopeo prints them,
//! `{"Repository": "host/name", "Tags": [...]}`.
use crate::context::Context;
use crate::copy::name::ImageName;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct ListTagsArgs {
    /// Repository: docker://NAME (a tag or digest, if given, is ignored)
    pub repository: String,
}

pub fn run(ctx: &Context, args: ListTagsArgs) -> Result<()> {
    let r = match ImageName::parse(&args.repository)? {
        ImageName::Registry(r) => r,
        _ => {
            return Err(Error::InvalidReference {
                input: args.repository,
                reason: "list-tags reads a registry: give docker://NAME".into(),
            })
        }
    };
    let rt = crate::transport::registry::runtime()?;
    let tags = rt.block_on(async {
        let conn =
            crate::transport::registry::connect(ctx, &r, oci_client::RegistryOperation::Pull)
                .await?;
        crate::transport::remote::list_tags(&conn).await
    })?;
    let out = Tags {
        repository: format!("{}/{}", r.registry(), r.repository()),
        tags,
    };
    outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(())
}

/// skopeo's list-tags output, fields in its order.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Tags {
    repository: String,
    tags: Vec<String>,
}
