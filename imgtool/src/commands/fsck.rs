//! `imgtool fsck [--repair]` (and `imgtool images --verify`, the same check): one line per
//! problem on stdout, `KIND PATH: what is wrong`, then a summary; the exit status is 1 when the
//! store is damaged (corrupt or missing data), 0 when it only has orphans or debris.
use crate::context::Context;
use crate::error::Result;
use crate::fsck::{self, Kind};
use crate::store::Store;

#[derive(clap::Args, Debug)]
pub struct FsckArgs {
    /// Remove orphans, debris and corrupt blobs (a new pull restores a removed blob); waits
    /// for the other imgtool commands on the store, as the check does
    #[arg(long)]
    pub repair: bool,
}

pub fn run(ctx: &Context, args: FsckArgs) -> Result<()> {
    verify(ctx, args.repair)
}

/// Check the store and print the report; the error says whether it is damaged.
pub fn verify(ctx: &Context, repair: bool) -> Result<()> {
    let store = Store::open_existing(&ctx.store_dir)?;
    let report = fsck::check(&store, repair)?;
    for p in &report.problems {
        let done = match &p.repaired {
            None => String::new(),
            Some(Ok(())) => " (removed)".into(),
            Some(Err(e)) => format!(" (not removed: {e})"),
        };
        outln!("{} {}: {}{done}", p.kind.label(), p.path.display(), p.what);
    }
    if let Some(why) = &report.orphans_unknown {
        outln!("note: orphan blobs not looked for: {why}");
    }
    let counts: Vec<String> = [Kind::Corrupt, Kind::Missing, Kind::Orphan, Kind::Debris]
        .iter()
        .map(|k| format!("{} {}", report.count(*k), k.label()))
        .collect();
    outln!(
        "checked {} blobs and {} index entries: {}",
        report.blobs,
        report.images,
        counts.join(", ")
    );
    match report.damage(store.root()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
