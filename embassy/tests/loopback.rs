//! The driver end to end without a kernel: a client and a server, each on its own embassy-net
//! stack, joined by an in-memory IP link, on the std time driver. It runs everywhere (no root,
//! no TAP), so CI checks the driving loop even where `scripts/tap-test.sh` is skipped.
// A test on std: std paths are the point here.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use critical_section as _;
use embassy_futures::join::join4;
use embassy_futures::select::{select, select3, Either};
use embassy_net::{Ipv4Address, Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState, RxToken, TxToken};
use embassy_time::{Duration, Timer};
use pavillion_embassy::{ClientConfig, Error, Reliability, Resources, ServerConfig, MAX_PENDING};
use pavillion_proto::crypto::Psk;
use pavillion_proto::wire::RpcStatus;
use pavillion_proto::{endpoint, ClientId};

/// One direction of the link: IP packets in flight, and the receiver's waker.
#[derive(Default)]
struct Wire {
    packets: VecDeque<Vec<u8>>,
    waker: Option<Waker>,
}

type Shared = Arc<Mutex<Wire>>;

/// An IP-medium device: receives from `rx`, sends into `tx`.
struct Device {
    rx: Shared,
    tx: Shared,
}

struct Rx(Vec<u8>);
struct Tx(Shared);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, f: F) -> R {
        f(&mut self.0)
    }
}

impl TxToken for Tx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut packet = vec![0; len];
        let r = f(&mut packet);
        let mut wire = self.0.lock().unwrap();
        wire.packets.push_back(packet);
        if let Some(w) = wire.waker.take() {
            w.wake();
        }
        r
    }
}

impl Driver for Device {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Rx, Tx)> {
        let mut wire = self.rx.lock().unwrap();
        match wire.packets.pop_front() {
            Some(p) => Some((Rx(p), Tx(self.tx.clone()))),
            None => {
                wire.waker = Some(cx.waker().clone());
                None
            }
        }
    }

    fn transmit(&mut self, _cx: &mut Context<'_>) -> Option<Tx> {
        Some(Tx(self.tx.clone()))
    }

    fn link_state(&mut self, _cx: &mut Context<'_>) -> LinkState {
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = 1500;
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ip
    }
}

/// Runs `future` on this thread, parking between wake-ups (the std time driver and the
/// link wake it).
fn block_on<T>(future: impl Future<Output = T>) -> T {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(t) = future.as_mut().poll(&mut cx) {
            return t;
        }
        std::thread::park();
    }
}

fn upper(args: &[u8], answer: &mut [u8]) -> Result<usize, RpcStatus> {
    let out = answer.get_mut(..args.len()).ok_or(RpcStatus::BAD_INPUT)?;
    out.copy_from_slice(args);
    out.make_ascii_uppercase();
    Ok(args.len())
}

fn refuse(_: &[u8], _: &mut [u8]) -> Result<usize, RpcStatus> {
    Err(RpcStatus::BAD_INPUT)
}

const ID: ClientId = ClientId(*b"loopback-client1");

fn static_ip(last: u8) -> embassy_net::Config {
    embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(Ipv4Address::new(10, 99, 0, last), 24),
        dns_servers: heapless::Vec::new(),
        gateway: None,
    })
}

/// Whatever the exchange, a bound: a driver that stops driving fails the test, not CI's clock.
async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    match select(f, Timer::after(Duration::from_secs(20))).await {
        Either::First(t) => t,
        Either::Second(()) => panic!("{what}: nothing within 20 s"),
    }
}

