//! `pav get`, `pav set`, `pav observe`: a server's registers (`docs/PROTOCOL.md` §9.8); and
//! the `--register` flag of `pav serve`, which declares them.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Args;
use pavillion_std::{
    Client, Register, RegisterChange, RegisterId, RegisterInfo, RegisterOpError, RegisterType,
    RegisterValue, RegisterWrite, Reliability, Server,
};
use serde_json::json;

use crate::common::{self, Failure};
use crate::keys::ClientArgs;

/// A register for `pav serve --register NUM:NAME:TYPE[:UNIT][:rw]=VALUE`.
#[derive(Clone, Debug)]
pub(crate) struct RegisterSpec(Register);

/// Parses `NUM:NAME:TYPE[:UNIT][:rw]=VALUE`.
pub(crate) fn register_flag(s: &str) -> Result<RegisterSpec, String> {
    let (head, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NUM:NAME:TYPE[:UNIT][:rw]=VALUE, not {s:?}"))?;
    let mut parts: Vec<&str> = head.split(':').collect();
    let writable = parts.last() == Some(&"rw");
    if writable {
        parts.pop();
    }
    let (number, name, kind, unit) = match parts.as_slice() {
        [n, name, kind] => (n, name, kind, ""),
        [n, name, kind, unit] => (n, name, kind, *unit),
        _ => {
            return Err(format!(
                "expected NUM:NAME:TYPE[:UNIT][:rw]=VALUE, not {s:?}"
            ))
        }
    };
    let number = number
        .parse::<u16>()
        .map_err(|_| format!("register number must be 0 to 65535, not {number:?}"))?;
    let kind = RegisterType::from_name(kind).ok_or_else(|| {
        format!("register type must be bool, i64, u64, f32, f64, text or bytes, not {kind:?}")
    })?;
    let value = RegisterValue::parse_as(kind, value)
        .ok_or_else(|| format!("{value:?} is not a {} value", kind.name()))?;
    Ok(RegisterSpec(Register {
        number: RegisterId(number),
        name: (*name).to_owned(),
        unit: unit.to_owned(),
        writable,
        value,
    }))
}

/// Declares every register of `specs` on `server`.
pub(crate) fn declare(server: &Server, specs: &[RegisterSpec]) -> Result<(), Failure> {
    for RegisterSpec(r) in specs {
        server
            .declare_register(r.clone())
            .map_err(|e| Failure::input(format!("--register {} ({}): {e}", r.number, r.name)))?;
    }
    Ok(())
}

/// A line for a client's write to one of our registers.
pub(crate) fn print_write(json: bool, w: &RegisterWrite) {
    if json {
        println!(
            "{}",
            json!({"event": "register_written", "register": w.register.0,
                   "value": w.value.to_string(), "by": w.by.to_string(),
                   "peer": w.peer.to_string()})
        );
    } else {
        println!(
            "register {} set to {} by {} ({})",
            w.register, w.value, w.by, w.peer
        );
    }
}

#[derive(Args, Debug)]
pub(crate) struct GetArgs {
    /// The register: its number, or its name (looked up in the server's list).
    register: String,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args, Debug)]
pub(crate) struct SetArgs {
    /// The register: its number, or its name.
    register: String,
    /// The value, read by the register's type (true/false, a number, text, bytes as hex).
    value: String,
    /// Send the write once, unanswered (pav cannot tell whether it was applied).
    #[arg(long)]
    unreliable: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args, Debug)]
pub(crate) struct ObserveArgs {
    /// The register: its number, or its name.
    register: String,
    /// Seconds to observe (the observation is renewed if the session is lost and comes back).
    #[arg(long, value_parser = common::seconds, default_value = "3600")]
    duration: Duration,
    /// Least seconds between two changes printed (the server coalesces faster changes into
    /// the latest value).
    #[arg(long, value_parser = common::seconds, default_value = "0.1")]
    interval: Duration,
    /// Exit after this many changes.
    #[arg(long, short = 'n')]
    count: Option<usize>,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) const GET_HELP: &str = "\
Examples:
  pav get temp --psk-file alice/psk --client-id alice-sensor-001
  pav --json get 1 --secret-key-file alice/secret.key --server-key-file server/public.key

Prints the register's value (and, by name, its type and unit).";

pub(crate) const SET_HELP: &str = "\
Examples:
  pav set setpoint 21.5 --psk-file alice/psk --client-id alice-sensor-001
  pav set 7 true --unreliable --psk-file alice/psk

