use crate::commands::Globals;
use crate::error::{Error, Result};

pub fn run(_g: &Globals, _id: &str, _stats: bool, _interval: &str) -> Result<()> {
    Err(Error::Unsupported(
        "events: needs the cgroup manager".into(),
    ))
}
