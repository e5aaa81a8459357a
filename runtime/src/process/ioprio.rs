//! `process.ioPriority`: the I/O scheduling class and level via ioprio_set(2), for the init's exec and `exec`.

use oci_spec::runtime::{IOPriorityClass, Process};

use crate::error::{InitResult, Step};

fn class_value(c: IOPriorityClass) -> (libc::c_int, &'static str) {
    match c {
        IOPriorityClass::IoprioClassRt => (1, "IOPRIO_CLASS_RT"),
        IOPriorityClass::IoprioClassBe => (2, "IOPRIO_CLASS_BE"),
        IOPriorityClass::IoprioClassIdle => (3, "IOPRIO_CLASS_IDLE"),
    }
}

/// Levels are 0 (highest) to 7 for RT and BE; IDLE has none.
pub fn check(process: &Process) -> Result<(), String> {
    let Some(p) = process.io_priority() else {
        return Ok(());
    };
    if !(0..=7).contains(&p.priority()) {
        return Err(format!(
            "process.ioPriority.priority {}: out of range 0..7",
            p.priority()
        ));
    }
    Ok(())
}

pub fn apply(process: &Process) -> InitResult<()> {
    let Some(p) = process.io_priority() else {
        return Ok(());
    };
    let (class, name) = class_value(p.class());
    crate::sys::ioprio_set_self(class, p.priority() as libc::c_int).step(|| {
        format!(
            "process.ioPriority: ioprio_set {name} priority {}",
            p.priority()
        )
    })?;
    Ok(())
}
