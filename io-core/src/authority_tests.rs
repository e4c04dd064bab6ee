//! The policy file's errors (each naming its line) and the store's atomic batches.

use super::*;
use pavillion_proto::endpoint::{BatchId, StoreBatch};

fn parse(text: &str) -> Result<Policy, PolicyError> {
    parse_policy(text, Path::new("."), "p.toml")
}

fn key_hex(b: u8) -> String {
    format!("{b:02x}").repeat(32)
}

#[test]
fn a_full_policy_parses() {
    let text = format!(
        "max_peers = 7\n[lockout]\nthreshold = 3\nbase_secs = 10\nmax_secs = 60\n\
         failed_proofs_per_minute = 5\n[[peer]]\nkey = \"{}\"\nrole = \"gateway\"\nname = \"gw-1\"\n\
         [[operator]]\nkey = \"{}\"\n",
        key_hex(1),
        key_hex(2)
    );
    let p = parse(&text).unwrap();
    assert_eq!(p.max_peers, 7);
    assert_eq!(p.lockout.threshold, 3);
    assert_eq!(p.lockout.base, Duration::from_secs(10));
    assert_eq!(p.lockout.max, Duration::from_secs(60));
    assert_eq!(p.lockout.failed_proofs_per_minute, 5);
    assert_eq!(p.peers.len(), 1);
    assert_eq!(p.peers[0].name, "gw-1");
    assert_eq!(p.operators.len(), 1);
}

#[test]
fn an_empty_policy_takes_the_defaults() {
    let p = parse("").unwrap();
    assert_eq!(p.max_peers, DEFAULT_MAX_PEERS);
    assert_eq!(p.lockout, LockoutPolicy::default());
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().0
}

#[test]
fn malformed_toml_names_its_line_and_column() {
    let e = error("max_peers = 3\n[[peer]\n");
    assert!(e.starts_with("p.toml, line 2, column"), "{e}");
}

#[test]
fn a_wrong_type_names_its_line() {
    let e = error("\n\nmax_peers = \"many\"\n");
    assert!(e.contains("line 3"), "{e}");
}

#[test]
fn unknown_keys_are_refused() {
    let e = error("max_peer = 3\n");
    assert!(e.contains("line 1") && e.contains("max_peer"), "{e}");
    let e = error("[lockout]\nthreshhold = 3\n");
    assert!(e.contains("line 2"), "{e}");
}

#[test]
fn a_short_secret_is_refused_at_its_line() {
    let e = error("[[enrolment]]\nsecret = \"short\"\n");
    assert_eq!(
        e,
        "p.toml, line 2, column 10: an enrolment secret must be at least 16 bytes"
    );
}

#[test]
fn an_enrolment_needs_one_secret() {
    let e = error("[[enrolment]]\nrole = \"x\"\n");
    assert!(e.contains("needs secret"), "{e}");
}

#[test]
fn a_bad_key_is_refused_at_its_line() {
    let e = error("[[peer]]\nrole = \"a\"\nkey = \"zz\"\n");
    assert!(e.starts_with("p.toml, line 3, column 7: key"), "{e}");
    let e = error(&format!("[[operator]]\nkey = \"{}\"\n", "ab".repeat(31)));
    assert!(e.contains("line 2"), "{e}");
}

#[test]
fn a_long_label_is_refused() {
    let e = error(&format!(
        "[[peer]]\nkey = \"{}\"\nname = \"{}\"\n",
        key_hex(1),
        "n".repeat(33)
    ));
    assert!(e.contains("line 3") && e.contains("32 bytes"), "{e}");
}

#[test]
fn an_oversized_policy_is_refused_before_parsing() {
    let dir = scratch("oversized");
    let path = dir.join("policy.toml");
    std::fs::write(&path, "#".repeat(MAX_POLICY_BYTES + 1)).unwrap();
    let e = load_policy(&path).unwrap_err().0;
    assert!(e.contains("larger than"), "{e}");
    std::fs::write(&path, "max_peers = 2\n").unwrap();
    assert_eq!(load_policy(&path).unwrap().0.max_peers, 2);
}

#[test]
fn a_key_may_be_a_pub_file_beside_the_policy() {
    let dir = scratch("pubfile");
    std::fs::write(
        dir.join("gw.pub"),
        format!("# pavillion public-key\n{}\n", key_hex(9)),
    )
    .unwrap();
    let path = dir.join("policy.toml");
    std::fs::write(&path, "[[peer]]\nkey = \"gw.pub\"\n").unwrap();
    let (p, _) = load_policy(&path).unwrap();
    assert_eq!(p.peers[0].public, PublicKey::from([9; 32]));
}

