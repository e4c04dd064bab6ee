//! Driving a client and a server from a hand-written `mio` poll loop, through the
//! [`Endpoint`] trait alone.
//!
//! `proto` does no I/O and reads no clock, so one thread with one poller can run any number of
//! endpoints: here a server and a client, each on its own non-blocking UDP socket on
//! loopback. The loop feeds each endpoint its datagrams and expired deadlines, sends what it
//! queues and hands its events to the application, then sleeps in `mio` until a socket is
//! readable or the earliest deadline passes. The client calls an RPC the server answers from
//! its events, and sends a reliable message.
//!
//! Run it with `cargo run -p pavillion-proto --example mio_endpoint`; `cargo test` runs it
//! too, and fails if the exchange does not happen within ten seconds.
// An example on std: std paths are the point here.
#![allow(clippy::std_instead_of_core)]

use std::io::{self, ErrorKind};
use std::net::SocketAddr;

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use pavillion_proto::crypto::Psk;
use pavillion_proto::endpoint::{
    Client, ClientConfig, ClientEvent, Endpoint, SendOptions, Server, ServerConfig, ServerEvent,
};
use pavillion_proto::wire::{RpcStatus, MAX_DATAGRAM};
use pavillion_proto::{ClientId, Duration, FunctionId, Instant};

/// The function the server offers: it answers with its argument in upper case.
const UPPER: FunctionId = FunctionId(401);
const SERVER: Token = Token(0);
const CLIENT: Token = Token(1);

/// Sends everything `endpoint` queued, then hands its events to `on_event`, until neither
/// has anything more (the application may queue more while it handles an event).
fn service<E: Endpoint>(
    endpoint: &mut E,
    socket: &UdpSocket,
    now: Instant,
    buf: &mut [u8],
    mut on_event: impl FnMut(&mut E, E::Event),
) {
    loop {
        let mut busy = false;
        while let Some(t) = endpoint.poll_transmit(now, buf) {
            busy = true;
            // A datagram that would block is lost like any other: the endpoint retransmits
            // what matters.
            let _ = socket.send_to(&buf[..t.len], t.destination);
        }
        while let Some(event) = endpoint.poll_event() {
            busy = true;
            on_event(endpoint, event);
        }
        if !busy {
            return;
        }
    }
}

/// Runs `endpoint`'s timers if its deadline has passed.
fn expire<E: Endpoint>(endpoint: &mut E, now: Instant) {
    if endpoint.poll_timeout().is_some_and(|t| t <= now) {
        endpoint.handle_timeout(now);
    }
}

/// Gives `endpoint` every datagram waiting on `socket`. `mio` reports readiness once per
/// change, so the socket is read until it would block.
fn receive<E: Endpoint>(endpoint: &mut E, socket: &UdpSocket, now: Instant, buf: &mut [u8]) {
    loop {
        match socket.recv_from(buf) {
            Ok((n, from)) => endpoint.handle_datagram(now, from, &buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            // ICMP errors surface here on some systems; the endpoint's timers deal with them.
            Err(_) => {}
        }
    }
}

/// A server and a client on loopback: an RPC answered and a reliable message delivered.
fn exchange() -> io::Result<()> {
    let id = ClientId(*b"mio-example-0001");
    let psk = Psk::from_bytes([0xa5; 32]);
    let loopback: SocketAddr = "127.0.0.1:0".parse().map_err(io::Error::other)?;
    let mut server_socket = UdpSocket::bind(loopback)?;
    let mut client_socket = UdpSocket::bind(loopback)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut server_socket, SERVER, Interest::READABLE)?;
    poll.registry()
        .register(&mut client_socket, CLIENT, Interest::READABLE)?;

    // One clock for both endpoints: `proto` takes time as an input, counted from any origin.
    let origin = std::time::Instant::now();
    let clock =
        || Instant::from_micros(u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX));

    // The seeds would come from OS randomness in a real program.
    let mut server = Server::new(ServerConfig::new([1; 32]).with_psk_client(id, psk.clone()));
    server.register_function(UPPER, "upper");
    let mut client = Client::new(ClientConfig::psk(
        id,
        psk,
        server_socket.local_addr()?,
        [2; 32],
    ));

    // Commands may be given before the session is up; the client sends them once it is.
    let now = clock();
    let call = client
        .call(now, UPPER, b"hello", Some(Duration::from_secs(5)))
        .map_err(|e| io::Error::other(format!("call: {e:?}")))?;
    let message = client
        .send_message(now, "kitchen", "light", b"on", SendOptions::reliable())
        .map_err(|e| io::Error::other(format!("send: {e:?}")))?;

    let (mut answered, mut delivered, mut server_got_message) = (None, false, false);
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut events = Events::with_capacity(16);
    let give_up = clock() + Duration::from_secs(10);
    loop {
        let now = clock();
        if now >= give_up {
            return Err(io::Error::new(
                ErrorKind::TimedOut,
                "no exchange within 10 s",
            ));
        }
        // Expired deadlines first, then what each endpoint has to send and to say.
        expire(&mut server, now);
        expire(&mut client, now);
        service(
            &mut server,
            &server_socket,
            now,
            &mut buf,
            |server, event| match event {
                // The server answers calls from its events.
                ServerEvent::RpcRequest(request) => {
                    let answer = request.args.to_ascii_uppercase();
                    let _ = server.respond(now, request.call, RpcStatus::OK, &answer);
                }
                ServerEvent::Message { message: m, .. } if m.name() == "light" => {
                    server_got_message = true
                }
                _ => {}
            },
        );
        service(
            &mut client,
            &client_socket,
            now,
            &mut buf,
            |_, event| match event {
                ClientEvent::Answered { call: c, data, .. } if c == call => answered = Some(data),
                ClientEvent::Delivered { id, .. } if id == message => delivered = true,
                _ => {}
            },
        );
        if answered.is_some() && delivered {
            break;
        }

        // Sleep until a socket is readable or the earliest deadline (or the time limit).
        let wake = [
            Endpoint::poll_timeout(&server),
            Endpoint::poll_timeout(&client),
            Some(give_up),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(give_up);
        poll.poll(&mut events, Some(wake - clock()))?;
        let now = clock();
        for event in &events {
            match event.token() {
                SERVER => receive(&mut server, &server_socket, now, &mut buf),
                CLIENT => receive(&mut client, &client_socket, now, &mut buf),
                _ => {}
            }
        }
    }

    match answered.as_deref() {
        Some(b"HELLO") => {}
        other => return Err(io::Error::other(format!("not answered: {other:?}"))),
    }
    if !server_got_message {
        return Err(io::Error::other("the server did not get the message"));
    }
    Ok(())
}

fn main() -> io::Result<()> {
    exchange()?;
    println!("RPC answered and reliable message delivered, over a mio poll loop on loopback");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_mio_poll_loop_drives_both_roles_on_loopback() {
        super::exchange().unwrap();
    }
}
