//! What both roles share to route durable messages (op 37, `features::durable`,
//! `docs/PROTOCOL.md` §16): the size check of a send, the packet a `Payload::Durable` entry
//! seals as, and the message a delivery hands the application.

use core::net::{Ipv4Addr, SocketAddr};

use crate::features::durable::{Delivery, Durable, DurablePeer, DurableSeq};
use crate::wire::durable::{DurableMessage, PREFIX_LEN};
use crate::wire::{self, App};

use super::{check_message, check_size, ReceivedMessage, SendError};

/// Checks a durable message: names, and that it fits one datagram with its 24-byte prefix
/// (op 37 is never segmented: its id must name one packet's worth of message).
pub(super) fn check_durable(target: &str, name: &str, payload: &[u8]) -> Result<(), SendError> {
    check_message(target, name, payload)?;
    check_size(3 + PREFIX_LEN + target.len() + name.len() + payload.len())
}

/// The op 37 packet of the durable message `seq` to `to`, with the floor as it stands now:
/// stamped at each transmission, as op 36's is, so a retry carries the latest floor. `None`
/// when the message is no longer queued (acknowledged or cancelled meanwhile).
pub(super) fn packet(durable: &Durable, to: DurablePeer, seq: DurableSeq) -> Option<App<'_>> {
    let origin = durable.origin()?;
    let m = durable.message(seq)?;
    Some(App::DurableMessage(DurableMessage {
        origin,
        seq,
        floor: durable.floor(to),
        message: wire::Message {
            target: m.target(),
            name: m.name(),
            payload: m.payload(),
        },
    }))
}

/// The message of a delivery as the application sees it: from the address it came from, or
/// the unspecified address for a redelivery read back from the inbox.
pub(super) fn received(d: &Delivery) -> ReceivedMessage {
    let unspecified = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0);
    ReceivedMessage::from_owned(d.ack.map_or(unspecified, |a| a.to), d.message.clone(), true)
}
