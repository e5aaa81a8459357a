//! `imgtool unpack` and `imgtool bundle rm|info`. (Owned by the unpack work.)
#![allow(dead_code)]
use crate::context::Context;
use crate::error::Error;

#[derive(clap::Args, Debug)]
pub struct UnpackArgs {}

#[derive(clap::Subcommand, Debug)]
pub enum BundleCmd {}

pub fn run_unpack(_ctx: &Context, _args: UnpackArgs) -> Result<(), Error> {
    Ok(())
}

pub fn run_bundle(_ctx: &Context, _cmd: BundleCmd) -> Result<(), Error> {
    Ok(())
}