/// A fresh folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "pavillion-io-authority-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn put(table: StoreTable, key: &[u8], value: &[u8]) -> StoreOp {
    StoreOp::Put {
        table,
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

#[test]
fn the_store_round_trips_every_table() {
    let path = scratch("round-trip").join("s.redb");
    let store = Store::open(&path).unwrap();
    let ops: Vec<StoreOp> = StoreTable::ALL
        .into_iter()
        .map(|t| put(t, t.name().as_bytes(), &[t as u8; 3]))
        .collect();
    store
        .apply(&StoreBatch {
            id: BatchId(1),
            ops: ops.clone(),
        })
        .unwrap();
    store
        .apply(&StoreBatch {
            id: BatchId(2),
            ops: vec![StoreOp::Delete {
                table: StoreTable::Revoked,
                key: b"revoked".to_vec(),
            }],
        })
        .unwrap();
    let records = store.load().unwrap();
    assert_eq!(records.0.len(), 3);
    for t in [StoreTable::Meta, StoreTable::Members, StoreTable::Lockouts] {
        assert_eq!(records.get(t, t.name().as_bytes()), Some(&[t as u8; 3][..]));
    }
    assert_eq!(records.get(StoreTable::Revoked, b"revoked"), None);
}

#[test]
fn a_reopened_store_keeps_the_version() {
    let path = scratch("reopen").join("s.redb");
    {
        let store = Store::open(&path).unwrap();
        for v in 1..=3u64 {
            store
                .apply(&StoreBatch {
                    id: BatchId(v),
                    ops: vec![put(StoreTable::Meta, b"version", &v.to_le_bytes())],
                })
                .unwrap();
        }
    }
    let store = Store::open(&path).unwrap();
    let records = store.load().unwrap();
    assert_eq!(
        records.get(StoreTable::Meta, b"version"),
        Some(&3u64.to_le_bytes()[..])
    );
}

#[test]
fn a_batch_not_committed_leaves_nothing() {
    let path = scratch("atomic").join("s.redb");
    {
        let store = Store::open(&path).unwrap();
        store
            .apply(&StoreBatch {
                id: BatchId(1),
                ops: vec![put(StoreTable::Meta, b"version", &[1])],
            })
            .unwrap();
        // A batch written up to its last op, then the process stops before the commit
        // (the transaction is dropped, as a crash drops it).
        let txn = store
            .staged(&[
                put(StoreTable::Meta, b"version", &[2]),
                put(StoreTable::Members, b"m", b"entry"),
                put(StoreTable::Revoked, b"k", b""),
            ])
            .unwrap();
        drop(txn);
    }
    let records = Store::open(&path).unwrap().load().unwrap();
    assert_eq!(
        records.0,
        vec![(StoreTable::Meta, b"version".to_vec(), vec![1])]
    );
}

#[test]
fn a_second_opener_of_a_store_is_refused() {
    let path = scratch("locked").join("s.redb");
    let _first = Store::open(&path).unwrap();
    assert!(Store::open(&path).is_err());
}

#[test]
fn refusal_names_are_distinct() {
    let all = [
        JoinRefusal::NotInPolicy,
        JoinRefusal::BadProof,
        JoinRefusal::LockedOut,
        JoinRefusal::Revoked,
        JoinRefusal::Full,
        JoinRefusal::Malformed,
        JoinRefusal::Busy,
    ];
    let names: std::collections::BTreeSet<_> = all.iter().map(|r| refusal_name(*r)).collect();
    assert_eq!(names.len(), all.len());
    assert_eq!(refusal_name(JoinRefusal::BadProof), "bad-proof");
}

fn roster_of(ids: &[[u8; 16]]) -> Roster {
    let mut r = Roster::default();
    for (i, id) in ids.iter().enumerate() {
        let id = MemberId(pavillion_proto::ClientId(*id));
        r.entries.insert(
            id,
            pavillion_proto::features::authority::RosterEntry {
                id,
                public: PublicKey::from([i as u8; 32]),
                role: String::new(),
                name: String::new(),
                addr: None,
                up: true,
            },
        );
    }
    r
}

#[test]
fn a_member_resolves_by_a_unique_prefix_of_eight() {
    let mut a = [0u8; 16];
    a[..5].copy_from_slice(&[0x12, 0x34, 0x56, 0x78, 0x9a]);
    let mut b = a;
    b[4] = 0x9b;
    let r = roster_of(&[a, b]);
    let ida = MemberId(pavillion_proto::ClientId(a));
    assert_eq!(resolve_member(&r, "123456789a"), Ok(ida));
    assert_eq!(resolve_member(&r, "123456789A"), Ok(ida));
    assert_eq!(resolve_member(&r, &ida.to_string()), Ok(ida));
    assert_eq!(resolve_member(&r, "12345678"), Err(ResolveError::Ambiguous));
    assert_eq!(resolve_member(&r, "1234567"), Err(ResolveError::BadId));
    assert_eq!(resolve_member(&r, "ffffffff"), Err(ResolveError::NoMember));
    assert_eq!(resolve_member(&r, "1234567z9"), Err(ResolveError::BadId));
}

#[test]
fn an_enrolment_secret_from_a_file_is_the_same_secret() {
    let dir = scratch("secret-file");
    std::fs::write(dir.join("enrol.txt"), "sixteen bytes or more\n").unwrap();
    let path = dir.join("policy.toml");
    std::fs::write(
        &path,
        "[[enrolment]]\nsecret_file = \"enrol.txt\"\n[[enrolment]]\nsecret = \"sixteen bytes or more\"\nrole = \"sensor\"\n",
    )
    .unwrap();
    let (p, _) = load_policy(&path).unwrap();
    let key = Enrolment::key_of(b"sixteen bytes or more");
    assert_eq!(p.enrolments[0].key, key);
    assert_eq!(p.enrolments[0].role, None);
    assert_eq!(p.enrolments[1].key, key);
    assert_eq!(p.enrolments[1].role.as_deref(), Some("sensor"));
}
