use crate::commands::Globals;
use crate::error::{Error, Result};

pub fn run(_g: &Globals, _id: &str, _format: &str, _ps_args: &[String]) -> Result<()> {
    Err(Error::Unsupported("ps: needs the cgroup manager".into()))
}
