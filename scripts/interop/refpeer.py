#!/usr/bin/env python3
"""Drive the Python reference implementation of Pavillion as a test peer for pavillion-rs.

This file is ours; it contains no code from the reference. It imports the reference package
from a checkout whose path is given with --ref (the directory that holds `pavillion/`).

The reference sends multicast and broadcast datagrams when it starts, so run this only inside a
private network namespace (scripts/interop.sh makes one).

Every line of output is one JSON object, flushed at once, so a shell script can grep it:

    {"event": "ready", ...}                 the peer is up
    {"event": "message", "target": ..., "name": ..., "data": ..., "from": ...}
    {"event": "call", "function": N, "ok": true, "data": ...}
    {"event": "sent", ...}
    {"event": "error", "what": ..., "message": ...}

Sub-commands:

    server  run a reference Server: PSK keys and/or an ECC key pair with known client keys;
            RPC 401 echoes; every message to --target is printed; with --announce it also
            sends a message to every client now and then (Server.sendMessage).
    client  run a reference Client against one server address: wait for the session, then
            make the calls and sends asked for, then print messages to --listen for a while.
"""

import argparse
import json
import os
import sys
import threading
import time


def emit(**fields):
    sys.stdout.write(json.dumps(fields, sort_keys=True) + "\n")
    sys.stdout.flush()


def unhex(text, size, what):
    raw = bytes.fromhex(text)
    if len(raw) != size:
        raise SystemExit("%s must be %d bytes of hex" % (what, size))
    return raw


def public_from_secret(secret):
    import libnacl

    return libnacl.crypto_scalarmult_base(secret)


def import_reference(path):
    if not os.path.isdir(os.path.join(path, "pavillion")):
        raise SystemExit("no pavillion/ package under %s" % path)
    sys.path.insert(0, os.path.abspath(path))
    import pavillion  # noqa: E402  (the reference package)

    # Let the process end when the main thread does.
    pavillion.daemon = True
    return pavillion


def text(data):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + data.hex()


def parse_addr(text_):
    host, _, port = text_.rpartition(":")
    return (host, int(port))


class CountingSocket:
    """Stands in for the reference server's reply socket and counts the counted datagrams it
    sends, by destination and counter, so that retransmissions (unacknowledged messages) show."""

    def __init__(self, inner):
        self._inner = inner
        self.sent = {}
        # Counters of 38-byte counted datagrams: opcode 1 with "\n\n", the reference client's
        # keepalive (every other message has a longer body).
        self.keepalives = set()

    def sendto(self, data, addr):
        if len(data) >= 19 and data[:11] == b"PavillionS0":
            counter = int.from_bytes(data[11:19], "little")
            if counter:
                key = (addr[0], addr[1], counter)
                self.sent[key] = self.sent.get(key, 0) + 1
                if len(data) == 38:
                    self.keepalives.add(counter)
        return self._inner.sendto(data, addr)

    def retransmissions(self):
        """Datagrams sent more than once under the same counter, by destination. Both reference
        sides resend a reliable message until they see its ACK, so a non-zero count means an ACK
        that did not arrive or was not taken."""
        resent = {}
        for (ip, port, _counter), n in self.sent.items():
            key = "%s:%d" % (ip, port)
            resent[key] = resent.get(key, 0) + n - 1
        return resent

    def __getattr__(self, name):
        return getattr(self._inner, name)


