//! The relay's own tables, pure data structures the relay role (`endpoint/relay.rs`) drives:
//! - [`echo`]: content keys of datagrams carried or emitted lately, to recognise copies;
//! - [`window`]: per-origin sequence windows, to drop replays and copies by path;
//! - [`bucket`]: token buckets for the per-origin and per-port rate limits;
//! - [`is_emitter`]: the emitter election of a segment.
//!
//! Every table is bounded by a limit of [`RelayLimits`](crate::endpoint::RelayLimits); none
//! reads a clock (it is told the time).

pub mod bucket;
pub mod echo;
pub mod window;

use crate::endpoint::RelayId;

/// Whether relay `us` emits on its segment: iff no sibling (an up peer that announced our
/// segment) has a lower id. Two siblings that cannot see each other both emit; receivers'
/// content de-duplication keeps other segments at one copy.
pub fn is_emitter(us: RelayId, mut siblings_up: impl Iterator<Item = RelayId>) -> bool {
    !siblings_up.any(|s| s < us)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ClientId;

    #[test]
    fn the_lowest_up_sibling_emits() {
        let id = |b| RelayId(ClientId([b; 16]));
        assert!(is_emitter(id(5), [id(6), id(9)].into_iter()));
        assert!(!is_emitter(id(5), [id(6), id(4)].into_iter()));
        assert!(is_emitter(id(5), core::iter::empty()));
    }
}
