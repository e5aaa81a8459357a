//! The D-Bus calls the systemd driver makes on systemd's manager, through zbus's blocking API.
//!
//! Which bus: the system bus (`/run/dbus/system_bus_socket`, or `DBUS_SYSTEM_BUS_ADDRESS`), else
//! systemd's private socket `/run/systemd/private` where no bus daemon runs, as runc falls back; for a
//! rootless caller, the user's own manager on `$XDG_RUNTIME_DIR/bus`. A caller that is root only inside
//! a user namespace (podman's rootless mode) authenticates as its uid outside, which is the one the
//! bus sees on the socket.
//!
//! A connection starts threads (zbus's executor, async-io's reactor): it is only opened after the
//! container's init has been cloned, so the init never inherits a lock held by one of them.

use std::path::Path;
use std::time::{Duration, Instant};

use zbus::blocking::Connection;
use zbus::zvariant::{self, OwnedObjectPath, OwnedValue};
use zbus::DBusError;

use super::super::error::CgroupError;
use super::properties::{Property, Value};

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const SYSTEM_SOCKET: &str = "/run/dbus/system_bus_socket";
const PRIVATE_SOCKET: &str = "/run/systemd/private";
/// A job that takes longer than this is reported, not waited for forever.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Bus {
    conn: Connection,
    /// What we are connected to, for error messages.
    pub name: String,
}

/// A method call that systemd answered with an error: its D-Bus error name and text.
pub struct CallError {
    pub name: String,
    pub text: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.text.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{} ({})", self.text, self.name)
        }
    }
}

fn call_error(e: zbus::Error) -> CallError {
    match e {
        zbus::Error::MethodError(name, text, _) => CallError {
            name: name.to_string(),
            text: text.unwrap_or_default(),
        },
        zbus::Error::FDO(e) => CallError {
            name: e.name().to_string(),
            text: e.description().unwrap_or_default().to_string(),
        },
        other => CallError {
            name: "connection".into(),
            text: other.to_string(),
        },
    }
}

fn bus_error(socket: &str, reason: impl std::fmt::Display) -> CgroupError {
    CgroupError::SystemdBus {
        socket: socket.to_string(),
        reason: reason.to_string(),
    }
}

impl Bus {
    /// The system manager, or with `user` the calling user's manager.
    pub fn connect(user: bool) -> Result<Bus, CgroupError> {
        if user {
            return Self::user();
        }
        let bus_socket = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .unwrap_or_else(|_| format!("unix:path={SYSTEM_SOCKET}"));
        let first = zbus::blocking::connection::Builder::system()
            .map(|b| b.method_timeout(JOB_TIMEOUT))
            .and_then(|b| b.build());
        let bus_err = match first {
            Ok(conn) => {
                return Ok(Bus {
                    conn,
                    name: bus_socket,
                })
            }
            Err(e) => e,
        };
        // No bus daemon (a minimal host, early boot): systemd itself listens on its private socket.
        if Path::new(PRIVATE_SOCKET).exists() {
            let conn = zbus::blocking::connection::Builder::address(
                format!("unix:path={PRIVATE_SOCKET}").as_str(),
            )
            .map(|b| b.p2p().method_timeout(JOB_TIMEOUT))
            .and_then(|b| b.build())
            .map_err(|e| bus_error(PRIVATE_SOCKET, e))?;
            return Ok(Bus {
                conn,
                name: PRIVATE_SOCKET.into(),
            });
        }
        Err(bus_error(
            &bus_socket,
            format!("{bus_err}; and systemd's {PRIVATE_SOCKET} does not exist: is systemd the init of this host?"),
        ))
    }

    fn user() -> Result<Bus, CgroupError> {
        let addr = match std::env::var("DBUS_SESSION_BUS_ADDRESS") {
            Ok(a) if !a.is_empty() => a,
            _ => match std::env::var("XDG_RUNTIME_DIR") {
                Ok(d) if !d.is_empty() => format!("unix:path={d}/bus"),
                _ => {
                    return Err(bus_error(
                        "$XDG_RUNTIME_DIR/bus",
                        "neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set: the user's systemd cannot be reached",
                    ))
                }
            },
        };
        let uid = outer_uid();
        let first = zbus::blocking::connection::Builder::address(addr.as_str())
            .map(|b| b.user_id(uid).method_timeout(JOB_TIMEOUT))
            .and_then(|b| b.build());
        let bus_err = match first {
            Ok(conn) => return Ok(Bus { conn, name: addr }),
            Err(e) => e,
        };
        // No session bus (no dbus-user-session): the user's manager listens on its own private socket.
        if let Some(private) = std::env::var_os("XDG_RUNTIME_DIR")
            .map(|d| Path::new(&d).join("systemd/private"))
            .filter(|p| p.exists())
        {
            let name = private.display().to_string();
            let conn =
                zbus::blocking::connection::Builder::address(format!("unix:path={name}").as_str())
                    .map(|b| b.p2p().user_id(uid).method_timeout(JOB_TIMEOUT))
                    .and_then(|b| b.build())
                    .map_err(|e| bus_error(&name, e))?;
            return Ok(Bus { conn, name });
        }
        Err(bus_error(&addr, bus_err))
    }

