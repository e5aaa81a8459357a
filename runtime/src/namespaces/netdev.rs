//! `linux.netDevices`: move named host interfaces into the container's network namespace, renamed to `name`
//! when given, keeping their permanent global addresses and their up state (moving a device between namespaces
//! drops both). Done by the parent right after the clone (the namespace exists, nothing runs in it yet) over
//! rtnetlink; a failure moves back what was already moved.
//!
//! On delete gruntime does nothing to the devices: when the container's network namespace goes away the kernel
//! returns physical devices to the initial namespace and destroys virtual ones (veth, dummy…), as the spec
//! describes.

use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

pub const SUPPORTED: bool = true;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
const IFA_F_PERMANENT: u32 = 0x80;
const RT_SCOPE_UNIVERSE: u8 = 0;
const IFF_UP: u32 = 0x1;

/// (host name, name in the container) for each device, in a stable order.
fn devices(spec: &Spec) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .into_iter()
        .flatten()
        .map(|(host, d)| {
            let inside = d
                .name()
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| host.clone());
            (host.clone(), inside)
        })
        .collect();
    v.sort();
    v
}

/// An interface name the kernel accepts: 1..15 bytes, no '/', ':' or whitespace, not "." or "..".
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() < libc::IFNAMSIZ
        && n != "."
        && n != ".."
        && !n.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}

pub fn check(spec: &Spec) -> std::result::Result<(), String> {
    let devs = devices(spec);
    if devs.is_empty() {
        return Ok(());
    }
    let has_netns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|v| v.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
    if !has_netns {
        return Err(
            "linux.netDevices: needs a network namespace of the container's own (it would move host devices nowhere)"
                .into(),
        );
    }
    let mut seen = HashSet::new();
    for (host, inside) in &devs {
        if !valid_name(host) {
            return Err(format!(
                "linux.netDevices.{host}: not a valid interface name"
            ));
        }
        if !valid_name(inside) {
            return Err(format!(
                "linux.netDevices.{host}.name {inside:?}: not a valid interface name"
            ));
        }
        if !seen.insert(inside.clone()) {
            return Err(format!(
                "linux.netDevices.{host}.name {inside:?}: two devices get the same name"
            ));
        }
    }
    Ok(())
}

/// A device's state on the host, to rebuild in the container.
struct HostDevice {
    host: String,
    inside: String,
    index: i32,
    up: bool,
    addrs: Vec<Addr>,
}

/// One permanent global address: the ifaddrmsg fields and the attributes to re-create it with.
struct Addr {
    family: u8,
    prefixlen: u8,
    attrs: Vec<(u16, Vec<u8>)>,
}

/// Moved devices; dropping this without `keep` moves them back (create failed after the move).
pub struct Moved {
    done: Vec<HostDevice>,
    host_ns: Option<OwnedFd>,
    inside: Option<Netlink>,
}

impl Moved {
    pub fn keep(mut self) {
        self.done.clear();
    }
}

impl Drop for Moved {
    fn drop(&mut self) {
        let (Some(host_ns), Some(inside)) = (&self.host_ns, &self.inside) else {
            return;
        };
        let Ok(host) = Netlink::open() else { return };
        for d in self.done.drain(..).rev() {
            if let Ok((idx, _)) = inside.link_by_name(&d.inside) {
                if inside.move_link(idx, host_ns.as_fd(), &d.host).is_ok() {
                    let _ = restore(&host, &d.host, &d);
                }
            }
        }
    }
}

/// Parent side, after the clone: move every `linux.netDevices` entry into the container's namespace.
pub fn move_all(spec: &Spec, init_pid: i32) -> Result<Moved> {
    let mut moved = Moved {
        done: Vec::new(),
        host_ns: None,
        inside: None,
    };
    let devs = devices(spec);
    if devs.is_empty() {
        return Ok(moved);
    }
    let field = |host: &str| format!("linux.netDevices.{host}");
    let host = Netlink::open().map_err(|e| Error::sys("linux.netDevices: open rtnetlink", e))?;
    let target = target_netns(spec, init_pid)?;
    let host_ns = open(
        "/proc/self/ns/net",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("linux.netDevices: open /proc/self/ns/net", e))?;
    let inside = Netlink::open_in(target.as_fd(), host_ns.as_fd())
        .map_err(|e| Error::sys("linux.netDevices: open rtnetlink in the container", e))?;
    moved.host_ns = Some(host_ns);
    let inside = &*moved.inside.insert(inside);
    for (h, i) in devs {
        let (index, flags) = host
            .link_by_name(&h)
            .map_err(|e| Error::sys(format!("{}: find the host device", field(&h)), e))?;
        let addrs = host
            .permanent_addrs(index)
            .map_err(|e| Error::sys(format!("{}: read its addresses", field(&h)), e))?;
        let dev = HostDevice {
            host: h.clone(),
            inside: i.clone(),
            index,
            up: flags & IFF_UP != 0,
            addrs,
        };
        // The kernel moves first and renames after: a taken name would leave the device moved but unrenamed.
        if inside.link_by_name(&i).is_ok() {
            return Err(Error::sys(
                format!("{}: move into the container as {i}", field(&h)),
                nix::errno::Errno::EEXIST,
            ));
        }
        if let Err(e) = host.move_link(dev.index, target.as_fd(), &i) {
            // Whatever half of the move happened is undone by the guard below.
            if let Ok((idx, _)) = inside.link_by_name(&h) {
                let host_ns = moved.host_ns.as_ref().expect("set above");
                let _ = inside.move_link(idx, host_ns.as_fd(), &h);
                let _ = restore(&host, &h, &dev);
            }
            return Err(Error::sys(
                format!("{}: move into the container as {i}", field(&h)),
                e,
            ));
        }
        let restored = restore(inside, &i, &dev);
        moved.done.push(dev);
        restored.map_err(|e| {
            Error::sys(
                format!("{}: restore its addresses and state as {i}", field(&h)),
                e,
            )
        })?;
    }
    Ok(moved)
}

