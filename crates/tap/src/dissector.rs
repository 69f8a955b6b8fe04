//! A Wireshark dissector for a trama framing, written in Lua
//! (`trama-tap dissector`).
//!
//! The generated script registers protocol `trama` on the TCP ports asked
//! for (and in Decode As), shows each frame with its length (`trama.len`)
//! and payload (`trama.payload`, with a text view `trama.text` when it is
//! UTF-8 text and Wireshark's JSON view when it looks like JSON), asks TCP
//! for more segments until a frame is whole (`desegment_len`), and flags a
//! length over the limit (`trama.over_limit`) and a stream that ends in
//! the middle of a frame (`trama.cut`) as expert info. The raw dialect
//! gets a dissector that shows each segment as an unframed chunk.

use trama_protocol::{ByteOrder, FrameConfig};

/// The Lua dissector for `frame`, registered on each of `ports`.
pub fn dissector(frame: FrameConfig, ports: &[u16]) -> String {
    let ports = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let width = frame.width().bytes();
    let little = frame.order() == ByteOrder::Little;
    // Lua numbers are doubles: a limit past 2^53 is as good as none.
    let limit = frame.max_frame_len().min(1 << 53);
    let mut lua = String::new();
    let (flags, title) = if frame.is_unframed() {
        ("--raw".to_string(), "unframed (raw dialect)".to_string())
    } else {
        (
            format!(
                "--header-bytes {width} --byte-order {} --max-frame {limit}",
                if little { "little" } else { "big" }
            ),
            format!(
                "{width}-byte {}-endian length header, frames up to {limit} bytes",
                if little { "little" } else { "big" }
            ),
        )
    };
    lua.push_str(
        &COMMON
            .replace("@FLAGS@", &flags)
            .replace("@TITLE@", &title)
            .replace("@PORTS@", &ports),
    );
    if frame.is_unframed() {
        lua.push_str(UNFRAMED);
    } else {
        let (uint, read) = match (width, little) {
            (8, false) => ("uint64", "range:uint64()"),
            (8, true) => ("uint64", "range:le_uint64()"),
            (_, false) => ("uint32", "range:uint()"),
            (_, true) => ("uint32", "range:le_uint()"),
        };
        let uint = match width {
            1 => "uint8",
            2 => "uint16",
            _ => uint,
        };
        let read = if width == 8 {
            format!(
                "local v = {read}\n  if v > UInt64.new(LIMIT) then return LIMIT + 1, tostring(v) end\n  return v:tonumber(), tostring(v)"
            )
        } else {
            format!("local v = {read}\n  return v, tostring(v)")
        };
        lua.push_str(
            &FRAMED
                .replace("@HEADER@", &width.to_string())
                .replace("@LIMIT@", &limit.to_string())
                .replace("@UINT@", uint)
                .replace("@ADD@", if little { "add_le" } else { "add" })
                .replace("@READ@", &read),
        );
    }
    lua.push_str(REGISTER);
    lua
}

/// Declarations every dialect shares.
const COMMON: &str = r#"-- trama.lua: a Wireshark dissector for trama's messages.
-- Made by `trama-tap dissector @FLAGS@` for: @TITLE@.
--
-- Use:  wireshark -X lua_script:trama.lua capture.pcapng
--       tshark -X lua_script:trama.lua -r capture.pcapng -Y trama
-- or copy it to Wireshark's personal Lua plugins folder (Help > About
-- Wireshark > Folders). It is registered on TCP ports {@PORTS@} and offered
-- in Analyze > Decode As (TCP port) for any other.

local trama = Proto("trama", "trama messages (@TITLE@)")

local f_len = nil -- set below for framed dialects
local f_payload = ProtoField.bytes("trama.payload", "Payload")
local f_text = ProtoField.string("trama.text", "Text")

local e_over = ProtoExpert.new("trama.over_limit", "Length header over the limit",
  expert.group.MALFORMED, expert.severity.ERROR)
local e_cut = ProtoExpert.new("trama.cut", "Stream ended in the middle of a frame",
  expert.group.MALFORMED, expert.severity.ERROR)
local e_lost = ProtoExpert.new("trama.lost", "Not followed: framing lost after a bad length header",
  expert.group.SEQUENCE, expert.severity.WARN)
trama.experts = { e_over, e_cut, e_lost }

local PORTS = { @PORTS@ }

