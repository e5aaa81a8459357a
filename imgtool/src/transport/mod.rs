//! Getting images into the store from each kind of source: `fetch` hands a `Source` to the
//! transport that reads it. What the transports share (copying a blob in, recording the image
//! under its name) is in `record`, below all of them; `layout_signatures` is the sigstore
//! attachment entry every layout (the store included) keeps beside an image.
pub mod archive;
pub mod layout;
pub mod layout_signatures;
pub mod record;
pub mod registry;
pub mod registry_pull;
pub mod remote;
pub mod signatures;
pub mod sigstore_attachments;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::reference::Source;
use crate::store::Store;

/// Bring the image `source` names into the store; returns its manifest digest.
pub fn fetch(ctx: &Context, store: &Store, source: &Source, progress: &Progress) -> Result<String> {
    let r = match source {
        Source::Registry(r) => registry_pull::pull(ctx, store, r, progress),
        Source::OciLayout { dir, tag } => layout::import_dir(
            store,
            dir,
            tag.as_deref(),
            &ctx.registry.platform,
            None,
            progress,
            layout::Origin {
                transport: "oci",
                path: dir,
            },
        )
        .map_err(|e| source_err(&dir.display().to_string(), e)),
        Source::OciArchive { path, tag } => archive::import_oci_archive(
            store,
            path,
            tag.as_deref(),
            &ctx.registry.platform,
            progress,
        ),
        Source::DockerArchive { path, name } => {
            archive::import_docker_archive(store, path, name.as_deref(), progress)
                .map(|mut v| v.remove(0))
        }
    };
    progress.finish();
    r
}

fn source_err(src: &str, e: Error) -> Error {
    match e {
        Error::Source { .. } | Error::Rejected { .. } => e,
        other => Error::Source {
            source_name: src.to_string(),
            reason: other.to_string(),
        },
    }
}
