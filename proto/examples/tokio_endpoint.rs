//! Driving a client and a server from a `tokio` task, through the [`Endpoint`] trait alone.
//!
//! `proto` does no I/O and reads no clock, so any event loop can run it: this one is a
//! generic `tokio` task that owns a `tokio::net::UdpSocket` and an endpoint, feeds it
//! datagrams and expired deadlines, sends what it queues and hands its events to the
//! application. The same function runs the server and the client on loopback; the client
//! calls an RPC the server answers from its events, and sends a reliable message.
//!
//! Run it with `cargo run -p pavillion-proto --example tokio_endpoint`; `cargo test` runs it
//! too, and fails if the exchange does not happen within ten seconds.
// An example on std: std paths are the point here.
#![allow(clippy::std_instead_of_core)]

use std::cell::Cell;
use std::net::SocketAddr;

use pavillion_proto::crypto::Psk;
use pavillion_proto::endpoint::{
    Client, ClientConfig, ClientEvent, Endpoint, SendOptions, Server, ServerConfig, ServerEvent,
};
use pavillion_proto::wire::{RpcStatus, MAX_DATAGRAM};
use pavillion_proto::{ClientId, Duration, FunctionId, Instant};
use tokio::net::UdpSocket;

/// The function the server offers: it answers with its argument in upper case.
const UPPER: FunctionId = FunctionId(401);

/// Turns the system's monotonic clock into the endpoint's [`Instant`]s: `proto` takes time as
/// an input, counted from any origin the driver likes.
struct Clock(std::time::Instant);

impl Clock {
    fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    fn to_tokio(&self, t: Instant) -> tokio::time::Instant {
        (self.0 + Duration::from_micros(t.as_micros())).into()
    }
}

/// Runs `endpoint` on `socket` until `on_event` says it is done. This is the whole driving
/// contract: after every input, drain transmits, then events (the application may queue
/// more, so loop), then sleep until a datagram arrives or the endpoint's deadline passes.
async fn drive<E: Endpoint>(
    mut endpoint: E,
    socket: UdpSocket,
    mut on_event: impl FnMut(&mut E, Instant, E::Event) -> bool,
) -> std::io::Result<()> {
    let clock = Clock(std::time::Instant::now());
    let (mut tx, mut rx) = ([0u8; MAX_DATAGRAM], [0u8; MAX_DATAGRAM + 1]);
    loop {
        let now = clock.now();
        let mut busy = false;
        while let Some(t) = endpoint.poll_transmit(now, &mut tx) {
            busy = true;
            socket.send_to(&tx[..t.len], t.destination).await?;
        }
        while let Some(event) = endpoint.poll_event() {
            busy = true;
            if on_event(&mut endpoint, now, event) {
                return Ok(());
            }
        }
        if busy {
            continue;
        }
        let deadline = endpoint.poll_timeout().map(|t| clock.to_tokio(t));
        tokio::select! {
            got = socket.recv_from(&mut rx) => {
                let (n, from) = got?;
                endpoint.handle_datagram(clock.now(), from, &rx[..n]);
            }
            () = sleep_until(deadline) => endpoint.handle_timeout(clock.now()),
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// A server and a client on loopback: an RPC answered and a reliable message delivered.
async fn exchange() -> Result<(), String> {
    let id = ClientId(*b"tokio-example-01");
    let psk = Psk::from_bytes([0x5a; 32]);
    let loopback: SocketAddr = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    let server_socket = UdpSocket::bind(loopback).await.map_err(|e| e.to_string())?;
    let client_socket = UdpSocket::bind(loopback).await.map_err(|e| e.to_string())?;
    let server_addr = server_socket.local_addr().map_err(|e| e.to_string())?;

    // The seeds would come from OS randomness in a real program.
    let mut server = Server::new(ServerConfig::new([1; 32]).with_psk_client(id, psk.clone()));
    server.register_function(UPPER, "upper");
    let mut client = Client::new(ClientConfig::psk(id, psk, server_addr, [2; 32]));

    // Commands may be given before the session is up; the client sends them once it is.
    let call = client
        .call(Instant::ZERO, UPPER, b"hello", Some(Duration::from_secs(5)))
        .map_err(|e| format!("call: {e:?}"))?;
    let message = client
        .send_message(
            Instant::ZERO,
            "kitchen",
            "light",
            b"on",
            SendOptions::reliable(),
        )
        .map_err(|e| format!("send: {e:?}"))?;

    // The server answers calls from its events, and notes the message it was sent.
    let server_got_message = Cell::new(false);
    let server_task = drive(server, server_socket, |server, now, event| {
        match event {
            ServerEvent::RpcRequest(request) => {
                let answer = request.args.to_ascii_uppercase();
                let _ = server.respond(now, request.call, RpcStatus::OK, &answer);
            }
            ServerEvent::Message { message: m, .. } if m.name() == "light" => {
                server_got_message.set(true)
            }
            _ => {}
        }
        false // A server runs until its program stops it.
    });

    // The client is done once the call is answered and the message acknowledged.
    let (mut answered, mut delivered) = (None, false);
    let client_task = drive(client, client_socket, |_, _, event| {
        match event {
            ClientEvent::Answered { call: c, data, .. } if c == call => answered = Some(data),
            ClientEvent::Delivered { id, .. } if id == message => delivered = true,
            ClientEvent::CallFailed { .. }
            | ClientEvent::CallTimedOut { .. }
            | ClientEvent::RemoteError { .. }
            | ClientEvent::Failed { .. } => {
                return true; // Checked below: the exchange did not happen.
            }
            _ => {}
        }
        answered.is_some() && delivered
    });

    let run = async {
        tokio::select! {
            done = client_task => done.map_err(|e| e.to_string()),
            stopped = server_task => Err(format!("the server stopped: {stopped:?}")),
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), run)
        .await
        .map_err(|_| "no exchange within 10 s".to_string())??;

    match answered.as_deref() {
        Some(b"HELLO") => {}
        other => return Err(format!("the call was not answered: {other:?}")),
    }
    if !delivered || !server_got_message.get() {
        return Err("the reliable message was not delivered".into());
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn main() -> Result<(), String> {
    runtime().block_on(exchange())?;
    println!("RPC answered and reliable message delivered, over tokio on loopback");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_tokio_task_drives_both_roles_on_loopback() {
        super::runtime().block_on(super::exchange()).unwrap();
    }
}
