//! `imgtool save`: placeholder replaced below.
use crate::context::Context;
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct SaveArgs {}

pub fn run(_ctx: &Context, _args: SaveArgs) -> Result<()> {
    Ok(())
}
