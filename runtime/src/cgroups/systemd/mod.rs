//! The systemd cgroup driver (`--systemd-cgroup`), as runc's: the container's cgroup is a transient
//! scope unit that systemd makes and owns, so systemd's own bookkeeping (slices, `systemctl status`,
//! its reloads) agrees with what the container got.
//!
//! `linux.cgroupsPath` is `slice:prefix:name` → the scope `prefix-name.scope` in `slice` (empty slice:
//! `system.slice`, or `user.slice` under a user's manager); no cgroupsPath → `system.slice:gruntime:<id>`.
//! The order is create's: `Scope::plan` checks everything before anything exists, the init is cloned,
//! `Scope::start` asks systemd for the scope with the init's pid in it, `Delegate=yes`, and the resource
//! properties systemd owns, waits for the job, then writes the plan's files and installs our device
//! filter on the scope's cgroup, exactly as the cgroupfs driver does (what systemd cannot express still
//! gets there; what it can is set twice, to the same value). Everything else — pause, kill --all, ps,
//! events — works on the scope's cgroup directory like any other; delete stops the unit.

mod dbus;
pub mod properties;

use std::path::PathBuf;

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use super::devices::Rule;
use super::error::CgroupError;
use super::hierarchy::Hierarchy;
use super::resources::Plan;
use super::Cgroup;
use dbus::Bus;
use properties::{Property, Value};

/// The unit a container's cgroup belongs to, as kept in its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// `prefix-name.scope`.
    pub name: String,
    /// The slice it was started in.
    pub slice: String,
    /// Started by the user's own manager rather than the system's.
    #[serde(default)]
    pub user: bool,
}

/// Everything a create needs from systemd, decided before the init exists.
pub struct Scope {
    pub unit: Unit,
    description: String,
    props: Vec<Property>,
    plan: Plan,
    rules: Option<Vec<Rule>>,
}

fn bad_path(value: &str, reason: impl Into<String>) -> CgroupError {
    CgroupError::BadValue {
        field: "linux.cgroupsPath".into(),
        reason: format!("{value:?}: {}", reason.into()),
    }
}

/// The characters systemd allows in a unit name (besides the type suffix).
fn valid_unit_chars(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c))
}

/// `slice:prefix:name` (or nothing) → the unit and its slice, checked the way systemd will check them.
pub fn unit_of(cgroups_path: Option<&str>, id: &str, user: bool) -> Result<Unit, CgroupError> {
    let default_slice = if user { "user.slice" } else { "system.slice" };
    let (slice, prefix, name) = match cgroups_path {
        None | Some("") => (
            default_slice.to_string(),
            "gruntime".to_string(),
            id.to_string(),
        ),
        Some(p) => {
            let parts: Vec<&str> = p.split(':').collect();
            let [slice, prefix, name] = parts[..] else {
                return Err(bad_path(
                    p,
                    "with --systemd-cgroup it must be slice:prefix:name (e.g. system.slice:docker:ID)",
                ));
            };
            if name.is_empty() {
                return Err(bad_path(p, "the name (after the second ':') is empty"));
            }
            let slice = if slice.is_empty() {
                default_slice
            } else {
                slice
            };
            (slice.to_string(), prefix.to_string(), name.to_string())
        }
    };
    expand_slice(&slice).map_err(|r| bad_path(cgroups_path.unwrap_or(&slice), r))?;
    if name.ends_with(".slice") {
        return Err(bad_path(
            cgroups_path.unwrap_or(&name),
            "a .slice as the container's unit is not supported: a container is a scope",
        ));
    }
    let unit = if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    if !valid_unit_chars(&unit) || unit.len() > 255 {
        return Err(bad_path(
            cgroups_path.unwrap_or(&unit),
            format!("{unit:?} is not a valid systemd unit name (letters, digits, : - _ . \\ @; at most 255)"),
        ));
    }
    Ok(Unit {
        name: unit,
        slice,
        user,
    })
}

/// A slice's cgroup path, as systemd nests it: `a-b-c.slice` → `a.slice/a-b.slice/a-b-c.slice`;
/// `-.slice` is the root. Errors say what is wrong with the name.
pub fn expand_slice(slice: &str) -> Result<PathBuf, String> {
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(format!("slice {slice:?} must end in .slice"));
    };
    if stem == "-" {
        return Ok(PathBuf::new());
    }
    if stem.is_empty() || slice.contains('/') || !valid_unit_chars(stem) {
        return Err(format!("{slice:?} is not a valid slice name"));
    }
    let mut path = PathBuf::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            return Err(format!(
                "slice {slice:?} has an empty component (a leading, trailing or double '-')"
            ));
        }
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Ok(path)
}

