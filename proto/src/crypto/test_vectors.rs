//! Test vectors from `wire-notes.md` §11 (`computed-vectors.md`) and the captures of the
//! unmodified reference (`reference-psk-ecc-captures.txt`), as hex, plus small helpers.
//!
//! The hex is copied verbatim from those files so that a mismatch points at our code.

use alloc::vec::Vec;

use super::{CryptoError, SecretBoxKey, SessionCipher, TAG_LEN};
use crate::id::Counter;

/// Computed vectors: the PSK.
pub(crate) const COMPUTED_PSK: &str =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// Computed vectors: the client id ("C"×16).
pub(crate) const COMPUTED_CLIENT_ID: &str = "43434343434343434343434343434343";
/// Computed vectors: the client nonce.
pub(crate) const COMPUTED_CN: &str =
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafa0a1a2a3a4a5a6a7a8a9aaabacadaeaf";
/// Computed vectors: the server nonce.
pub(crate) const COMPUTED_SN: &str =
    "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
/// Computed vectors: the client challenge.
pub(crate) const COMPUTED_CHALLENGE: &str = "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf";
/// Computed vectors: the op 2 tag.
pub(crate) const COMPUTED_OP2_TAG: &str =
    "5fcce90d71cb5ad435308d5a43ebfa4255e2c3279482d041bd299b40b056fddd";
/// Computed vectors: the op 2 packet.
pub(crate) const COMPUTED_OP2: &str = "506176696c6c696f6e5330000000000000000002b0b1b2b3b4b5b6b7b8b9babbbcbdbebfb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf5fcce90d71cb5ad435308d5a43ebfa4255e2c3279482d041bd299b40b056fddd";
/// Computed vectors: the op 3 tag.
pub(crate) const COMPUTED_OP3_TAG: &str =
    "9d5d2db180f7dad1f51f0b2daf646fd3cb886e1bc569fc849a67211f9e97c520";
/// Computed vectors: the op 3 packet (counter field 1000).
pub(crate) const COMPUTED_OP3: &str = "506176696c6c696f6e53300000000000000000030143434343434343434343434343434343a0a1a2a3a4a5a6a7a8a9aaabacadaeafa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfb0b1b2b3b4b5b6b7b8b9babbbcbdbebfe8030000000000009d5d2db180f7dad1f51f0b2daf646fd3cb886e1bc569fc849a67211f9e97c520";
/// Computed vectors: the PSK C>S key.
pub(crate) const COMPUTED_CTS: &str =
    "2de50cd4fedd3f3cb96cb39840aa06f26f14dc675d571468b9dfcd95ec470375";
/// Computed vectors: the PSK S>C key.
pub(crate) const COMPUTED_STC: &str =
    "71c0130d520e10451e6ff766393234d713748e7c44a2addbad2ebd01ed8b344a";
/// Computed vectors: the Python session id of the PSK session.
pub(crate) const COMPUTED_PSK_SESSION_ID: &str = "a4983d3f433b54fa7e253c33ebc02115";
/// Computed vectors: the Arduino (BLAKE2b-128) session id.
pub(crate) const COMPUTED_ARDUINO_SESSION_ID: &str = "c09151748255a0e7891152f642d83b75";
/// Computed vectors: C>S RPC call, counter 1001.
pub(crate) const COMPUTED_CALL_1001: &str =
    "506176696c6c696f6e5330e903000000000000e663796f59dcbcf40dfd76c07073725ab9522a7a49856013";
/// Computed vectors: S>C RPC response, counter 2^63+5.
pub(crate) const COMPUTED_RESPONSE: &str = "506176696c6c696f6e53300500000000000080d92d455814a452bf230706ba1538e91c857db04a3c58d50b2bfe244d2c808b3d";
/// Computed vectors: C>S reliable message, counter 1002.
pub(crate) const COMPUTED_MESSAGE_1002: &str =
    "506176696c6c696f6e5330ea0300000000000054cfb57abe3f681ca817b12f1f070e8a6220f90cbfd9aa6783";
/// Computed vectors: S>C ACK of 1002, counter 2^63+6.
pub(crate) const COMPUTED_ACK: &str = "506176696c6c696f6e533006000000000000806ca479577e0d268312cee4d2c19710f85638445d49244211f84ec2eb";
/// Computed vectors: the ECC client secret.
pub(crate) const COMPUTED_ECC_CLIENT_SK: &str =
    "1111111111111111111111111111111111111111111111111111111111111111";
