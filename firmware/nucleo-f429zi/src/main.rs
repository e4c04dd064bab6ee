//! A Pavillion client on the NUCLEO-F429ZI: Ethernet, DHCP, then a call of function 0 (the
//! server's built-in echo) and a reliable message every second, printed over RTT with defmt.
//!
//! The board wiring and the host side are in README.md. The loop in `pavillion` is what the
//! `pavillion-embassy` driver's client runner does; once that crate is in the workspace this
//! example uses it instead (its `client()` and `ClientRunner::run`).
#![no_std]
#![no_main]

extern crate alloc;

mod config;

use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use defmt::{info, unwrap, warn};
use embassy_executor::Spawner;
use embassy_futures::select::{select, Either};
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{IpEndpoint, StackResources};
use embassy_stm32::eth::{Ethernet, GenericPhy, PacketQueue};
use embassy_stm32::peripherals::ETH;
use embassy_stm32::rng::Rng;
use embassy_stm32::time::Hertz;
use embassy_stm32::{bind_interrupts, eth, peripherals, rng, Config};
use embassy_time::{Duration, Timer};
use embedded_alloc::LlffHeap as Heap;
use pavillion_proto::endpoint::{Client, ClientConfig, ClientEvent, SendOptions};
use pavillion_proto::{ClientId, FunctionId, Instant};
use static_cell::StaticCell;
use {defmt_rtt as _, panic_probe as _};

bind_interrupts!(struct Irqs {
    ETH => eth::InterruptHandler;
    HASH_RNG => rng::InterruptHandler<peripherals::RNG>;
});

type Device = Ethernet<'static, ETH, GenericPhy>;

/// proto's sessions, queues and events live here (see firmware/size for what a client needs).
const HEAP_BYTES: usize = 32 * 1024;

#[global_allocator]
static HEAP: Heap = Heap::empty();

/// One datagram: proto never builds a larger one.
const DATAGRAM: usize = 1500;

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, Device>) -> ! {
    runner.run().await
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    {
        use core::mem::MaybeUninit;
        static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_BYTES] = [MaybeUninit::uninit(); HEAP_BYTES];
        // SAFETY: runs once, before anything allocates; nothing else touches HEAP_MEM.
        #[allow(static_mut_refs)]
        unsafe {
            HEAP.init(HEAP_MEM.as_ptr() as usize, HEAP_BYTES)
        }
    }

    // 168 MHz from the ST-LINK's 8 MHz clock (the board's default solder bridges), as
    // Ethernet needs at least 25 MHz on the AHB bus.
    let mut config = Config::default();
    {
        use embassy_stm32::rcc::*;
        config.rcc.hse = Some(Hse {
            freq: Hertz(8_000_000),
            mode: HseMode::Bypass,
        });
        config.rcc.pll_src = PllSource::HSE;
        config.rcc.pll = Some(Pll {
            prediv: PllPreDiv::DIV4,
            mul: PllMul::MUL168,
            divp: Some(PllPDiv::DIV2),
            divq: Some(PllQDiv::DIV7),
            divr: None,
        });
        config.rcc.ahb_pre = AHBPrescaler::DIV1;
        config.rcc.apb1_pre = APBPrescaler::DIV4;
        config.rcc.apb2_pre = APBPrescaler::DIV2;
        config.rcc.sys = Sysclk::PLL1_P;
    }
    let p = embassy_stm32::init(config);
    info!("pavillion: NUCLEO-F429ZI starting");

    // The hardware RNG seeds both the IP stack and the client (never a constant seed).
    let mut rng = Rng::new(p.RNG, Irqs);
    let mut net_seed = [0; 8];
    rng.fill_bytes(&mut net_seed);
    let mut client_seed = [0; 32];
    rng.fill_bytes(&mut client_seed);

    // The board's RMII pins (UM1974, table 13).
    static PACKETS: StaticCell<PacketQueue<4, 4>> = StaticCell::new();
    let device = Ethernet::new(
        PACKETS.init(PacketQueue::<4, 4>::new()),
        p.ETH,
        Irqs,
        p.PA1,  // REF_CLK
        p.PA2,  // MDIO
        p.PC1,  // MDC
        p.PA7,  // CRS_DV
        p.PC4,  // RXD0
        p.PC5,  // RXD1
        p.PG13, // TXD0
        p.PB13, // TXD1
        p.PG11, // TX_EN
        GenericPhy::new_auto(),
        [0x02, 0x00, 0x50, 0x41, 0x56, 0x01],
    );
    static RESOURCES: StaticCell<StackResources<3>> = StaticCell::new();
    let (stack, runner) = embassy_net::new(
        device,
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.init(StackResources::new()),
        u64::from_le_bytes(net_seed),
    );
    unwrap!(spawner.spawn(net_task(runner)));

    info!("pavillion: waiting for DHCP");
    stack.wait_config_up().await;
    if let Some(v4) = stack.config_v4() {
        info!("pavillion: address {}", v4.address);
    }

    let mut rx_meta = [PacketMetadata::EMPTY; 4];
    let mut tx_meta = [PacketMetadata::EMPTY; 4];
    let mut rx = [0; 2 * DATAGRAM];
    let mut tx = [0; 2 * DATAGRAM];
    let mut socket = UdpSocket::new(stack, &mut rx_meta, &mut rx, &mut tx_meta, &mut tx);
    unwrap!(socket.bind(config::LOCAL_PORT));
    pavillion(&socket, client_config(client_seed)).await
}

