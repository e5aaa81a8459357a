//! `imgtool rmi IMAGE...`: a name untags (the image goes when its last name goes); an ID
//! deletes the image, which needs `-f` when it has several names. Unreferenced blobs are then
//! garbage-collected.
use std::sync::Arc;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::store::{self, Store};

#[derive(clap::Args, Debug)]
pub struct RmiArgs {
    /// Image names, IDs or ID prefixes
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Remove an image even if it has several names
    #[arg(short, long)]
    pub force: bool,
}

/// Whether the input names the image by ID rather than by one of its names.
fn by_id(input: &str, names: &[String]) -> bool {
    let name = crate::reference::parse_reference(input)
        .ok()
        .map(|r| crate::reference::store_name(&r));
    !name.is_some_and(|n| names.contains(&n))
}

pub fn run(ctx: &Context, args: RmiArgs) -> Result<()> {
    let store = Arc::new(Store::open(ctx)?);
    let mut failed = 0;
    let mut last_err = None;
    for input in &args.images {
        match remove_one(&store, input, args.force) {
            Ok(lines) => lines.iter().for_each(|l| outln!("{l}")),
            Err(e) if args.images.len() > 1 => {
                // Go on with the others, as docker rmi does; each failure gets its own line.
                errln!("imgtool: {e}");
                failed += 1;
            }
            Err(e) => last_err = Some(e),
        }
    }
    store.gc()?;
    if let Some(e) = last_err {
        return Err(e);
    }
    if failed > 0 {
        return Err(Error::Other(format!(
            "{failed} of {} images could not be removed",
            args.images.len()
        )));
    }
    Ok(())
}

fn remove_one(store: &Arc<Store>, input: &str, force: bool) -> Result<Vec<String>> {
    let img = crate::image::find_in(store, input)?;
    let names = img.names();
    let digest = img.manifest_digest.clone();
    if by_id(input, &names) {
        if names.len() > 1 && !force {
            return Err(Error::ImageHasNames {
                image: img.short_id().to_string(),
                names: names.join(", "),
            });
        }
        store.with_exclusive(|entries| {
            entries.retain(|e| e.digest().to_string() != digest);
            Ok(())
        })?;
        let mut out: Vec<String> = names.iter().map(|n| format!("Untagged: {n}")).collect();
        out.push(format!("Deleted: {}", img.id));
        return Ok(out);
    }
    let name = crate::reference::store_name(&crate::reference::parse_reference(input)?);
    let deleted = store.with_exclusive(|entries| {
        entries.retain(|e| store::entry_name(e) != Some(name.as_str()));
        Ok(!entries.iter().any(|e| e.digest().to_string() == digest))
    })?;
    let mut out = vec![format!("Untagged: {name}")];
    if deleted {
        out.push(format!("Deleted: {}", img.id));
    }
    Ok(out)
}
