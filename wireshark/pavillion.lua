-- Pavillion dissector for Wireshark and tshark (Lua 5.2, as Wireshark 3.x/4.x embed it).
--
-- Decodes the Pavillion UDP protocol on any port (heuristic, by its magic) and on port 1783:
-- suites 1 and 2 (`PavillionS0`: setup packets in the clear, encrypted session packets) and
-- suite 3 (`PvS3`: handshake packet types, data and group data). With the preference
-- `pavillion.keylog_file` naming a key log (written by a program run with PAVILLION_KEYLOGFILE
-- set, or by `pavillion-scenarios --keylog`), it decrypts session packets and shows the
-- application operation inside. Names follow docs/DECODE.md; docs/WIRESHARK.md lists every
-- field and how to install this file.
--
-- The ciphers (XSalsa20-Poly1305 for suites 1/2, ChaCha20-Poly1305 for suite 3) are written
-- here in pure Lua with bit32, so the file needs nothing besides Wireshark. A key counts only
-- when its Poly1305 tag verifies: a wrong key never shows a wrong plaintext.
--
-- Loaded outside Wireshark (plain Lua 5.2, no `Proto`), the file only returns its crypto table,
-- which the known-answer tests (wireshark/tests/crypto_vectors.lua) use.

local bit32 = bit32
local band, bxor, bor, lrotate, rshift = bit32.band, bit32.bxor, bit32.bor, bit32.lrotate, bit32.rshift
local sbyte, schar, concat, floor = string.byte, string.char, table.concat, math.floor
local unpack = table.unpack or unpack

local crypto = {}

-- Bytes are Lua strings throughout. Words are little-endian u32 held in doubles.

local function le32(s, i) -- i is 1-based
    local a, b, c, d = sbyte(s, i, i + 3)
    return a + b * 256 + c * 65536 + d * 16777216
end

