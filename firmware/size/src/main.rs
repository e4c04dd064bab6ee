//! The size report's firmware: a Pavillion client with one suite on an embassy-net stack.
//!
//! It is never flashed (`firmware/nucleo-f429zi` is the example that runs on a board). Its job
//! is to link exactly what a device links, so that `scripts/firmware.sh` can report and bound
//! the code size and static RAM of a one-suite client: the protocol core (`pavillion-proto`
//! with `default-features = false` and one `suite-*` feature), the crypto of that suite, the
//! heap allocator, embassy-net with its UDP socket, and the loop that drives the client from
//! the socket, a clock and its timers. The network device drops every frame, so nothing here
//! depends on a board's peripherals, and the time driver only counts SysTick interrupts.
//!
//! Until `pavillion-embassy` (the driver crate) replaces it, the loop below is the driver: it
//! is what that crate's client runner does (receive, `handle_datagram`, `poll_transmit`,
//! `handle_timeout`, sleep until `poll_timeout`).
#![no_std]
#![no_main]

extern crate alloc;

use core::cell::RefCell;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::sync::atomic::{AtomicU32, Ordering};
use core::task::Waker;

use cortex_m_rt::{entry, exception};
use critical_section::Mutex;
use embassy_futures::select::{select, Either};
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{IpEndpoint, Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_time::{Duration, Timer};
use embedded_alloc::LlffHeap as Heap;
use panic_halt as _;
#[cfg(not(feature = "net-only"))]
use pavillion_proto::endpoint::{Client, ClientConfig, ClientEvent, SendOptions};
use pavillion_proto::Instant;
#[cfg(not(feature = "net-only"))]
use pavillion_proto::{ClientId, FunctionId};
use static_cell::StaticCell;

/// The heap proto allocates sessions, queues and events from. 24 KB is what a client with a
/// few messages in flight needs; it is `.bss`, so it shows in the static RAM of the report.
const HEAP_BYTES: usize = 24 * 1024;

#[global_allocator]
static HEAP: Heap = Heap::empty();

/// One UDP datagram: proto never builds one larger than the path MTU it assumes (1,400 bytes
/// of payload), and the socket buffers hold two of each direction.
const DATAGRAM: usize = 1500;

const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 1783);
const LOCAL_PORT: u16 = 40_000;

#[entry]
fn main() -> ! {
    {
        use core::mem::MaybeUninit;
        static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_BYTES] = [MaybeUninit::uninit(); HEAP_BYTES];
        // SAFETY: runs once, before anything allocates, and nothing else touches HEAP_MEM.
        #[allow(static_mut_refs)]
        unsafe {
            HEAP.init(HEAP_MEM.as_ptr() as usize, HEAP_BYTES)
        }
    }
    let mut core = cortex_m::Peripherals::take().expect("taken once, at reset");
    // 1 kHz SysTick: embassy-time's tick rate below.
    core.SYST
        .set_clock_source(cortex_m::peripheral::syst::SystClkSource::Core);
    core.SYST.set_reload(16_000 - 1);
    core.SYST.clear_current();
    core.SYST.enable_interrupt();
    core.SYST.enable_counter();

    static RESOURCES: StaticCell<StackResources<2>> = StaticCell::new();
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(embassy_net::Ipv4Address::new(192, 0, 2, 2), 24),
        gateway: None,
        dns_servers: Default::default(),
    });
    let (stack, mut runner) = embassy_net::new(
        NullDevice,
        config,
        RESOURCES.init(StackResources::new()),
        0x5eed,
    );
    embassy_futures::block_on(async {
        let net = runner.run();
        let app = drive(stack);
        match select(net, app).await {
            Either::First(never) | Either::Second(never) => never,
        }
    })
}