/// Bring `lo` up in the network namespace of `pid`. A restore needs it: CRIU recreates the container's
/// new network namespace empty (see `criu::empty_ns_mask`), with `lo` down, and a TCP connection over
/// loopback kept by `--tcp-established` cannot be reconnected then ("Network is unreachable").
pub fn loopback_up(pid: i32) -> Result<()> {
    let what = |step: &str| format!("bring lo up in the network namespace of {pid}: {step}");
    let open_ns = |path: String| {
        open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys(what(&format!("open {path}")), e))
    };
    let target = open_ns(format!("/proc/{pid}/ns/net"))?;
    let home = open_ns("/proc/self/ns/net".to_string())?;
    let nl = Netlink::open_in(target.as_fd(), home.as_fd())
        .map_err(|e| Error::sys(what("open rtnetlink"), e))?;
    lo_up(&nl).map_err(|e| Error::sys(what("set it up"), e))
}

/// Bring `lo` up in the caller's own network namespace: the init does it in a network namespace of
/// its own, as runc and crun do (a new namespace's `lo` is down, and so is everything on 127.0.0.1).
pub fn loopback_up_here() -> nix::Result<()> {
    lo_up(&Netlink::open()?)
}

fn lo_up(nl: &Netlink) -> nix::Result<()> {
    let (index, _) = nl.link_by_name("lo")?;
    nl.set_up(index)
}

/// The container's network namespace: joined by path, or the new one of the init.
fn target_netns(spec: &Spec, init_pid: i32) -> Result<OwnedFd> {
    let path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|v| v.iter().find(|n| n.typ() == LinuxNamespaceType::Network))
        .and_then(|n| n.path().clone())
        .unwrap_or_else(|| PathBuf::from(format!("/proc/{init_pid}/ns/net")));
    open(&path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| {
        Error::sys(
            format!(
                "linux.netDevices: open network namespace {}",
                path.display()
            ),
            e,
        )
    })
}

/// Addresses back on, then the link up if it was (the move took both away).
fn restore(nl: &Netlink, name: &str, d: &HostDevice) -> nix::Result<()> {
    let (index, _) = nl.link_by_name(name)?;
    for a in &d.addrs {
        nl.add_addr(index, a)?;
    }
    if d.up {
        nl.set_up(index)?;
    }
    Ok(())
}

/// A NETLINK_ROUTE socket (bound to the network namespace it was created in).
struct Netlink {
    fd: OwnedFd,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn push_attr(buf: &mut Vec<u8>, typ: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&typ.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(align4(buf.len()), 0);
}

fn ifinfomsg(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut b = vec![libc::AF_UNSPEC as u8, 0, 0, 0];
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&change.to_ne_bytes());
    b
}

/// (type, payload) of each rtattr in `buf`.
fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let typ = u16::from_ne_bytes([buf[2], buf[3]]);
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((typ, &buf[4..len]));
        buf = &buf[align4(len).min(buf.len())..];
    }
    out
}

