//! `imgtool load`: placeholder replaced below.
use crate::context::Context;
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(_ctx: &Context, _args: LoadArgs) -> Result<()> {
    Ok(())
}