def run_server(a, pavillion):
    keys = {}
    if a.psk:
        keys[unhex(a.cid, 16, "--cid")] = unhex(a.psk, 32, "--psk")
    pubkeys = {}
    for item in a.ecc_client:
        cid, _, pub = item.partition("=")
        pubkeys[unhex(cid, 16, "client id")] = unhex(pub, 32, "client public key")
    keypair = None
    if a.secret_key:
        secret = unhex(a.secret_key, 32, "--secret-key")
        keypair = (public_from_secret(secret), secret)

    server = pavillion.Server(
        port=a.port,
        keys=keys,
        pubkeys=pubkeys,
        address=a.bind,
        ecc_keypair=keypair,
        allow_guest=a.allow_guest,
    )
    if a.status_reporting:
        # ACKs then carry the three status bytes (11-byte ACK payload instead of 8).
        server.setStatusReporting(True)
    counting = CountingSocket(server.server.sendsock)
    server.server.sendsock = counting

    def echo(client_id, data):
        return data

    # The reference server has no built-in function 0 (only the Arduino one has); make it echo
    # too, as function 0 is defined to.
    server.registers[0] = echo
    server.registers[401] = echo

    def on_message(name, data, client_id):
        emit(event="message", target=a.target, name=name, data=text(data),
             client=client_id.hex() if isinstance(client_id, bytes) else str(client_id))
        if a.reply:
            # Answer from a separate thread: sendMessage blocks while it waits for ACKs.
            t, n, d = a.reply.split("/", 2)
            threading.Thread(target=server.sendMessage, args=(t, n, d.encode()), daemon=True).start()

    # The reference holds message targets weakly: keep ours referenced.
    keep = server.messageTarget(a.target, on_message)

    emit(event="ready", role="server", port=a.port,
         reply_port=server.server.sendsock.getsockname()[1],
         public_key=keypair[0].hex() if keypair else None)

    deadline = time.monotonic() + a.duration
    next_announce = time.monotonic() + a.announce_every
    n = 0
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if a.announce and time.monotonic() >= next_announce:
            n += 1
            target, name, data = a.announce.split("/", 2)
            server.sendMessage(target, name, ("%s #%d" % (data, n)).encode())
            next_announce = time.monotonic() + a.announce_every
    del keep
    server.close()
    emit(event="done", role="server", counted_sent=len(counting.sent),
         retransmissions=counting.retransmissions())


def run_client(a, pavillion):
    connected = threading.Event()

    class Peer(pavillion.Client):
        def onServerConnect(self, addr, pubkey):
            emit(event="connected", server="%s:%d" % tuple(addr[:2]))
            connected.set()

    address = parse_addr(a.server)
    cid = unhex(a.cid, 16, "--cid") if a.cid else None
    if a.psk:
        if cid is None:
            raise SystemExit("a PSK client needs --cid")
        client = Peer(address=address, clientID=cid, psk=unhex(a.psk, 32, "--psk"), cipher=1)
    else:
        secret = unhex(a.secret_key, 32, "--secret-key")
        client = Peer(address=address, clientID=cid,
                      keypair=(public_from_secret(secret), secret),
                      serverkey=unhex(a.server_key, 32, "--server-key"), cipher=2)

    counting = CountingSocket(client.client.sock)
    client.client.sock = counting

    keep = []
    if a.listen:
        def on_message(name, data, addr):
            emit(event="message", target=a.listen, name=name, data=text(data),
                 **{"from": "%s:%d" % tuple(addr[:2]) if isinstance(addr, tuple) else str(addr)})

        keep.append(client.messageTarget(a.listen, on_message))

    if a.no_wait:
        # Act at once, as an application would that does not wait for onServerConnect.
        pass
    elif not connected.wait(a.timeout):
        emit(event="error", what="connect", message="no session within %.1f s" % a.timeout)
        client.close()
        return 1
    emit(event="ready", role="client", local="%s:%d" % client.address[:2])

    status = 0
    if a.bench:
        status = bench_calls(client, a)
    for spec in a.call:
        fn, _, arg = spec.partition(":")
        try:
            got = client.call(int(fn), arg.encode(), timeout=a.timeout)
            emit(event="call", function=int(fn), ok=True, data=text(got))
        except Exception as e:  # the reference raises several exception types
            emit(event="call", function=int(fn), ok=False, error=type(e).__name__, message=str(e))
            status = 1
    for spec in a.send:
        target, name, data = spec.split("/", 2)
        r = client.sendMessage(target, name, data.encode(), reliable=True)
        # The reference returns None when an ACK was seen and 0 when nobody acknowledged.
        emit(event="sent", target=target, name=name, result=r, acked=(r is None or bool(r)))
        if r is not None and not r:
            status = 1
    if a.wait:
        time.sleep(a.wait)
    client.close()
    del keep
    emit(event="done", role="client", counted_sent=len(counting.sent),
         retransmissions=counting.retransmissions(), keepalives=len(counting.keepalives))
    return status


