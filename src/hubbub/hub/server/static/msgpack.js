// msgpack.js: the MessagePack of hubbub.msgpack.v1 (docs/protocol.md section 11), for
// hubbub.js in browsers without a bundler. Only the values JSON has: nil, booleans,
// integers, float 64 (float 32 read), str, array and map with str keys. The hub never
// sends bin or ext values; decode() refuses them, as the hub refuses them in requests.
//
//   import { encode, decode } from "/msgpack.js";
//   decode(encode({ a: [1, 2.5, "é", null, true] }));   // the same value back
//
// encode() follows JSON.stringify where JavaScript has more than JSON: undefined and
// functions are left out of objects and become nil in arrays, NaN and the infinities
// become nil, an object with toJSON() (a Date) is encoded as what it returns, and a
// BigInt throws a TypeError. Integers up to 2^53 travel as MessagePack integers in
// their smallest form; decode() turns a 64-bit integer beyond 2^53 into the nearest
// Number, as JSON.parse does with a long integer.

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true }); // invalid UTF-8 throws

// Deepest nesting decode() follows (the hub sends at most about 64 levels; this only
// keeps a malicious server from exhausting the stack).
const MAX_DEPTH = 512;

class Writer {
  constructor() {
    this.buf = new Uint8Array(256);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }

  reserve(n) {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const buf = new Uint8Array(size);
    buf.set(this.buf.subarray(0, this.pos));
    this.buf = buf;
    this.view = new DataView(buf.buffer);
  }

  u8(x) {
    this.reserve(1);
    this.buf[this.pos++] = x;
  }

  typed(tag, setter, size, x) {
    this.reserve(1 + size);
    this.buf[this.pos] = tag;
    this.view[setter](this.pos + 1, x);
    this.pos += 1 + size;
  }

  raw(bytes) {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  // A length header: fix form (tag | n) when n < fixLimit, else the 8/16/32-bit forms.
  header(n, fixTag, fixLimit, tag8, tag16, tag32) {
    if (n < fixLimit) this.u8(fixTag | n);
    else if (tag8 !== null && n < 0x100) this.typed(tag8, "setUint8", 1, n);
    else if (n < 0x10000) this.typed(tag16, "setUint16", 2, n);
    else this.typed(tag32, "setUint32", 4, n);
  }
}

function writeNumber(out, v) {
  if (!Number.isFinite(v)) {
    out.u8(0xc0); // JSON.stringify writes null
  } else if (!Number.isSafeInteger(v)) {
    out.typed(0xcb, "setFloat64", 8, v); // a fraction, or beyond 2^53 (-0 is written as 0, as in JSON)
  } else if (v >= 0) {
    if (v < 0x80) out.u8(v);
    else if (v < 0x100) out.typed(0xcc, "setUint8", 1, v);
    else if (v < 0x10000) out.typed(0xcd, "setUint16", 2, v);
    else if (v < 0x100000000) out.typed(0xce, "setUint32", 4, v);
    else out.typed(0xcf, "setBigUint64", 8, BigInt(v));
  } else if (v >= -32) {
    out.u8(v & 0xff);
  } else if (v >= -0x80) out.typed(0xd0, "setInt8", 1, v);
  else if (v >= -0x8000) out.typed(0xd1, "setInt16", 2, v);
  else if (v >= -0x80000000) out.typed(0xd2, "setInt32", 4, v);
  else out.typed(0xd3, "setBigInt64", 8, BigInt(v));
}

function skipped(v) {
  return v === undefined || typeof v === "function" || typeof v === "symbol";
}

function write(out, v) {
  if (v !== null && typeof v === "object" && typeof v.toJSON === "function") v = v.toJSON();
  if (v === null || skipped(v)) out.u8(0xc0);
  else if (v === false) out.u8(0xc2);
  else if (v === true) out.u8(0xc3);
  else if (typeof v === "number") writeNumber(out, v);
  else if (typeof v === "string") {
    const bytes = utf8Encoder.encode(v);
    out.header(bytes.length, 0xa0, 32, 0xd9, 0xda, 0xdb);
    out.raw(bytes);
  } else if (typeof v === "bigint") {
    throw new TypeError("a BigInt has no JSON value (as in JSON.stringify)");
  } else if (Array.isArray(v)) {
    out.header(v.length, 0x90, 16, null, 0xdc, 0xdd);
    for (const item of v) write(out, item);
  } else if (v instanceof Number || v instanceof String || v instanceof Boolean) {
    write(out, v.valueOf());
  } else {
    const keys = Object.keys(v).filter((key) => !skipped(v[key]));
    out.header(keys.length, 0x80, 16, null, 0xde, 0xdf);
    for (const key of keys) {
      write(out, key);
      write(out, v[key]);
    }
  }
}

/** One value as MessagePack bytes (a Uint8Array). */
export function encode(value) {
  const out = new Writer();
  write(out, value);
  return out.buf.slice(0, out.pos);
}

class Reader {
  constructor(bytes) {
    this.buf = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }

  take(n) {
    if (this.pos + n > this.buf.length) throw new RangeError("truncated MessagePack");
    const start = this.pos;
    this.pos += n;
    return start;
  }

  num(getter, size) {
    return this.view[getter](this.take(size));
  }

  str(n) {
    const start = this.take(n);
    return utf8Decoder.decode(this.buf.subarray(start, start + n));
  }
}

function readArray(r, n, depth) {
  const items = new Array(n);
  for (let i = 0; i < n; i++) items[i] = read(r, depth + 1);
  return items;
}

function readMap(r, n, depth) {
  const obj = {};
  for (let i = 0; i < n; i++) {
    const key = read(r, depth + 1);
    if (typeof key !== "string") throw new TypeError("map keys must be strings");
    const value = read(r, depth + 1);
    // An own property even for "__proto__", as JSON.parse makes it.
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return obj;
}

function read(r, depth) {
  if (depth > MAX_DEPTH) throw new RangeError("MessagePack nested too deep");
  const b = r.num("getUint8", 1);
  if (b < 0x80) return b;
  if (b < 0x90) return readMap(r, b & 0x0f, depth);
  if (b < 0xa0) return readArray(r, b & 0x0f, depth);
  if (b < 0xc0) return r.str(b & 0x1f);
  if (b >= 0xe0) return b - 0x100;
  switch (b) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xca: return r.num("getFloat32", 4);
    case 0xcb: return r.num("getFloat64", 8);
    case 0xcc: return r.num("getUint8", 1);
    case 0xcd: return r.num("getUint16", 2);
    case 0xce: return r.num("getUint32", 4);
    case 0xcf: return Number(r.num("getBigUint64", 8));
    case 0xd0: return r.num("getInt8", 1);
    case 0xd1: return r.num("getInt16", 2);
    case 0xd2: return r.num("getInt32", 4);
    case 0xd3: return Number(r.num("getBigInt64", 8));
    case 0xd9: return r.str(r.num("getUint8", 1));
    case 0xda: return r.str(r.num("getUint16", 2));
    case 0xdb: return r.str(r.num("getUint32", 4));
    case 0xdc: return readArray(r, r.num("getUint16", 2), depth);
    case 0xdd: return readArray(r, r.num("getUint32", 4), depth);
    case 0xde: return readMap(r, r.num("getUint16", 2), depth);
    case 0xdf: return readMap(r, r.num("getUint32", 4), depth);
    default: // 0xc1 (never used), bin 0xc4-0xc6, ext 0xc7-0xc9 and 0xd4-0xd8
      throw new TypeError(`MessagePack type 0x${b.toString(16)} is not part of hubbub.msgpack.v1`);
  }
}

/** One MessagePack value from a Uint8Array or ArrayBuffer; throws on anything else. */
export function decode(bytes) {
  const r = new Reader(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes));
  const value = read(r, 1);
  if (r.pos !== r.buf.length) throw new RangeError("bytes after the MessagePack value");
  return value;
}