impl Scope {
    /// Decide the unit and its properties; nothing is asked of systemd yet.
    pub fn plan(
        spec: &Spec,
        id: &str,
        plan: Plan,
        rules: Option<Vec<Rule>>,
    ) -> Result<Scope, CgroupError> {
        let user = crate::rootless::is_rootless();
        let path = spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().as_ref())
            .map(|p| p.to_string_lossy().into_owned());
        let unit = unit_of(path.as_deref(), id, user)?;
        let mut props = properties::from_plan(&plan, rules.as_deref());
        if let Some(a) = spec.annotations() {
            props.extend(properties::from_annotations(a.iter())?);
        }
        Ok(Scope {
            unit,
            description: format!("gruntime container {id}"),
            props,
            plan,
            rules,
        })
    }

    /// Start the scope with `pid` in it and apply the resources to its cgroup. On failure nothing of the
    /// unit remains.
    pub fn start(&self, pid: i32) -> Result<Cgroup, CgroupError> {
        let mut bus = Bus::connect(self.unit.user)?;
        let mut props: Vec<Property> = vec![
            ("Description".into(), Value::Str(self.description.clone())),
            ("Slice".into(), Value::Str(self.unit.slice.clone())),
            // The container makes its own sub-cgroups and writes its own files (nested runtimes).
            ("Delegate".into(), Value::Bool(true)),
            // A container is not part of boot or shutdown ordering.
            ("DefaultDependencies".into(), Value::Bool(false)),
            ("PIDs".into(), Value::U32s(vec![pid as u32])),
            ("MemoryAccounting".into(), Value::Bool(true)),
            ("CPUAccounting".into(), Value::Bool(true)),
            ("IOAccounting".into(), Value::Bool(true)),
            ("TasksAccounting".into(), Value::Bool(true)),
        ];
        props.extend(self.props.iter().cloned());
        let job = match bus.start_transient_unit(&self.unit.name, &props) {
            Ok(job) => job,
            // A unit of that name that failed earlier stays loaded until reset (runc resets it too); one
            // whose cgroup is empty is a corpse (a create killed as systemd started it, the init gone:
            // systemd can miss the emptying and keep it "running"), stopped here. A unit with
            // processes is another container's, and stays an error.
            Err(e) if e.name == "org.freedesktop.systemd1.UnitExists" => {
                let _ = bus.reset_failed_unit(&self.unit.name);
                if self.left_empty(&mut bus) {
                    let _ = stop_on(&mut bus, &self.unit);
                }
                bus.start_transient_unit(&self.unit.name, &props)
                    .map_err(|e| self.failed(&bus.name, "start", e.to_string()))?
            }
            Err(e) => return Err(self.failed(&bus.name, "start", e.to_string())),
        };
        let cg = self.finish_start(&mut bus, job.as_str()).inspect_err(|_| {
            let _ = stop_on(&mut bus, &self.unit);
        })?;
        Ok(cg)
    }

    /// Whether the loaded unit of our name has no process left in its cgroup (or no cgroup at all).
    fn left_empty(&self, bus: &mut Bus) -> bool {
        let Ok(path) = bus.get_unit(&self.unit.name) else {
            return false;
        };
        let Ok(cgroup) = bus.unit_string(
            path.as_str(),
            "org.freedesktop.systemd1.Scope",
            "ControlGroup",
        ) else {
            return false;
        };
        let Some(h) = Hierarchy::find() else {
            return false;
        };
        // The test `delete` makes for leftovers: no process in the cgroup or below (none if it is gone).
        super::pids(&h.mount.join(cgroup.trim_start_matches('/'))).is_empty()
    }

    fn finish_start(&self, bus: &mut Bus, job: &str) -> Result<Cgroup, CgroupError> {
        if !bus.wait_job(job) {
            return Err(self.failed(&bus.name, "start", "the job did not finish in 30 s".into()));
        }
        let unit_path = bus
            .get_unit(&self.unit.name)
            .map_err(|e| self.failed(&bus.name, "start", e.to_string()))?;
        let unit_iface = "org.freedesktop.systemd1.Unit";
        let state = bus
            .unit_string(unit_path.as_str(), unit_iface, "ActiveState")
            .map_err(|e| self.failed(&bus.name, "start", e.to_string()))?;
        if state != "active" {
            return Err(self.failed(&bus.name, "start", format!("the unit is {state}")));
        }
        let cgroup = bus
            .unit_string(
                unit_path.as_str(),
                "org.freedesktop.systemd1.Scope",
                "ControlGroup",
            )
            .map_err(|e| self.failed(&bus.name, "start", e.to_string()))?;
        let mount = Hierarchy::find()
            .map(|h| h.mount)
            .ok_or_else(|| CgroupError::NoHierarchy {
                field: "--systemd-cgroup".into(),
            })?;
        let cg = Cgroup {
            path: mount.join(cgroup.trim_start_matches('/')),
            unit: Some(self.unit.clone()),
        };
        cg.apply(&self.plan, self.rules.as_deref())?;
        Ok(cg)
    }

    fn failed(&self, bus: &str, action: &str, reason: String) -> CgroupError {
        CgroupError::Systemd {
            action: action.into(),
            unit: self.unit.name.clone(),
            bus: bus.to_string(),
            reason,
        }
    }
}

