"""Frame sizes of typical hub messages in both hub encodings (docs/protocol.md section 11).

Run: .venv/bin/python benchmarks/hub_frame_sizes.py (sizes, not speed: safe on a shared machine).
"""

from __future__ import annotations

from hubbub.hub.core import protocol as p
from hubbub.hub.core.binary import MsgpackEncoder
from hubbub.protocol.frames import Opcode, encode_frame

enc = MsgpackEncoder()
data = {"text": "x" * 70, "ts": 1796637403651}  # 100 bytes of data as JSON
cases = {
    "pub (100-byte data)": p.encode_push(
        "pub",
        {
            "channel": "chat:lobby",
            "epoch": "0be6f62f47093070",
            "offset": 12345,
            "time": 1796637403651,
            "from": "alice",
            "data": data,
        },
    ),
    "message (100-byte data)": p.encode_push(
        "message",
        {
            "epoch": "0be6f62f47093070",
            "offset": 12345,
            "time": 1796637403651,
            "from": "alice",
            "data": data,
        },
    ),
    "tick": p.encode_push("tick", {"time": 1796637403651}),
    "publish reply": p.encode_result(7, {"offset": 12345, "epoch": "0be6f62f47093070"}),
}
print("data JSON bytes:", len(p.encode(data)))
for name, text in cases.items():
    j = len(b"".join(encode_frame(Opcode.TEXT, text.encode())))
    m = len(b"".join(encode_frame(Opcode.BINARY, enc.pack_text(text))))
    print(f"| {name} | {j} | {m} | {100 * (j - m) / j:.0f}% |")
