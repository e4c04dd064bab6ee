//! The fields of an application plaintext (`docs/DECODE.md` §1.4), from the crate's own
//! parser ([`App::parse`]): nothing here reads bytes itself.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use super::{Field, Value};
use crate::wire::batch::{Acks, Batch, Frame, ACKS, BATCH};
use crate::wire::register::ValueRef;
use crate::wire::{App, Error, Message};

/// A message's payload shows at most this many bytes.
pub const PAYLOAD_PREVIEW: usize = 64;

/// The name of application opcode `op` (`unknown_op` for one outside §3).
pub fn op_name(op: u8) -> &'static str {
    match op {
        1 => "reliable_message",
        2 => "ack",
        3 => "unreliable_message",
        4 => "rpc_call",
        5 => "rpc_response",
        6 => "register_read",
        7 => "register_value",
        8 => "observe",
        9 => "register_info_request",
        10 => "register_info",
        12 => "quit",
        13 => "subscribe",
        14 => "unsubscribe",
        16 => "client_accept",
        20 => "time_sync_request",
        21 => "time_sync_response",
        32 => "group_key",
        33 => "segment",
        34 => "ack_ranges",
        35 => "transfer_refused",
        36 => "ordered_message",
        37 => "durable_message",
        38 => "batch",
        39 => "acks",
        _ => "unknown_op",
    }
}

fn f(name: &'static str, value: Value) -> Field {
    Field { name, value }
}

fn u(name: &'static str, v: impl Into<u64>) -> Field {
    f(name, Value::U64(v.into()))
}

fn text(name: &'static str, v: &str) -> Field {
    f(name, Value::Text(String::from(v)))
}

fn preview(bytes: &[u8]) -> Value {
    Value::Bytes(bytes[..bytes.len().min(PAYLOAD_PREVIEW)].to_vec())
}

fn message(m: &Message<'_>, out: &mut Vec<Field>) {
    out.push(text("target", m.target));
    out.push(text("name", m.name));
    out.push(u("payload_len", m.payload.len() as u64));
    out.push(f("payload", preview(m.payload)));
}

fn register_value(v: &ValueRef<'_>) -> Value {
    match *v {
        ValueRef::Bool(b) => Value::U64(u64::from(b)),
        ValueRef::I64(i) => Value::I64(i),
        ValueRef::U64(n) => Value::U64(n),
        ValueRef::F32(bits) => Value::Text(format!("{}", f32::from_bits(bits))),
        ValueRef::F64(bits) => Value::Text(format!("{}", f64::from_bits(bits))),
        ValueRef::Text(s) => Value::Text(String::from(s)),
        ValueRef::Bytes(b) => preview(b),
    }
}

