//! `Dissection::label`: the chart's arrow text (`docs/DECODE.md` §1.5).

use alloc::format;
use alloc::string::{String, ToString};

use super::{Dissection, Value};

fn num(d: &Dissection, name: &str) -> Option<u64> {
    match d.field(name)? {
        Value::U64(n) => Some(*n),
        _ => None,
    }
}

fn text<'a>(d: &'a Dissection, name: &str) -> &'a str {
    match d.field(name) {
        Some(Value::Text(t)) => t,
        _ => "",
    }
}

pub(super) fn label(d: &Dissection) -> String {
    let ctr = d.counter.unwrap_or(0);
    let n = |f: &str| num(d, f).unwrap_or(0);
    match d.name {
        "reliable_message" | "unreliable_message" | "ordered_message" | "durable_message" => {
            format!(
                "{} #{ctr} {}/{}",
                d.name,
                text(d, "target"),
                text(d, "name")
            )
        }
        "ack" => format!("ack {}", n("acked")),
        "ack_ranges" => format!("ack_ranges {}", text(d, "ranges")),
        "acks" => format!("acks {}", text(d, "ranges")),
        "batch" if n("more") == 1 => format!("batch {} more", n("frames")),
        "batch" => format!("batch {}", n("frames")),
        "rpc_call" => format!("rpc_call #{ctr} fn={}", n("function")),
        "rpc_response" => match n("status") {
            0 => format!("rpc_response #{} ok", n("call")),
            s => format!("rpc_response #{} status={s}", n("call")),
        },
        "segment" => format!("segment {}/{}", n("offset"), n("total")),
        "register_read" | "observe" | "register_value" => {
            format!("{} reg={}", d.name, n("register"))
        }
        "subscribe" | "unsubscribe" => format!("{} {}", d.name, text(d, "target")),
        "group_key" | "unknown_sender" => {
            format!("{} {:016x}/{}", d.name, n("sender"), n("key_id"))
        }
        "initiation" | "response" => format!("{} idx={:08x}", d.name, n("sender_index")),
        "cookie_reply" | "unknown_index" => {
            format!("{} idx={:08x}", d.name, n("receiver_index"))
        }
        "encrypted" => format!("encrypted ctr={ctr}"),
        "garbage" => format!("garbage ({})", d.error.as_deref().unwrap_or("")),
        other => other.to_string(),
    }
}
