//! The embedded server on Linux: embassy-executor, embassy-net over a TAP device, and
//! `pavillion-embassy`'s server, for `pav call` and `pav send` on the TAP's other side.
//!
//! It answers the protocol's own functions, 404 (upper-cases its argument) and 402
//! (reverses it), and prints each message it receives as `message TARGET/NAME: DATA`.
//! `scripts/tap-test.sh` runs it in a network namespace. It runs until `--deadline`
//! seconds (60 by default) pass, then exits 0.
//!
//! ```text
//! cargo run -p pavillion-embassy --features std-host --example host_server -- \
//!     --tap tap0 --ip 10.83.0.2/24 --port 1783 \
//!     --psk <64 hex> --client-id embedded-client1
//! ```

// A host program: std paths are the point here.
#![allow(clippy::std_instead_of_core)]

use std::process::exit;

use critical_section as _;
use embassy_executor::{Executor, Spawner};
use pavillion_embassy::{Resources, ServerConfig, ServerRunner};
use pavillion_proto::endpoint;
use pavillion_proto::wire::RpcStatus;
use static_cell::StaticCell;

#[path = "host/mod.rs"]
mod host;

use host::say;

#[embassy_executor::task]
async fn pavillion(runner: ServerRunner<'static>) -> ! {
    runner.run().await
}

fn upper(args: &[u8], answer: &mut [u8]) -> Result<usize, RpcStatus> {
    let out = answer.get_mut(..args.len()).ok_or(RpcStatus::BAD_INPUT)?;
    out.copy_from_slice(args);
    out.make_ascii_uppercase();
    Ok(args.len())
}

fn reverse(args: &[u8], answer: &mut [u8]) -> Result<usize, RpcStatus> {
    let out = answer.get_mut(..args.len()).ok_or(RpcStatus::BAD_INPUT)?;
    out.copy_from_slice(args);
    out.reverse();
    Ok(args.len())
}

#[embassy_executor::task]
async fn main_task(spawner: Spawner) {
    let stack = host::stack(spawner).await;
    let (id, psk) = host::credentials();
    let port = host::arg("--port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1783);
    let proto = endpoint::ServerConfig::new([0; 32]).with_psk_client(id, psk);
    static RESOURCES: StaticCell<Resources> = StaticCell::new();
    let (server, runner) = pavillion_embassy::server(
        stack,
        RESOURCES.init(Resources::new()),
        ServerConfig::new(proto).with_port(port),
        host::Urandom,
    )
    .unwrap_or_else(|e| {
        say(format_args!("FAILED bind: {e}"));
        exit(1)
    });
    for (function, name, handler) in [
        (404, "upper", upper as pavillion_embassy::Handler),
        (402, "reverse", reverse),
    ] {
        if let Err(e) = server.register(function, name, handler) {
            say(format_args!("FAILED register {function}: {e}"));
            exit(1);
        }
    }
    spawner.spawn(pavillion(runner).unwrap_or_else(|_| exit(3)));
    say(format_args!("listening on port {port}"));
    let mut buf = [0u8; 1024];
    loop {
        match server.recv_message(&mut buf).await {
            Ok(m) => say(format_args!(
                "message {}/{}: {} (from {})",
                m.target,
                m.name,
                String::from_utf8_lossy(m.data),
                m.from
            )),
            Err(e) => say(format_args!("recv: {e}")),
        }
    }
}

static EXECUTOR: StaticCell<Executor> = StaticCell::new();

fn main() {
    host::deadline(
        host::arg("--deadline")
            .and_then(|d| d.parse().ok())
            .unwrap_or(60),
        0,
    );
    let executor = EXECUTOR.init(Executor::new());
    executor.run(|spawner| {
        spawner.spawn(main_task(spawner).unwrap_or_else(|_| exit(3)));
    });
}
