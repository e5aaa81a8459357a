use crate::cli::ExecArgs;
use crate::commands::Globals;
use crate::error::{Error, Result};

pub fn run(_g: &Globals, _a: &ExecArgs) -> Result<i32> {
    Err(Error::Unsupported("exec: not implemented yet".into()))
}
