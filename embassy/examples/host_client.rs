//! The embedded client on Linux: embassy-executor, embassy-net over a TAP device, and
//! `pavillion-embassy`'s client against a `pav serve` on the TAP's other side.
//!
//! `scripts/tap-test.sh` runs it in a network namespace and reads what it prints. In order:
//! an RPC (`call 0`, the protocol's echo, and `call 404`, `pav serve`'s upper-case demo), a
//! reliable message to the server, a subscription through which the script's `pav send`
//! reaches us, then calls every 300 ms while the script kills and restarts `pav serve`,
//! until one succeeds after a failure (recovery), and a last reliable message to the new
//! server. It exits 0 when all of that happened, 1 on a failed step, 2 on bad arguments,
//! 3 without a TAP device, 4 past its own deadline (`--deadline`, 60 s by default).
//!
//! ```text
//! cargo run -p pavillion-embassy --features std-host --example host_client -- \
//!     --tap tap0 --ip 10.83.0.2/24 --server 10.83.0.1:1783 \
//!     --psk <64 hex> --client-id embedded-client1
//! ```

// A host program: std paths are the point here.
#![allow(clippy::std_instead_of_core)]

use std::process::exit;

use critical_section as _;
use embassy_executor::{Executor, Spawner};
use embassy_time::{Duration, Timer};
use pavillion_embassy::{ClientConfig, ClientRunner, Reliability, Resources};
use static_cell::StaticCell;

#[path = "host/mod.rs"]
mod host;

use host::say;

/// The target the script's `pav send` uses to reach us through the broker.
const INBOX_TARGET: &str = "embedded";

#[embassy_executor::task]
async fn pavillion(runner: ClientRunner<'static>) -> ! {
    runner.run().await
}

/// Fails the run: prints why and exits 1.
fn fail(step: &str, why: impl std::fmt::Display) -> ! {
    say(format_args!("FAILED {step}: {why}"));
    exit(1)
}

#[embassy_executor::task]
async fn main_task(spawner: Spawner) {
    let stack = host::stack(spawner).await;
    let (id, psk) = host::credentials();
    let config = ClientConfig::psk(id, psk, host::server());
    static RESOURCES: StaticCell<Resources> = StaticCell::new();
    let (client, runner) = pavillion_embassy::client(
        stack,
        RESOURCES.init(Resources::new()),
        config,
        host::Urandom,
    )
    .unwrap_or_else(|e| fail("bind", e));
    spawner.spawn(pavillion(runner).unwrap_or_else(|e| fail("spawn", e)));

    // RPC: the protocol's echo, then a function of the server's.
    let mut answer = [0u8; 256];
    match client.call(0, b"ping", &mut answer).await {
        Ok(n) if &answer[..n] == b"ping" => say(format_args!("call 0: ping")),
        Ok(n) => fail("call 0", format_args!("answered {:?}", &answer[..n])),
        Err(e) => fail("call 0", e),
    }
    say(format_args!("connected: {}", client.is_connected()));
    match client.call(404, b"hello", &mut answer).await {
        Ok(n) => say(format_args!(
            "call 404: {}",
            String::from_utf8_lossy(&answer[..n])
        )),
        Err(e) => fail("call 404", e),
    }

    // A message to the server, acknowledged.
    match client
        .send("kitchen", "temp", b"21.5", Reliability::Reliable)
        .await
    {
        Ok(()) => say(format_args!("sent kitchen/temp: acknowledged")),
        Err(e) => fail("send", e),
    }

    // A message from the server: subscribe, say so once the broker has it, then wait.
    client
        .subscribe(INBOX_TARGET)
        .unwrap_or_else(|e| fail("subscribe", e));
    while client
        .with_endpoint(|c| c.subscribed_at(INBOX_TARGET))
        .flatten()
        .is_none()
    {
        Timer::after(Duration::from_millis(20)).await;
    }
    say(format_args!("subscribed {INBOX_TARGET}"));
    let mut buf = [0u8; 512];
    match client.recv_message(&mut buf).await {
        Ok(m) => say(format_args!(
            "message {}/{}: {}",
            m.target,
            m.name,
            String::from_utf8_lossy(m.data)
        )),
        Err(e) => fail("recv", e),
    }

    // Recovery: the script kills and restarts the server once it reads this line.
    say(format_args!("phase recovery"));
    let mut failures = 0u32;
    for n in 0u32.. {
        let arg = format!("ping-{n}");
        match client.call(0, arg.as_bytes(), &mut answer).await {
            Ok(_) if failures > 0 => {
                say(format_args!("recovered after {failures} failed calls"));
                break;
            }
            Ok(_) => {}
            Err(e) => {
                failures += 1;
                say(format_args!("call failed: {e}"));
            }
        }
        Timer::after(Duration::from_millis(300)).await;
    }
    match client
        .send("kitchen", "after", b"restart", Reliability::Reliable)
        .await
    {
        Ok(()) => say(format_args!("sent kitchen/after: acknowledged")),
        Err(e) => fail("send after restart", e),
    }
    let stats = client.driver_stats();
    say(format_args!("done ({stats:?})"));
    exit(0);
}

static EXECUTOR: StaticCell<Executor> = StaticCell::new();

fn main() {
    host::deadline(
        host::arg("--deadline")
            .and_then(|d| d.parse().ok())
            .unwrap_or(60),
        4,
    );
    let executor = EXECUTOR.init(Executor::new());
    executor.run(|spawner| {
        spawner.spawn(main_task(spawner).unwrap_or_else(|e| fail("spawn", e)));
    });
}
