//! What both host programs share: arguments, the TAP-backed embassy-net stack, an RNG.
//!
//! Host only (std): a device gets its stack from its HAL and its RNG from hardware.

use std::io::Read;
use std::net::SocketAddr;
use std::process::exit;

use embassy_executor::Spawner;
use embassy_net::{Ipv4Cidr, Stack, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use pavillion_proto::crypto::Psk;
use pavillion_proto::ClientId;
use static_cell::StaticCell;

/// `--name VALUE` from the command line.
pub(crate) fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
    }
    None
}

/// `--name VALUE`, or exit with code 2 saying what is missing or bad.
pub(crate) fn required<T: std::str::FromStr>(name: &str) -> T {
    let Some(text) = arg(name) else {
        eprintln!("missing {name}");
        exit(2);
    };
    text.parse().unwrap_or_else(|_| {
        eprintln!("bad {name}: {text}");
        exit(2)
    })
}

/// The PSK (`--psk`, 64 hex characters) and client id (`--client-id`, 16 bytes of text).
pub(crate) fn credentials() -> (ClientId, Psk) {
    let psk: String = required("--psk");
    let Some(psk) = hex::decode(psk.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
    else {
        eprintln!("--psk: 64 hex characters expected");
        exit(2);
    };
    let id: String = required("--client-id");
    let Ok(id) = <[u8; 16]>::try_from(id.as_bytes()) else {
        eprintln!("--client-id: 16 bytes of text expected");
        exit(2);
    };
    (ClientId(id), Psk::from_bytes(psk))
}

/// The local address of the TAP side (`--ip`, as `10.83.0.2/24`).
fn cidr() -> Ipv4Cidr {
    let text: String = required("--ip");
    let parsed = text
        .split_once('/')
        .and_then(|(ip, len)| Some(Ipv4Cidr::new(ip.parse().ok()?, len.parse().ok()?)));
    parsed.unwrap_or_else(|| {
        eprintln!("bad --ip: {text} (expected ADDRESS/PREFIX)");
        exit(2)
    })
}

#[embassy_executor::task]
async fn net(mut runner: embassy_net::Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

/// An embassy-net stack on the TAP device `--tap` with the static address `--ip`, its runner
/// spawned; returns once the address is configured.
pub(crate) async fn stack(spawner: Spawner) -> Stack<'static> {
    let tap: String = arg("--tap").unwrap_or_else(|| "tap0".into());
    let device = TunTapDevice::new(&tap).unwrap_or_else(|e| {
        eprintln!("cannot open TAP device {tap}: {e}");
        exit(3)
    });
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: cidr(),
        dns_servers: heapless::Vec::new(),
        gateway: None,
    });
    static RESOURCES: StaticCell<StackResources<4>> = StaticCell::new();
    let mut seed = [0u8; 8];
    Urandom.fill(&mut seed);
    let (stack, runner) = embassy_net::new(
        device,
        config,
        RESOURCES.init(StackResources::new()),
        u64::from_le_bytes(seed),
    );
    spawner.spawn(net(runner).unwrap_or_else(|_| exit(3)));
    stack.wait_config_up().await;
    stack
}

/// The OS's randomness, as the device's hardware RNG would be.
pub(crate) struct Urandom;

impl Urandom {
    fn fill(&mut self, dest: &mut [u8]) {
        let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(dest));
        if let Err(e) = read {
            eprintln!("no randomness: {e}");
            exit(3);
        }
    }
}

impl rand_core::RngCore for Urandom {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.fill(dest)
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for Urandom {}

/// Prints a line at once (the TAP script reads it while we run).
pub(crate) fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Exits with `code` after `secs` seconds whatever happens: a bound on every run.
pub(crate) fn deadline(secs: u64, code: i32) {
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(secs));
        say(format_args!("deadline of {secs} s passed"));
        exit(code);
    });
}

/// The server address (`--server`).
#[allow(dead_code)] // The server program has none.
pub(crate) fn server() -> SocketAddr {
    required("--server")
}
