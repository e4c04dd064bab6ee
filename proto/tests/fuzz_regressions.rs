//! Inputs the fuzz targets (`fuzz/`) found to break an endpoint, replayed through the public
//! API. Each test names the target that found it.

use pavillion_proto::endpoint::{Client, SendOptions};
use pavillion_proto::testing::established::{self, Suite};
use pavillion_proto::wire::App;
use pavillion_proto::{Duration, Instant};

/// Follows the driving contract for `span`: sleep until `poll_timeout`, call `handle_timeout`,
/// drain. Fails if the deadline is not in the future once `handle_timeout` ran (a driver would
/// wake again at once, for ever).
fn drive(client: &mut Client, now: &mut Instant, span: Duration) {
    let end = *now + span;
    let mut buf = [0u8; 4096];
    while let Some(t) = client.poll_timeout().filter(|t| *t <= end) {
        *now = t.max(*now);
        client.handle_timeout(*now);
        while client.poll_transmit(*now, &mut buf).is_some() {}
        while client.poll_event().is_some() {}
        let next = client.poll_timeout();
        assert!(
            next.is_none_or(|n| n > *now),
            "after handle_timeout({now:?}) the deadline is still {next:?}"
        );
    }
}

/// `client_session`: a reliable message in flight, then the server quits. The client has no
/// session to retransmit over, and its outbox reported the retry, already past, as its next
/// deadline after every `handle_timeout`: a driver woke at once, for ever (until the message's
/// deadline), spinning a core.
#[test]
fn a_client_whose_server_quit_does_not_spin_on_a_retry_it_cannot_send() {
    for suite in Suite::ALL {
        let mut e = established::client(suite);
        let mut now = e.now;
        let opts = SendOptions::reliable();
        e.client.send_message(now, "t", "n", b"x", opts).unwrap();
        let mut buf = [0u8; 4096];
        while e.client.poll_transmit(now, &mut buf).is_some() {}
        let quit = App::Quit { reason: None };
        let mut plain = [0u8; 8];
        let len = quit.emit(&mut plain).unwrap();
        let n = e.server.seal(&plain[..len], &mut buf).unwrap();
        e.client.handle_datagram(now, e.server_addr, &buf[..n]);
        drive(&mut e.client, &mut now, Duration::from_secs(2));
    }
}
