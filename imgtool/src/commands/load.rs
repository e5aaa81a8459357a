//! `imgtool load -i FILE`: import every image of a docker-archive or oci-archive (told apart by
//! `manifest.json` vs `oci-layout` inside), with the same verification as a pull.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::store::Store;

#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// Archive to read
    #[arg(short, long, value_name = "FILE")]
    pub input: PathBuf,
    /// No progress output
    #[arg(short, long)]
    pub quiet: bool,
}

enum Kind {
    Docker,
    Oci,
}

fn archive_kind(path: &Path) -> Result<Kind> {
    let f = std::fs::File::open(path).map_err(Error::io("open archive", path))?;
    let mut ar = tar::Archive::new(std::io::BufReader::new(f));
    let bad = |reason: String| Error::Source {
        source_name: path.display().to_string(),
        reason,
    };
    let entries = ar
        .entries()
        .map_err(|e| bad(format!("cannot read as a tar archive: {e}")))?;
    for e in entries {
        let e = e.map_err(|e| bad(format!("cannot read as a tar archive: {e}")))?;
        let p = e.path().map(|p| p.to_path_buf()).unwrap_or_default();
        let p = p.strip_prefix("./").unwrap_or(&p);
        if p == Path::new("manifest.json") {
            return Ok(Kind::Docker);
        }
        if p == Path::new("oci-layout") {
            return Ok(Kind::Oci);
        }
    }
    Err(bad(
        "neither a docker-archive (manifest.json) nor an oci-archive (oci-layout)".into(),
    ))
}

pub fn run(ctx: &Context, args: LoadArgs) -> Result<()> {
    let kind = archive_kind(&args.input)?;
    let store = Arc::new(Store::open(ctx)?);
    let progress = crate::progress::Progress::new(ctx.quiet);
    let digests: Vec<String> = match kind {
        Kind::Docker => {
            crate::transport::archive::import_docker_archive(&store, &args.input, None, &progress)?
        }
        Kind::Oci => crate::transport::archive::import_oci_archive_all(
            &store,
            &args.input,
            &ctx.registry.platform,
            &progress,
        )?
        .into_iter()
        .map(|(d, _)| d)
        .collect(),
    };
    progress.finish();
    let mut seen = std::collections::BTreeSet::new();
    for d in digests {
        if !seen.insert(d.clone()) {
            continue;
        }
        let img = crate::image::load(&store, &d)?;
        let names = img.names();
        if names.is_empty() {
            outln!("Loaded image ID: {}", img.id);
        }
        for n in names {
            outln!("Loaded image: {n}");
        }
    }
    Ok(())
}
