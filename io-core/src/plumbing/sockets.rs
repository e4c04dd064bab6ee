//! Opening an endpoint's sockets: the client's socket (and its group socket in multicast
//! mode), the server's listening socket (and its reply socket), and group membership.
//!
//! Sockets are opened here as plain `std::net::UdpSocket`s; each runtime then wraps them for
//! its own loop (non-blocking under `mio`, or `async_io::Async`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::{ClientConfig, ReplySocket, ServerConfig};

/// The sockets one endpoint receives on, and which one it sends from.
#[derive(Debug)]
pub struct Sockets {
    /// The main socket: the client's own socket, or the server's listening socket. It
    /// receives, and sends unless `send_from_secondary` is set.
    pub primary: UdpSocket,
    /// A second receiving socket: a multicast client's group socket (receive only), or a
    /// server's reply socket.
    pub secondary: Option<UdpSocket>,
    /// Everything is sent from `secondary` (a server's reply socket). Never set without one.
    pub send_from_secondary: bool,
}

impl Sockets {
    /// The socket datagrams go out from.
    pub fn output(&self) -> &UdpSocket {
        match &self.secondary {
            Some(s) if self.send_from_secondary => s,
            _ => &self.primary,
        }
    }
}

/// Joins multicast `group` on `socket`, on the interface the routing table picks.
///
/// # Errors
/// The socket's error (for example, no route for multicast).
pub fn join(socket: &UdpSocket, group: IpAddr) -> io::Result<()> {
    match group {
        IpAddr::V4(g) => socket.join_multicast_v4(&g, &Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(g) => socket.join_multicast_v6(&g, 0),
    }
}

/// Leaves multicast `group` on `socket`.
///
/// # Errors
/// The socket's error (for example, not a member).
pub fn leave(socket: &UdpSocket, group: IpAddr) -> io::Result<()> {
    match group {
        IpAddr::V4(g) => socket.leave_multicast_v4(&g, &Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(g) => socket.leave_multicast_v6(&g, 0),
    }
}

/// The client's sockets for a server (or group, or broadcast address) at `server`.
pub(crate) fn client(server: SocketAddr, config: &ClientConfig) -> io::Result<Sockets> {
    let bind = config
        .bind
        .unwrap_or_else(|| SocketAddr::new(unspecified(server.ip()), 0));
    let socket = UdpSocket::bind(bind)?;
    recv_buffer(&socket, config.recv_buffer);
    let mut group = None;
    match server.ip() {
        IpAddr::V4(v4) if v4.is_broadcast() => socket.set_broadcast(true)?,
        IpAddr::V4(v4) if v4.is_multicast() => {
            socket.set_multicast_ttl_v4(config.multicast_ttl)?;
            socket.set_multicast_loop_v4(true)?;
            group = Some(group_socket(server)?);
        }
        IpAddr::V6(v6) if v6.is_multicast() => {
            socket.set_multicast_loop_v6(true)?;
            group = Some(group_socket(server)?);
        }
        _ => {}
    }
    Ok(Sockets {
        primary: socket,
        secondary: group,
        send_from_secondary: false,
    })
}

/// What [`server`] opened, and the group it joined.
#[derive(Debug)]
pub(crate) struct ServerSockets {
    pub(crate) sockets: Sockets,
    pub(crate) group: Option<IpAddr>,
}

/// The server's listening socket on `addr` and, if configured or needed, its reply socket.
pub(crate) fn server(addr: SocketAddr, config: &ServerConfig) -> io::Result<ServerSockets> {
    let bound_to_group = addr.ip().is_multicast();
    let group = config.multicast.or(bound_to_group.then_some(addr.ip()));
    // Other servers and multicast clients on this host may listen on the same port.
    let primary = bind(addr, group.is_some())?;
    if let Some(g) = group {
        join(&primary, g)?;
    }
    let reply = match config.reply_socket {
        ReplySocket::Auto if bound_to_group => Some(ephemeral_for(addr)),
        ReplySocket::Auto => None,
        ReplySocket::Bind(a) => Some(a),
        ReplySocket::Ephemeral => Some(ephemeral_for(addr)),
    };
    let secondary = reply.map(UdpSocket::bind).transpose()?;
    for s in std::iter::once(&primary).chain(&secondary) {
        recv_buffer(s, config.recv_buffer);
    }
    Ok(ServerSockets {
        sockets: Sockets {
            send_from_secondary: secondary.is_some(),
            primary,
            secondary,
        },
        group,
    })
}

/// Asks the kernel for a receive buffer of `bytes` on `socket`, if any. Best effort: the
/// kernel caps it at `net.core.rmem_max`, and a refusal only leaves the default.
fn recv_buffer(socket: &UdpSocket, bytes: Option<usize>) {
    let Some(bytes) = bytes else { return };
    if let Err(e) = socket2::SockRef::from(socket).set_recv_buffer_size(bytes) {
        tracing::debug!(error = %e, bytes, "cannot set the socket's receive buffer");
    }
}

/// A socket that receives what is sent to `group` (a multicast address with the servers'
/// port): server announcements, for a multicast client.
///
/// Bound to the group address itself where the system allows it (Linux), so it gets only
/// the group's traffic and never unicast meant for a server on the same port; elsewhere to
/// the unspecified address. It shares the port (`SO_REUSEADDR`) with the servers and other
/// clients of the group on this host.
fn group_socket(group: SocketAddr) -> io::Result<UdpSocket> {
    let socket = match bind(group, true) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => {
            bind(SocketAddr::new(unspecified(group.ip()), group.port()), true)?
        }
        Err(e) => return Err(e),
    };
    join(&socket, group.ip())?;
    Ok(socket)
}

/// Binds a socket that may receive multicast on `addr`; with `reuse`, with `SO_REUSEADDR`, so
/// that several group members on one host can share a port.
///
/// On Linux a socket bound to the unspecified address otherwise receives the traffic of every
/// group that *any* socket of the host joined (`IP_MULTICAST_ALL`), so leaving a group would
/// not stop it while a client on the same host is a member; the option is turned off, and
/// the socket hears only the groups it joined itself.
fn bind(addr: SocketAddr, reuse: bool) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse {
        socket.set_reuse_address(true)?;
    }
    #[cfg(target_os = "linux")]
    {
        let only_joined = match addr {
            SocketAddr::V4(_) => socket.set_multicast_all_v4(false),
            SocketAddr::V6(_) => socket.set_multicast_all_v6(false),
        };
        // Older kernels lack the IPv6 option; the socket still works, less strictly.
        if let Err(e) = only_joined {
            tracing::debug!(error = %e, "cannot limit the socket to its own groups");
        }
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Where a reply socket for a server listening on `listen` binds: the listening IP with port
/// 0, or the unspecified address when that IP is a group or unspecified.
fn ephemeral_for(listen: SocketAddr) -> SocketAddr {
    let ip = listen.ip();
    if ip.is_multicast() || ip.is_unspecified() {
        SocketAddr::new(unspecified(ip), 0)
    } else {
        SocketAddr::new(ip, 0)
    }
}

fn unspecified(family: IpAddr) -> IpAddr {
    match family {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_socket_binds_where_it_can_send_from() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(ephemeral_for(a("127.0.0.1:1783")), a("127.0.0.1:0"));
        assert_eq!(ephemeral_for(a("239.1.2.3:1783")), a("0.0.0.0:0"));
        assert_eq!(ephemeral_for(a("0.0.0.0:1783")), a("0.0.0.0:0"));
        assert_eq!(ephemeral_for(a("[ff02::1]:1783")), a("[::]:0"));
    }

    #[test]
    fn an_explicit_reply_socket_sends_everything() {
        let config = ServerConfig::new().reply_socket(ReplySocket::Ephemeral);
        let opened = server("127.0.0.1:0".parse().unwrap(), &config).unwrap();
        let s = opened.sockets;
        let reply = s.secondary.as_ref().unwrap().local_addr().unwrap();
        assert_eq!(s.output().local_addr().unwrap(), reply);
        assert_ne!(reply.port(), s.primary.local_addr().unwrap().port());
        assert!(opened.group.is_none());
        let plain = server("127.0.0.1:0".parse().unwrap(), &ServerConfig::new()).unwrap();
        assert!(plain.sockets.secondary.is_none());
        assert_eq!(
            plain.sockets.output().local_addr().unwrap(),
            plain.sockets.primary.local_addr().unwrap()
        );
    }

    #[test]
    fn sockets_ask_for_a_larger_receive_buffer_unless_told_not_to() {
        let size = |s: &UdpSocket| socket2::SockRef::from(s).recv_buffer_size().unwrap();
        let any = "127.0.0.1:0".parse().unwrap();
        // The kernel grants at most its rmem_max, but anything asked at or above the default
        // comes back larger than the default (Linux doubles it for its bookkeeping).
        let system = size(&UdpSocket::bind(any).unwrap());
        let config = ServerConfig::new().reply_socket(ReplySocket::Ephemeral);
        let s = server(any, &config).unwrap().sockets;
        assert!(
            size(&s.primary) > system,
            "{} <= {system}",
            size(&s.primary)
        );
        assert!(size(s.secondary.as_ref().unwrap()) > system);
        let s = server(any, &ServerConfig::new().recv_buffer(None))
            .unwrap()
            .sockets;
        assert_eq!(size(&s.primary), system);

        let client_config = |c: ClientConfig| client("127.0.0.1:1783".parse().unwrap(), &c);
        let psk = pavillion_proto::crypto::Psk::from_bytes([1; 32]);
        let c = ClientConfig::psk(pavillion_proto::ClientId([1; 16]), psk);
        assert!(size(&client_config(c.clone()).unwrap().primary) > system);
        let plain = client_config(c.recv_buffer(None)).unwrap();
        assert_eq!(size(&plain.primary), system);
    }
}