/// Computed vectors: the ECC client public key.
pub(crate) const COMPUTED_ECC_CLIENT_PUB: &str =
    "7b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13";
/// Computed vectors: the ECC server secret.
pub(crate) const COMPUTED_ECC_SERVER_SK: &str =
    "2222222222222222222222222222222222222222222222222222222222222222";
/// Computed vectors: the ECC server public key.
pub(crate) const COMPUTED_ECC_SERVER_PUB: &str =
    "0faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f20";
/// Computed vectors: the op 11 packet (box nonce 33×24).
pub(crate) const COMPUTED_OP11: &str = "506176696c6c696f6e533000000000000000000b3333333333333333333333333333333333333333333333335fa72c32d508f4b3ecb73cc099bee5b986ad7c2a0a5c5beb180ba198254978fa4da6836945b36712d078346c23ae42e82a7a92301e369e840fcccfd504549ac2";
/// Computed vectors: the op 12 packet (box nonce 66×24).
pub(crate) const COMPUTED_OP12: &str = "506176696c6c696f6e533000000000000000000c434343434343434343434343434343430266666666666666666666666666666666666666666666666617535af349ef534d814adaa287ea3020b394f03efe285a2ae8e34f94d0461f1dabfdc01e10733d7241f34881a6b9e8081e7d33586998a99934643e4700dc51b9feaee3b6e458d47636839341b9fcf25e0f63ed05db971224eb0161e1c7f727687845e6be1d72f3c5ec1b50bc042faa2d3e79748ff9a4df6a";
/// Computed vectors: the ECC session id for C>S = 44×32.
pub(crate) const COMPUTED_ECC_SESSION_ID: &str = "ec2e02c60b0c8160d57b6357783148d3";
/// Computed vectors: the guest id of the ECC client.
pub(crate) const COMPUTED_GUEST_ID: &str =
    "0c56bcb294e2bcf2459ac55b9782b29f7a6e6f9146fc1fa4b18844233ca67cdf";
/// Computed vectors: the default client id of the ECC client.
pub(crate) const COMPUTED_DEFAULT_CLIENT_ID: &str = "0c56bcb294e2bcf2459ac55b9782b29f";
/// Captures: `PSK_CID`.
pub(crate) const CAP_PSK_CID: &str = "000102030405060708090a0b0c0d0e0f";
/// Captures: `PSK`.
pub(crate) const CAP_PSK: &str = "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f";
/// Captures: `ECC_SERVER_SK`.
pub(crate) const CAP_ECC_SERVER_SK: &str =
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
/// Captures: `ECC_SERVER_PUB`.
pub(crate) const CAP_ECC_SERVER_PUB: &str =
    "605a725d2a4adfeeb1a29e17edd621c1b7593ee8cdbc44ac6c4ab6e2f805d23c";
/// Captures: `ECC_CID`.
pub(crate) const CAP_ECC_CID: &str = "e0e1e2e3e4e5e6e7e8e9eaebecedeeef";
/// Captures: `ECC_CLIENT_SK`.
pub(crate) const CAP_ECC_CLIENT_SK: &str =
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf";
/// Captures: `ECC_CLIENT_PUB`.
pub(crate) const CAP_ECC_CLIENT_PUB: &str =
    "dc2cca31e8e43bbd91dff7e475cca3347eb478107d5bd765aba4ae4a30c35d44";
/// Captures #2: op 2.
pub(crate) const CAP_PSK_OP2: &str = "506176696c6c696f6e53300000000000000000024d52471fd07a9716e5d3c949f46f9c6a322d286fd118342be060b3e2944586b977a28eaf3ce1c65fab37ebf2f1c8483f5fe40531d84fd7929b20ee9693d89ac1a04e004ea7b0c5cb02f06a5b5d100d6c";
/// Captures #2: the op 2 tag.
pub(crate) const CAP_PSK_OP2_TAG: &str =
    "5fe40531d84fd7929b20ee9693d89ac1a04e004ea7b0c5cb02f06a5b5d100d6c";
