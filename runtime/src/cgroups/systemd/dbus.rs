//! The D-Bus calls the systemd driver makes on systemd's manager: a small blocking client of our own,
//! with zvariant (zbus's encoding crate) for every body and header, so no byte of the wire format is
//! marshalled by hand.
//!
//! Why not zbus itself: it was the first choice and is what the benchmark measured first. It cannot
//! talk to systemd's private socket — systemd signs its messages there with the well-known sender
//! `org.freedesktop.systemd1`, which zbus's header cache rejects with a panic in its executor thread —
//! and that socket is the fallback runc uses where no bus daemon runs. It also cost every gruntime
//! call, systemd or not, ~0.5 MiB of peak RSS (3.2 → 3.7 MiB for `run /bin/true`, +1.5 MB of binary)
//! and started three threads before our fork-free clone path. The client below needs one socket, no
//! thread, and the handful of methods create, update and delete call.
//!
//! Which bus: the system bus (`DBUS_SYSTEM_BUS_ADDRESS`, or `/run/dbus/system_bus_socket`), else
//! systemd's private socket `/run/systemd/private` where no bus daemon runs, as runc falls back; for a
//! rootless caller the user's own manager (`DBUS_SESSION_BUS_ADDRESS`, `$XDG_RUNTIME_DIR/bus`, then
//! `$XDG_RUNTIME_DIR/systemd/private`). A caller that is root only inside a user namespace (podman's
//! rootless mode) authenticates as its uid outside, which is the one the bus sees on the socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use zvariant::serialized::{Context, Data};
use zvariant::{DynamicType, Endian, ObjectPath, OwnedObjectPath, OwnedValue, Signature};

use super::super::error::CgroupError;
use super::properties::{Property, Value};

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const SYSTEM_SOCKET: &str = "/run/dbus/system_bus_socket";
const PRIVATE_SOCKET: &str = "/run/systemd/private";
/// A job still queued after this long is reported, as runc reports it.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);
/// A method call with no reply after this long is reported, not waited for forever (runc's client
/// has no bound at all). systemd answers in milliseconds; a TCG guest on a loaded host is slower.
const CALL_TIMEOUT: Duration = Duration::from_secs(90);
/// A bigger message from systemd is not one of the replies we asked for.
const MAX_MESSAGE: usize = 1 << 20;

/// Message types and header field codes of the D-Bus specification.
const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const F_PATH: u8 = 1;
const F_INTERFACE: u8 = 2;
const F_MEMBER: u8 = 3;
const F_ERROR_NAME: u8 = 4;
const F_REPLY_SERIAL: u8 = 5;
const F_DESTINATION: u8 = 6;
const F_SIGNATURE: u8 = 8;

/// A header field's value, a variant. zvariant writes a parsed signature of several arguments as
/// one struct, with parentheses (`(ss)` where the body is `ss`), so the body's signature goes out
/// as a string typed `g` instead of as a `Signature`.
enum Field<'a> {
    Value(zvariant::Value<'a>),
    BodySignature(&'a str),
}

impl zvariant::Type for Field<'_> {
    const SIGNATURE: &'static Signature = &Signature::Variant;
}

impl serde::Serialize for Field<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        match self {
            Field::Value(v) => v.serialize(serializer),
            Field::BodySignature(sig) => {
                // The shape zvariant gives a variant: its signature, then its value.
                let mut st = serializer.serialize_struct("Variant", 2)?;
                st.serialize_field("signature", "g")?;
                st.serialize_field("value", sig)?;
                st.end()
            }
        }
    }
}

pub struct Bus {
    stream: UnixStream,
    serial: u32,
    /// What we are connected to, for error messages.
    pub name: String,
}

/// A method call that failed: systemd's D-Bus error name and text, or what broke on the socket.
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

fn wire(text: impl std::fmt::Display) -> CallError {
    CallError {
        name: "connection".into(),
        text: text.to_string(),
    }
}

fn bus_error(socket: &str, reason: impl std::fmt::Display) -> CgroupError {
    CgroupError::SystemdBus {
        socket: socket.to_string(),
        reason: reason.to_string(),
    }
}

/// The socket path of a `unix:path=…` address (the only kind a local manager listens on).
fn socket_of(address: &str) -> Option<&str> {
    address
        .split(';')
        .find_map(|a| a.strip_prefix("unix:"))
        .and_then(|kv| kv.split(',').find_map(|p| p.strip_prefix("path=")))
}

