//! The `core batched, noise` row of `compare` (`docs/PROTOCOL.md` §17): reliable 64-byte
//! messages through the direct pump on suite 3, where a burst shares datagrams (op 38) and
//! ACKs (op 39), against the crypto floor of sending each message in its own datagram (one
//! seal and one open of the message's plaintext: what one message per packet costs at the
//! least, its ACK not counted).

use crate::{payload, rate, DirectPair, Suite};

/// Messages queued at once per round: a burst that fills several batches.
const BURST: usize = 1000;
/// The payload of every message.
const PAYLOAD: usize = 64;

/// One row: what it measures, ours (msg/s), the floor (msg/s), and datagrams per message.
#[derive(Clone, Debug)]
pub struct BatchedRow {
    /// The row's label.
    pub what: String,
    /// Messages a second, delivered and acknowledged.
    pub ours: f64,
    /// The one-message crypto floor, messages a second.
    pub floor: f64,
    /// Datagrams (both ways) per message in the measured runs.
    pub datagrams_per_message: f64,
}

/// Measures the row for `seconds` (and about half that again for the floor); records
/// `core_batched_64_noise` (msg/s).
pub fn rows(seconds: f64) -> Vec<BatchedRow> {
    let data = payload(PAYLOAD);
    let mut pair = DirectPair::connected(Suite::Noise);
    let (d0, mut msgs) = (pair.datagrams, 0u64);
    let ours = rate(seconds, || {
        pair.reliable_batch(BURST, &data);
        msgs += BURST as u64;
        BURST as u64
    });
    let dpm = (pair.datagrams - d0) as f64 / msgs.max(1) as f64;
    // The plaintext of one message alone: opcode, "t\nn\n" as `DirectPair` sends, payload.
    let cipher = Suite::Noise.cipher();
    let mut buf = payload(1 + crate::TARGET.len() + 1 + crate::NAME.len() + 1 + PAYLOAD);
    let mut counter = 1u64;
    let floor = rate(seconds / 2.0, || {
        for _ in 0..256 {
            counter += 1;
            cipher.seal_open(counter, &mut buf);
        }
        256
    });
    crate::results::record("core_batched_64_noise", ours, "msg/s");
    vec![BatchedRow {
        what: format!("core batched, noise (direct pump, bursts of {BURST})"),
        ours,
        floor,
        datagrams_per_message: dpm,
    }]
}
