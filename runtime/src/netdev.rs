//! `linux.netDevices`: not implemented yet; refused so it is never silently ignored.

use oci_spec::runtime::Spec;

pub const SUPPORTED: bool = false;

pub fn check(spec: &Spec) -> Result<(), String> {
    if spec
        .linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .is_some_and(|d| !d.is_empty())
    {
        return Err("linux.netDevices: not supported by gruntime yet".into());
    }
    Ok(())
}
