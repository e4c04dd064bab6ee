//! The segment side of a relay on Linux: the sockets that capture the broadcast and multicast
//! datagrams of the carried ports on one interface, and the ways to emit what the relay hands
//! back (from the mesh socket, or with the original source through a raw socket).
//!
//! Capture binds one socket per (destination, port) to the destination address itself, the
//! interface's broadcast address, `255.255.255.255` or a group, with `SO_REUSEADDR` and
//! `SO_REUSEPORT` and `SO_BINDTODEVICE`. The kernel delivers a datagram only to sockets bound
//! to its destination (or the wildcard), so each socket learns the datagram's scope from its
//! own binding, unicast never reaches it (so a relay never steals a local application's
//! unicast traffic), and applications that bind the same port still get every broadcast.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

use pavillion_proto::endpoint::Scope;
use socket2::{Domain, Protocol, Socket, Type};

/// An interface's IPv4 address, network and broadcast address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Its name, as `ip link` shows it.
    pub name: String,
    /// Its first IPv4 address.
    pub addr: Ipv4Addr,
    /// The prefix length of that address's network.
    pub prefix: u8,
    /// The network's broadcast address.
    pub broadcast: Ipv4Addr,
}

impl Interface {
    /// Looks `name` up; an interface without an IPv4 address is `NotFound`.
    pub fn lookup(name: &str) -> io::Result<Interface> {
        interfaces()?
            .into_iter()
            .find(|i| i.name == name)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no interface {name} with an IPv4 address"),
                )
            })
    }

    /// The first interface that is up, not loopback, and has an IPv4 address.
    pub fn default_interface() -> io::Result<Interface> {
        interfaces()?
            .into_iter()
            .find(|i| !i.addr.is_loopback())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "no interface that is up, not loopback and has an IPv4 address",
                )
            })
    }

    /// The interface's IPv4 network as `10.1.1.0/24`: the default segment name.
    pub fn network(&self) -> String {
        format!("{}/{}", network_of(self.addr, self.prefix), self.prefix)
    }
}

/// `addr` with the host bits of a `/prefix` network cleared.
pub fn network_of(addr: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    Ipv4Addr::from(u32::from(addr) & mask)
}

/// The broadcast address of `addr`'s `/prefix` network.
pub fn broadcast_of(addr: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    Ipv4Addr::from(u32::from(addr) | !mask)
}

/// Every up interface with an IPv4 address (its first one), in the kernel's order.
/// `getifaddrs` through `nix`: std has no interface listing and the workspace forbids the
/// `unsafe` a direct `libc` call needs.
fn interfaces() -> io::Result<Vec<Interface>> {
    use nix::net::if_::InterfaceFlags;
    let mut out: Vec<Interface> = Vec::new();
    for a in nix::ifaddrs::getifaddrs().map_err(io::Error::from)? {
        if !a.flags.contains(InterfaceFlags::IFF_UP)
            || out.iter().any(|i| i.name == a.interface_name)
        {
            continue;
        }
        let Some(addr) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) else {
            continue;
        };
        let addr = addr.ip();
        let prefix = a
            .netmask
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map_or(32, |m| u32::from(m.ip()).count_ones() as u8);
        let broadcast = a
            .broadcast
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map_or_else(|| broadcast_of(addr, prefix), |b| b.ip());
        out.push(Interface {
            name: a.interface_name,
            addr,
            prefix,
            broadcast,
        });
    }
    // Loopback last, so that "the first" is never it when another exists.
    out.sort_by_key(|i| i.addr.is_loopback());
    Ok(out)
}

/// One capture socket: what it is bound to tells the scope of what it receives.
#[derive(Debug)]
pub struct CaptureSocket {
    /// The socket, non-blocking.
    pub socket: UdpSocket,
    /// Broadcast, or multicast to which group.
    pub scope: Scope,
    /// The carried port.
    pub port: u16,
}

/// Opens the capture sockets for `ports` and `groups` on `interface`: for each port, one
/// bound to the interface's broadcast address, one to `255.255.255.255`, and one per group
/// (joined on the interface).
pub fn capture_sockets(
    interface: &Interface,
    ports: &[u16],
    groups: &[Ipv4Addr],
) -> io::Result<Vec<CaptureSocket>> {
    let mut out = Vec::new();
    for &port in ports {
        let mut dests = vec![interface.broadcast];
        if interface.broadcast != Ipv4Addr::BROADCAST {
            dests.push(Ipv4Addr::BROADCAST);
        }
        for d in dests {
            out.push(CaptureSocket {
                socket: capture_socket(&interface.name, SocketAddrV4::new(d, port), None)?,
                scope: Scope::Broadcast,
                port,
            });
        }
        for &g in groups {
            out.push(CaptureSocket {
                socket: capture_socket(
                    &interface.name,
                    SocketAddrV4::new(g, port),
                    Some(interface.addr),
                )?,
                scope: Scope::Multicast(IpAddr::V4(g)),
                port,
            });
        }
    }
    Ok(out)
}

