use super::*;

const FULL: &str = r#"
site = "plant-a"
bridge_id = "gw1"

[mqtt]
url = "mqtt://127.0.0.1:1883"
protocol = 5
username = "u"
password = "p"
keep_alive_secs = 30
prefix = "pav"

[pavillion]
listen = "127.0.0.1:7000"

[[to_mqtt]]
target = "sensors"
topic = "{prefix}/{site}/{client}/{target}/{name}"
qos = 1

[[from_mqtt]]
filter = "{prefix}/{site}/cmd/#"
target = "commands"
name = "{tail}"
to = "clients"

[presence]
devices = "{prefix}/{site}/presence/{client}"
bridge = "{prefix}/{site}/bridges/{bridge}"

[[upstream]]
name = "plc1"
address = "127.0.0.1:7001"
subscribe = ["alarms"]
registers = [1, 2]
rpc = true

[[rpc_to_mqtt]]
function = 100
timeout_ms = 5000

[dedupe]
mode = "standby"
standby_wait_ms = 1000
"#;

fn load(text: &str) -> Result<BridgeConfig, ConfigError> {
    parse(text, Path::new("."), "host")
}

#[test]
fn every_section() {
    let c = load(FULL).unwrap();
    assert_eq!(c.site, "plant-a");
    assert_eq!(c.bridge_id, "gw1");
    assert_eq!(c.mqtt.port, 1883);
    assert_eq!(c.mqtt.client_id, "pav-plant-a-gw1");
    assert_eq!(c.mqtt.protocol, MqttVersion::V5);
    assert!(c
        .pavillion
        .as_ref()
        .is_some_and(|p| p.0.contains_key("listen")));
    assert_eq!(c.to_mqtt[0].target, TargetMatch::Exact("sensors".into()));
    assert_eq!(c.from_mqtt[0].filter, "pav/plant-a/cmd/#");
    assert_eq!(c.from_mqtt[0].to, Destination::Clients);
    assert!(c.presence.as_ref().unwrap().bridge.is_some());
    assert_eq!(c.upstream[0].registers, vec![1, 2]);
    assert_eq!(c.rpc_to_mqtt[0].function, 100);
    assert_eq!(c.dedupe.mode, DedupeMode::Standby);
}

#[test]
fn defaults() {
    let c = load("site = \"s\"\n[mqtt]\nurl = \"mqtts://broker\"\n").unwrap();
    assert_eq!(c.bridge_id, "host");
    assert_eq!(c.mqtt.transport, Transport::Tls);
    assert_eq!(c.mqtt.port, 8883);
    assert_eq!(c.mqtt.prefix, "pav");
    assert_eq!(c.dedupe.mode, DedupeMode::Off);
}

#[test]
fn from_mqtt_give_up_and_dead_letter() {
    let head = "site = \"s\"\n[mqtt]\nurl = \"mqtt://h\"\n[[from_mqtt]]\nfilter = \"c/#\"\ntarget = \"t\"\n";
    let c = load(head).unwrap();
    assert_eq!(c.from_mqtt[0].give_up_after, DEFAULT_GIVE_UP_AFTER);
    assert!(c.from_mqtt[0].dead_letter.is_none());
    let c = load(&format!(
        "{head}give_up_after_ms = 1500\ndead_letter = \"{{prefix}}/{{site}}/dead/{{tail}}\"\n"
    ))
    .unwrap();
    assert_eq!(c.from_mqtt[0].give_up_after, Duration::from_millis(1500));
    let dead = c.from_mqtt[0].dead_letter.as_ref().unwrap();
    assert!(dead.uses(Var::Tail));
    assert_eq!(dead.source(), "{prefix}/{site}/dead/{tail}");
}

fn error(text: &str) -> ConfigError {
    load(text).unwrap_err()
}

#[test]
fn unknown_keys_name_the_key_and_line() {
    let e = error("site = \"s\"\n[mqtt]\nurl = \"mqtt://h\"\nbogus = 1\n");
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.message.contains("bogus"), "{e}");
    let e = error("site = \"s\"\nwhat = 2\n[mqtt]\nurl = \"mqtt://h\"\n");
    assert!(e.message.contains("what"), "{e}");
    let e = error("site = \"s\"\n[mqtt]\nurl = \"mqtt://h\"\n[[to_mqtt]]\ntarget = \"t\"\ntopic = \"{nope}\"\n");
    assert_eq!(e.line, Some(6), "{e}");
    assert!(e.message.starts_with("topic:"), "{e}");
}