impl Bus {
    /// The system manager, or with `user` the calling user's manager.
    pub fn connect(user: bool) -> Result<Bus, CgroupError> {
        let (bus_address, private) = if user {
            let runtime_dir = std::env::var("XDG_RUNTIME_DIR")
                .ok()
                .filter(|d| !d.is_empty());
            let address = std::env::var("DBUS_SESSION_BUS_ADDRESS")
                .ok()
                .filter(|a| !a.is_empty())
                .or_else(|| runtime_dir.as_ref().map(|d| format!("unix:path={d}/bus")))
                .ok_or_else(|| {
                    bus_error(
                        "$XDG_RUNTIME_DIR/bus",
                        "neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set: the user's systemd cannot be reached",
                    )
                })?;
            let private = runtime_dir.map(|d| format!("{d}/systemd/private"));
            (address, private)
        } else {
            let address = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
                .ok()
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| format!("unix:path={SYSTEM_SOCKET}"));
            (address, Some(PRIVATE_SOCKET.to_string()))
        };
        let uid = outer_uid();
        let first = match socket_of(&bus_address) {
            Some(path) => Self::open(path, uid, true),
            None => Err(format!(
                "{bus_address}: only unix:path= addresses are supported"
            )),
        };
        let bus_err = match first {
            Ok(bus) => return Ok(bus),
            Err(e) => e,
        };
        // No bus daemon (a minimal host, early boot, a user without dbus-user-session): systemd itself
        // listens on its private socket.
        if let Some(private) = private.filter(|p| Path::new(p).exists()) {
            return Self::open(&private, uid, false).map_err(|e| bus_error(&private, e));
        }
        Err(bus_error(
            &bus_address,
            format!(
                "{bus_err}; and systemd's private socket does not exist{}",
                if user {
                    ""
                } else {
                    " (/run/systemd/private): is systemd the init of this host?"
                }
            ),
        ))
    }

    /// Connect, authenticate (EXTERNAL, as `uid`), and on a message bus say Hello.
    fn open(path: &str, uid: u32, is_bus: bool) -> Result<Bus, String> {
        let stream = UnixStream::connect(path).map_err(|e| format!("connect {path}: {e}"))?;
        let set = |s: &UnixStream| {
            s.set_read_timeout(Some(CALL_TIMEOUT))?;
            s.set_write_timeout(Some(CALL_TIMEOUT))
        };
        set(&stream).map_err(|e| format!("{path}: {e}"))?;
        let mut bus = Bus {
            stream,
            serial: 0,
            name: path.to_string(),
        };
        bus.authenticate(uid)
            .map_err(|e| format!("authenticate on {path}: {e}"))?;
        if is_bus {
            bus.call::<_, String>(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "Hello",
                &(),
            )
            .map_err(|e| format!("Hello on {path}: {e}"))?;
        }
        Ok(bus)
    }

    /// The SASL exchange: a NUL byte, `AUTH EXTERNAL <uid as hex-encoded decimal>` and `BEGIN` in one
    /// write, then `OK <guid>`. Sending `BEGIN` before the `OK`, as sd-bus does, is not a shortcut:
    /// systemd 252's server side stalls when `BEGIN` and the first message arrive in the same read
    /// (the message stays in its buffer, unanswered, until more bytes come). On its private socket
    /// that happened whenever the host was busy enough to coalesce the two writes.
    fn authenticate(&mut self, uid: u32) -> Result<(), String> {
        let hex: String = uid
            .to_string()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        let io = |e: std::io::Error| e.to_string();
        self.stream
            .write_all(format!("\0AUTH EXTERNAL {hex}\r\nBEGIN\r\n").as_bytes())
            .map_err(io)?;
        let line = self.read_line().map_err(io)?;
        if !line.starts_with("OK ") {
            return Err(format!("the server said {:?}", line.trim_end()));
        }
        Ok(())
    }

    /// One `\r\n`-terminated line of the SASL exchange, read byte by byte: nothing after it may be
    /// consumed, the binary protocol follows.
    fn read_line(&mut self) -> std::io::Result<String> {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if line.len() > 512 {
                return Err(std::io::Error::other("authentication line too long"));
            }
            self.stream.read_exact(&mut b)?;
            line.push(b[0]);
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// Call a method and decode its reply as `R`. The body is a tuple of the arguments.
    fn call<B, R>(
        &mut self,
        dest: &str,
        path: &str,
        iface: &str,
        member: &str,
        body: &B,
    ) -> Result<R, CallError>
    where
        B: serde::Serialize + DynamicType,
        R: serde::de::DeserializeOwned + zvariant::Type,
    {
        let ctxt = Context::new_dbus(Endian::Little, 0);
        let body_bytes = zvariant::to_bytes(ctxt, body).map_err(wire)?;
        // A tuple's signature is `(…)`; a message body lists the arguments without the parentheses.
        let sig = body.signature().to_string_no_parens();
        self.serial = self.serial.wrapping_add(1).max(1);
        let serial = self.serial;
        let mut fields: Vec<(u8, Field<'_>)> = vec![
            (
                F_PATH,
                Field::Value(ObjectPath::try_from(path).map_err(wire)?.into()),
            ),
            (F_INTERFACE, Field::Value(iface.into())),
            (F_MEMBER, Field::Value(member.into())),
            (F_DESTINATION, Field::Value(dest.into())),
        ];
        if !sig.is_empty() {
            fields.push((F_SIGNATURE, Field::BodySignature(&sig)));
        }
        let header = (
            b'l',
            METHOD_CALL,
            0u8,
            1u8,
            body_bytes.len() as u32,
            serial,
            fields,
        );
        let mut msg = zvariant::to_bytes(ctxt, &header).map_err(wire)?.to_vec();
        msg.resize(msg.len().next_multiple_of(8), 0);
        msg.extend_from_slice(&body_bytes);
        self.stream.write_all(&msg).map_err(wire)?;
        let (kind, fields, body, ctxt) = self.reply_to(serial)?;
        if kind == ERROR {
            let name = string_field(&fields, F_ERROR_NAME).unwrap_or_default();
            let text = Data::new(&body[..], ctxt)
                .deserialize::<(String,)>()
                .map(|((t,), _)| t)
                .unwrap_or_default();
            return Err(CallError { name, text });
        }
        Data::new(&body[..], ctxt)
            .deserialize::<R>()
            .map(|(r, _)| r)
            .map_err(|e| wire(format!("{iface}.{member}: the reply does not decode: {e}")))
    }

    /// Read messages until the return or error for `serial` (signals and others are skipped).
    #[allow(clippy::type_complexity)]
    fn reply_to(
        &mut self,
        serial: u32,
    ) -> Result<(u8, Vec<(u8, OwnedValue)>, Vec<u8>, Context), CallError> {
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            if Instant::now() >= deadline {
                return Err(wire(format!("no reply in {} s", CALL_TIMEOUT.as_secs())));
            }
            let mut fixed = [0u8; 16];
            self.stream.read_exact(&mut fixed).map_err(wire)?;
            let endian = match fixed[0] {
                b'l' => Endian::Little,
                b'B' => Endian::Big,
                other => return Err(wire(format!("bad endianness byte {other:#x}"))),
            };
            let u32_at = |i: usize| {
                let b = [fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]];
                match endian {
                    Endian::Little => u32::from_le_bytes(b),
                    Endian::Big => u32::from_be_bytes(b),
                }
            };
            let body_len = u32_at(4) as usize;
            let fields_len = u32_at(12) as usize;
            let header_len = (16 + fields_len).next_multiple_of(8);
            if header_len + body_len > MAX_MESSAGE {
                return Err(wire(format!(
                    "a {} byte message is too big",
                    header_len + body_len
                )));
            }
            let mut rest = vec![0u8; header_len - 16 + body_len];
            self.stream.read_exact(&mut rest).map_err(wire)?;
            let mut header = fixed.to_vec();
            header.extend_from_slice(&rest[..header_len - 16]);
            let ctxt = Context::new_dbus(endian, 0);
            let ((_, kind, _, _, _, _, fields), _) = Data::new(&header[..], ctxt)
                .deserialize::<(u8, u8, u8, u8, u32, u32, Vec<(u8, OwnedValue)>)>()
                .map_err(|e| wire(format!("a message header does not decode: {e}")))?;
            let reply_serial = fields
                .iter()
                .find(|(code, _)| *code == F_REPLY_SERIAL)
                .and_then(|(_, v)| u32::try_from(v).ok());
            if (kind == METHOD_RETURN || kind == ERROR) && reply_serial == Some(serial) {
                let body = rest[header_len - 16..].to_vec();
                return Ok((kind, fields, body, ctxt));
            }
        }
    }

    fn manager<B, R>(&mut self, member: &str, body: &B) -> Result<R, CallError>
    where
        B: serde::Serialize + DynamicType,
        R: serde::de::DeserializeOwned + zvariant::Type,
    {
        self.call(DEST, PATH, MANAGER, member, body)
    }

    /// StartTransientUnit in "replace" mode; returns the job.
    pub fn start_transient_unit(
        &mut self,
        name: &str,
        props: &[Property],
    ) -> Result<OwnedObjectPath, CallError> {
        let props: Vec<(&str, zvariant::Value<'_>)> =
            props.iter().map(|(n, v)| (n.as_str(), encode(v))).collect();
        let aux: Vec<(&str, Vec<(&str, zvariant::Value<'_>)>)> = Vec::new();
        self.manager("StartTransientUnit", &(name, "replace", props, aux))
    }

    pub fn stop_unit(&mut self, name: &str) -> Result<OwnedObjectPath, CallError> {
        self.manager("StopUnit", &(name, "replace"))
    }

    pub fn reset_failed_unit(&mut self, name: &str) -> Result<(), CallError> {
        self.manager::<_, ()>("ResetFailedUnit", &(name,))
    }

    /// SetUnitProperties with runtime = true: the values last until the unit goes, as runc sets them.
    pub fn set_unit_properties(&mut self, name: &str, props: &[Property]) -> Result<(), CallError> {
        let props: Vec<(&str, zvariant::Value<'_>)> =
            props.iter().map(|(n, v)| (n.as_str(), encode(v))).collect();
        self.manager::<_, ()>("SetUnitProperties", &(name, true, props))
    }

    pub fn get_unit(&mut self, name: &str) -> Result<OwnedObjectPath, CallError> {
        self.manager("GetUnit", &(name,))
    }

    fn property(&mut self, path: &str, iface: &str, name: &str) -> Result<OwnedValue, CallError> {
        self.call(
            DEST,
            path,
            "org.freedesktop.DBus.Properties",
            "Get",
            &(iface, name),
        )
    }

    /// A string property of a unit object (`ActiveState`, `ControlGroup`…).
    pub fn unit_string(
        &mut self,
        unit: &str,
        iface: &str,
        name: &str,
    ) -> Result<String, CallError> {
        let v = self.property(unit, iface, name)?;
        String::try_from(v).map_err(|e| wire(format!("{iface}.{name}: {e}")))
    }

    /// Wait until `job` has left systemd's queue. A finished job's object is gone, so each poll asks for
    /// its State until the object no longer exists; `false` when it was still queued at the timeout.
    pub fn wait_job(&mut self, job: &str) -> bool {
        let deadline = Instant::now() + JOB_TIMEOUT;
        let mut pause = Duration::from_micros(200);
        loop {
            match self.property(job, "org.freedesktop.systemd1.Job", "State") {
                Err(e) if e.name != "connection" => return true,
                Err(_) => return false,
                Ok(_) => {}
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

fn string_field(fields: &[(u8, OwnedValue)], code: u8) -> Option<String> {
    fields
        .iter()
        .find(|(c, _)| *c == code)
        .and_then(|(_, v)| v.try_clone().ok())
        .and_then(|v| String::try_from(v).ok())
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

    #[test]
    fn only_unix_path_addresses_name_a_socket() {
        assert_eq!(
            socket_of("unix:path=/run/dbus/system_bus_socket"),
            Some("/run/dbus/system_bus_socket")
        );
        assert_eq!(
            socket_of("unix:guid=x,path=/run/user/1000/bus"),
            Some("/run/user/1000/bus")
        );
        assert_eq!(socket_of("tcp:host=localhost,port=1"), None);
    }

    /// A fake manager on a socketpair: answers one call with an object path, in a reply signed by a
    /// well-known sender (as systemd signs them on its private socket); hands back the raw header
    /// and body it received.
    fn fake_manager(mut theirs: UnixStream) -> std::thread::JoinHandle<(Vec<u8>, Vec<u8>)> {
        std::thread::spawn(move || {
            let mut fixed = [0u8; 16];
            theirs.read_exact(&mut fixed).unwrap();
            let body_len = u32::from_le_bytes(fixed[4..8].try_into().unwrap()) as usize;
            let serial = u32::from_le_bytes(fixed[8..12].try_into().unwrap());
            let fields_len = u32::from_le_bytes(fixed[12..16].try_into().unwrap()) as usize;
            let header_len = (16 + fields_len).next_multiple_of(8);
            let mut rest = vec![0u8; header_len - 16 + body_len];
            theirs.read_exact(&mut rest).unwrap();
            let mut header = fixed.to_vec();
            header.extend_from_slice(&rest[..header_len - 16]);
            let body = rest[header_len - 16..].to_vec();
            let ctxt = Context::new_dbus(Endian::Little, 0);
            let path = ObjectPath::try_from("/org/freedesktop/systemd1/unit/x_2escope").unwrap();
            let reply_body = zvariant::to_bytes(ctxt, &(path,)).unwrap();
            let fields: Vec<(u8, zvariant::Value<'_>)> = vec![
                (F_REPLY_SERIAL, serial.into()),
                (7, DEST.into()), // SENDER: a well-known name
                (F_SIGNATURE, Signature::try_from("o").unwrap().into()),
            ];
            let reply = (
                b'l',
                METHOD_RETURN,
                0u8,
                1u8,
                reply_body.len() as u32,
                9u32,
                fields,
            );
            let mut msg = zvariant::to_bytes(ctxt, &reply).unwrap().to_vec();
            msg.resize(msg.len().next_multiple_of(8), 0);
            msg.extend_from_slice(&reply_body);
            theirs.write_all(&msg).unwrap();
            (header, body)
        })
    }

    /// The SIGNATURE header field as it is on the wire: code 8, variant type `g`, length, text.
    fn signature_field(sig: &str) -> Vec<u8> {
        let mut v = vec![F_SIGNATURE, 1, b'g', 0, sig.len() as u8];
        v.extend_from_slice(sig.as_bytes());
        v.push(0);
        v
    }

    fn bus_on(stream: UnixStream) -> Bus {
        Bus {
            stream,
            serial: 0,
            name: "test".into(),
        }
    }

    #[test]
    fn a_call_round_trips_through_the_wire_format() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let server = fake_manager(theirs);
        let unit = bus_on(ours)
            .get_unit("x.scope")
            .map_err(|e| e.to_string())
            .unwrap();
        assert_eq!(unit.as_str(), "/org/freedesktop/systemd1/unit/x_2escope");
        let (header, body) = server.join().unwrap();
        let ctxt = Context::new_dbus(Endian::Little, 0);
        let ((name,), _) = Data::new(&body[..], ctxt)
            .deserialize::<(String,)>()
            .unwrap();
        assert_eq!(name, "x.scope");
        let want = signature_field("s");
        assert!(header.windows(want.len()).any(|w| w == &want[..]));
    }

    /// systemd refuses a call whose body signature has a struct's parentheses around the arguments.
    #[test]
    fn a_call_of_several_arguments_is_signed_without_parentheses() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let server = fake_manager(theirs);
        let props = [("Delegate".to_string(), Value::Bool(true))];
        let job = bus_on(ours).start_transient_unit("x.scope", &props);
        assert!(job.is_ok());
        let (header, _) = server.join().unwrap();
        let want = signature_field("ssa(sv)a(sa(sv))");
        assert!(
            header.windows(want.len()).any(|w| w == &want[..]),
            "{:?}",
            String::from_utf8_lossy(&header)
        );
    }

    /// A server that, like systemd's, wants `BEGIN` in the same read as `AUTH` and answers `OK` only
    /// then: a client that waited for `OK` before sending `BEGIN` would hang here (until the timeout).
    #[test]
    fn begin_is_sent_with_auth_before_the_servers_ok() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        theirs
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let server = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            while !got.ends_with(b"BEGIN\r\n") {
                match theirs.read(&mut buf) {
                    Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                    _ => return got,
                }
            }
            theirs.write_all(b"OK 0123456789abcdef\r\n").unwrap();
            got
        });
        let mut bus = bus_on(ours);
        bus.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        bus.authenticate(0).unwrap();
        assert_eq!(server.join().unwrap(), b"\0AUTH EXTERNAL 30\r\nBEGIN\r\n");
    }
}
