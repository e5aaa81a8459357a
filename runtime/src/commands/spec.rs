//! `gruntime spec`: runc's default config.json (or the rootless variant), refusing to overwrite one.

use std::path::Path;

use oci_spec::runtime::Spec;

use crate::commands::Globals;
use crate::error::{Error, Result};

pub fn default_spec(rootless: bool) -> Spec {
    let mut spec = if rootless {
        Spec::rootless(
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    } else {
        Spec::default()
    };
    // The default config uses nothing newer than 1.0.2, and runc 1.1 / crun 1.8 refuse newer versions:
    // declare what it is, as `runc spec` does, so the bundle runs unchanged under them too.
    spec.set_version("1.0.2-dev".to_string());
    spec.set_hostname(Some("gruntime".into()));
    if !rootless {
        // runc's default: deny every device, the runtime adds the default ones it creates.
        let deny_all: oci_spec::runtime::LinuxDeviceCgroup =
            serde_json::from_value(serde_json::json!({ "allow": false, "access": "rwm" }))
                .expect("device rule");
        if let Some(linux) = spec.linux_mut() {
            let mut res = linux.resources().clone().unwrap_or_default();
            res.set_devices(Some(vec![deny_all]));
            linux.set_resources(Some(res));
        }
    }
    spec
}

pub fn run(_g: &Globals, bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Error::InvalidArgument(format!(
            "{}: already exists, remove it first",
            path.display()
        )));
    }
    let data = serde_json::to_vec_pretty(&default_spec(rootless)).expect("spec serialises");
    std::fs::write(&path, data).map_err(|e| Error::io("write", &path, e))
}