/// The client's credentials: the suite the image is built for. Constant keys: this image only
/// measures size; a device reads them from its configuration and seeds from its RNG.
#[cfg(not(feature = "net-only"))]
fn config() -> ClientConfig {
    let id = ClientId(*b"size-report-0001");
    let seed = [7; 32];
    #[cfg(feature = "suite-psk")]
    let config = ClientConfig::psk(
        id,
        pavillion_proto::crypto::Psk::from_bytes([1; 32]),
        SERVER,
        seed,
    );
    #[cfg(all(feature = "suite-ecc", not(feature = "suite-psk")))]
    let config = {
        use pavillion_proto::crypto::ecc::{KeyPair, PublicKey};
        let keys = KeyPair::from_secret_bytes([2; 32]);
        ClientConfig::ecc(id, keys, PublicKey::from([3; 32]), SERVER, seed)
    };
    #[cfg(all(
        feature = "suite-noise",
        not(feature = "suite-psk"),
        not(feature = "suite-ecc")
    ))]
    let config = {
        use pavillion_proto::crypto::ecc::{KeyPair, PublicKey};
        let keys = KeyPair::from_secret_bytes([2; 32]);
        ClientConfig::noise_ik(id, keys, PublicKey::from([3; 32]), SERVER, seed)
    };
    config
}

/// The driver loop: what `pavillion-embassy`'s client runner does.
async fn drive(stack: embassy_net::Stack<'static>) -> ! {
    static mut RX_META: [PacketMetadata; 4] = [PacketMetadata::EMPTY; 4];
    static mut TX_META: [PacketMetadata; 4] = [PacketMetadata::EMPTY; 4];
    static mut RX: [u8; 2 * DATAGRAM] = [0; 2 * DATAGRAM];
    static mut TX: [u8; 2 * DATAGRAM] = [0; 2 * DATAGRAM];
    static mut BUF: [u8; DATAGRAM] = [0; DATAGRAM];
    // SAFETY: `drive` runs once; these buffers are borrowed by it alone for the program's life.
    #[allow(static_mut_refs)]
    let (rx_meta, tx_meta, rx, tx, buf) =
        unsafe { (&mut RX_META, &mut TX_META, &mut RX, &mut TX, &mut BUF) };
    let mut socket = UdpSocket::new(stack, rx_meta, rx, tx_meta, tx);
    // NOTE(unwrap): a fresh stack has every port free.
    socket.bind(LOCAL_PORT).unwrap();

    serve(socket, buf).await
}

#[cfg(feature = "net-only")]
use net_only as serve;
#[cfg(not(feature = "net-only"))]
use run_client as serve;

/// Drives one client from the socket and the clock, as the driver crate's runner does.
#[cfg(not(feature = "net-only"))]
async fn run_client(socket: UdpSocket<'_>, buf: &mut [u8]) -> ! {
    let mut client = Client::new(config());
    let mut next_send = now();
    loop {
        let t = now();
        if t >= next_send {
            // One reliable message and one call a second, as the board example does.
            let _ = client.send_message(t, "sensors", "tick", b"1", SendOptions::reliable());
            let _ = client.call(t, FunctionId(0), b"ping", None);
            next_send = t + pavillion_proto::Duration::from_secs(1);
        }
        client.handle_timeout(t);
        while let Some(out) = client.poll_transmit(t, buf) {
            let _ = socket
                .send_to(&buf[..out.len], endpoint(out.destination))
                .await;
        }
        while let Some(event) = client.poll_event() {
            if let ClientEvent::Answered { .. } = event {
                LED.fetch_add(1, Ordering::Relaxed);
            }
        }
        let wake = client.poll_timeout().unwrap_or(next_send).min(next_send);
        let micros = wake.saturating_duration_since(now()).as_micros();
        let sleep = Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX));
        match select(socket.recv_from(buf), Timer::after(sleep)).await {
            Either::First(Ok((n, meta))) => {
                if let Some(from) = socket_addr(meta.endpoint) {
                    client.handle_datagram(now(), from, &buf[..n]);
                }
            }
            Either::First(Err(_)) | Either::Second(()) => {}
        }
    }
}

