//! Which crypto suites this build carries (the `suite-psk`, `suite-ecc` and `suite-noise`
//! features), so that a device links only the suite it uses.
//!
//! Read first: docs/PROTOCOL.md §2 (the suites) and §2.1 (builds with fewer suites).
//!
//! A suite left out is not an error at build time for the code that could name it (the
//! credential and config types keep every variant, so an application compiles the same against
//! any build); it is a typed error when a configuration names it ([`Client::try_new`]
//! returns [`SuiteNotCompiled`]), and a packet of it is dropped and counted as
//! [`DropReason::SuiteNotCompiled`].
//!
//! [`Client::try_new`]: crate::endpoint::Client::try_new
//! [`DropReason::SuiteNotCompiled`]: crate::endpoint::DropReason::SuiteNotCompiled

use core::fmt;

use crate::endpoint::ClientCredentials;
use crate::wire::CipherId;

/// One of the three crypto suites.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Suite {
    /// Suite 1: pre-shared key (feature `suite-psk`).
    Psk,
    /// Suite 2: X25519 `crypto_box` (feature `suite-ecc`).
    Ecc,
    /// Suite 3: Noise (feature `suite-noise`).
    Noise,
}

impl Suite {
    /// Every suite, in suite number order.
    pub const ALL: [Suite; 3] = [Suite::Psk, Suite::Ecc, Suite::Noise];

    /// Whether this build carries the suite.
    ///
    /// # Examples
    /// ```
    /// use pavillion_proto::crypto::suite::Suite;
    /// // The default build carries all three.
    /// assert!(Suite::ALL.iter().all(|s| s.is_compiled()));
    /// ```
    pub const fn is_compiled(self) -> bool {
        match self {
            Suite::Psk => cfg!(feature = "suite-psk"),
            Suite::Ecc => cfg!(feature = "suite-ecc"),
            Suite::Noise => cfg!(feature = "suite-noise"),
        }
    }

    /// The suite number of docs/PROTOCOL.md §2.
    pub const fn number(self) -> u8 {
        match self {
            Suite::Psk => 1,
            Suite::Ecc => 2,
            Suite::Noise => 3,
        }
    }

    /// The Cargo feature that carries the suite.
    pub const fn feature(self) -> &'static str {
        match self {
            Suite::Psk => "suite-psk",
            Suite::Ecc => "suite-ecc",
            Suite::Noise => "suite-noise",
        }
    }

    /// The suite a client's credentials use.
    pub fn of_credentials(credentials: &ClientCredentials) -> Suite {
        match credentials {
            ClientCredentials::Psk(_) => Suite::Psk,
            ClientCredentials::Ecc { .. } => Suite::Ecc,
            ClientCredentials::Noise { .. } => Suite::Noise,
        }
    }

    /// The suite an op 1 request asks for.
    pub(crate) fn of_cipher(cipher: CipherId) -> Suite {
        match cipher {
            CipherId::Psk => Suite::Psk,
            CipherId::Ecc => Suite::Ecc,
        }
    }

    /// `Ok` if this build carries the suite.
    ///
    /// # Errors
    /// [`SuiteNotCompiled`] naming the suite and its feature otherwise.
    pub const fn check(self) -> Result<(), SuiteNotCompiled> {
        if self.is_compiled() {
            Ok(())
        } else {
            Err(SuiteNotCompiled(self))
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Suite::Psk => "suite 1 (psk)",
            Suite::Ecc => "suite 2 (ecc)",
            Suite::Noise => "suite 3 (noise)",
        })
    }
}

/// A configuration names a suite this build leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuiteNotCompiled(pub Suite);

impl fmt::Display for SuiteNotCompiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is not compiled into this build (enable the `{}` feature of pavillion-proto)",
            self.0,
            self.0.feature()
        )
    }
}

impl core::error::Error for SuiteNotCompiled {}

#[cfg(test)]
#[path = "suite_tests.rs"]
mod tests;