#[test]
fn client_and_server_exchange_calls_and_messages_both_ways_over_embassy_net() {
    let (ab, ba): (Shared, Shared) = Default::default();
    let client_dev = Device {
        rx: ba.clone(),
        tx: ab.clone(),
    };
    let server_dev = Device { rx: ab, tx: ba };
    let mut client_stack_res = StackResources::<2>::new();
    let mut server_stack_res = StackResources::<2>::new();
    let (client_stack, mut client_net) =
        embassy_net::new(client_dev, static_ip(2), &mut client_stack_res, 1);
    let (server_stack, mut server_net) =
        embassy_net::new(server_dev, static_ip(1), &mut server_stack_res, 2);

    let psk = Psk::from_bytes([0x42; 32]);
    let server_addr: SocketAddr = "10.99.0.1:1783".parse().unwrap();
    let mut client_res: Box<Resources> = Box::new(Resources::new());
    let mut server_res: Box<Resources> = Box::new(Resources::new());
    let config = ClientConfig::psk(ID, psk.clone(), server_addr).with_local_port(40000);
    let (client, client_runner) =
        pavillion_embassy::client(client_stack, &mut client_res, config, rand_core::OsRng).unwrap();
    let proto = endpoint::ServerConfig::new([0; 32]).with_psk_client(ID, psk);
    let (server, server_runner) = pavillion_embassy::server(
        server_stack,
        &mut server_res,
        ServerConfig::new(proto),
        rand_core::OsRng,
    )
    .unwrap();
    server.register(404, "upper", upper).unwrap();
    server.register(405, "refuse", refuse).unwrap();

    let body = async {
        let mut answer = [0u8; 64];
        // The protocol's echo, a handler's answer, a handler's refusal, no such function.
        let n = bounded("call 0", client.call(0, b"ping", &mut answer))
            .await
            .unwrap();
        assert_eq!(&answer[..n], b"ping");
        assert!(client.is_connected());
        let n = bounded("call 404", client.call(404, b"abc", &mut answer))
            .await
            .unwrap();
        assert_eq!(&answer[..n], b"ABC");
        let refused = bounded("call 405", client.call(405, b"x", &mut answer)).await;
        assert_eq!(refused, Err(Error::Remote(RpcStatus::BAD_INPUT)));
        let missing = bounded("call 406", client.call(406, b"x", &mut answer)).await;
        assert_eq!(missing, Err(Error::Remote(RpcStatus::NONEXISTENT_FUNCTION)));
        // An answer larger than the caller's buffer is an error, not a truncation.
        let small = bounded(
            "call 404 small",
            client.call(404, b"abcdef", &mut answer[..3]),
        )
        .await;
        assert_eq!(small, Err(Error::BufferTooSmall { needed: 6 }));

        // Client to server, acknowledged, then received.
        bounded(
            "send",
            client.send("kitchen", "temp", b"21.5", Reliability::Reliable),
        )
        .await
        .unwrap();
        let mut buf = [0u8; 64];
        let m = bounded("server recv", server.recv_message(&mut buf))
            .await
            .unwrap();
        assert_eq!(
            (m.target, m.name, m.data),
            ("kitchen", "temp", &b"21.5"[..])
        );
        assert!(m.reliable);
        let client_addr = m.from;
        assert_eq!(
            client_addr,
            "10.99.0.2:40000".parse::<SocketAddr>().unwrap()
        );

        // Server to client, acknowledged, then received.
        bounded(
            "send_to",
            server.send_to(client_addr, "alerts", "fire", b"1", Reliability::Reliable),
        )
        .await
        .unwrap();
        let m = bounded("client recv", client.recv_message(&mut buf))
            .await
            .unwrap();
        assert_eq!((m.target, m.name, m.data), ("alerts", "fire", &b"1"[..]));
        assert_eq!(m.from, server_addr);

        // The pending table is bounded: the one past it is refused at once, and slots come
        // back when their futures end.
        let calls: Vec<_> = (0..MAX_PENDING)
            .map(|_| Box::pin(client.call(0, b"slot", &mut [])))
            .collect();
        let mut futures = calls;
        for f in futures.iter_mut() {
            // One poll each takes its slot.
            let waker = Waker::noop();
            let _ = f.as_mut().poll(&mut Context::from_waker(waker));
        }
        let mut one_more = [0u8; 8];
        assert_eq!(
            client.call(0, b"over", &mut one_more).await,
            Err(Error::Busy)
        );
        drop(futures);
        let n = bounded(
            "call after the table freed",
            client.call(0, b"free", &mut one_more),
        )
        .await
        .unwrap();
        assert_eq!(&one_more[..n], b"free");
        assert_eq!(client.driver_stats(), Default::default());
    };
    let runners = join4(
        client_net.run(),
        server_net.run(),
        client_runner.run(),
        server_runner.run(),
    );
    block_on(async {
        match select3(body, runners, Timer::after(Duration::from_secs(60))).await {
            embassy_futures::select::Either3::First(()) => {}
            embassy_futures::select::Either3::Second(_) => unreachable!("runners never end"),
            embassy_futures::select::Either3::Third(()) => panic!("the test took over 60 s"),
        }
    });
}

/// A configuration of a suite the build leaves out is refused with a typed error (not a
/// panic, not a client that never connects). This crate's tests build proto with PSK only.
#[test]
fn a_client_of_a_suite_left_out_is_refused_with_its_error() {
    use pavillion_proto::crypto::ecc::{KeyPair, PublicKey};
    use pavillion_proto::crypto::suite::{Suite, SuiteNotCompiled};
    let (ab, ba): (Shared, Shared) = Default::default();
    let mut stack_res = StackResources::<2>::new();
    let (stack, _net) =
        embassy_net::new(Device { rx: ba, tx: ab }, static_ip(2), &mut stack_res, 1);
    let server: SocketAddr = "10.99.0.1:1783".parse().unwrap();
    let keys = KeyPair::from_secret_bytes([2; 32]);
    let proto = endpoint::ClientConfig::ecc(ID, keys, PublicKey::from([3; 32]), server, [0; 32]);
    let mut res: Box<Resources> = Box::new(Resources::new());
    let made =
        pavillion_embassy::client(stack, &mut res, ClientConfig::new(proto), rand_core::OsRng);
    if Suite::Ecc.is_compiled() {
        assert!(made.is_ok(), "a build with suite 2 makes the client");
    } else {
        assert!(matches!(
            made,
            Err(Error::SuiteNotCompiled(SuiteNotCompiled(Suite::Ecc)))
        ));
    }
}