/// Captures #3: op 3.
pub(crate) const CAP_PSK_OP3: &str = "506176696c6c696f6e533000000000000000000301000102030405060708090a0b0c0d0e0f1a65ce225c37eea8aba872457df0380db84663bf288bdca90fb9dd986be7e46d4d52471fd07a9716e5d3c949f46f9c6a322d286fd118342be060b3e2944586b965b1a90200000000275b35894b8191f6a810fe1f86a47bac389d07bb105c35750e174f0e54b542ee";
/// Captures #3: the op 3 tag.
pub(crate) const CAP_PSK_OP3_TAG: &str =
    "275b35894b8191f6a810fe1f86a47bac389d07bb105c35750e174f0e54b542ee";
/// Captures #3: the client nonce.
pub(crate) const CAP_PSK_CN: &str =
    "1a65ce225c37eea8aba872457df0380db84663bf288bdca90fb9dd986be7e46d";
/// Captures #3: the server nonce.
pub(crate) const CAP_PSK_SN: &str =
    "4d52471fd07a9716e5d3c949f46f9c6a322d286fd118342be060b3e2944586b9";
/// Captures #1: the client challenge.
pub(crate) const CAP_PSK_CHALLENGE: &str = "77a28eaf3ce1c65fab37ebf2f1c8483f";
/// Captures #3: the derived C>S key.
pub(crate) const CAP_PSK_CTS: &str =
    "c62b07bfe41655dcb845f783b752a074e175b2c94d35d156e18f9daf4ea04d27";
/// Captures #3: the derived S>C key.
pub(crate) const CAP_PSK_STC: &str =
    "32a2197a26a40e3e42ac7ce76d80daddab3f312af40e07772920336b9bb35174";
/// Captures #3: the expected session id.
pub(crate) const CAP_PSK_SESSION_ID: &str = "a62aeda8fde4f1cdf0ac1140f1a9ffc3";
/// Captures #4: op 7 of the PSK session.
pub(crate) const CAP_PSK_OP7: &str =
    "506176696c6c696f6e5330000000000000000007a62aeda8fde4f1cdf0ac1140f1a9ffc3";
/// Captures #13: op 11.
pub(crate) const CAP_ECC_OP11: &str = "506176696c6c696f6e533000000000000000000b98e52ba8497f978407ef4e90d35358a4f69bc3e8f3b9ddf0ec93114548c445708f681af020197c18675fdb0c98555c98d0ab18f22732dcd55c9ae3d5ef40a1ad94463a6e748fb7b4f8ac47415c595a29b3d0bbde68bfd908";
/// Captures #13: the decrypted server nonce.
pub(crate) const CAP_ECC_SN: &str =
    "1d313fb84d8d7d805ec13e15e1a017e0afc02cdb13bfdcbddc1a093e01b95905";
/// Captures #12: the client challenge.
pub(crate) const CAP_ECC_CHALLENGE: &str = "379232ecce8b9be79d3b2d824474088a";
/// Captures #14: op 12.
pub(crate) const CAP_ECC_OP12: &str = "506176696c6c696f6e533000000000000000000ce0e1e2e3e4e5e6e7e8e9eaebecedeeef029e6ed7b5252bf4dc26d9b4448eed83eb4588aadf412181c54a585d58719c2cec61416f8ded1f7fb729087415defcc6131f707d6d866b6490cbfb3bc63d33a53d5bba501d82a385da52b99ec9d71ce447aac1d1cc7f925aa483e784a78acbf7aabc3795f29f97360f2ed40edf20d01b009e088fbd1db851b6efaf3266aedb446fb21d3eff3a832164d3bf6107f5ebb2f1";
/// Captures #14: the C>S key inside op 12.
pub(crate) const CAP_ECC_CTS: &str =
    "f2cccde96d5202810b78c3dae6662a7a5a5b54ce7ca3469dc4b5d83c968de070";
/// Captures #14: the S>C key inside op 12.
pub(crate) const CAP_ECC_STC: &str =
    "9356dcbb4627557cddce8b92eb4c804f1c9fa937598ec5af2b37399b8b3ed8e5";
/// Captures #14: the expected session id.
pub(crate) const CAP_ECC_SESSION_ID: &str = "ab1ceec14034d1f007849176cfd8fe03";
/// Captures #14: the client counter inside op 12.
pub(crate) const CAP_ECC_COUNTER: u64 = 299256316;
/// Captures #15: op 7 of the ECC session.
pub(crate) const CAP_ECC_OP7: &str =
    "506176696c6c696f6e5330000000000000000007ab1ceec14034d1f007849176cfd8fe03";