The value is read by the register's type, which pav learns from the server's list. A read-only
register, an unknown one or a value of the wrong type is refused (exit code 1).";

pub(crate) const OBSERVE_HELP: &str = "\
Examples:
  pav observe temp --interval 1 --psk-file alice/psk --client-id alice-sensor-001
  pav --json observe 1 -n 10 --psk-file alice/psk

Prints the value now, then one line per change, no faster than --interval.";

fn op_failure(what: &str, e: RegisterOpError) -> Failure {
    match e {
        RegisterOpError::Refused(s) => {
            let why = match s.name() {
                "unknown_register" => "the server has no such register",
                "read_only" => "the register is read-only",
                "wrong_type" => "the value is not of the register's type",
                "bad_request" => {
                    "the server found the request malformed (an interval or duration out of range?)"
                }
                "too_many_observers" => "the server observes for too many clients already",
                _ => "the server refused it",
            };
            Failure::failed("refused", format!("{what} refused ({s}): {why}"))
        }
        RegisterOpError::TimedOut => Failure::failed("timeout", format!("{what}: no answer")),
        other => Failure::failed("failed", format!("{what}: {other}")),
    }
}

/// Finds a register by number or name in the server's list.
fn lookup(client: &Client, register: &str) -> Result<RegisterInfo, Failure> {
    let list = client
        .list_registers()
        .map_err(|e| op_failure("listing registers", e))?;
    let by_number = register.parse::<u16>().ok().map(RegisterId);
    list.into_iter()
        .find(|i| Some(i.register) == by_number || i.name == register)
        .ok_or_else(|| Failure::failed("unknown_register", format!("no register {register:?}")))
}

fn connected(a: &ClientArgs) -> Result<Client, Failure> {
    let client = a.connect()?;
    client
        .wait_connected(a.timeout)
        .map_err(|e| Failure::failed("timeout", format!("no session with the server: {e}")))?;
    Ok(client)
}

fn print_value(json: bool, event: &str, info: &RegisterInfo, value: &RegisterValue) {
    if json {
        println!(
            "{}",
            json!({"event": event, "register": info.register.0, "name": info.name,
                   "type": info.kind.name(), "unit": info.unit, "value": value.to_string()})
        );
    } else if info.unit.is_empty() {
        println!("{} = {value}", info.name);
    } else {
        println!("{} = {value} {}", info.name, info.unit);
    }
}

pub(crate) fn get(json: bool, a: GetArgs) -> Result<(), Failure> {
    let client = connected(&a.client)?;
    let info = lookup(&client, &a.register)?;
    let value = client
        .read_register(info.register)
        .map_err(|e| op_failure("read", e))?;
    print_value(json, "register", &info, &value);
    Ok(())
}

pub(crate) fn set(json: bool, a: SetArgs) -> Result<(), Failure> {
    let client = connected(&a.client)?;
    let info = lookup(&client, &a.register)?;
    let value = RegisterValue::parse_as(info.kind, &a.value).ok_or_else(|| {
        Failure::input(format!(
            "{:?} is not a {} value (register {})",
            a.value,
            info.kind.name(),
            info.name
        ))
    })?;
    let reliability = if a.unreliable {
        Reliability::Unreliable
    } else {
        Reliability::Reliable
    };
    let now = client
        .write_register(info.register, value.clone(), reliability)
        .map_err(|e| op_failure("write", e))?;
    match now {
        Some(v) => print_value(json, "register_set", &info, &v),
        None if json => println!(
            "{}",
            json!({"event": "register_sent", "register": info.register.0, "name": info.name,
                   "value": value.to_string()})
        ),
        None => println!("{} <- {value} (sent unreliably, not confirmed)", info.name),
    }
    Ok(())
}

pub(crate) fn observe(json: bool, a: ObserveArgs) -> Result<(), Failure> {
    let client = connected(&a.client)?;
    let info = lookup(&client, &a.register)?;
    let (tx, rx) = mpsc::channel::<RegisterChange>();
    let now = client
        .observe(info.register, a.duration, a.interval, move |c| {
            let _ = tx.send(c.clone());
        })
        .map_err(|e| op_failure("observe", e))?;
    print_value(json, "register", &info, &now);
    let end = Instant::now() + a.duration;
    let mut seen = 0;
    while a.count.is_none_or(|n| seen < n) {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(change) => {
                seen += 1;
                print_value(json, "register_changed", &info, &change.value);
            }
            Err(_) => break,
        }
    }
    let _ = client.cancel_observe(info.register);
    Ok(())
}
