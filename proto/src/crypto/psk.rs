//! Suite 1 (PSK): the keyed-hash derivations of docs/PROTOCOL.md §4.1.
//!
//! Notation: `H(k; m)` is [`keyed_hash`], BLAKE2b-256 keyed with `k`. `cn` is the client nonce
//! (one per client process), `sn` the server nonce (fresh for each handshake), `ch` the client
//! challenge of op 1.
//!
//! The reference's prose documentation puts the server nonce first in places; the code, which
//! is what interoperates, puts the client nonce first. These functions follow the code.

use super::{keyed_hash, Psk, SecretBoxKey};

/// The client-to-server session key, `H(PSK; cn)`.
pub fn client_to_server_key(psk: &Psk, client_nonce: &[u8; 32]) -> SecretBoxKey {
    SecretBoxKey::from_bytes(keyed_hash(psk.danger_as_bytes(), &[client_nonce]))
}

/// The server-to-client session key, `H(PSK; cn || sn)`.
pub fn server_to_client_key(
    psk: &Psk,
    client_nonce: &[u8; 32],
    server_nonce: &[u8; 32],
) -> SecretBoxKey {
    SecretBoxKey::from_bytes(keyed_hash(
        psk.danger_as_bytes(),
        &[client_nonce, server_nonce],
    ))
}

/// The tag of op 2 (PSK Nonce), `H(PSK; sn || ch)`: proves the server holds the PSK.
///
/// Compare received tags with [`super::ct_eq`].
pub fn nonce_tag(psk: &Psk, server_nonce: &[u8; 32], challenge: &[u8; 16]) -> [u8; 32] {
    keyed_hash(psk.danger_as_bytes(), &[server_nonce, challenge])
}

/// The tag of op 3 (PSK Client Info), `H(PSK; authenticated)`.
///
/// `authenticated` is the 89 payload bytes before the tag, i.e. packet bytes 20..109:
/// `cipher(1) || client id(16) || cn(32) || sn(32) || u64_le(counter)`. Compare received tags with
/// [`super::ct_eq`].
pub fn client_info_tag(psk: &Psk, authenticated: &[u8; 89]) -> [u8; 32] {
    keyed_hash(psk.danger_as_bytes(), &[authenticated])
}

/// The session id the Python server announces in op 7: `H(PSK; C>S key)[0..16]`.
///
/// The Arduino server computes BLAKE2b with a 16-byte *output* instead, which is a different
/// value; it never sends it, so only the Python form matters on the wire.
pub fn session_id(psk: &Psk, client_to_server: &SecretBoxKey) -> [u8; 16] {
    let full = keyed_hash(psk.danger_as_bytes(), &[client_to_server.danger_as_bytes()]);
    let mut id = [0; 16];
    id.copy_from_slice(&full[..16]);
    id
}

#[cfg(test)]
mod tests {
    use super::super::ct_eq;
    use super::super::test_vectors::*;
    use super::*;

    fn psk(s: &str) -> Psk {
        Psk::from_hex(s).unwrap()
    }

    /// Op 2 payload fields: (sn, challenge, tag).
    fn op2_fields(packet: &[u8]) -> ([u8; 32], [u8; 16], [u8; 32]) {
        assert_eq!(packet.len(), 100);
        assert_eq!(&packet[11..20], &[0, 0, 0, 0, 0, 0, 0, 0, 2]);
        (
            packet[20..52].try_into().unwrap(),
            packet[52..68].try_into().unwrap(),
            packet[68..100].try_into().unwrap(),
        )
    }

    /// Op 3 payload fields: (authenticated bytes, cn, sn, tag).
    fn op3_fields(packet: &[u8]) -> ([u8; 89], [u8; 32], [u8; 32], [u8; 32]) {
        assert_eq!(packet.len(), 141);
        assert_eq!(&packet[11..20], &[0, 0, 0, 0, 0, 0, 0, 0, 3]);
        (
            packet[20..109].try_into().unwrap(),
            packet[37..69].try_into().unwrap(),
            packet[69..101].try_into().unwrap(),
            packet[109..141].try_into().unwrap(),
        )
    }

