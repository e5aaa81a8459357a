//! `descriptors.json` in the image directory, runc's file: what the init's fds 0, 1 and 2 were at dump
//! ("pipe:[1234]", "/dev/null", "/dev/pts/0"). A pipe cannot be dumped with its other end outside the
//! container (conmon's, the shim's, a shell's); at restore each pipe among them is handed to CRIU as an
//! inherited fd under that name, the restore's own stdio at the same number, so the restored init writes
//! to whoever runs the restore.

use std::path::Path;

use rust_criu::rust_criu_protobuf::rpc::Inherit_fd;

use crate::container::state::write_atomic;
use crate::error::{Error, Result};

pub const FILE: &str = "descriptors.json";

/// Record the stdio of `pid` into `image_dir`.
pub fn save(pid: i32, image_dir: &Path) -> Result<()> {
    let names: Vec<String> = (0..3)
        .map(|fd| {
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|p| p.to_string_lossy().into_owned())
                // A closed fd: runc records the empty string, which matches nothing at restore.
                .unwrap_or_default()
        })
        .collect();
    let json = serde_json::to_vec(&names).expect("strings serialise");
    write_atomic(&image_dir.join(FILE), &json, 0o600)
}

/// The inherit_fd entries for the pipes recorded in `image_dir`.
pub fn inherit(image_dir: &Path) -> Result<Vec<Inherit_fd>> {
    let path = image_dir.join(FILE);
    let data = std::fs::read(&path).map_err(|e| Error::io("read the checkpoint's", &path, e))?;
    let names: Vec<String> = serde_json::from_slice(&data)
        .map_err(|e| Error::config(&path, format!("not a list of descriptors: {e}")))?;
    Ok(pipes(&names))
}

fn pipes(names: &[String]) -> Vec<Inherit_fd> {
    names
        .iter()
        .enumerate()
        .filter(|(_, n)| n.contains("pipe:"))
        .map(|(i, n)| {
            let mut f = Inherit_fd::new();
            f.set_key(n.clone());
            f.set_fd(i as i32);
            f
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_pipes_are_inherited_at_their_stdio_number() {
        let names = ["/dev/null", "pipe:[11]", "pipe:[12]"].map(String::from);
        let p = super::pipes(&names);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].key(), p[0].fd()), ("pipe:[11]", 1));
        assert_eq!((p[1].key(), p[1].fd()), ("pipe:[12]", 2));
    }
}
