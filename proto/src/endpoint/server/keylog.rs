//! The key log (`crate::keylog`): turning it on and draining it. What is logged is queued
//! where keys are made: `setup` (suites 1 and 2), `noise` (suite 3, and the group keys clients deliver).

use super::Server;
use crate::keylog::SessionSecret;

impl Server {
    /// Turns the key log on or off (off by default); see [`crate::keylog`].
    pub fn set_key_log(&mut self, on: bool) {
        self.shared.secrets.set(on);
    }

    /// The next session secret for the key log; `None` while the key log is off.
    pub fn poll_secret(&mut self) -> Option<SessionSecret> {
        self.shared.secrets.pop()
    }

    /// Whether the key log is on: roles that contain a server make their later clients
    /// log like it.
    pub(crate) fn key_log_on(&self) -> bool {
        self.shared.secrets.is_on()
    }
}
