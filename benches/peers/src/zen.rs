//! Zenoh 1.x sessions on 127.0.0.1: two peers (peer mode, Zenoh's default for a program),
//! one listening and one connecting to it, multicast scouting off so that nothing leaves the
//! machine. Everything else is Zenoh's defaults, batching included: the rate users get.

use zenoh::{Config, Session, Wait};

/// The transport a pair of sessions talks over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// `tcp/127.0.0.1:PORT`, Zenoh's default transport.
    Tcp,
    /// `udp/127.0.0.1:PORT`.
    Udp,
}

impl Link {
    /// The locator's protocol prefix.
    pub fn name(self) -> &'static str {
        match self {
            Link::Tcp => "tcp",
            Link::Udp => "udp",
        }
    }
}

/// A peer-mode configuration listening on `listen` and connecting to `connect` (locators).
fn config(listen: &str, connect: Option<&str>) -> Config {
    let mut c = Config::default();
    let set = |c: &mut Config, key: &str, value: String| {
        c.insert_json5(key, &value)
            .unwrap_or_else(|e| panic!("zenoh config {key}: {e}"))
    };
    set(&mut c, "mode", r#""peer""#.into());
    set(&mut c, "scouting/multicast/enabled", "false".into());
    set(&mut c, "listen/endpoints", format!(r#"["{listen}"]"#));
    let connect = connect.map(|l| format!(r#""{l}""#)).unwrap_or_default();
    set(&mut c, "connect/endpoints", format!("[{connect}]"));
    c
}

/// Two connected sessions over `link` on 127.0.0.1: (the listening one, the connecting one).
pub fn pair(link: Link) -> (Session, Session) {
    let proto = link.name();
    let a = format!("{proto}/127.0.0.1:{}", crate::free_port());
    let b = format!("{proto}/127.0.0.1:{}", crate::free_port());
    let first = zenoh::open(config(&a, None))
        .wait()
        .expect("open the listening session");
    let second = zenoh::open(config(&b, Some(&a)))
        .wait()
        .expect("open the connecting session");
    (first, second)
}
