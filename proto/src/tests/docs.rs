//! `docs/PROTOCOL.md` §13 maps every timer kind and every event to the module that owns it.
//! These tests keep that map from falling behind the code: a new kind or variant without a row,
//! or a row naming a module that no longer exists, fails here instead of going stale quietly.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

const PROTOCOL: &str = include_str!("../../../docs/PROTOCOL.md");
const EVENTS: &str = include_str!("../endpoint/event.rs");
const TIMERS: &str = include_str!("../endpoint/timers.rs");

/// §13, from its heading to the next top-level section or the end.
fn section() -> &'static str {
    let start = PROTOCOL
        .find("\n## 13. Where the code does it")
        .expect("docs/PROTOCOL.md has a section 13, \"Where the code does it\"");
    let rest = &PROTOCOL[start + 1..];
    match rest[3..].find("\n## ") {
        Some(end) => &rest[..end + 3],
        None => rest,
    }
}

/// The first-column names of the table whose header's first cell is `` `header` ``.
fn rows(header: &str) -> Vec<&'static str> {
    let section = section();
    let head = format!("| `{header}` |");
    let Some(at) = section.find(&head) else {
        return Vec::new();
    };
    section[at..]
        .lines()
        .skip(2) // the header and the |---| line
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('`').nth(1))
        .collect()
}

/// The variant names of the enum `name` declared (`open` is everything before `enum`) in
/// `source`, in declaration order: lines indented by exactly four spaces that start with a
/// capital, up to the enum's closing brace. (The enums are read from source because they are
/// private to `endpoint` and have no list of names.)
fn variants(source: &str, open: &str, name: &str) -> Vec<String> {
    let open = format!("{open}enum {name} {{");
    let body = source.split(open.as_str()).nth(1).expect("enum declared");
    body.lines()
        .take_while(|l| *l != "}")
        .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
        .map(|l| l.trim_start())
        .filter(|l| l.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(|l| {
            l.split(|c: char| !c.is_ascii_alphanumeric())
                .next()
                .unwrap_or_default()
                .into()
        })
        .collect()
}

fn missing<'a>(documented: &[&str], names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    names
        .into_iter()
        .filter(|n| !documented.contains(n))
        .collect()
}

#[test]
fn every_timer_kind_and_event_is_documented() {
    let client_timers = variants(TIMERS, "pub(crate) ", "ClientTimer");
    let server_timers = variants(TIMERS, "pub(crate) ", "ServerTimer");
    let client_events = variants(EVENTS, "pub ", "ClientEvent");
    let server_events = variants(EVENTS, "pub ", "ServerEvent");
    assert!(client_timers.len() >= 13 && server_timers.len() >= 3);
    assert!(client_events.len() >= 17 && server_events.len() >= 12);
    for (table, names) in [
        ("ClientTimer", &client_timers),
        ("ServerTimer", &server_timers),
        ("ClientEvent", &client_events),
        ("ServerEvent", &server_events),
    ] {
        let gaps = missing(&rows(table), names.iter().map(String::as_str));
        assert!(
            gaps.is_empty(),
            "docs/PROTOCOL.md §13 has no `{table}` row for {gaps:?}"
        );
    }
    // The timer tables list the kinds in declaration order, which is the order
    // `handle_timeout` runs them (`VALUES[k as usize] == k`).
    for (table, names) in [
        ("ClientTimer", &client_timers),
        ("ServerTimer", &server_timers),
    ] {
        assert_eq!(rows(table), *names, "§13.2 `{table}` rows out of order");
    }
}

/// Every `a::b` module path that §13 names, under one of the crate's top-level modules, is a
/// file under `proto/src` (`a/b.rs` or `a/b/mod.rs`).
#[cfg(feature = "std")]
#[test]
fn every_module_named_here_exists() {
    extern crate std;
    use std::path::Path;

    const TOP: [&str; 7] = [
        "wire",
        "handshake",
        "session",
        "reliability",
        "features",
        "table",
        "endpoint",
    ];
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    for quoted in section().split('`').skip(1).step_by(2) {
        let mut parts = quoted.split("::");
        let top = parts.next().unwrap_or_default();
        if !TOP.contains(&top)
            || !quoted
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == ':')
        {
            continue;
        }
        let path = quoted.replace("::", "/");
        let found =
            src.join(format!("{path}.rs")).exists() || src.join(&path).join("mod.rs").exists();
        assert!(
            found,
            "docs/PROTOCOL.md §13 names `{quoted}`, which is not a module"
        );
        checked += 1;
    }
    assert!(checked > 20, "only {checked} module names found in §13");
}

/// Every test, function or type that `docs/PROTOCOL.md` cites as `` `path.rs::name` `` (paths
/// relative to `proto/`) is declared in that file (or in the file of its unit tests beside
/// it), so a renamed or moved test cannot leave
/// a rule citing evidence that is gone.
#[cfg(feature = "std")]
#[test]
fn every_cited_function_exists() {
    extern crate std;
    use std::path::Path;

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for quoted in PROTOCOL.split('`').skip(1).step_by(2) {
        let Some((file, name)) = quoted.split_once(".rs::") else {
            continue;
        };
        if !(file.starts_with("src/") || file.starts_with("tests/"))
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        let mut source = std::fs::read_to_string(root.join(format!("{file}.rs")))
            .unwrap_or_else(|_| panic!("docs/PROTOCOL.md cites `{quoted}`: no such file"));
        // A module's unit tests count as in it when they live in their own file beside it:
        // `x_tests.rs` for `x.rs`, `tests.rs` for a `mod.rs`.
        let tests = match file.strip_suffix("/mod") {
            Some(dir) => format!("{dir}/tests.rs"),
            None => format!("{file}_tests.rs"),
        };
        if let Ok(more) = std::fs::read_to_string(root.join(tests)) {
            source.push_str(&more);
        }
        let declared = [
            "fn {}(",
            "fn {}<",
            "struct {} ",
            "struct {}<",
            "enum {} ",
            "const {}:",
        ]
        .iter()
        .any(|form| source.contains(&form.replace("{}", name)));
        assert!(
            declared,
            "docs/PROTOCOL.md cites `{quoted}`: nothing of that name in that file"
        );
        checked += 1;
    }
    assert!(checked > 50, "only {checked} citations found");
}
