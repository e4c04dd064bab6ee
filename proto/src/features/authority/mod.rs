//! The state behind the authority role (`endpoint::authority`) and its members
//! (`endpoint::member`): the roster and how a member applies publications of it (`roster`),
//! the authority's signing key (`signing`), and the lockout of credentials that fail to prove
//! themselves (`lockout`). `docs/PROTOCOL.md` §15 is the normative description.

pub mod lockout;
pub mod roster;
pub mod signing;

pub use roster::{MemberId, Roster, RosterEntry, RosterError, RosterUpdate};
pub use signing::{SigningKey, SigningPublic};
