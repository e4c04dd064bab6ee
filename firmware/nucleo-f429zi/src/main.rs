//! A Pavillion client on the NUCLEO-F429ZI: Ethernet, DHCP, then a call of function 0 (the
//! server's built-in echo) and a reliable message every second, printed over RTT with defmt.
//!
//! The protocol is driven by `pavillion-embassy`: its client runner is a task of its own
//! (handshakes, retransmissions, keepalives, reconnection), and the application task below
//! only awaits calls and messages through the client handle. The board wiring and the host
//! side are in README.md.
#![no_std]
#![no_main]

extern crate alloc;

mod config;

use defmt::{error, info, unwrap, warn};
use embassy_executor::Spawner;
use embassy_futures::join::join;
use embassy_net::StackResources;
use embassy_stm32::eth::{Ethernet, GenericPhy, PacketQueue, Sma};
use embassy_stm32::peripherals::{ETH, ETH_SMA};
use embassy_stm32::rng::Rng;
use embassy_stm32::time::Hertz;
use embassy_stm32::{bind_interrupts, eth, peripherals, rng, Config};
use embassy_time::{Duration, Instant, Timer};
use embedded_alloc::LlffHeap as Heap;
use pavillion_embassy::{Client, ClientConfig, ClientRunner, Reliability, Resources};
use pavillion_proto::crypto::suite::Suite;
use pavillion_proto::ClientId;
use static_cell::StaticCell;
use {defmt_rtt as _, panic_probe as _};

bind_interrupts!(struct Irqs {
    ETH => eth::InterruptHandler;
    HASH_RNG => rng::InterruptHandler<peripherals::RNG>;
});

type Device = Ethernet<'static, ETH, GenericPhy<Sma<'static, ETH_SMA>>>;

/// proto's sessions, queues and events live here (see firmware/size for what a client needs).
const HEAP_BYTES: usize = 32 * 1024;

#[global_allocator]
static HEAP: Heap = Heap::empty();

/// The function the application calls: the server's built-in echo.
const ECHO: u16 = 0;

/// How often the application calls and sends.
const PERIOD: Duration = Duration::from_secs(1);

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, Device>) -> ! {
    runner.run().await
}

/// The protocol: everything between the socket and the client handle.
#[embassy_executor::task]
async fn pavillion_task(runner: ClientRunner<'static>) -> ! {
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

    // The hardware RNG seeds both the IP stack and, below, the client (never a constant seed).
    let mut rng = Rng::new(p.RNG, Irqs);
    let mut net_seed = [0; 8];
    rng.fill_bytes(&mut net_seed);

    // The board's RMII pins (UM1974, table 13).
    static PACKETS: StaticCell<PacketQueue<4, 4>> = StaticCell::new();
    let device = Ethernet::new(
        PACKETS.init(PacketQueue::<4, 4>::new()),
        p.ETH,
        Irqs,
        p.PA1,  // REF_CLK
        p.PA7,  // CRS_DV
        p.PC4,  // RXD0
        p.PC5,  // RXD1
        p.PG13, // TXD0
        p.PB13, // TXD1
        p.PG11, // TX_EN
        [0x02, 0x00, 0x50, 0x41, 0x56, 0x01],
        // The PHY's management interface; its address is found at start.
        p.ETH_SMA,
        p.PA2, // MDIO
        p.PC1, // MDC
    );
    static RESOURCES: StaticCell<StackResources<3>> = StaticCell::new();
    let (stack, runner) = embassy_net::new(
        device,
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.init(StackResources::new()),
        u64::from_le_bytes(net_seed),
    );
    spawner.spawn(unwrap!(net_task(runner)));

    info!("pavillion: waiting for DHCP");
    stack.wait_config_up().await;
    if let Some(v4) = stack.config_v4() {
        info!("pavillion: address {}", v4.address);
    }

    let config = client_config();
    // A configuration naming a suite this image leaves out: say which feature, and stop.
    if let Err(e) = Suite::of_credentials(&config.proto.credentials).check() {
        error!("pavillion: {}", defmt::Display2Format(&e));
        loop {
            Timer::after_secs(60).await;
        }
    }
    static PAVILLION: StaticCell<Resources> = StaticCell::new();
    // The rest of the hardware RNG's output seeds the client's generator.
    let (client, runner) =
        match pavillion_embassy::client(stack, PAVILLION.init(Resources::new()), config, rng) {
            Ok(pair) => pair,
            Err(e) => defmt::panic!("pavillion: {}", defmt::Display2Format(&e)),
        };
    spawner.spawn(unwrap!(pavillion_task(runner)));
    application(client).await
}

fn client_config() -> ClientConfig {
    let id = ClientId(config::CLIENT_ID);
    // The driver draws the seed from the RNG it is given: the zeros here are replaced.
    #[cfg(feature = "suite-psk")]
    let config = ClientConfig::psk(
        id,
        unwrap!(pavillion_proto::crypto::Psk::from_hex(config::PSK_HEX).ok()),
        config::SERVER,
    );
    #[cfg(all(feature = "suite-ecc", not(feature = "suite-psk")))]
    let config = {
        let (keys, server) = x25519_config();
        ClientConfig::new(pavillion_proto::endpoint::ClientConfig::ecc(
            id,
            keys,
            server,
            config::SERVER,
            [0; 32],
        ))
    };
    #[cfg(all(
        feature = "suite-noise",
        not(feature = "suite-psk"),
        not(feature = "suite-ecc")
    ))]
    let config = {
        let (keys, server) = x25519_config();
        ClientConfig::new(pavillion_proto::endpoint::ClientConfig::noise_ik(
            id,
            keys,
            server,
            config::SERVER,
            [0; 32],
        ))
    };
    config.with_local_port(config::LOCAL_PORT)
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

/// The application: once a second, a call of function 0 and a reliable message to
/// `nucleo`/`tick` (its payload a little-endian counter), both awaited together.
///
/// A round waits for both outcomes before the next starts, so that at most one call and one
/// message are outstanding: with the server away, each ends at its own timeout (proto's call
/// and send timeouts) and the rounds slow down to match, rather than piling up operations
/// until the driver answers `Busy`.
async fn application(client: Client<'static>) -> ! {
    let mut answer = [0u8; 64];
    let mut connected = false;
    let mut sent = 0u32;
    loop {
        let round = Instant::now();
        sent = sent.wrapping_add(1);
        let payload = sent.to_le_bytes();
        let (called, delivered) = join(
            client.call(ECHO, b"hello from the nucleo", &mut answer),
            client.send("nucleo", "tick", &payload, Reliability::Reliable),
        )
        .await;
        // The driver has no connection event: the session's state after the round says it.
        if client.is_connected() != connected {
            connected = !connected;
            if connected {
                info!("pavillion: connected to the server");
            } else {
                warn!("pavillion: no session with the server");
            }
        }
        match called {
            Ok(n) => info!("pavillion: function 0 answered {} bytes", n),
            Err(e) => warn!("pavillion: call failed: {}", defmt::Display2Format(&e)),
        }
        match delivered {
            Ok(()) => info!("pavillion: message {} delivered", sent),
            Err(e) => warn!(
                "pavillion: message {} not delivered: {}",
                sent,
                defmt::Display2Format(&e)
            ),
        }
        Timer::at(round + PERIOD).await;
    }
}