/// Captures: every secure packet as (key, packet, plaintext).
pub(crate) const CAPTURED_SESSION_PACKETS: &[(&str, &str, &str)] = &[
    // #5
    (CAP_PSK_CTS, "506176696c6c696f6e533067b1a902000000001616fd0849f557c307c298d91e22c48e959d08dc0c06c46cba587176ed7eee7a", "04910141207465737420737472696e67"),
    // #6
    (CAP_PSK_STC, "506176696c6c696f6e5330f02c012f0000008074e5245cd933ac99beec9368bbedce3bd2256a6ee423a9cc31decca0b87be02384698e0a7eb921ae", "0567b1a90200000000000041207465737420737472696e67"),
    // #7
    (CAP_PSK_CTS, "506176696c6c696f6e533068b1a9020000000082b6594d5d70e0e0a1fd0431216ef090c9adaca7fd9fa7b76dd02f0a9a8e8763", "04910141207465737420737472696e67"),
    // #8
    (CAP_PSK_STC, "506176696c6c696f6e5330f12c012f000000800ae33db9b3659391a79bb0fb62e5065ad265dec6c94ecd01cb567987c146cb560bad573046f0729e", "0568b1a90200000000000041207465737420737472696e67"),
    // #9
    (CAP_PSK_CTS, "506176696c6c696f6e533069b1a90200000000fd7424dd462d17741a89ee66180b9656fdc61ff207aca43833bdfe28d9ac602f59170ddead1b06da8afd5fc5", "01546573745461726765740a4d6573736167654e616d650a64617461"),
    // #10
    (CAP_PSK_STC, "506176696c6c696f6e5330f22c012f00000080a1735ad3f87c36e679b99f48dd1425042ebb30502b3ef4553b", "0269b1a90200000000"),
    // #11
    (CAP_PSK_CTS, "506176696c6c696f6e53306ab1a90200000000303c6adb80eefee7e7ed49df251f6d8fac", "0c"),
    // #16
    (CAP_ECC_CTS, "506176696c6c696f6e5330fd49d61100000000bd55f8db081c48ceab706c7edeebaa8165c8c78e1c614318ed5f137d483156e2", "04910141207465737420737472696e67"),
    // #17
    (CAP_ECC_STC, "506176696c6c696f6e533057a1920300000080e0acb4044902c1c596ba2d509ad553ed98244a0e84064513a7d33794e991f05438f15a3ca3091ddd", "05fd49d61100000000000041207465737420737472696e67"),
    // #18
    (CAP_ECC_CTS, "506176696c6c696f6e5330fe49d6110000000015a150296373d6a4bdd2ac6a869af723af58a16fec604b2cf9d9bd5047449941", "04910141207465737420737472696e67"),
    // #19
    (CAP_ECC_STC, "506176696c6c696f6e533058a192030000008094d6058e2187306731f14304a0d8b823ac7f91dab1978d2d7b5fae3262ff88c50d27afa0cd780354", "05fe49d61100000000000041207465737420737472696e67"),
    // #20
    (CAP_ECC_CTS, "506176696c6c696f6e5330ff49d61100000000e5319db821761704121c9345b8f1030610", "0c"),
];

/// Decodes 32 bytes of hex.
pub(crate) fn h32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// Decodes 16 bytes of hex.
pub(crate) fn h16(s: &str) -> [u8; 16] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// Decodes a packet's hex.
pub(crate) fn bytes(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// Opens a whole session datagram `magic || counter || tag || ciphertext`.
pub(crate) fn open_packet(
    key: &SecretBoxKey,
    packet: &[u8],
) -> Result<(Counter, Vec<u8>), CryptoError> {
    assert_eq!(&packet[..11], b"PavillionS0");
    let counter = Counter(u64::from_le_bytes(packet[11..19].try_into().unwrap()));
    let tag: [u8; TAG_LEN] = packet[19..35].try_into().unwrap();
    let mut body = packet[35..].to_vec();
    key.open_in_place(counter, &packet[..19], &tag, &mut body)?;
    Ok((counter, body))
}

/// Builds a whole session datagram from its plaintext.
pub(crate) fn seal_packet(key: &SecretBoxKey, counter: Counter, plaintext: &[u8]) -> Vec<u8> {
    let mut packet = b"PavillionS0".to_vec();
    packet.extend_from_slice(&counter.0.to_le_bytes());
    let mut body = plaintext.to_vec();
    let tag = key.seal_in_place(counter, &packet, &mut body);
    packet.extend_from_slice(&tag);
    packet.extend_from_slice(&body);
    packet
}