-- Wireshark's JSON dissector, for payloads that look like JSON.
local json_ok, json = pcall(Dissector.get, "json")
if not json_ok then json = nil end

-- True when s is UTF-8 text with no control characters but tab and newlines.
local function is_text(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local more = 0
    if c < 0x20 then
      if c ~= 9 and c ~= 10 and c ~= 13 then return false end
    elseif c == 0x7f then
      return false
    elseif c >= 0xf0 and c <= 0xf4 then more = 3
    elseif c >= 0xe0 then if c > 0xef then return false end more = 2
    elseif c >= 0xc2 then more = 1
    elseif c >= 0x80 then return false
    end
    for j = 1, more do
      local d = s:byte(i + j)
      if d == nil or d < 0x80 or d > 0xbf then return false end
    end
    i = i + 1 + more
  end
  return true
end

local function looks_json(s)
  local first = s:match("^%s*(.)")
  local last = s:match("(.)%s*$")
  return (first == "{" and last == "}") or (first == "[" and last == "]")
end

-- A payload's tree: the bytes, their text, their JSON.
local function add_payload(tree, range, pinfo)
  local item = tree:add(f_payload, range)
  if range:len() == 0 then return "" end
  local s = range:raw()
  if not is_text(s) then return nil end
  item:add_packet_field(f_text, range, ENC_UTF_8)
  if json and looks_json(s) then
    pcall(function() json:call(range:tvb(), pinfo, item) end)
  end
  return s
end

-- One direction of one TCP conversation.
local function direction(pinfo)
  return tostring(pinfo.src) .. ":" .. pinfo.src_port .. ">" .. tostring(pinfo.dst) .. ":" .. pinfo.dst_port
end
local function reverse(pinfo)
  return tostring(pinfo.dst) .. ":" .. pinfo.dst_port .. ">" .. tostring(pinfo.src) .. ":" .. pinfo.src_port
end
"#;

/// The framed dialect: frames, reassembly, the limit, cuts.
const FRAMED: &str = r#"
local HEADER = @HEADER@
local LIMIT = @LIMIT@

f_len = ProtoField.@UINT@("trama.len", "Length", base.DEC)
trama.fields = { f_len, f_payload, f_text }

-- The length in the header at range: a number (LIMIT + 1 when it is too
-- large for one) and its text.
local function read_len(range)
  @READ@
end

-- Per direction, learnt on the first pass over the packets (Wireshark
-- dissects each packet again when it is clicked): the frame still waiting
-- for bytes, the packet where framing was lost, the packets that ended a
-- stream in the middle of a frame.
local pending = {}
local lost = {}
local cut_at = {}

local function clip(s)
  if s == nil then return "(binary)" end
  s = s:gsub("[\r\n\t]", " ")
  if #s > 40 then return s:sub(1, 40) .. "..." end
  return s
end

function trama.dissector(tvb, pinfo, tree)
  local key = direction(pinfo)
  local first = not pinfo.visited
  pinfo.cols.protocol = "trama"
  local at = lost[key]
  if at ~= nil and pinfo.number > at then
    local item = tree:add(trama, tvb(), "trama: not followed")
    item:add_proto_expert_info(e_lost,
      "Not followed: framing was lost at a bad length header in packet " .. at)
    pinfo.cols.info = "trama: not followed (framing lost in packet " .. at .. ")"
    return tvb:len()
  end
  if first then pending[key] = nil end
  local total = tvb:len()
  local offset = 0
  local shown = {}
  while offset < total do
    local left = total - offset
    if left < HEADER then
      pinfo.desegment_offset = offset
      pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
      if first then pending[key] = { have = left, need = HEADER, header = true } end
      break
    end
    local len, len_text = read_len(tvb(offset, HEADER))
    if len > LIMIT then
      local sub = tree:add(trama, tvb(offset), "trama, length header over the limit")
      local item = sub:@ADD@(f_len, tvb(offset, HEADER))
      item:add_proto_expert_info(e_over, "Length " .. len_text ..
        " is over the limit of " .. LIMIT .. " bytes: the stream is not a trama stream here, or the header was damaged")
      table.insert(shown, "BAD LENGTH " .. len_text)
      if first then lost[key] = pinfo.number end
      offset = total
      break
    end
    if left < HEADER + len then
      pinfo.desegment_offset = offset
      pinfo.desegment_len = HEADER + len - left
      if first then pending[key] = { have = left, need = HEADER + len } end
      break
    end
    local sub = tree:add(trama, tvb(offset, HEADER + len), "trama frame, " .. len .. " bytes")
    sub:@ADD@(f_len, tvb(offset, HEADER))
    local text = add_payload(sub, tvb(offset + HEADER, len), pinfo)
    table.insert(shown, "[" .. len .. "] " .. clip(text))
    offset = offset + HEADER + len
  end
  pinfo.cols.protocol = "trama"
  if #shown > 0 then
    pinfo.cols.info = "trama " .. table.concat(shown, ", ")
  end
  return total
end

-- A FIN or RST while a frame waits for bytes: the stream was cut mid-frame.
local end_of_stream = Proto("trama_end", "trama end of stream")
local tcp_fin = Field.new("tcp.flags.fin")
local tcp_rst = Field.new("tcp.flags.reset")

function end_of_stream.dissector(tvb, pinfo, tree)
  if not pinfo.visited then
    local fin, rst = tcp_fin(), tcp_rst()
    local keys = {}
    if (fin and fin.value) then keys = { direction(pinfo) } end
    if (rst and rst.value) then keys = { direction(pinfo), reverse(pinfo) } end
    for _, key in ipairs(keys) do
      local p = pending[key]
      if p ~= nil then
        cut_at[pinfo.number] = p
        pending[key] = nil
      end
    end
  end
  local p = cut_at[pinfo.number]
  if p ~= nil then
    local item = tree:add(trama, tvb(0, 0), "trama: stream ended in the middle of a frame")
    local where = p.header and "length header" or "frame"
    item:add_proto_expert_info(e_cut, "Stream ended " .. p.have .. " bytes into a " .. where ..
      " of " .. p.need .. " bytes (header included)")
  end
end
register_postdissector(end_of_stream)
"#;

/// The raw dialect: every segment is a chunk, with no length.
const UNFRAMED: &str = r#"
trama.fields = { f_payload, f_text }

function trama.dissector(tvb, pinfo, tree)
  local sub = tree:add(trama, tvb(), "trama, unframed: a chunk of " .. tvb:len() .. " bytes (no length header; message boundaries are not on the wire)")
  add_payload(sub, tvb(), pinfo)
  pinfo.cols.protocol = "trama"
  pinfo.cols.info = "trama unframed chunk, " .. tvb:len() .. " bytes"
  return tvb:len()
end
"#;

/// Registration on the ports and in Decode As.
const REGISTER: &str = r#"
local tcp_port = DissectorTable.get("tcp.port")
for _, port in ipairs(PORTS) do
  tcp_port:add(port, trama)
end
tcp_port:add_for_decode_as(trama)
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use trama_protocol::HeaderWidth;

    #[test]
    fn the_notes_framing_on_two_ports() {
        let lua = dissector(FrameConfig::default(), &[7000, 7001]);
        assert!(lua.contains("local HEADER = 4\n"), "{lua}");
        assert!(lua.contains("local LIMIT = 16777216\n"));
        assert!(lua.contains("local PORTS = { 7000, 7001 }"));
        assert!(lua.contains("ProtoField.uint32(\"trama.len\""));
        assert!(lua.contains("range:uint()"));
        assert!(lua.contains("sub:add(f_len"));
        assert!(lua.contains("--header-bytes 4 --byte-order big --max-frame 16777216"));
        assert!(!lua.contains('@'), "a placeholder left: {lua}");
    }

    #[test]
    fn little_endian_eight_byte_headers_read_a_uint64() {
        let frame = FrameConfig::builder()
            .width(HeaderWidth::from_bytes(8).unwrap())
            .order(ByteOrder::Little)
            .max_frame_len(1000)
            .build()
            .unwrap();
        let lua = dissector(frame, &[]);
        assert!(lua.contains("ProtoField.uint64(\"trama.len\""));
        assert!(lua.contains("range:le_uint64()"));
        assert!(lua.contains("UInt64.new(LIMIT)"));
        assert!(lua.contains("sub:add_le(f_len"));
        assert!(lua.contains("local PORTS = {  }"));
        assert!(!lua.contains('@'));
    }

    #[test]
    fn the_raw_dialect_is_marked_unframed_and_has_no_length() {
        let lua = dissector(FrameConfig::unframed(), &[9000]);
        assert!(lua.contains("unframed"));
        assert!(!lua.contains("trama.len"));
        assert!(lua.contains("--raw"));
        assert!(!lua.contains('@'));
    }
}