#[test]
fn checks() {
    let head = "site = \"s\"\n[mqtt]\nurl = \"mqtt://h\"\n";
    let cases = [
        ("[[to_mqtt]]\ntarget = \"t\"\nqos = 0\n", "qos"),
        ("[[to_mqtt]]\ntarget = \"t\"\ntopic = \"a/#\"\n", "topic"),
        ("[[from_mqtt]]\nfilter = \"a/#/b\"\ntarget = \"t\"\n", "filter"),
        ("[[from_mqtt]]\nfilter = \"a\"\ntarget = \"t\"\nto = \"upstream:x\"\n", "upstream"),
        ("[[from_mqtt]]\nfilter = \"a\"\ntarget = \"t\"\nto = \"nobody\"\n", "to:"),
        ("[presence]\nbridge = \"{client}\"\n", "bridge"),
        ("[[upstream]]\nname = \"a\"\naddress = \"x\"\n[[upstream]]\nname = \"a\"\naddress = \"y\"\n", "name"),
        ("[dedupe]\nmode = \"x\"\n", "mode"),
        ("[[rpc_to_mqtt]]\nfunction = 70000\n", "function"),
        ("[[from_mqtt]]\nfilter = \"a\"\ntarget = \"t\"\ngive_up_after_ms = 0\n", "give_up_after_ms"),
        ("[[from_mqtt]]\nfilter = \"a\"\ntarget = \"t\"\ndead_letter = \"d/{client}\"\n", "dead_letter"),
        ("[[from_mqtt]]\nfilter = \"a\"\ntarget = \"t\"\ndead_letter = \"d/#\"\n", "dead_letter"),
        ("[[from_mqtt]]\nfilter = \"a\"\ntarget = \"t\"\nreliable = false\ndead_letter = \"d\"\n", "dead_letter"),
        ("[[from_mqtt]]\nfilter = \"pav/s/#\"\ntarget = \"t\"\ndead_letter = \"{prefix}/{site}/dead/{tail}\"\n", "received again"),
        ("[[from_mqtt]]\nfilter = \"a/#\"\ntarget = \"t\"\ndead_letter = \"d/{tail}\"\n[[from_mqtt]]\nfilter = \"d/+\"\ntarget = \"t\"\n", "received again"),
    ];
    for (tail, key) in cases {
        let e = error(&format!("{head}{tail}"));
        assert!(e.message.contains(key), "{tail}: {e}");
    }
    assert!(error("[mqtt]\nurl = \"mqtt://h\"\n")
        .message
        .starts_with("site"));
    assert!(error("site = \"s\"\n").message.starts_with("[mqtt]"));
    assert!(error("site = \"s\"\n[mqtt]\nurl = \"http://h\"\n")
        .message
        .starts_with("url"));
    assert!(error("site = \"a/b\"\n[mqtt]\nurl = \"mqtt://h\"\n")
        .message
        .starts_with("site"));
    assert!(error("site = \"s\"\n[mqtt]\nurl = \"mqtt://h\"\npassword = \"p\"\nusername = \"u\"\npassword_file = \"f\"\n")
        .message
        .contains("not both"));
}

#[test]
fn mqtt_3_refuses_rpc_and_standby() {
    let head = "site = \"s\"\n[mqtt]\nurl = \"mqtt://h\"\nprotocol = 3\n";
    assert!(error(&format!("{head}[[rpc_to_mqtt]]\nfunction = 1\n"))
        .message
        .contains("MQTT 5"));
    assert!(error(&format!("{head}[dedupe]\nmode = \"standby\"\n"))
        .message
        .contains("MQTT 5"));
    assert!(error(&format!(
        "{head}[[upstream]]\nname = \"p\"\naddress = \"a\"\nrpc = true\n"
    ))
    .message
    .contains("MQTT 5"));
}

#[test]
fn min_acks_of_a_group_upstream() {
    let head =
        "site = \"s\"\n[mqtt]\nurl = \"mqtt://h\"\n[[upstream]]\nname = \"g\"\npsk_file = \"k\"\n";
    let c = load(&format!(
        "{head}address = \"239.255.28.12:1783\"\nmin_acks = 2\n"
    ))
    .unwrap();
    assert_eq!(c.upstream[0].min_acks, 2);
    // The default: whoever the client expects, at least one.
    let c = load(&format!("{head}address = \"127.0.0.1:1783\"\n")).unwrap();
    assert_eq!(c.upstream[0].min_acks, 1);
    // Broadcast and IPv6 multicast are groups too; a host name is checked once resolved.
    for address in ["255.255.255.255:1783", "[ff02::1]:1783", "plc.local:1783"] {
        let c = load(&format!("{head}address = \"{address}\"\nmin_acks = 3\n")).unwrap();
        assert_eq!(c.upstream[0].min_acks, 3, "{address}");
    }
    // One server answers a unicast address: two acknowledgements would never come.
    let e = error(&format!(
        "{head}address = \"127.0.0.1:1783\"\nmin_acks = 2\n"
    ));
    assert_eq!(e.line, Some(8), "{e}");
    assert!(e.message.contains("group address"), "{e}");
    for bad in ["0", "-1", "129"] {
        let e = error(&format!(
            "{head}address = \"239.1.2.3:1\"\nmin_acks = {bad}\n"
        ));
        assert!(
            e.message.starts_with("min_acks: expected 1 to 128"),
            "{bad}: {e}"
        );
    }
}