/// The baseline row of the report: the same stack and socket sending one datagram a second
/// and receiving, with no Pavillion client. A client's share of an image is its `.text` above
/// this one's.
#[cfg(feature = "net-only")]
async fn net_only(socket: UdpSocket<'_>, buf: &mut [u8]) -> ! {
    loop {
        let _ = socket.send_to(b"tick", endpoint(SERVER)).await;
        if let Either::First(Ok((n, _))) =
            select(socket.recv_from(buf), Timer::after(Duration::from_secs(1))).await
        {
            LED.fetch_add(n as u32, Ordering::Relaxed);
        }
    }
}

/// Stands for whatever a device does with an answer (toggle a pin).
static LED: AtomicU32 = AtomicU32::new(0);

fn now() -> Instant {
    Instant::from_micros(embassy_time::Instant::now().as_micros())
}

fn endpoint(addr: SocketAddr) -> IpEndpoint {
    match addr.ip() {
        IpAddr::V4(v4) => IpEndpoint::new(embassy_net::IpAddress::Ipv4(v4), addr.port()),
        // An IPv4-only stack cannot reach a v6 address; the send fails and is retried later.
        IpAddr::V6(_) => IpEndpoint::new(
            embassy_net::IpAddress::Ipv4(Ipv4Addr::UNSPECIFIED),
            addr.port(),
        ),
    }
}

fn socket_addr(ep: IpEndpoint) -> Option<SocketAddr> {
    match ep.addr {
        embassy_net::IpAddress::Ipv4(v4) => Some(SocketAddr::new(IpAddr::V4(v4), ep.port)),
    }
}

/// A network device that drops every frame it is given and never receives one.
struct NullDevice;

struct NullRx;
struct NullTx;

impl embassy_net_driver::RxToken for NullRx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        f(&mut [])
    }
}

impl embassy_net_driver::TxToken for NullTx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = [0u8; 1514];
        let len = len.min(frame.len());
        // The frame is built (that is the code we measure) and then dropped.
        let r = f(&mut frame[..len]);
        core::hint::black_box(&frame);
        r
    }
}

impl embassy_net_driver::Driver for NullDevice {
    type RxToken<'a> = NullRx;
    type TxToken<'a> = NullTx;

    fn receive(
        &mut self,
        _cx: &mut core::task::Context<'_>,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        None
    }

    fn transmit(&mut self, _cx: &mut core::task::Context<'_>) -> Option<Self::TxToken<'_>> {
        Some(NullTx)
    }

    fn link_state(&mut self, _cx: &mut core::task::Context<'_>) -> embassy_net_driver::LinkState {
        embassy_net_driver::LinkState::Up
    }

    fn capabilities(&self) -> embassy_net_driver::Capabilities {
        let mut caps = embassy_net_driver::Capabilities::default();
        caps.max_transmission_unit = 1514;
        caps
    }

    fn hardware_address(&self) -> embassy_net_driver::HardwareAddress {
        embassy_net_driver::HardwareAddress::Ethernet([0x02, 0, 0, 0, 0, 1])
    }
}

/// Milliseconds since reset, counted by the SysTick interrupt.
static TICKS: AtomicU32 = AtomicU32::new(0);
/// The one waker embassy-time asks to be woken (the executor is `block_on`, one task).
static WAKE: Mutex<RefCell<Option<(u64, Waker)>>> = Mutex::new(RefCell::new(None));

#[exception]
fn SysTick() {
    let now = u64::from(TICKS.fetch_add(1, Ordering::Relaxed)) + 1;
    critical_section::with(|cs| {
        let mut wake = WAKE.borrow_ref_mut(cs);
        if wake.as_ref().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, waker)) = wake.take() {
                waker.wake();
            }
        }
    });
}

/// embassy-time's clock: the SysTick count.
struct SysTickDriver;

impl embassy_time_driver::Driver for SysTickDriver {
    fn now(&self) -> u64 {
        u64::from(TICKS.load(Ordering::Relaxed))
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let mut wake = WAKE.borrow_ref_mut(cs);
            // One task: the earliest deadline wins; `block_on` polls everything when woken.
            let earlier = wake.as_ref().is_none_or(|(old, _)| at < *old);
            if earlier {
                *wake = Some((at, waker.clone()));
            }
        });
    }
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver);
