-- Known-answer tests of the dissector's pure-Lua ciphers: RFC 8439 (ChaCha20, Poly1305,
-- ChaCha20-Poly1305), NaCl's secretbox test (XSalsa20-Poly1305, as libsodium's
-- crypto_secretbox), the Salsa20 eSTREAM set 1 vector and the XSalsa20 vector of the RustCrypto
-- salsa20 crate. Run inside tshark, which provides Lua 5.2 and bit32:
--
--   tshark -X lua_script:wireshark/tests/crypto_vectors.lua -r any.pcapng
--
-- It prints one line per vector and a summary `crypto vectors: N passed, M failed`
-- (capture/tests/wireshark.rs runs it and checks the summary).

local here = debug.getinfo(1, "S").source:match("^@(.*)/tests/[^/]*$") or "wireshark"
-- Load the dissector file as a library: without `Proto` in its environment it returns its
-- crypto table and registers nothing.
local env = setmetatable({}, { __index = function(_, k)
    if k == "Proto" then return nil end
    return _G[k]
end })
local chunk = assert(loadfile(here .. "/pavillion.lua", "t", env))
local c = chunk()
local h, x = c.from_hex, c.to_hex

local passed, failed = 0, 0
local function check(name, got, want)
    if got == want then
        passed = passed + 1
        print("ok " .. name)
    else
        failed = failed + 1
        print("FAIL " .. name .. ": got " .. tostring(got) .. ", want " .. tostring(want))
    end
end

-- Poly1305, RFC 8439 §2.5.2.
check("poly1305 rfc8439 2.5.2",
    x(c.poly1305("Cryptographic Forum Research Group",
        h("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b"))),
    "a8061dc1305136c6c22b8baf0c0127a9")
-- Poly1305, NaCl tests/onetimeauth.c.
local nacl_msg = h([[8e993b9f48681273c29650ba32fc76ce48332ea7164d96a4476fb8c531a1186a
c0dfc17c98dce87b4da7f011ec48c97271d2c20f9b928fe2270d6fb863d51738
b48eeee314a7cc8ab932164548e526ae90224368517acfeabd6bb3732bc0e9da
99832b61ca01b6de56244a9e88d5f9b37973f622a43d14a6599b1f654cb45a74e355a5]])
check("poly1305 nacl", x(c.poly1305(nacl_msg,
    h("eea6a7251c1e72916d11c2cb214d3c252539121d8e234e652d651fa4c8cff880"))),
    "f3ffc7703f9400e52a7dfb4b3d3305d9")
-- Poly1305, poly1305-donna self test 1: h reaches 2^130 - 2, which must reduce to 3.
check("poly1305 donna wrap", x(c.poly1305(string.rep("\255", 16), "\2" .. string.rep("\0", 31))),
    "03000000000000000000000000000000")

-- ChaCha20 block function, RFC 8439 §2.3.2.
check("chacha20 block rfc8439 2.3.2",
    x(c.chacha20_block(h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"), 1,
        h("000000090000004a00000000"))),
    "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e" ..
    "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e")

-- ChaCha20-Poly1305, RFC 8439 §2.8.2.
local aead_key = h("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
local aead_nonce = h("070000004041424344454647")
local aead_aad = h("50515253c0c1c2c3c4c5c6c7")
local sunscreen = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."
local aead_sealed = h("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116"
    .. "1ae10b594f09e26a7e902ecbd0600691")
check("chacha20-poly1305 rfc8439 2.8.2 open", c.aead_open(aead_key, aead_nonce, aead_aad, aead_sealed), sunscreen)
check("chacha20-poly1305 wrong aad refused",
    c.aead_open(aead_key, aead_nonce, aead_aad:sub(1, 11) .. "\0", aead_sealed), nil)
check("chacha20-poly1305 flipped ciphertext refused",
    c.aead_open(aead_key, aead_nonce, aead_aad, "\1" .. aead_sealed:sub(2)), nil)

-- Salsa20, eSTREAM set 1 vector 0 (key 80 00 .., nonce 0), first 64 bytes.
check("salsa20 estream set1 v0",
    x(c.salsa20_stream(h("80" .. string.rep("00", 31)), string.rep("\0", 8), 64)),
    "e3be8fdd8beca2e3ea8ef9475b29a6e7003951e1097a5c38d23b7a5fad9f6844" ..
    "b22c97559e2723c7cbbd3fe4fc8d9a0744652a83e72a9c461876af4d7ef1a117")
-- XSalsa20 (HSalsa20 then Salsa20).
check("xsalsa20 stream",
    x(c.xsalsa20_stream("this is 32-byte key for xsalsa20", "24-byte nonce for xsalsa", 64)),
    "4848297feb1fb52fb66d81609bd547fabcbe7026edc8b5e5e449d088bfa69c08" ..
    "8f5d8da1d791267c2c195a7f8cae9c4b4050d08ce6d3a151ec265f3a58e47648")

-- XSalsa20-Poly1305 (crypto_secretbox), NaCl tests/secretbox.c.
local sb_key = h("1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389")
local sb_nonce = h("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37")
local sb_plain = h([[be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a
1ac728d45e6c61296cdc3c01233561f41db66cce314adb310e3be8250c46f06dceea3a7fa1348057
e2f6556ad6b1318a024a838f21af1fde048977eb48f59ffd4924ca1c60902e52f0a089bc76897040
e082f937763848645e0705]])
local sb_boxed = h([[f3ffc7703f9400e52a7dfb4b3d3305d98e993b9f48681273c29650ba32fc76ce48332ea7164d96a4
476fb8c531a1186ac0dfc17c98dce87b4da7f011ec48c97271d2c20f9b928fe2270d6fb863d51738
b48eeee314a7cc8ab932164548e526ae90224368517acfeabd6bb3732bc0e9da99832b61ca01b6de
56244a9e88d5f9b37973f622a43d14a6599b1f654cb45a74e355a5]])
check("secretbox nacl open", c.secretbox_open(sb_key, sb_nonce, sb_boxed), sb_plain)
check("secretbox flipped tag refused", c.secretbox_open(sb_key, sb_nonce, "\0" .. sb_boxed:sub(2)), nil)
check("secretbox wrong key refused",
    c.secretbox_open(sb_key:sub(1, 31) .. "\0", sb_nonce, sb_boxed), nil)

-- The key log parser (docs/DECODE.md §2).
local kl = c.parse_keylog([[# comment
PAVILLION_S1 0101010101010101010101010101010101010101010101010101010101010101 0202020202020202020202020202020202020202020202020202020202020202
PAVILLION_S3 1a2b3c4d 0505050505050505050505050505050505050505050505050505050505050505 00c0ffee 0606060606060606060606060606060606060606060606060606060606060606
PAVILLION_S3_GROUP 0123456789abcdef 00000001 0707070707070707070707070707070707070707070707070707070707070707
PAVILLION_S9 00
]])
check("keylog lines", kl.count .. "/" .. kl.bad, "3/1")
check("keylog s3 index", kl.s3[0x1a2b3c4d][1].dir .. " " .. kl.s3[0x00c0ffee][1].dir, "to_server to_client")
check("keylog group", kl.group["0123456789abcdef/1"] ~= nil, true)

print(string.format("crypto vectors: %d passed, %d failed", passed, failed))