def bench_calls(client, a):
    """Calls --bench-fn with a --bench-size byte argument, one at a time, for --bench seconds.

    Emits a "bench" event with the count and the per-call latency (p50_ms, p99_ms, nearest
    rank), then prints the rate as the last number on its line, which is what
    `compare --peer-cmd` reads.
    """
    arg = b"x" * a.bench_size
    try:
        client.call(a.bench_fn, arg, timeout=a.timeout)  # warm-up, not counted
    except Exception as e:
        emit(event="error", what="bench", message="%s: %s" % (type(e).__name__, e))
        return 1
    calls = 0
    took_ms = []
    start = time.monotonic()
    while time.monotonic() - start < a.bench:
        t0 = time.perf_counter()
        try:
            client.call(a.bench_fn, arg, timeout=a.timeout)
        except Exception as e:
            emit(event="error", what="bench", message="%s: %s" % (type(e).__name__, e))
            return 1
        took_ms.append((time.perf_counter() - t0) * 1000.0)
        calls += 1
    rate = calls / (time.monotonic() - start)
    took_ms.sort()

    def nearest_rank(p):
        return round(took_ms[max(1, -(-p * len(took_ms) // 100)) - 1], 3) if took_ms else None

    emit(event="bench", calls=calls, size=a.bench_size, p50_ms=nearest_rank(50), p99_ms=nearest_rank(99))
    print("reference calls/s %.1f" % rate, flush=True)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", required=True, help="reference checkout (the directory holding pavillion/)")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("server")
    s.add_argument("--port", type=int, default=1783)
    s.add_argument("--bind", default="127.0.0.1")
    s.add_argument("--cid", help="PSK client id, 32 hex")
    s.add_argument("--psk", help="PSK, 64 hex")
    s.add_argument("--secret-key", help="server X25519 secret key, 64 hex")
    s.add_argument("--ecc-client", action="append", default=[], help="CID=PUBKEY (hex), repeatable")
    s.add_argument("--target", default="interop", help="message target to print")
    s.add_argument("--announce", help="TARGET/NAME/DATA to send to every client periodically")
    s.add_argument("--announce-every", type=float, default=0.5)
    s.add_argument("--reply", help="TARGET/NAME/DATA to send to every client after each message received")
    s.add_argument("--allow-guest", action="store_true", help="admit ECC clients with unknown keys")
    s.add_argument("--status-reporting", action="store_true", help="append status bytes to ACKs")
    s.add_argument("--duration", type=float, default=30)

    c = sub.add_parser("client")
    c.add_argument("--server", required=True, help="IP:PORT of the server (never broadcast)")
    c.add_argument("--cid", help="client id, 32 hex (ECC: omit for the key-derived guest id)")
    c.add_argument("--psk", help="PSK, 64 hex")
    c.add_argument("--secret-key", help="our X25519 secret key, 64 hex")
    c.add_argument("--server-key", help="server X25519 public key, 64 hex")
    c.add_argument("--call", action="append", default=[], help="FN:ARG, repeatable")
    c.add_argument("--send", action="append", default=[], help="TARGET/NAME/DATA, repeatable")
    c.add_argument("--listen", help="print messages to this target")
    c.add_argument("--wait", type=float, default=0, help="seconds to stay up after the actions")
    c.add_argument("--timeout", type=float, default=5)
    c.add_argument("--no-wait", action="store_true", help="do not wait for the session before acting")
    c.add_argument("--bench", type=float, default=0, help="seconds of back-to-back calls, then print calls/s")
    c.add_argument("--bench-fn", type=int, default=401, help="function the benchmark calls (401: echo)")
    c.add_argument("--bench-size", type=int, default=64, help="argument bytes per benchmark call")

    a = p.parse_args()
    if a.cmd == "client" and not a.psk and not (a.secret_key and a.server_key):
        p.error("client needs --psk, or --secret-key and --server-key")
    pavillion = import_reference(a.ref)
    if a.cmd == "server":
        if not a.psk and not a.secret_key:
            p.error("server needs --psk (with --cid) or --secret-key")
        run_server(a, pavillion)
        return 0
    return run_client(a, pavillion)


if __name__ == "__main__":
    sys.exit(main())