local function words_to_bytes(w, n) -- the first n words of w (0-based), as a string
    local out = {}
    for i = 0, n - 1 do
        local x = w[i]
        out[#out + 1] = schar(x % 256, floor(x / 256) % 256, floor(x / 65536) % 256, floor(x / 16777216) % 256)
    end
    return concat(out)
end

local function xor_bytes(data, stream) -- #stream >= #data
    local out = {}
    for i = 1, #data, 64 do
        local n = math.min(64, #data - i + 1)
        local d = { sbyte(data, i, i + n - 1) }
        local k = { sbyte(stream, i, i + n - 1) }
        for j = 1, n do d[j] = bxor(d[j], k[j]) end
        out[#out + 1] = schar(unpack(d))
    end
    return concat(out)
end

------------------------------------------------------------------------------------------
-- Salsa20 (Bernstein), HSalsa20 and XSalsa20.

local SIGMA = { [0] = 0x61707865, 0x3320646e, 0x79622d32, 0x6b206574 }

local function salsa_rounds(x)
    for _ = 1, 10 do
        -- column round
        x[4] = bxor(x[4], lrotate((x[0] + x[12]) % 4294967296, 7))
        x[8] = bxor(x[8], lrotate((x[4] + x[0]) % 4294967296, 9))
        x[12] = bxor(x[12], lrotate((x[8] + x[4]) % 4294967296, 13))
        x[0] = bxor(x[0], lrotate((x[12] + x[8]) % 4294967296, 18))
        x[9] = bxor(x[9], lrotate((x[5] + x[1]) % 4294967296, 7))
        x[13] = bxor(x[13], lrotate((x[9] + x[5]) % 4294967296, 9))
        x[1] = bxor(x[1], lrotate((x[13] + x[9]) % 4294967296, 13))
        x[5] = bxor(x[5], lrotate((x[1] + x[13]) % 4294967296, 18))
        x[14] = bxor(x[14], lrotate((x[10] + x[6]) % 4294967296, 7))
        x[2] = bxor(x[2], lrotate((x[14] + x[10]) % 4294967296, 9))
        x[6] = bxor(x[6], lrotate((x[2] + x[14]) % 4294967296, 13))
        x[10] = bxor(x[10], lrotate((x[6] + x[2]) % 4294967296, 18))
        x[3] = bxor(x[3], lrotate((x[15] + x[11]) % 4294967296, 7))
        x[7] = bxor(x[7], lrotate((x[3] + x[15]) % 4294967296, 9))
        x[11] = bxor(x[11], lrotate((x[7] + x[3]) % 4294967296, 13))
        x[15] = bxor(x[15], lrotate((x[11] + x[7]) % 4294967296, 18))
        -- row round
        x[1] = bxor(x[1], lrotate((x[0] + x[3]) % 4294967296, 7))
        x[2] = bxor(x[2], lrotate((x[1] + x[0]) % 4294967296, 9))
        x[3] = bxor(x[3], lrotate((x[2] + x[1]) % 4294967296, 13))
        x[0] = bxor(x[0], lrotate((x[3] + x[2]) % 4294967296, 18))
        x[6] = bxor(x[6], lrotate((x[5] + x[4]) % 4294967296, 7))
        x[7] = bxor(x[7], lrotate((x[6] + x[5]) % 4294967296, 9))
        x[4] = bxor(x[4], lrotate((x[7] + x[6]) % 4294967296, 13))
        x[5] = bxor(x[5], lrotate((x[4] + x[7]) % 4294967296, 18))
        x[11] = bxor(x[11], lrotate((x[10] + x[9]) % 4294967296, 7))
        x[8] = bxor(x[8], lrotate((x[11] + x[10]) % 4294967296, 9))
        x[9] = bxor(x[9], lrotate((x[8] + x[11]) % 4294967296, 13))
        x[10] = bxor(x[10], lrotate((x[9] + x[8]) % 4294967296, 18))
        x[12] = bxor(x[12], lrotate((x[15] + x[14]) % 4294967296, 7))
        x[13] = bxor(x[13], lrotate((x[12] + x[15]) % 4294967296, 9))
        x[14] = bxor(x[14], lrotate((x[13] + x[12]) % 4294967296, 13))
        x[15] = bxor(x[15], lrotate((x[14] + x[13]) % 4294967296, 18))
    end
end

-- The Salsa20 input block: key (32 bytes), 16 bytes of nonce and counter.
local function salsa_input(key, n16)
    local x = {}
    x[0], x[5], x[10], x[15] = SIGMA[0], SIGMA[1], SIGMA[2], SIGMA[3]
    for i = 0, 3 do
        x[1 + i] = le32(key, 1 + 4 * i)
        x[11 + i] = le32(key, 17 + 4 * i)
        x[6 + i] = le32(n16, 1 + 4 * i)
    end
    return x
end

--- HSalsa20(key, 16-byte input): the 32-byte subkey of XSalsa20.
function crypto.hsalsa20(key, n16)
    local x = salsa_input(key, n16)
    salsa_rounds(x)
    local o = { [0] = x[0], x[5], x[10], x[15], x[6], x[7], x[8], x[9] }
    return words_to_bytes(o, 8)
end

--- `len` bytes of Salsa20 key stream under `key` and an 8-byte nonce, from block 0.
function crypto.salsa20_stream(key, nonce8, len)
    local out = {}
    local block = 0
    while #out * 64 < len do
        local ctr = schar(block % 256, floor(block / 256) % 256, floor(block / 65536) % 256,
            floor(block / 16777216) % 256, 0, 0, 0, 0)
        local input = salsa_input(key, nonce8 .. ctr)
        local x = {}
        for i = 0, 15 do x[i] = input[i] end
        salsa_rounds(x)
        for i = 0, 15 do x[i] = (x[i] + input[i]) % 4294967296 end
        out[#out + 1] = words_to_bytes(x, 16)
        block = block + 1
    end
    return concat(out):sub(1, len)
end

--- `len` bytes of XSalsa20 key stream under `key` and a 24-byte nonce.
function crypto.xsalsa20_stream(key, nonce24, len)
    return crypto.salsa20_stream(crypto.hsalsa20(key, nonce24:sub(1, 16)), nonce24:sub(17, 24), len)
end

------------------------------------------------------------------------------------------
-- ChaCha20 (RFC 8439 §2.3, 32-bit counter, 96-bit nonce).

local function chacha_qr(x, a, b, c, d)
    x[a] = (x[a] + x[b]) % 4294967296; x[d] = lrotate(bxor(x[d], x[a]), 16)
    x[c] = (x[c] + x[d]) % 4294967296; x[b] = lrotate(bxor(x[b], x[c]), 12)
    x[a] = (x[a] + x[b]) % 4294967296; x[d] = lrotate(bxor(x[d], x[a]), 8)
    x[c] = (x[c] + x[d]) % 4294967296; x[b] = lrotate(bxor(x[b], x[c]), 7)
end

--- One 64-byte ChaCha20 block.
function crypto.chacha20_block(key, counter, nonce12)
    local s = {}
    s[0], s[1], s[2], s[3] = SIGMA[0], SIGMA[1], SIGMA[2], SIGMA[3]
    for i = 0, 7 do s[4 + i] = le32(key, 1 + 4 * i) end
    s[12] = counter % 4294967296
    for i = 0, 2 do s[13 + i] = le32(nonce12, 1 + 4 * i) end
    local x = {}
    for i = 0, 15 do x[i] = s[i] end
    for _ = 1, 10 do
        chacha_qr(x, 0, 4, 8, 12); chacha_qr(x, 1, 5, 9, 13)
        chacha_qr(x, 2, 6, 10, 14); chacha_qr(x, 3, 7, 11, 15)
        chacha_qr(x, 0, 5, 10, 15); chacha_qr(x, 1, 6, 11, 12)
        chacha_qr(x, 2, 7, 8, 13); chacha_qr(x, 3, 4, 9, 14)
    end
    for i = 0, 15 do x[i] = (x[i] + s[i]) % 4294967296 end
    return words_to_bytes(x, 16)
end

--- `len` bytes of ChaCha20 key stream from block `counter`.
function crypto.chacha20_stream(key, counter, nonce12, len)
    local out = {}
    while #out * 64 < len do
        out[#out + 1] = crypto.chacha20_block(key, counter + #out, nonce12)
    end
    return concat(out):sub(1, len)
end

------------------------------------------------------------------------------------------
-- Poly1305, in 17 limbs of 8 bits (as TweetNaCl does): every product and sum stays below
-- 2^32, far inside the 2^53 that a double holds exactly.

local function add1305(h, c)
    local u = 0
    for j = 0, 16 do
        u = u + h[j] + c[j]
        h[j] = u % 256
        u = floor(u / 256)
    end
end

local MINUS_P = { [0] = 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 252 }

--- The 16-byte Poly1305 tag of `msg` under the 32-byte one-time key `key`.
function crypto.poly1305(msg, key)
    local r, h = {}, {}
    for j = 0, 16 do r[j], h[j] = 0, 0 end
    for j = 0, 15 do r[j] = sbyte(key, j + 1) end
    r[3] = r[3] % 16; r[4] = r[4] - r[4] % 4; r[7] = r[7] % 16; r[8] = r[8] - r[8] % 4
    r[11] = r[11] % 16; r[12] = r[12] - r[12] % 4; r[15] = r[15] % 16
    local c, x = {}, {}
    local pos, n = 1, #msg
    while pos <= n do
        local take = math.min(16, n - pos + 1)
        for j = 0, 16 do c[j] = 0 end
        local bytes = { sbyte(msg, pos, pos + take - 1) }
        for j = 0, take - 1 do c[j] = bytes[j + 1] end
        c[take] = 1
        pos = pos + take
        add1305(h, c)
        for i = 0, 16 do
            local sum = 0
            for j = 0, 16 do
                if j <= i then
                    sum = sum + h[j] * r[i - j]
                else
                    sum = sum + h[j] * 320 * r[i + 17 - j]
                end
            end
            x[i] = sum
        end
        for i = 0, 16 do h[i] = x[i] end
        local u = 0
        for j = 0, 15 do
            u = u + h[j]; h[j] = u % 256; u = floor(u / 256)
        end
        u = u + h[16]; h[16] = u % 4; u = 5 * floor(u / 4)
        for j = 0, 15 do
            u = u + h[j]; h[j] = u % 256; u = floor(u / 256)
        end
        h[16] = u + h[16]
    end
    local g = {}
    for j = 0, 16 do g[j] = h[j] end
    add1305(h, MINUS_P)
    if h[16] >= 128 then -- h < p: keep h, undo the subtraction
        for j = 0, 16 do h[j] = g[j] end
    end
    for j = 0, 15 do c[j] = sbyte(key, j + 17) end
    c[16] = 0
    add1305(h, c)
    local out = {}
    for j = 0, 15 do out[j + 1] = h[j] end
    return schar(unpack(out))
end

-- Compares two equal-length strings without stopping at the first difference.
local function same(a, b)
    if #a ~= #b then return false end
    local d = 0
    for i = 1, #a do d = bor(d, bxor(sbyte(a, i), sbyte(b, i))) end
    return d == 0
end

--- crypto_secretbox_open: `boxed` is tag(16) || ciphertext. Returns the plaintext or nil.
--- `subkey` (HSalsa20 of the key and the nonce's first 16 bytes) may be passed in precomputed.
function crypto.secretbox_open(key, nonce24, boxed, subkey)
    if #boxed < 16 then return nil end
    subkey = subkey or crypto.hsalsa20(key, nonce24:sub(1, 16))
    local ct = boxed:sub(17)
    -- The one-time key is the first 32 bytes of the stream: check the tag before making more.
    local otk = crypto.salsa20_stream(subkey, nonce24:sub(17, 24), 32)
    if not same(crypto.poly1305(ct, otk), boxed:sub(1, 16)) then return nil end
    local stream = crypto.salsa20_stream(subkey, nonce24:sub(17, 24), 32 + #ct)
    return xor_bytes(ct, stream:sub(33))
end

local function pad16(s)
    local r = #s % 16
    if r == 0 then return s end
    return s .. string.rep("\0", 16 - r)
end

local function le64_small(n)
    local b = {}
    for i = 1, 8 do b[i] = n % 256; n = floor(n / 256) end
    return schar(unpack(b))
end

--- ChaCha20-Poly1305 open (RFC 8439 §2.8): `sealed` is ciphertext || tag(16). Returns the
--- plaintext or nil.
function crypto.aead_open(key, nonce12, aad, sealed)
    if #sealed < 16 then return nil end
    local ct, tag = sealed:sub(1, #sealed - 16), sealed:sub(#sealed - 15)
    local otk = crypto.chacha20_block(key, 0, nonce12):sub(1, 32)
    local mac = pad16(aad) .. pad16(ct) .. le64_small(#aad) .. le64_small(#ct)
    if not same(crypto.poly1305(mac, otk), tag) then return nil end
    return xor_bytes(ct, crypto.chacha20_stream(key, 1, nonce12, #ct))
end

function crypto.from_hex(h)
    return (h:gsub("%s", ""):gsub("..", function(x) return schar(tonumber(x, 16)) end))
end

function crypto.to_hex(s)
    return (s:gsub(".", function(c) return string.format("%02x", sbyte(c)) end))
end

------------------------------------------------------------------------------------------
-- Key log (docs/DECODE.md §2).

--- Parses key log text into { s12 = {...}, s3 = {[index] = {...}}, group = {[sender..key_id] = key} }.
--- Unknown or malformed lines are counted in `bad` and skipped.
function crypto.parse_keylog(text)
    local keys = { s12 = {}, s3 = {}, group = {}, count = 0, bad = 0 }
    local seen = {}
    local function hex(s, n)
        if s and #s == n and not s:find("[^%x]") then return crypto.from_hex(s) end
        return nil
    end
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
        line = line:gsub("\r$", "")
        if line ~= "" and line:sub(1, 1) ~= "#" and not seen[line] then
            seen[line] = true
            local w = {}
            for word in line:gmatch("%S+") do w[#w + 1] = word end
            local ok = false
            if (w[1] == "PAVILLION_S1" or w[1] == "PAVILLION_S2") and #w == 3 then
                local cs, sc = hex(w[2], 64), hex(w[3], 64)
                if cs and sc then
                    local suite = (w[1] == "PAVILLION_S1") and 1 or 2
                    table.insert(keys.s12, { suite = suite, dir = "to_server", key = cs })
                    table.insert(keys.s12, { suite = suite, dir = "to_client", key = sc })
                    ok = true
                end
            elseif w[1] == "PAVILLION_S3" and #w == 5 then
                local si, cs, ci, sc = hex(w[2], 8), hex(w[3], 64), hex(w[4], 8), hex(w[5], 64)
                if si and cs and ci and sc then
                    local a, b = tonumber(w[2], 16), tonumber(w[4], 16)
                    keys.s3[a] = keys.s3[a] or {}
                    table.insert(keys.s3[a], 1, { dir = "to_server", key = cs })
                    keys.s3[b] = keys.s3[b] or {}
                    table.insert(keys.s3[b], 1, { dir = "to_client", key = sc })
                    ok = true
                end
            elseif w[1] == "PAVILLION_S3_GROUP" and #w == 4 then
                local s, id, k = hex(w[2], 16), hex(w[3], 8), hex(w[4], 64)
                if s and id and k then
                    keys.group[w[2]:lower() .. "/" .. tonumber(w[3], 16)] = k
                    ok = true
                end
            end
            if ok then keys.count = keys.count + 1 else keys.bad = keys.bad + 1 end
        end
    end
    return keys
end

if not Proto then
    return crypto
end
pavillion_crypto = crypto

------------------------------------------------------------------------------------------
-- The dissector.

local proto = Proto("pavillion", "Pavillion")

local F = {}
local function u64(abbr, label, base_) F[abbr] = ProtoField.uint64("pavillion." .. abbr, label, base_ or base.DEC) end
local function i64(abbr, label) F[abbr] = ProtoField.int64("pavillion." .. abbr, label) end
local function u32(abbr, label) F[abbr] = ProtoField.uint32("pavillion." .. abbr, label, base.HEX) end
local function text(abbr, label) F[abbr] = ProtoField.string("pavillion." .. abbr, label) end
local function bytes(abbr, label) F[abbr] = ProtoField.bytes("pavillion." .. abbr, label) end

F.suite = ProtoField.uint8("pavillion.suite", "Suite")
text("layer", "Layer")
text("dissection", "Packet")
text("decryption", "Decryption")
u64("counter", "Counter")
F.setup_op = ProtoField.uint8("pavillion.setup.op", "Setup opcode")
text("setup.name", "Setup packet")
F.s3_type = ProtoField.uint8("pavillion.s3.type", "Suite 3 packet type")
text("s3.name", "Suite 3 packet")
bytes("tag", "Tag")
bytes("ciphertext", "Ciphertext")
F.app_op = ProtoField.uint8("pavillion.app.op", "Application opcode")
text("app.name", "Application operation")
-- docs/DECODE.md §1.2 to §1.4, one field per name.
u64("cipher", "Cipher")
bytes("client_id", "Client id")
bytes("challenge", "Challenge")
bytes("session_hint", "Session hint")
bytes("public_key", "Public key")
bytes("server_nonce", "Server nonce")
bytes("client_nonce", "Client nonce")
u64("counter_floor", "Counter floor")
bytes("session_id", "Session id")
bytes("box_nonce", "Box nonce")
u64("sealed_len", "Sealed box length")
text("mode", "Noise mode")
u32("sender_index", "Sender index", base.HEX)
u32("receiver_index", "Receiver index", base.HEX)
bytes("cookie", "Cookie")
u64("message_len", "Noise message length")
u32("index", "Receiver index", base.HEX)
u64("sender", "Sender id", base.HEX)
u64("key_id", "Key id")
text("target", "Target")
text("name", "Name")
u64("payload_len", "Payload length")
u64("more", "More queued")
u64("frames", "Frames")
u64("largest", "Largest acknowledged counter")
bytes("payload", "Payload (first 64 bytes)")
u64("acked", "Acknowledged counter")
u64("battery", "Battery")
u64("network", "Network")
i64("temperature_c", "Temperature (°C)")
u64("function", "Function")
u64("args_len", "Arguments length")
u64("call", "Call counter")
u64("status", "Status")
u64("data_len", "Data length")
u64("register", "Register")
u64("answers", "Answers counter")
u64("flags", "Flags", base.HEX)
text("type", "Value type")
text("value", "Value")
u64("duration_ms", "Duration (ms)")
u64("min_interval_ms", "Least interval (ms)")
u64("from", "From register")
text("unit", "Unit")
u64("reason", "Reason")
i64("server_time_us", "Server time (µs)")
u64("request", "Request counter")
u64("monotonic_us", "Monotonic time (µs)")
u64("unix_us", "Unix time (µs)")
u64("transfer", "Transfer id")
u64("total", "Total length")
u64("offset", "Offset")
text("ranges", "Ranges")
u64("epoch", "Stream epoch")
u64("seq", "Sequence number")
u64("floor", "Floor")
u64("origin", "Origin")

-- Dotted abbreviations are also reachable with an underscore (F.setup_name for setup.name).
for _, k in ipairs({ "setup.name", "s3.name", "app.name" }) do F[k:gsub("%.", "_")] = F[k] end

local field_list, listed = {}, {}
for _, f in pairs(F) do
    if not listed[f] then field_list[#field_list + 1] = f; listed[f] = true end
end
proto.fields = field_list

local E = {
    no_key = ProtoExpert.new("pavillion.no_key", "No key of the key log opens this packet",
        expert.group.DECRYPTION, expert.severity.WARN),
    malformed = ProtoExpert.new("pavillion.malformed", "Malformed Pavillion packet",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_plaintext = ProtoExpert.new("pavillion.bad_plaintext", "Decrypted, but the plaintext does not parse",
        expert.group.MALFORMED, expert.severity.WARN),
}
proto.experts = { E.no_key, E.malformed, E.bad_plaintext }

proto.prefs.keylog_file = Pref.string("Key log file", "",
    "A Pavillion key log (PAVILLION_KEYLOGFILE): session packets are decrypted with its keys")
proto.prefs.udp_port = Pref.uint("UDP port", 1783, "Also decode this port as Pavillion (0: heuristics only)")

------------------------------------------------------------------------------------------
-- Keys and the per-conversation cache.

local keys = crypto.parse_keylog("")
local loaded = { path = nil, size = -1 }
local conversations = {} -- "src>dst" -> s12 entry that last opened a packet there
local conversation_count = 0
local MAX_CONVERSATIONS = 4096
local learned_groups = {} -- group keys read from decrypted op 32 packets
-- Frame number -> decryption result. An opened packet stays opened; a packet no key opened is
-- tried again once the key log has changed (a live capture may see a packet before its key).
local results = {}
local generation = 0 -- bumped at every (re)load of the key log

local function cached_result(number)
    local r = results[number]
    if r and (r.plain or r.generation == generation) then return r end
    return nil
end

local function reload_keys(force)
    local path = proto.prefs.keylog_file
    if path == nil or path == "" then
        keys, loaded = crypto.parse_keylog(""), { path = nil, size = -1 }
        generation = generation + 1
        return
    end
    local f = io.open(path, "rb")
    if not f then
        keys, loaded = crypto.parse_keylog(""), { path = path, size = -1 }
        generation = generation + 1
        return
    end
    local size = f:seek("end")
    if force or path ~= loaded.path or size ~= loaded.size then
        f:seek("set", 0)
        keys = crypto.parse_keylog(f:read("*a") or "")
        generation = generation + 1
        loaded = { path = path, size = size }
    end
    f:close()
end

function proto.init()
    conversations, conversation_count, learned_groups, results = {}, 0, {}, {}
    reload_keys(true)
end

local udp_table = DissectorTable.get("udp.port")
local registered_port = 0
function proto.prefs_changed()
    reload_keys(true)
    results = {}
    if registered_port ~= 0 then udp_table:remove(registered_port, proto) end
    registered_port = proto.prefs.udp_port
    if registered_port ~= 0 then udp_table:add(registered_port, proto) end
end

local function have_keys()
    return loaded.path ~= nil
end

-- Tries the suite 1/2 keys on one session packet: the conversation's last key first.
local function open_s12(datagram, conv)
    local nonce = string.rep("\0", 16) .. datagram:sub(12, 19)
    local boxed = datagram:sub(20)
    local function try(entry)
        entry.subkey = entry.subkey or crypto.hsalsa20(entry.key, string.rep("\0", 16))
        return crypto.secretbox_open(entry.key, nonce, boxed, entry.subkey)
    end
    local cached = conversations[conv]
    if cached then
        local plain = try(cached)
        if plain then return plain, cached end
    end
    for i = #keys.s12, 1, -1 do
        local entry = keys.s12[i]
        if entry ~= cached then
            local plain = try(entry)
            if plain then
                if not conversations[conv] then
                    if conversation_count >= MAX_CONVERSATIONS then
                        conversations, conversation_count = {}, 0
                    end
                    conversation_count = conversation_count + 1
                end
                conversations[conv] = entry
                return plain, entry
            end
        end
    end
    return nil
end

------------------------------------------------------------------------------------------
-- Field helpers: every field is added with its value read explicitly, so a short range is a
-- Lua-level check, never a dissector error.

-- A range that may be empty (Wireshark refuses a range starting past the end).
local function span(tvb, off, n)
    if n <= 0 then return tvb(0, 0) end
    return tvb(off, n)
end

-- Indices are u32 fields (shown as 8 hex digits, as in the labels); the rest are u64.
local U32 = { sender_index = true, receiver_index = true, index = true }

local function add_u(tree, abbr, range)
    if U32[abbr] then return tree:add(F[abbr], range, range:le_uint()) end
    return tree:add(F[abbr], range, range:le_uint64())
end

local function add_bytes(tree, abbr, range)
    return tree:add(F[abbr], range)
end

local function add_text(tree, abbr, range, value)
    return tree:add(F[abbr], range, value)
end

local SETUP = {
    [1] = { "nonce_request", 101 }, [2] = { "psk_nonce", 100 }, [3] = { "psk_client_info", 141 },
    [4] = { "unrecognized_client", 20 }, [5] = { "new_server_join", 20 }, [6] = { "invalid_client_id", 36 },
    [7] = { "session_established", 36 }, [11] = { "ecc_nonce", 108 }, [12] = { "ecc_client_info", 181 },
}

local APP = {
    [1] = "reliable_message", [2] = "ack", [3] = "unreliable_message", [4] = "rpc_call",
    [5] = "rpc_response", [6] = "register_read", [7] = "register_value", [8] = "observe",
    [9] = "register_info_request", [10] = "register_info", [12] = "quit", [13] = "subscribe",
    [14] = "unsubscribe", [16] = "client_accept", [20] = "time_sync_request",
    [21] = "time_sync_response", [32] = "group_key", [33] = "segment", [34] = "ack_ranges",
    [35] = "transfer_refused", [36] = "ordered_message", [37] = "durable_message",
    [38] = "batch", [39] = "acks",
}

local VALUE_TYPES = { [0] = "none", "bool", "i64", "u64", "f32", "f64", "text", "bytes" }

-- A message body `target \n name \n payload` at tvb offset `at`; returns target, name or nil.
local function message_body(tvb, tree, at)
    local len = tvb:len()
    local raw = tvb:raw(at, len - at)
    local a = raw:find("\n", 1, true)
    local b = a and raw:find("\n", a + 1, true)
    if not b then return nil end
    local target, name = raw:sub(1, a - 1), raw:sub(a + 1, b - 1)
    add_text(tree, "target", span(tvb, at, a - 1), target)
    add_text(tree, "name", span(tvb, at + a, b - a - 1), name)
    local plen = len - at - b
    tree:add(F.payload_len, span(tvb, at + b, plen), UInt64(plen))
    if plen > 0 then
        add_bytes(tree, "payload", tvb(at + b, math.min(plen, 64)))
    end
    return target, name
end

-- Dissects an application plaintext (opcode || payload) in `tvb`; returns name, label detail
-- (or nil and an error text).
local dissect_app

-- Op 39 (docs/PROTOCOL.md §17): `largest`, then `ranges` as "high-low,..." highest first.
local function dissect_acks(tvb, tree, need)
    local n = tvb:len() - 1
    need(n >= 11)
    local count = tvb(11, 1):uint()
    need(count < 32 and n == 11 + 4 * count)
    add_u(tree, "largest", tvb(1, 8))
    local high = tvb(1, 8):le_uint64()
    local len = tvb(9, 2):le_uint()
    local parts = {}
    for i = 0, count do
        if i > 0 then
            local gap = tvb(12 + 4 * (i - 1), 2):le_uint()
            len = tvb(14 + 4 * (i - 1), 2):le_uint()
            need(high >= UInt64(gap + 1))
            high = high - UInt64(gap + 1)
        end
        need(high >= UInt64(len))
        local low = high - UInt64(len)
        parts[#parts + 1] = tostring(high) .. "-" .. tostring(low)
        if low == UInt64(0) and i < count then need(false) end
        high = low - UInt64(1)
    end
    local ranges = concat(parts, ",")
    add_text(tree, "ranges", tvb(1, n), ranges)
    return ranges
end

-- Op 38: `more`, `frames`, then each frame's own fields; the label is "<frames>[ more]".
local function dissect_batch(tvb, pinfo, tree, counter, need)
    local len = tvb:len()
    need(len >= 2)
    local more = tvb(1, 1):uint() % 2
    local at, frames = 2, 0
    while at < len do
        need(at + 2 <= len)
        local flen = tvb(at, 2):le_uint()
        need(flen > 0 and at + 2 + flen <= len)
        local op = tvb(at + 2, 1):uint()
        need(op == 1 or op == 2 or op == 3 or op == 39)
        local sub = tree:add(proto, tvb(at, 2 + flen), "Frame: " .. (APP[op] or "unknown_op"))
        local _, _, err = dissect_app(tvb(at + 2, flen):tvb(), pinfo, sub, counter)
        need(not err)
        frames = frames + 1
        at = at + 2 + flen
    end
    need(frames >= 1 and frames <= 64)
    tree:add(F.more, tvb(1, 1), UInt64(more))
    tree:add(F.frames, tvb(2, len - 2), UInt64(frames))
    return tostring(frames) .. (more == 1 and " more" or "")
end

dissect_app = function(tvb, pinfo, tree, counter, src, dst)
    local len = tvb:len()
    if len < 1 then return nil, "truncated" end
    local op = tvb(0, 1):uint()
    local name = APP[op] or "unknown_op"
    tree:add(F.app_op, tvb(0, 1))
    tree:add(F.app_name, tvb(0, 1), name)
    local n = len - 1 -- payload length
    local function need(ok) if not ok then error("bad_length", 0) end end
    local ok, detail = pcall(function()
        if op == 1 or op == 3 then
            local target, mname = message_body(tvb, tree, 1)
            need(target)
            return "#" .. counter .. " " .. target .. "/" .. mname
        elseif op == 2 then
            need(n == 8 or n == 11)
            local acked = tvb(1, 8):le_uint64()
            add_u(tree, "acked", tvb(1, 8))
            if n == 11 then
                add_u(tree, "battery", tvb(9, 1))
                add_u(tree, "network", tvb(10, 1))
                tree:add(F.temperature_c, tvb(11, 1), tvb(11, 1):le_int64())
            end
            return tostring(acked)
        elseif op == 4 then
            need(n >= 2)
            add_u(tree, "function", tvb(1, 2))
            tree:add(F.args_len, span(tvb, 3, n - 2), UInt64(n - 2))
            return "#" .. counter .. " fn=" .. tvb(1, 2):le_uint()
        elseif op == 5 then
            need(n >= 10)
            add_u(tree, "call", tvb(1, 8))
            add_u(tree, "status", tvb(9, 2))
            tree:add(F.data_len, span(tvb, 11, n - 10), UInt64(n - 10))
            local status = tvb(9, 2):le_uint()
            return "#" .. tostring(tvb(1, 8):le_uint64()) .. (status == 0 and " ok" or (" status=" .. status))
        elseif op == 6 or op == 9 then
            need(n == 2)
            add_u(tree, op == 6 and "register" or "from", tvb(1, 2))
            return op == 6 and ("reg=" .. tvb(1, 2):le_uint()) or nil
        elseif op == 7 then
            need(n >= 13)
            add_u(tree, "answers", tvb(1, 8))
            add_u(tree, "register", tvb(9, 2))
            add_u(tree, "status", tvb(11, 1))
            local t = tvb(12, 1):uint()
            add_u(tree, "flags", tvb(13, 1))
            add_text(tree, "type", tvb(12, 1), VALUE_TYPES[t] or ("type " .. t))
            local v = n > 13 and tvb(14, n - 13) or nil
            if v then
                local shown
                if t == 1 or t == 3 then shown = tostring(v:le_uint64())
                elseif t == 2 then shown = tostring(v:le_int64())
                elseif t == 4 or t == 5 then shown = tostring(v:le_float())
                elseif t == 6 then shown = v:string(ENC_UTF_8)
                else shown = crypto.to_hex(v:raw(0, math.min(v:len(), 64))) end
                add_text(tree, "value", v, shown)
            end
            return "reg=" .. tvb(9, 2):le_uint()
        elseif op == 8 then
            need(n == 10)
            add_u(tree, "register", tvb(1, 2))
            add_u(tree, "duration_ms", tvb(3, 4))
            add_u(tree, "min_interval_ms", tvb(7, 4))
            return "reg=" .. tvb(1, 2):le_uint()
        elseif op == 10 then
            need(n >= 15)
            add_u(tree, "answers", tvb(1, 8))
            add_u(tree, "status", tvb(9, 1))
            add_u(tree, "register", tvb(10, 2))
            local t = tvb(12, 1):uint()
            add_text(tree, "type", tvb(12, 1), VALUE_TYPES[t] or ("type " .. t))
            add_u(tree, "flags", tvb(13, 1))
            local nl = tvb(14, 1):uint()
            need(n >= 15 + nl)
            add_text(tree, "name", span(tvb, 15, nl), nl > 0 and tvb(15, nl):string(ENC_UTF_8) or "")
            local ul = tvb(15 + nl, 1):uint()
            need(n == 15 + nl + ul)
            add_text(tree, "unit", span(tvb, 16 + nl, ul), ul > 0 and tvb(16 + nl, ul):string(ENC_UTF_8) or "")
            return nil
        elseif op == 12 then
            need(n == 0 or n == 2)
            if n == 2 then add_u(tree, "reason", tvb(1, 2)) end
            return nil
        elseif op == 13 or op == 14 then
            local target = n > 0 and tvb(1, n):string(ENC_UTF_8) or ""
            add_text(tree, "target", span(tvb, 1, n), target)
            return target
        elseif op == 16 then
            need(n == 8)
            tree:add(F.server_time_us, tvb(1, 8), tvb(1, 8):le_int64())
            return nil
        elseif op == 20 then
            need(n == 0)
            return nil
        elseif op == 21 then
            need(n == 16 or n == 24)
            add_u(tree, "request", tvb(1, 8))
            add_u(tree, "monotonic_us", tvb(9, 8))
            if n == 24 then add_u(tree, "unix_us", tvb(17, 8)) end
            return nil
        elseif op == 32 then
            need(n == 44)
            add_u(tree, "sender", tvb(1, 8))
            add_u(tree, "key_id", tvb(9, 4))
            -- The key itself is never shown (show_plain blanks it out of the decrypted tab).
            local sender = tvb(1, 8):le_uint64():tohex():lower()
            return sender .. "/" .. tvb(9, 4):le_uint()
        elseif op == 33 then
            need(n >= 16)
            add_u(tree, "transfer", tvb(1, 8))
            add_u(tree, "total", tvb(9, 4))
            add_u(tree, "offset", tvb(13, 4))
            tree:add(F.data_len, span(tvb, 17, n - 16), UInt64(n - 16))
            return tvb(13, 4):le_uint() .. "/" .. tvb(9, 4):le_uint()
        elseif op == 34 then
            need(n >= 11)
            local count = tvb(1, 1):uint()
            need(count >= 1 and n == 1 + 10 * count)
            local parts = {}
            for i = 0, count - 1 do
                parts[#parts + 1] = tostring(tvb(2 + 10 * i, 8):le_uint64()) .. "+" .. tvb(10 + 10 * i, 2):le_uint()
            end
            local ranges = concat(parts, ",")
            add_text(tree, "ranges", tvb(1, n), ranges)
            return ranges
        elseif op == 38 then
            return dissect_batch(tvb, pinfo, tree, counter, need)
        elseif op == 39 then
            return dissect_acks(tvb, tree, need)
        elseif op == 35 then
            need(n == 9)
            add_u(tree, "transfer", tvb(1, 8))
            add_u(tree, "reason", tvb(9, 1))
            return nil
        elseif op == 36 or op == 37 then
            need(n >= 22)
            if op == 36 then add_u(tree, "epoch", tvb(1, 4)) else add_u(tree, "origin", tvb(1, 8)) end
            local at = op == 36 and 5 or 9
            add_u(tree, "seq", tvb(at, 8))
            add_u(tree, "floor", tvb(at + 8, 8))
            need(len > at + 16)
            local target, mname = message_body(tvb, tree, at + 16)
            need(target)
            return "#" .. counter .. " " .. target .. "/" .. mname
        else
            error("unknown application opcode " .. op, 0)
        end
    end)
    if not ok then return name, nil, tostring(detail) end
    return name, detail, nil
end

local function info(pinfo, text_)
    pinfo.cols.info:set(text_)
end

-- A datagram with a Pavillion magic that does not parse: layer and name `garbage`, the error
-- as expert info and in the label (the texts of the Rust parser's errors).
local function garbage(tree, tvb, err)
    tree:add(F.layer, tvb(0, 0), "garbage")
    tree:add(F.dissection, tvb(0, 0), "garbage")
    tree:add(F.decryption, tvb(0, 0), "clear")
    tree:add_proto_expert_info(E.malformed, err)
    return "garbage (" .. err .. ")"
end

local function bad_length(expected, actual)
    return "bad length: expected " .. expected .. " bytes, got " .. actual
end

local function dissect_setup(tvb, pinfo, tree, datagram)
    local op = tvb(19, 1):uint()
    local spec = SETUP[op]
    tree:add(F.setup_op, tvb(19, 1))
    local len = tvb:len()
    if not spec then return garbage(tree, tvb, "unknown setup opcode " .. op) end
    if len ~= spec[2] then return garbage(tree, tvb, bad_length(spec[2] - 20, len - 20)) end
    local cipher_at = (op == 1 or op == 3) and 20 or (op == 12 and 36) or nil
    local suite = ({ [2] = 1, [11] = 2 })[op]
    if cipher_at then
        suite = tvb(cipher_at, 1):uint()
        if suite ~= 1 and suite ~= 2 then return garbage(tree, tvb, "unknown cipher suite " .. suite) end
    end
    add_u(tree, "counter", tvb(11, 8))
    local name = spec[1]
    tree:add(F.setup_name, tvb(19, 1), name)
    tree:add(F.dissection, tvb(19, 1), name)
    tree:add(F.layer, tvb(0, 0), "setup")
    tree:add(F.decryption, tvb(0, 0), "clear")
    if suite then tree:add(F.suite, tvb(0, 0), suite) end
    if op == 1 then
        add_u(tree, "cipher", tvb(20, 1)); add_bytes(tree, "client_id", tvb(21, 16))
        add_bytes(tree, "challenge", tvb(37, 16)); add_bytes(tree, "session_hint", tvb(53, 16))
        add_bytes(tree, "public_key", tvb(69, 32))
    elseif op == 2 then
        add_bytes(tree, "server_nonce", tvb(20, 32)); add_bytes(tree, "challenge", tvb(52, 16))
        add_bytes(tree, "tag", tvb(68, 32))
    elseif op == 3 then
        add_u(tree, "cipher", tvb(20, 1)); add_bytes(tree, "client_id", tvb(21, 16))
        add_bytes(tree, "client_nonce", tvb(37, 32)); add_bytes(tree, "server_nonce", tvb(69, 32))
        add_u(tree, "counter_floor", tvb(101, 8)); add_bytes(tree, "tag", tvb(109, 32))
    elseif op == 6 then
        add_bytes(tree, "challenge", tvb(20, 16))
    elseif op == 7 then
        add_bytes(tree, "session_id", tvb(20, 16))
    elseif op == 11 then
        add_bytes(tree, "box_nonce", tvb(20, 24))
        tree:add(F.sealed_len, tvb(44, 64), UInt64(64))
    elseif op == 12 then
        add_bytes(tree, "client_id", tvb(20, 16)); add_u(tree, "cipher", tvb(36, 1))
        add_bytes(tree, "box_nonce", tvb(37, 24))
        tree:add(F.sealed_len, tvb(61, 120), UInt64(120))
    end
    return name
end

-- Shows a decrypted plaintext in its own tab and dissects it; returns the Info text.
local function show_plain(plain, pinfo, tree, suite, dir, counter)
    if sbyte(plain, 1) == 32 and #plain == 45 then
        -- A group key (op 32): remember it to open the sender's group data, and show zeros
        -- in its place, so no display or hex dump of a capture carries it.
        local sender = crypto.to_hex(plain:sub(2, 9):reverse())
        learned_groups[sender .. "/" .. le32(plain, 10)] = plain:sub(14, 45)
        plain = plain:sub(1, 13) .. string.rep("\0", 32)
    end
    local ptvb = ByteArray.new(plain, true):tvb("Decrypted Pavillion")
    if suite then tree:add(F.suite, ptvb(0, 0), suite) end
    tree:add(F.decryption, ptvb(0, 0), dir)
    local sub = tree:add(proto, ptvb(), "Application: " .. (APP[ptvb(0, 1):uint()] or "unknown_op"))
    local name, detail, err = dissect_app(ptvb, pinfo, sub, counter)
    tree:add(F.dissection, ptvb(0, 1), name)
    if err then
        sub:add_proto_expert_info(E.bad_plaintext, err)
        return name .. " (" .. err .. ")"
    end
    return detail and (name .. " " .. detail) or name
end

local function dissect_s12_session(tvb, pinfo, tree, datagram)
    local counter = tvb(11, 8):le_uint64()
    if tvb:len() < 36 then return garbage(tree, tvb, "truncated input") end
    add_u(tree, "counter", tvb(11, 8))
    tree:add(F.layer, tvb(0, 0), "session")
    add_bytes(tree, "tag", tvb(19, 16))
    add_bytes(tree, "ciphertext", tvb(35))
    local conv = tostring(pinfo.src) .. ":" .. pinfo.src_port .. ">" .. tostring(pinfo.dst) .. ":" .. pinfo.dst_port
    local cached = cached_result(pinfo.number)
    local plain, entry
    if cached ~= nil then
        plain, entry = cached.plain, cached.entry
    else
        plain, entry = open_s12(datagram, conv)
        if not plain and have_keys() then
            reload_keys(false) -- a live key log may have grown since the last load
            plain, entry = open_s12(datagram, conv)
        end
        results[pinfo.number] = { plain = plain, entry = entry, generation = generation }
    end
    if plain then
        return show_plain(plain, pinfo, tree, entry.suite, entry.dir, tostring(counter))
    end
    tree:add(F.dissection, tvb(0, 0), "encrypted")
    tree:add(F.decryption, tvb(0, 0), "no_key")
    if have_keys() then tree:add_proto_expert_info(E.no_key) end
    return "encrypted ctr=" .. tostring(counter)
end

local function dissect_s3(tvb, pinfo, tree, datagram)
    local len = tvb:len()
    local t = tvb(4, 1):uint()
    tree:add(F.s3_type, tvb(4, 1))
    local names = { "initiation", "response", "cookie_reply", nil, "unknown_index", nil, "unknown_sender" }
    local name = names[t]
    -- Parse checks first (docs/PROTOCOL.md §12.2): exact lengths, known types and modes.
    local exact = { [2] = 69, [3] = 25, [5] = 9, [7] = 17 }
    local err
    if t < 1 or t > 7 then
        err = "unknown setup opcode " .. t
    elseif t == 1 then
        if len < 6 then
            err = "truncated input"
        else
            local mode = tvb(5, 1):uint()
            if mode < 1 or mode > 3 then
                err = "unknown cipher suite " .. mode
            elseif len ~= (mode == 3 and 106 or 138) then
                err = bad_length((mode == 3 and 106 or 138) - 5, len - 5)
            end
        end
    elseif exact[t] and len ~= exact[t] then
        err = bad_length(exact[t] - 5, len - 5)
    elseif (t == 4 and len < 34) or (t == 6 and len < 42) then
        err = "truncated input"
    end
    if err then return garbage(tree, tvb, err) end
    tree:add(F.suite, tvb(0, 4), 3)
    if name then
        tree:add(F.layer, tvb(0, 0), "handshake")
        tree:add(F.decryption, tvb(0, 0), "clear")
        tree:add(F.s3_name, tvb(4, 1), name)
        tree:add(F.dissection, tvb(4, 1), name)
    end
    if t == 1 then
        local mode = tvb(5, 1):uint()
        local modes = { "ik", "ik_psk2", "nn_psk0" }
        add_text(tree, "mode", tvb(5, 1), modes[mode])
        add_u(tree, "sender_index", tvb(6, 4))
        add_bytes(tree, "cookie", tvb(10, 16))
        local at = 26
        if mode == 3 then add_bytes(tree, "client_id", tvb(26, 16)); at = 42 end
        tree:add(F.message_len, tvb(at), UInt64(len - at))
        return string.format("initiation idx=%08x", tvb(6, 4):le_uint())
    elseif t == 2 then
        add_u(tree, "sender_index", tvb(5, 4))
        add_u(tree, "receiver_index", tvb(9, 4))
        tree:add(F.message_len, tvb(13), UInt64(56))
        return string.format("response idx=%08x", tvb(5, 4):le_uint())
    elseif t == 3 then
        add_u(tree, "receiver_index", tvb(5, 4))
        add_bytes(tree, "cookie", tvb(9, 16))
        return string.format("cookie_reply idx=%08x", tvb(5, 4):le_uint())
    elseif t == 5 then
        add_u(tree, "receiver_index", tvb(5, 4))
        return string.format("unknown_index idx=%08x", tvb(5, 4):le_uint())
    elseif t == 7 then
        add_u(tree, "sender", tvb(5, 8))
        add_u(tree, "key_id", tvb(13, 4))
        return "unknown_sender " .. tvb(5, 8):le_uint64():tohex():lower() .. "/" .. tvb(13, 4):le_uint()
    elseif t == 4 or t == 6 then
        local hlen = t == 4 and 17 or 25
        local counter_at = t == 4 and 9 or 17
        local counter = tvb(counter_at, 8):le_uint64()
        tree:add(F.layer, tvb(0, 0), t == 4 and "session" or "group")
        local candidates = {}
        if t == 4 then
            add_u(tree, "index", tvb(5, 4))
            for _, e in ipairs(keys.s3[tvb(5, 4):le_uint()] or {}) do candidates[#candidates + 1] = e end
        else
            add_u(tree, "sender", tvb(5, 8))
            add_u(tree, "key_id", tvb(13, 4))
            local id = tvb(5, 8):le_uint64():tohex():lower() .. "/" .. tvb(13, 4):le_uint()
            local k = keys.group[id] or learned_groups[id]
            if k then candidates[1] = { dir = "to_server", key = k } end
        end
        add_u(tree, "counter", tvb(counter_at, 8))
        add_bytes(tree, "ciphertext", tvb(hlen, len - hlen - 16))
        add_bytes(tree, "tag", tvb(len - 16, 16))
        local cached = cached_result(pinfo.number)
        local plain, entry
        if cached ~= nil then
            plain, entry = cached.plain, cached.entry
        else
            local nonce = "\0\0\0\0" .. datagram:sub(counter_at + 1, counter_at + 8)
            local aad, sealed = datagram:sub(1, hlen), datagram:sub(hlen + 1)
            for _, e in ipairs(candidates) do
                plain = crypto.aead_open(e.key, nonce, aad, sealed)
                if plain then entry = e; break end
            end
            results[pinfo.number] = { plain = plain, entry = entry, generation = generation }
        end
        if plain then
            return show_plain(plain, pinfo, tree, nil, entry.dir, tostring(counter))
        end
        tree:add(F.dissection, tvb(0, 0), "encrypted")
        tree:add(F.decryption, tvb(0, 0), "no_key")
        if have_keys() then tree:add_proto_expert_info(E.no_key) end
        return "encrypted ctr=" .. tostring(counter)
    end
end

local MAGIC_S0 = "PavillionS0"
local MAGIC_S3 = "PvS3"

local function is_pavillion(tvb)
    local len = tvb:len()
    if len >= 11 and tvb(0, 11):raw() == MAGIC_S0 then return 0 end
    if len >= 4 and tvb(0, 4):raw() == MAGIC_S3 then return 3 end
    return nil
end

function proto.dissector(tvb, pinfo, tree)
    local kind = is_pavillion(tvb)
    if not kind then return 0 end
    if loaded.path ~= proto.prefs.keylog_file then reload_keys(true) end
    pinfo.cols.protocol = "Pavillion"
    local root = tree:add(proto, tvb())
    local datagram = tvb:raw()
    local text_
    if (kind == 3 and tvb:len() < 5) or (kind == 0 and tvb:len() < 19) then
        text_ = garbage(root, tvb, "truncated input")
    elseif kind == 3 then
        text_ = dissect_s3(tvb, pinfo, root, datagram)
    else
        if tvb(11, 8):le_uint64() == UInt64(0) then
            if tvb:len() < 20 then
                text_ = garbage(root, tvb, "truncated input")
            else
                text_ = dissect_setup(tvb, pinfo, root, datagram)
            end
        else
            text_ = dissect_s12_session(tvb, pinfo, root, datagram)
        end
    end
    root:append_text(", " .. text_)
    info(pinfo, text_)
    return tvb:len()
end

local function heuristic(tvb, pinfo, tree)
    if not is_pavillion(tvb) then return false end
    proto.dissector(tvb, pinfo, tree)
    return true
end

proto:register_heuristic("udp", heuristic)
udp_table:add(1783, proto)
registered_port = 1783

return crypto