/// The fields of `app`, in wire order.
pub(super) fn fields(app: &App<'_>) -> Vec<Field> {
    let mut out = Vec::new();
    match app {
        App::ReliableMessage(m) | App::UnreliableMessage(m) => message(m, &mut out),
        App::Ack { counter, status } => {
            out.push(u("acked", counter.0));
            if let Some(s) = status {
                out.push(u("battery", s.battery));
                out.push(u("network", s.network));
                out.push(f("temperature_c", Value::I64(i64::from(s.temperature))));
            }
        }
        App::RpcCall { function, args } => {
            out.push(u("function", function.0));
            out.push(u("args_len", args.len() as u64));
        }
        App::RpcResponse { call, status, data } => {
            out.push(u("call", call.0));
            out.push(u("status", status.0));
            out.push(u("data_len", data.len() as u64));
        }
        App::RegisterRead(r) => out.push(u("register", r.register.0)),
        App::RegisterValue(p) => {
            out.push(u("answers", p.answers.0));
            out.push(u("register", p.register.0));
            out.push(u("status", p.status.0));
            out.push(u("flags", p.flags));
            let kind = p.value.map_or("none", |v| v.kind().name());
            out.push(text("type", kind));
            if let Some(v) = &p.value {
                out.push(f("value", register_value(v)));
            }
        }
        App::Observe(o) => {
            out.push(u("register", o.register.0));
            out.push(u("duration_ms", o.duration_ms));
            out.push(u("min_interval_ms", o.min_interval_ms));
        }
        App::RegisterInfoRequest(r) => out.push(u("from", r.from.0)),
        App::RegisterInfo(i) => {
            out.push(u("answers", i.answers.0));
            out.push(u("status", i.status.0));
            out.push(u("register", i.register.0));
            out.push(text("type", i.kind.name()));
            out.push(u("flags", i.flags));
            out.push(text("name", i.name));
            out.push(text("unit", i.unit));
        }
        App::Quit { reason } => {
            if let Some(r) = reason {
                out.push(u("reason", *r));
            }
        }
        App::Subscribe { target } | App::Unsubscribe { target } => out.push(text("target", target)),
        App::ClientAccept { server_time_us } => {
            out.push(f("server_time_us", Value::I64(*server_time_us)));
        }
        App::TimeSyncRequest => {}
        App::TimeSyncResponse {
            request,
            monotonic_us,
            unix_us,
        } => {
            out.push(u("request", request.0));
            out.push(u("monotonic_us", *monotonic_us));
            if let Some(t) = unix_us {
                out.push(u("unix_us", *t));
            }
        }
        // The key itself is never shown: a capture must not leak a group's key.
        App::GroupKey { sender, key_id, .. } => {
            out.push(u("sender", sender.0));
            out.push(u("key_id", key_id.0));
        }
        App::Segment(s) => {
            out.push(u("transfer", s.transfer.0));
            out.push(u("total", s.total));
            out.push(u("offset", s.offset));
            out.push(u("data_len", s.data.len() as u64));
        }
        App::AckRanges(r) => {
            let mut ranges = String::new();
            for (i, (first, count)) in r.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(ranges, "{sep}{}+{count}", first.0);
            }
            out.push(f("ranges", Value::Text(ranges)));
        }
        App::TransferRefused { transfer, reason } => {
            out.push(u("transfer", transfer.0));
            out.push(u("reason", reason.0));
        }
        App::OrderedMessage(o) => {
            out.push(u("epoch", o.epoch.0));
            out.push(u("seq", o.seq.0));
            out.push(u("floor", o.floor.0));
            message(&o.message, &mut out);
        }
        App::DurableMessage(d) => {
            out.push(u("origin", d.origin.0));
            out.push(u("seq", d.seq.0));
            out.push(u("floor", d.floor.0));
            message(&d.message, &mut out);
        }
    }
    out
}

/// Ops 38 and 39 (suite 3 batching, `docs/PROTOCOL.md` §17): their name and fields, or the
/// error that refuses them; `None` for any other opcode.
///
/// A batch shows `more` and `frames` (the count), then each frame as a `frame` field naming
/// its opcode followed by that opcode's own fields.
pub(super) fn batched(plaintext: &[u8]) -> Option<Result<(&'static str, Vec<Field>), Error>> {
    Some(match *plaintext.first()? {
        BATCH => Batch::parse(plaintext).map(|b| {
            let mut out = vec_of([u("more", u64::from(b.more)), u("frames", b.len() as u64)]);
            for frame in b.frames() {
                match frame {
                    Frame::App(a) => {
                        out.push(text("frame", op_name(a.opcode())));
                        out.extend(fields(&a));
                    }
                    Frame::Acks(a) => {
                        out.push(text("frame", "acks"));
                        out.extend(acks_fields(&a));
                    }
                }
            }
            ("batch", out)
        }),
        ACKS => Acks::parse(plaintext).map(|a| ("acks", acks_fields(&a))),
        _ => return None,
    })
}

fn vec_of<const N: usize>(a: [Field; N]) -> Vec<Field> {
    a.into_iter().collect()
}

/// `largest`, and `ranges` as `high-low,high-low,...`, highest first.
fn acks_fields(a: &Acks) -> Vec<Field> {
    let mut ranges = String::new();
    let mut largest = 0;
    for (i, r) in a.ranges().enumerate() {
        if i == 0 {
            largest = r.high.0;
        }
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(ranges, "{sep}{}-{}", r.high.0, r.low.0);
    }
    vec_of([u("largest", largest), f("ranges", Value::Text(ranges))])
}