impl Netlink {
    fn open() -> nix::Result<Netlink> {
        // SAFETY: plain socket(2); the fd is new and ours.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        let fd = nix::errno::Errno::result(fd)?;
        Ok(Netlink {
            // SAFETY: a fresh descriptor nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// A socket in `ns`: enter it, open, come back to `home` (gruntime is single-threaded).
    fn open_in(ns: BorrowedFd, home: BorrowedFd) -> nix::Result<Netlink> {
        nix::sched::setns(ns, CloneFlags::CLONE_NEWNET)?;
        let nl = Netlink::open();
        nix::sched::setns(home, CloneFlags::CLONE_NEWNET)
            .expect("return to the runtime's network namespace");
        nl
    }

    /// Send one request and collect the payloads of its answers (after the nlmsghdr) until ACK/DONE.
    fn request(&self, typ: u16, flags: u16, body: &[u8]) -> nix::Result<Vec<(u16, Vec<u8>)>> {
        let mut msg = Vec::with_capacity(16 + body.len());
        msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&typ.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        msg.extend_from_slice(&1u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: msg is a valid buffer of the length passed; the kernel address is the zeroed default.
        let r = unsafe {
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as u16;
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        nix::errno::Errno::result(r)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            // SAFETY: buf is writable for its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                )
            };
            let n = nix::errno::Errno::result(n)? as usize;
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
                let mtype = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                if len < 16 || off + len > n {
                    return Err(nix::errno::Errno::EBADMSG);
                }
                let payload = &buf[off + 16..off + len];
                match mtype {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let code = i32::from_ne_bytes(payload[0..4].try_into().unwrap());
                        if code == 0 {
                            return Ok(out);
                        }
                        return Err(nix::errno::Errno::from_raw(-code));
                    }
                    t => out.push((t, payload.to_vec())),
                }
                off += align4(len);
            }
            // A non-dump request is answered by one message (or an ACK, handled above).
            if flags & NLM_F_DUMP == 0 && !out.is_empty() {
                return Ok(out);
            }
        }
    }

    /// (ifindex, flags) of the device called `name` in this socket's namespace.
    fn link_by_name(&self, name: &str) -> nix::Result<(i32, u32)> {
        let mut body = ifinfomsg(0, 0, 0);
        let mut cname = name.as_bytes().to_vec();
        cname.push(0);
        push_attr(&mut body, IFLA_IFNAME, &cname);
        let answers = self.request(RTM_GETLINK, 0, &body)?;
        let (_, p) = answers
            .iter()
            .find(|(t, p)| *t == RTM_NEWLINK && p.len() >= 16)
            .ok_or(nix::errno::Errno::ENODEV)?;
        let index = i32::from_ne_bytes(p[4..8].try_into().unwrap());
        let flags = u32::from_ne_bytes(p[8..12].try_into().unwrap());
        Ok((index, flags))
    }

    /// The permanent, global-scope addresses of device `index`.
    fn permanent_addrs(&self, index: i32) -> nix::Result<Vec<Addr>> {
        let body = [0u8; 8]; // struct ifaddrmsg, AF_UNSPEC: every family
        let mut out = Vec::new();
        for (t, p) in self.request(RTM_GETADDR, NLM_F_DUMP, &body)? {
            if t != RTM_NEWADDR || p.len() < 8 {
                continue;
            }
            let (family, prefixlen, flags8, scope) = (p[0], p[1], p[2], p[3]);
            let idx = u32::from_ne_bytes(p[4..8].try_into().unwrap()) as i32;
            if idx != index || scope != RT_SCOPE_UNIVERSE {
                continue;
            }
            let a = attrs(&p[8..]);
            let flags = a
                .iter()
                .find(|(t, d)| *t == IFA_FLAGS && d.len() == 4)
                .map(|(_, d)| u32::from_ne_bytes((*d).try_into().unwrap()))
                .unwrap_or(flags8 as u32);
            if flags & IFA_F_PERMANENT == 0 {
                continue;
            }
            let keep = a
                .iter()
                .filter(|(t, _)| matches!(*t, IFA_ADDRESS | IFA_LOCAL | IFA_BROADCAST))
                .map(|(t, d)| (*t, d.to_vec()))
                .collect();
            out.push(Addr {
                family,
                prefixlen,
                attrs: keep,
            });
        }
        Ok(out)
    }

    /// Move device `index` into namespace `ns`, named `name` there.
    fn move_link(&self, index: i32, ns: BorrowedFd, name: &str) -> nix::Result<()> {
        let mut body = ifinfomsg(index, 0, 0);
        push_attr(
            &mut body,
            IFLA_NET_NS_FD,
            &(ns.as_raw_fd() as u32).to_ne_bytes(),
        );
        let mut cname = name.as_bytes().to_vec();
        cname.push(0);
        push_attr(&mut body, IFLA_IFNAME, &cname);
        self.request(RTM_NEWLINK, NLM_F_ACK, &body).map(drop)
    }

    fn add_addr(&self, index: i32, a: &Addr) -> nix::Result<()> {
        let mut body = vec![a.family, a.prefixlen, 0, RT_SCOPE_UNIVERSE];
        body.extend_from_slice(&(index as u32).to_ne_bytes());
        for (t, d) in &a.attrs {
            push_attr(&mut body, *t, d);
        }
        self.request(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &body)
            .map(drop)
    }

    fn set_up(&self, index: i32) -> nix::Result<()> {
        let body = ifinfomsg(index, IFF_UP, IFF_UP);
        self.request(RTM_NEWLINK, NLM_F_ACK, &body).map(drop)
    }
}
