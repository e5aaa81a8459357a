use crate::cli::UpdateArgs;
use crate::commands::Globals;
use crate::error::{Error, Result};

pub fn run(_g: &Globals, _a: &UpdateArgs) -> Result<()> {
    Err(Error::Unsupported(
        "update: needs the cgroup manager".into(),
    ))
}