fn capture_socket(
    interface: &str,
    bind: SocketAddrV4,
    join_on: Option<Ipv4Addr>,
) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(interface.as_bytes()))?;
    if let Some(local) = join_on {
        s.join_multicast_v4(bind.ip(), &local)?;
        // Our own multicast emissions are recognised as echoes anyway, but need not loop.
        s.set_multicast_loop_v4(true)?;
    }
    s.bind(&SocketAddr::V4(bind).into())
        .map_err(|e| io::Error::new(e.kind(), format!("bind {bind} on {interface}: {e}")))?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Sends a datagram with a chosen IPv4 source address and port (a raw socket with
/// `IP_HDRINCL`), so that receivers reply to the original sender.
pub trait SourceEmitter: Send {
    /// Sends `payload` from `source` to `destination`.
    fn send(
        &self,
        source: SocketAddrV4,
        destination: SocketAddrV4,
        payload: &[u8],
    ) -> io::Result<()>;
}

/// Opens the raw emitter of `interface`, or the OS error (`EPERM` without `CAP_NET_RAW`) so
/// that the caller can fall back to emitting from the mesh socket.
pub fn open_source_emitter(interface: &str) -> io::Result<Box<dyn SourceEmitter>> {
    Ok(Box::new(crate::raw::RawEmitter::open(interface)?))
}

impl SourceEmitter for crate::raw::RawEmitter {
    fn send(
        &self,
        source: SocketAddrV4,
        destination: SocketAddrV4,
        payload: &[u8],
    ) -> io::Result<()> {
        crate::raw::RawEmitter::send(self, source, destination, payload)
    }
}

/// How a relay emits on its segment.
pub enum Emission {
    /// With the original source, through a raw socket.
    Keep(Box<dyn SourceEmitter>),
    /// From the mesh socket: replies go to the relay's mesh port (see docs/RELAY.md).
    Relay,
}

impl Emission {
    /// `keep` or `relay`, as `pav relay` prints it.
    pub fn name(&self) -> &'static str {
        match self {
            Emission::Keep(_) => "keep",
            Emission::Relay => "relay",
        }
    }
}

impl std::fmt::Debug for Emission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where an emission of `scope` goes on `interface`'s segment: the interface's broadcast
/// address or the group; `None` for an IPv6 group (not carried by this driver).
pub fn destination(interface: &Interface, scope: Scope, port: u16) -> Option<SocketAddrV4> {
    match scope {
        Scope::Broadcast => Some(SocketAddrV4::new(interface.broadcast, port)),
        Scope::Multicast(IpAddr::V4(g)) => Some(SocketAddrV4::new(g, port)),
        Scope::Multicast(IpAddr::V6(_)) => None,
    }
}

/// Prepares the mesh socket to emit on `interface` (broadcast allowed, multicast out of the
/// interface with TTL 1).
pub fn prepare_mesh_emission(mesh: &UdpSocket, interface: &Interface) -> io::Result<()> {
    let s = socket2::SockRef::from(mesh);
    s.set_broadcast(true)?;
    s.set_multicast_if_v4(&interface.addr)?;
    s.set_multicast_ttl_v4(1)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_broadcasts() {
        let a = Ipv4Addr::new(10, 1, 1, 7);
        assert_eq!(network_of(a, 24), Ipv4Addr::new(10, 1, 1, 0));
        assert_eq!(broadcast_of(a, 24), Ipv4Addr::new(10, 1, 1, 255));
        assert_eq!(network_of(a, 0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(broadcast_of(a, 32), a);
        let i = Interface {
            name: "x".into(),
            addr: a,
            prefix: 20,
            broadcast: broadcast_of(a, 20),
        };
        assert_eq!(i.network(), "10.1.0.0/20");
        assert_eq!(i.broadcast, Ipv4Addr::new(10, 1, 15, 255));
    }

    #[test]
    fn loopback_is_listed_and_never_the_default() {
        let lo = Interface::lookup("lo").expect("lo has 127.0.0.1");
        assert_eq!(lo.addr, Ipv4Addr::LOCALHOST);
        assert_eq!(lo.network(), "127.0.0.0/8");
        if let Ok(d) = Interface::default_interface() {
            assert!(!d.addr.is_loopback());
        }
    }
}