/// Stop the unit and forget it (reset-failed), so `systemctl list-units` shows nothing of it. A unit
/// systemd already collected (its last process exited) is not an error.
pub fn stop(unit: &Unit) -> Result<(), CgroupError> {
    let mut bus = Bus::connect(unit.user)?;
    stop_on(&mut bus, unit)
}

fn stop_on(bus: &mut Bus, unit: &Unit) -> Result<(), CgroupError> {
    match bus.stop_unit(&unit.name) {
        Ok(job) => {
            bus.wait_job(job.as_str());
        }
        Err(e) if e.name == "org.freedesktop.systemd1.NoSuchUnit" => {}
        Err(e) => {
            return Err(CgroupError::Systemd {
                action: "stop".into(),
                unit: unit.name.clone(),
                bus: bus.name.clone(),
                reason: e.to_string(),
            })
        }
    }
    let _ = bus.reset_failed_unit(&unit.name);
    Ok(())
}

/// `update`: the new properties into the live unit; the caller writes the files.
pub fn set(unit: &Unit, plan: &Plan, rules: Option<&[Rule]>) -> Result<(), CgroupError> {
    let props = properties::from_plan(plan, rules);
    if props.is_empty() {
        return Ok(());
    }
    let mut bus = Bus::connect(unit.user)?;
    bus.set_unit_properties(&unit.name, &props)
        .map_err(|e| CgroupError::Systemd {
            action: "update".into(),
            unit: unit.name.clone(),
            bus: bus.name.clone(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_nest_as_systemd_names_them() {
        assert_eq!(
            expand_slice("system.slice").unwrap(),
            PathBuf::from("system.slice")
        );
        assert_eq!(
            expand_slice("kubepods-besteffort-pod123.slice").unwrap(),
            PathBuf::from(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice"
            )
        );
        assert_eq!(expand_slice("-.slice").unwrap(), PathBuf::new());
        for bad in [
            "system",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            ".slice",
            "a/b.slice",
            "a b.slice",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cgroups_path_is_slice_prefix_name_and_defaults_to_system_slice() {
        let u = unit_of(Some("system.slice:docker:abc"), "x", false).unwrap();
        assert_eq!(
            (u.name.as_str(), u.slice.as_str()),
            ("docker-abc.scope", "system.slice")
        );
        let u = unit_of(Some(":libpod:abc"), "x", false).unwrap();
        assert_eq!(
            (u.name.as_str(), u.slice.as_str()),
            ("libpod-abc.scope", "system.slice")
        );
        let u = unit_of(Some(":libpod:abc"), "x", true).unwrap();
        assert_eq!(u.slice, "user.slice");
        let u = unit_of(Some("machine.slice::abc"), "x", false).unwrap();
        assert_eq!(u.name, "abc.scope");
        let u = unit_of(None, "c1", false).unwrap();
        assert_eq!(
            (u.name.as_str(), u.slice.as_str()),
            ("gruntime-c1.scope", "system.slice")
        );
    }

    #[test]
    fn a_malformed_cgroups_path_is_an_error_naming_it() {
        for (path, words) in [
            ("/sys/fs/cgroup/foo", "slice:prefix:name"),
            ("a:b", "slice:prefix:name"),
            ("system:docker:abc", "must end in .slice"),
            ("a--b.slice:docker:abc", "empty component"),
            ("system.slice:docker:", "name"),
            ("system.slice:docker:a/b", "not a valid systemd unit name"),
            ("system.slice:x:pod.slice", ".slice"),
        ] {
            let e = unit_of(Some(path), "x", false).unwrap_err().to_string();
            assert!(
                e.contains("linux.cgroupsPath") && e.contains(path) && e.contains(words),
                "{path}: {e}"
            );
        }
    }
}
