#!/usr/bin/env bash
# Installs the programs that some tests drive (Debian's packages): tshark for the Wireshark
# dissector test, Chromium for the sequence-chart rendering test, mosquitto (the broker) and
# mosquitto-clients for the MQTT bridge's tests (io-std/tests/bridge*.rs). Idempotent; does nothing for
# a tool already installed. Tests that need a tool skip with a printed reason when it is missing,
# unless PAV_REQUIRE_TOOLS=1 (scripts/test.sh sets it), in which case they fail.
set -euo pipefail
need=()
command -v tshark >/dev/null 2>&1 || need+=(tshark)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || need+=(mosquitto-clients)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
echo "installing: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections || true
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
