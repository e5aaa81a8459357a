//! `imgtool login/logout`: placeholder replaced below.
use crate::context::Context;
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct LoginArgs {}
#[derive(clap::Args, Debug)]
pub struct LogoutArgs {}

pub fn run_login(_ctx: &Context, _args: LoginArgs) -> Result<()> {
    Ok(())
}
pub fn run_logout(_ctx: &Context, _args: LogoutArgs) -> Result<()> {
    Ok(())
}
