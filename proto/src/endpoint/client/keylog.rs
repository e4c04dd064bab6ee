//! The key log (`crate::keylog`): turning it on and draining it. What is logged is queued
//! where keys are made: `setup` (suites 1 and 2), `noise` (suite 3 and group keys).

use super::Client;
use crate::keylog::SessionSecret;

impl Client {
    /// Turns the key log on or off (off by default); see [`crate::keylog`].
    pub fn set_key_log(&mut self, on: bool) {
        self.shared.secrets.set(on);
        // Our group keys were made with the client, before anyone could turn the log on.
        self.log_group_keys();
    }

    /// The next session secret for the key log; `None` while the key log is off.
    pub fn poll_secret(&mut self) -> Option<SessionSecret> {
        self.shared.secrets.pop()
    }
}
