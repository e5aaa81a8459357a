//! `linux.personality`: the execution domain (LINUX or LINUX32, e.g. `uname -m` says i686) and personality(2)
//! flags such as ADDR_NO_RANDOMIZE, set in the init just before the user process is exec'd (it keeps them).

use oci_spec::runtime::{LinuxPersonalityDomain, Spec};

use crate::error::{InitResult, Step};

const PER_LINUX: libc::c_ulong = 0x0000;
const PER_LINUX32: libc::c_ulong = 0x0008;

/// personality(2) flag names (linux/personality.h) and their bits.
const FLAGS: &[(&str, libc::c_ulong)] = &[
    ("UNAME26", 0x0020000),
    ("ADDR_NO_RANDOMIZE", 0x0040000),
    ("FDPIC_FUNCPTRS", 0x0080000),
    ("MMAP_PAGE_ZERO", 0x0100000),
    ("ADDR_COMPAT_LAYOUT", 0x0200000),
    ("READ_IMPLIES_EXEC", 0x0400000),
    ("ADDR_LIMIT_32BIT", 0x0800000),
    ("SHORT_INODE", 0x1000000),
    ("WHOLE_SECONDS", 0x2000000),
    ("STICKY_TIMEOUTS", 0x4000000),
    ("ADDR_LIMIT_3GB", 0x8000000),
];

pub fn flag_names() -> Vec<&'static str> {
    FLAGS.iter().map(|(n, _)| *n).collect()
}

/// The personality value, or which flag is unknown.
fn persona(spec: &Spec) -> Result<Option<libc::c_ulong>, String> {
    let Some(p) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) else {
        return Ok(None);
    };
    let mut v = match p.domain() {
        LinuxPersonalityDomain::PerLinux => PER_LINUX,
        LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
    };
    for (i, f) in p.flags().iter().flatten().enumerate() {
        let bit = FLAGS
            .iter()
            .find(|(n, _)| n == f)
            .map(|(_, b)| *b)
            .ok_or_else(|| {
                format!("linux.personality.flags[{i}] {f:?}: unknown personality flag")
            })?;
        v |= bit;
    }
    Ok(Some(v))
}

pub fn check(spec: &Spec) -> Result<(), String> {
    persona(spec).map(drop)
}

pub fn apply(spec: &Spec) -> InitResult<()> {
    let Some(v) = persona(spec).map_err(crate::error::fail)? else {
        return Ok(());
    };
    // SAFETY: personality takes a plain integer and only changes this process's execution domain.
    let r = unsafe { libc::personality(v) };
    nix::errno::Errno::result(r).step(|| format!("linux.personality: personality({v:#x})"))?;
    Ok(())
}
