use crate::commands::Globals;
use crate::error::{Error, Result};

pub fn pause(_g: &Globals, _id: &str) -> Result<()> {
    Err(Error::Unsupported("pause: needs the cgroup manager".into()))
}

pub fn resume(_g: &Globals, _id: &str) -> Result<()> {
    Err(Error::Unsupported(
        "resume: needs the cgroup manager".into(),
    ))
}