    #[test]
    fn computed_vectors() {
        let psk = psk(COMPUTED_PSK);
        let (cn, sn, ch) = (h32(COMPUTED_CN), h32(COMPUTED_SN), h16(COMPUTED_CHALLENGE));

        let tag = nonce_tag(&psk, &sn, &ch);
        assert_eq!(tag, h32(COMPUTED_OP2_TAG));
        assert_eq!(op2_fields(&bytes(COMPUTED_OP2)), (sn, ch, tag));

        let (authenticated, op3_cn, op3_sn, op3_tag) = op3_fields(&bytes(COMPUTED_OP3));
        assert_eq!((op3_cn, op3_sn), (cn, sn));
        assert_eq!(
            &authenticated[..17],
            &bytes(&["01", COMPUTED_CLIENT_ID].concat())[..]
        );
        assert_eq!(&authenticated[81..], &1000u64.to_le_bytes());
        assert_eq!(client_info_tag(&psk, &authenticated), h32(COMPUTED_OP3_TAG));
        assert_eq!(op3_tag, h32(COMPUTED_OP3_TAG));

        let cts = client_to_server_key(&psk, &cn);
        assert_eq!(cts.danger_as_bytes(), &h32(COMPUTED_CTS));
        let stc = server_to_client_key(&psk, &cn, &sn);
        assert_eq!(stc.danger_as_bytes(), &h32(COMPUTED_STC));
        assert_eq!(session_id(&psk, &cts), h16(COMPUTED_PSK_SESSION_ID));
    }

    #[test]
    fn arduino_session_id_really_differs() {
        use blake2::digest::{consts::U16, KeyInit, Mac as _};
        let psk = psk(COMPUTED_PSK);
        let cts = h32(COMPUTED_CTS);
        let mut mac =
            <blake2::Blake2bMac<U16> as KeyInit>::new_from_slice(psk.danger_as_bytes()).unwrap();
        mac.update(&cts);
        let arduino: [u8; 16] = mac.finalize().into_bytes().into();
        assert_eq!(arduino, h16(COMPUTED_ARDUINO_SESSION_ID));
        assert_ne!(arduino, session_id(&psk, &SecretBoxKey::from_bytes(cts)));
    }

    #[test]
    fn captured_handshake() {
        let psk = psk(CAP_PSK);
        let (sn, ch, op2_tag) = op2_fields(&bytes(CAP_PSK_OP2));
        assert_eq!(ch, h16(CAP_PSK_CHALLENGE));
        assert_eq!(op2_tag, h32(CAP_PSK_OP2_TAG));
        assert!(ct_eq(&nonce_tag(&psk, &sn, &ch), &op2_tag));

        let (authenticated, cn, op3_sn, op3_tag) = op3_fields(&bytes(CAP_PSK_OP3));
        assert_eq!(&authenticated[1..17], &h16(CAP_PSK_CID));
        assert_eq!((cn, op3_sn), (h32(CAP_PSK_CN), h32(CAP_PSK_SN)));
        assert_eq!(op3_sn, sn);
        assert_eq!(op3_tag, h32(CAP_PSK_OP3_TAG));
        assert!(ct_eq(&client_info_tag(&psk, &authenticated), &op3_tag));

        let cts = client_to_server_key(&psk, &cn);
        assert_eq!(cts.danger_as_bytes(), &h32(CAP_PSK_CTS));
        let stc = server_to_client_key(&psk, &cn, &sn);
        assert_eq!(stc.danger_as_bytes(), &h32(CAP_PSK_STC));

        let op7 = bytes(CAP_PSK_OP7);
        assert_eq!(&op7[11..20], &[0, 0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(session_id(&psk, &cts), h16(CAP_PSK_SESSION_ID));
        assert_eq!(&op7[20..], &session_id(&psk, &cts));
    }

    #[test]
    fn wrong_psk_gives_other_tags() {
        let (sn, ch) = (h32(COMPUTED_SN), h16(COMPUTED_CHALLENGE));
        let wrong = Psk::from_bytes([0; 32]);
        assert!(!ct_eq(&nonce_tag(&wrong, &sn, &ch), &h32(COMPUTED_OP2_TAG)));
    }
}