fn client_config(seed: [u8; 32]) -> ClientConfig {
    let id = ClientId(config::CLIENT_ID);
    #[cfg(feature = "suite-psk")]
    let config = ClientConfig::psk(
        id,
        unwrap!(pavillion_proto::crypto::Psk::from_hex(config::PSK_HEX).ok()),
        config::SERVER,
        seed,
    );
    #[cfg(all(feature = "suite-ecc", not(feature = "suite-psk")))]
    let config = {
        let (keys, server) = x25519_config();
        ClientConfig::ecc(id, keys, server, config::SERVER, seed)
    };
    #[cfg(all(
        feature = "suite-noise",
        not(feature = "suite-psk"),
        not(feature = "suite-ecc")
    ))]
    let config = {
        let (keys, server) = x25519_config();
        ClientConfig::noise_ik(id, keys, server, config::SERVER, seed)
    };
    config
}

#[cfg(any(feature = "suite-ecc", feature = "suite-noise"))]
fn x25519_config() -> (
    pavillion_proto::crypto::ecc::KeyPair,
    pavillion_proto::crypto::ecc::PublicKey,
) {
    use pavillion_proto::crypto::ecc::{KeyPair, PublicKey};
    let secret = unwrap!(pavillion_proto::crypto::Psk::from_hex(config::SECRET_HEX).ok());
    let server = unwrap!(pavillion_proto::crypto::Psk::from_hex(config::SERVER_PUBLIC_HEX).ok());
    (
        KeyPair::from_secret_bytes(*secret.danger_as_bytes()),
        PublicKey::from(*server.danger_as_bytes()),
    )
}

/// Drives the client: datagrams in, timers, datagrams out; one call and one reliable message
/// a second.
async fn pavillion(socket: &UdpSocket<'_>, config: ClientConfig) -> ! {
    let mut client = match Client::try_new(config) {
        Ok(client) => client,
        Err(e) => {
            // A configuration naming a suite this image leaves out: say which feature.
            defmt::error!("pavillion: {}", defmt::Display2Format(&e));
            loop {
                Timer::after_secs(60).await;
            }
        }
    };
    let mut buf = [0u8; DATAGRAM];
    let mut next = now();
    let mut sent = 0u32;
    loop {
        let t = now();
        if t >= next {
            sent += 1;
            match client.call(t, FunctionId(0), b"hello from the nucleo", None) {
                Ok(_) => {}
                Err(e) => warn!("pavillion: call not sent: {}", defmt::Display2Format(&e)),
            }
            let payload = sent.to_le_bytes();
            if let Err(e) =
                client.send_message(t, "nucleo", "tick", &payload, SendOptions::reliable())
            {
                warn!("pavillion: message not sent: {}", defmt::Display2Format(&e));
            }
            next = t + pavillion_proto::Duration::from_secs(1);
        }
        client.handle_timeout(t);
        while let Some(out) = client.poll_transmit(t, &mut buf) {
            if let Err(e) = socket
                .send_to(&buf[..out.len], endpoint(out.destination))
                .await
            {
                warn!("pavillion: send failed: {}", e);
            }
        }
        while let Some(event) = client.poll_event() {
            match event {
                ClientEvent::Connected { .. } => info!("pavillion: connected to the server"),
                ClientEvent::Answered { data, .. } => {
                    info!("pavillion: function 0 answered {} bytes", data.len())
                }
                ClientEvent::Delivered { .. } => info!("pavillion: message {} delivered", sent),
                ClientEvent::CallFailed { .. } | ClientEvent::CallTimedOut { .. } => {
                    warn!("pavillion: call failed")
                }
                _ => {}
            }
        }
        let wake = client.poll_timeout().unwrap_or(next).min(next);
        let micros = wake.saturating_duration_since(now()).as_micros();
        let sleep = Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX));
        match select(socket.recv_from(&mut buf), Timer::after(sleep)).await {
            Either::First(Ok((n, meta))) => {
                let embassy_net::IpAddress::Ipv4(v4) = meta.endpoint.addr;
                let from = SocketAddr::new(IpAddr::V4(v4), meta.endpoint.port);
                client.handle_datagram(now(), from, &buf[..n]);
            }
            Either::First(Err(e)) => warn!("pavillion: receive failed: {}", e),
            Either::Second(()) => {}
        }
    }
}

fn now() -> Instant {
    Instant::from_micros(embassy_time::Instant::now().as_micros())
}

fn endpoint(addr: SocketAddr) -> IpEndpoint {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => v4,
        // The image's stack is IPv4 only; proto only targets the configured (v4) server.
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    IpEndpoint::new(embassy_net::IpAddress::Ipv4(ip), addr.port())
}
