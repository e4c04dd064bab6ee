//! Device status: the three bytes a server may append to its ACKs (docs/PROTOCOL.md §9.5).
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | battery: bits 0–5 level 0–63 (0 = no battery information), bits 6–7 state |
//! | 1 | network: 0–100 WLAN (RSSI + 120 dBm), 101–200 WWAN (RSSI + 220 dBm), 201 wired, 255 unknown |
//! | 2 | temperature, signed °C |
//!
//! The reference client decodes wired as 202 and never computes a WWAN RSSI (its bug 24); we
//! decode 201 as wired, as the format says, and give WWAN the same dBm range as WLAN.

use crate::wire::StatusBytes;

/// What the battery is doing (bits 6–7 of the battery byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum BatteryState {
    /// 0: running on the battery.
    Discharging,
    /// 1: charging slowly.
    SlowCharging,
    /// 2: charging.
    Charging,
    /// 3: producing power (solar and the like).
    Generating,
}

/// The battery byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Battery {
    /// Charge level 1–63, or 0 when the device reports none.
    pub level: u8,
    /// Charging state.
    pub state: BatteryState,
}

impl Battery {
    /// The level as a percentage (rounded down), or `None` when the device reports none.
    pub fn percent(&self) -> Option<u8> {
        (self.level != 0).then(|| (u16::from(self.level.min(63)) * 100 / 63) as u8)
    }
}

/// The network byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum NetworkStatus {
    /// Wireless LAN with this signal strength, −120 to −20 dBm.
    Wlan {
        /// Received signal strength in dBm.
        rssi: i16,
    },
    /// Wireless WAN (cellular) with this signal strength, −119 to −20 dBm.
    Wwan {
        /// Received signal strength in dBm.
        rssi: i16,
    },
    /// A wired link.
    Wired,
    /// Not reported (255, and the reserved values 202–254).
    Unknown,
}

/// A decoded status report.
///
/// # Examples
/// ```
/// use pavillion_proto::features::status::{NetworkStatus, Status};
/// use pavillion_proto::wire::StatusBytes;
/// let s = Status::from_bytes(StatusBytes { battery: 0x80 | 63, network: 201, temperature: -5 });
/// assert_eq!(s.battery.percent(), Some(100));
/// assert_eq!(s.network, NetworkStatus::Wired);
/// assert_eq!(s.temperature, -5);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Status {
    /// Battery.
    pub battery: Battery,
    /// Network link.
    pub network: NetworkStatus,
    /// Temperature in °C.
    pub temperature: i8,
}

impl Status {
    /// What a device with nothing to report sends (the reference server's `00 ff 00`).
    pub const UNKNOWN: Status = Status {
        battery: Battery {
            level: 0,
            state: BatteryState::Discharging,
        },
        network: NetworkStatus::Unknown,
        temperature: 0,
    };

    /// Decodes the three status bytes. Every byte value decodes to something.
    pub fn from_bytes(b: StatusBytes) -> Self {
        let state = match b.battery >> 6 {
            0 => BatteryState::Discharging,
            1 => BatteryState::SlowCharging,
            2 => BatteryState::Charging,
            _ => BatteryState::Generating,
        };
        let network = match b.network {
            v @ 0..=100 => NetworkStatus::Wlan {
                rssi: i16::from(v) - 120,
            },
            v @ 101..=200 => NetworkStatus::Wwan {
                rssi: i16::from(v) - 220,
            },
            201 => NetworkStatus::Wired,
            _ => NetworkStatus::Unknown,
        };
        Status {
            battery: Battery {
                level: b.battery & 0x3f,
                state,
            },
            network,
            temperature: b.temperature,
        }
    }

    /// Encodes the status; out-of-range values are clamped to what the byte can say.
    pub fn to_bytes(&self) -> StatusBytes {
        let state = match self.battery.state {
            BatteryState::Discharging => 0,
            BatteryState::SlowCharging => 1,
            BatteryState::Charging => 2,
            BatteryState::Generating => 3,
        };
        let network = match self.network {
            NetworkStatus::Wlan { rssi } => (rssi.clamp(-120, -20) + 120) as u8,
            NetworkStatus::Wwan { rssi } => (rssi.clamp(-119, -20) + 220) as u8,
            NetworkStatus::Wired => 201,
            NetworkStatus::Unknown => 255,
        };
        StatusBytes {
            battery: (state << 6) | self.battery.level.min(63),
            network,
            temperature: self.temperature,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_battery_byte_round_trips() {
        for b in 0..=255u8 {
            let bytes = StatusBytes {
                battery: b,
                network: 255,
                temperature: 0,
            };
            assert_eq!(Status::from_bytes(bytes).to_bytes(), bytes, "{b}");
        }
    }

    #[test]
    fn every_temperature_round_trips() {
        for t in i8::MIN..=i8::MAX {
            let bytes = StatusBytes {
                battery: 0,
                network: 255,
                temperature: t,
            };
            assert_eq!(Status::from_bytes(bytes).temperature, t);
            assert_eq!(Status::from_bytes(bytes).to_bytes(), bytes);
        }
    }

    #[test]
    fn every_meaningful_network_byte_round_trips() {
        for n in (0..=201u8).chain([255]) {
            let bytes = StatusBytes {
                battery: 0,
                network: n,
                temperature: 0,
            };
            assert_eq!(Status::from_bytes(bytes).to_bytes(), bytes, "{n}");
        }
        for reserved in 202..=254u8 {
            let s = Status::from_bytes(StatusBytes {
                battery: 0,
                network: reserved,
                temperature: 0,
            });
            assert_eq!(s.network, NetworkStatus::Unknown);
        }
    }

    #[test]
    fn network_values_decode_to_the_right_rssi() {
        let net = |n| {
            Status::from_bytes(StatusBytes {
                battery: 0,
                network: n,
                temperature: 0,
            })
            .network
        };
        assert_eq!(net(0), NetworkStatus::Wlan { rssi: -120 });
        assert_eq!(net(100), NetworkStatus::Wlan { rssi: -20 });
        assert_eq!(net(101), NetworkStatus::Wwan { rssi: -119 });
        assert_eq!(net(150), NetworkStatus::Wwan { rssi: -70 });
        assert_eq!(net(200), NetworkStatus::Wwan { rssi: -20 });
        assert_eq!(net(201), NetworkStatus::Wired);
        assert_eq!(net(202), NetworkStatus::Unknown);
        assert_eq!(net(255), NetworkStatus::Unknown);
    }

    #[test]
    fn battery_fields() {
        let s = Status::from_bytes(StatusBytes {
            battery: (2 << 6) | 32,
            network: 255,
            temperature: 0,
        });
        assert_eq!(s.battery.state, BatteryState::Charging);
        assert_eq!(s.battery.level, 32);
        assert_eq!(s.battery.percent(), Some(50));
        assert_eq!(Status::UNKNOWN.battery.percent(), None);
        assert_eq!(
            Status::UNKNOWN.to_bytes(),
            StatusBytes {
                battery: 0,
                network: 255,
                temperature: 0
            }
        );
    }

    #[test]
    fn encoding_clamps_out_of_range_values() {
        let s = Status {
            battery: Battery {
                level: 200,
                state: BatteryState::Generating,
            },
            network: NetworkStatus::Wlan { rssi: 10 },
            temperature: 0,
        };
        let b = s.to_bytes();
        assert_eq!(b.battery, 0xff);
        assert_eq!(b.network, 100);
    }
}