    fn call<B, R>(&self, path: &str, iface: &str, method: &str, body: &B) -> Result<R, CallError>
    where
        B: serde::Serialize + zvariant::DynamicType,
        R: for<'d> zvariant::DynamicDeserialize<'d>,
    {
        let msg = self
            .conn
            .call_method(Some(DEST), path, Some(iface), method, body)
            .map_err(call_error)?;
        msg.body().deserialize::<R>().map_err(call_error)
    }

    /// StartTransientUnit in "replace" mode; returns the job.
    pub fn start_transient_unit(
        &self,
        name: &str,
        props: &[Property],
    ) -> Result<OwnedObjectPath, CallError> {
        let props: Vec<(&str, zvariant::Value<'_>)> =
            props.iter().map(|(n, v)| (n.as_str(), encode(v))).collect();
        let aux: Vec<(&str, Vec<(&str, zvariant::Value<'_>)>)> = Vec::new();
        self.call(
            PATH,
            MANAGER,
            "StartTransientUnit",
            &(name, "replace", props, aux),
        )
    }

    pub fn stop_unit(&self, name: &str) -> Result<OwnedObjectPath, CallError> {
        self.call(PATH, MANAGER, "StopUnit", &(name, "replace"))
    }

    pub fn reset_failed_unit(&self, name: &str) -> Result<(), CallError> {
        self.call::<_, ()>(PATH, MANAGER, "ResetFailedUnit", &(name,))
    }

    /// SetUnitProperties with runtime = true: the values last until the unit goes, as runc sets them.
    pub fn set_unit_properties(&self, name: &str, props: &[Property]) -> Result<(), CallError> {
        let props: Vec<(&str, zvariant::Value<'_>)> =
            props.iter().map(|(n, v)| (n.as_str(), encode(v))).collect();
        self.call::<_, ()>(PATH, MANAGER, "SetUnitProperties", &(name, true, props))
    }

    pub fn get_unit(&self, name: &str) -> Result<OwnedObjectPath, CallError> {
        self.call(PATH, MANAGER, "GetUnit", &(name,))
    }

    fn property(&self, path: &str, iface: &str, name: &str) -> Result<OwnedValue, CallError> {
        self.call(
            path,
            "org.freedesktop.DBus.Properties",
            "Get",
            &(iface, name),
        )
    }

    /// A string property of a unit object (`ActiveState`, `Result`, `ControlGroup`…).
    pub fn unit_string(&self, unit: &str, iface: &str, name: &str) -> Result<String, CallError> {
        let v = self.property(unit, iface, name)?;
        String::try_from(v).map_err(|e| CallError {
            name: "type".into(),
            text: format!("{iface}.{name}: {e}"),
        })
    }

    /// Wait until `job` has left systemd's queue. A finished job's object is gone, so each poll asks for
    /// its State until the object no longer exists; `false` when it was still queued at the timeout.
    pub fn wait_job(&self, job: &str) -> bool {
        let deadline = Instant::now() + JOB_TIMEOUT;
        let mut pause = Duration::from_micros(200);
        loop {
            if self
                .property(job, "org.freedesktop.systemd1.Job", "State")
                .is_err()
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

fn encode(v: &Value) -> zvariant::Value<'_> {
    match v {
        Value::Bool(b) => (*b).into(),
        Value::U32(n) => (*n).into(),
        Value::I32(n) => (*n).into(),
        Value::U64(n) => (*n).into(),
        Value::I64(n) => (*n).into(),
        Value::F64(n) => (*n).into(),
        Value::Str(s) => s.as_str().into(),
        Value::Bytes(b) => b.clone().into(),
        Value::U32s(v) => v.clone().into(),
        Value::Strs(v) => v.clone().into(),
        Value::Pairs(v) => v.clone().into(),
    }
}

/// Our uid as the bus sees it: root inside a user namespace is its mapped uid outside.
fn outer_uid() -> u32 {
    let euid = nix::unistd::geteuid().as_raw();
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    map_uid(&map, euid)
}

fn map_uid(uid_map: &str, uid: u32) -> u32 {
    for line in uid_map.lines() {
        let f: Vec<u64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [inside, outside, len] = f[..] {
            let u = u64::from(uid);
            if u >= inside && u < inside + len {
                return u32::try_from(outside + (u - inside)).unwrap_or(uid);
            }
        }
    }
    uid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_in_a_user_namespace_is_its_outside_uid_on_the_bus() {
        assert_eq!(
            map_uid(
                "         0       1000          1\n         1     100000      65536\n",
                0
            ),
            1000
        );
        assert_eq!(map_uid("0 1000 1\n1 100000 65536\n", 5), 100004);
        assert_eq!(map_uid("         0          0 4294967295\n", 0), 0);
        assert_eq!(map_uid("", 1000), 1000);
    }
}
