#!/usr/bin/python3
"""Hostile TLS clients for the proxy's tests.

    hostile.py hello HOST PORT [--sni-hex HEX] [--case NAME]
        Sends one hand-built ClientHello (or a malformed variant, --case) and
        prints what came back: "alert N", "serverhello", "closed" or
        "timeout". An SNI can carry any bytes (hex), which real clients
        refuse to send.
    hostile.py cases
        Lists the malformed variants.
    hostile.py hold HOST PORT N READY_FILE RELEASE_FILE
        Slowloris: opens N connections, sends the first 3 bytes of a TLS
        record on each, writes READY_FILE, and holds them until
        RELEASE_FILE exists. Then prints how many the server had closed.
    hostile.py await-closed HOST PORT N SECONDS
        Like hold, but waits up to SECONDS for the server to close all N
        half-sent connections, and prints the number it closed.
"""
import os
import socket
import struct
import sys
import time


def u8(n):
    return struct.pack("!B", n)


def u16(n):
    return struct.pack("!H", n & 0xFFFF)


def u24(n):
    return struct.pack("!I", n)[1:]


def ext(kind, body):
    return u16(kind) + u16(len(body)) + body


def sni_ext(names):
    lst = b"".join(u8(0) + u16(len(n)) + n for n in names)
    return ext(0, u16(len(lst)) + lst)


def client_hello(sni=None, extra_ext=b"", versions=(0x0304, 0x0303), legacy=0x0303,
                 ciphers=(0x1301, 0x1302, 0xC02B, 0xC02F), fix_len=None):
    exts = b""
    if sni is not None:
        exts += sni_ext(sni)
    # supported_groups, signature_algorithms, supported_versions, key_share
    # (an x25519 share of random bytes: enough for a server to answer).
    exts += ext(10, u16(4) + u16(0x001D) + u16(0x0017))
    exts += ext(13, u16(8) + u16(0x0403) + u16(0x0804) + u16(0x0401) + u16(0x0503))
    sv = b"".join(u16(v) for v in versions)
    exts += ext(43, u8(len(sv)) + sv)
    share = u16(0x001D) + u16(32) + os.urandom(32)
    exts += ext(51, u16(len(share)) + share)
    exts += ext(11, u8(1) + u8(0))
    exts += extra_ext
    cs = b"".join(u16(c) for c in ciphers)
    body = (u16(legacy) + os.urandom(32) + u8(32) + os.urandom(32) + u16(len(cs)) + cs +
            u8(1) + u8(0) + u16(len(exts) if fix_len is None else fix_len) + exts)
    hs = u8(1) + u24(len(body)) + body
    return u8(22) + u16(0x0301) + u16(len(hs)) + hs


def case_bytes(name):
    ok = [b"hostile.example"]
    if name == "garbage":
        return os.urandom(512)
    if name == "http":
        return b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    if name == "huge-record":
        return u8(22) + u16(0x0301) + u16(0xFFFF) + b"\x01" * 64
    if name == "bad-ext-length":
        return client_hello(ok, fix_len=0xFFF0)
    if name == "sni-overlong-list":
        body = u16(0x4000) + u8(0) + u16(3) + b"a.b"
        return client_hello(None, extra_ext=ext(0, body))
    if name == "sni-empty-name":
        return client_hello([b""])
    if name == "sni-two-names":
        return client_hello([b"one.example", b"two.example"])
    if name == "sni-256":
        return client_hello([b"a" * 63 + b"." + b"b" * 63 + b"." + b"c" * 63 + b"." + b"d" * 65])
    if name == "sni-65535":
        return client_hello([b"x" * 16000])
    if name == "sslv2":
        return b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10" + b"\x00" * 21 + os.urandom(16)
    # A name the test set covers, so that the version and cipher checks
    # decide, not the certificate lookup.
    known = [b"site1.example.test"]
    if name == "tls10-only":
        return client_hello(known, versions=(0x0301,), legacy=0x0301, ciphers=(0x002F,))
    if name == "no-common-cipher":
        return client_hello(known, ciphers=(0x0005,), versions=(0x0303,))
    raise SystemExit("unknown case " + name)


# An empty handshake record is not here: it is legal, and OpenSSL then waits
# for the next one, which makes it a slow client for the handshake timeout.
CASES = ["garbage", "http", "huge-record", "bad-ext-length",
         "sni-overlong-list", "sni-empty-name", "sni-two-names", "sni-256", "sni-65535",
         "sslv2", "tls10-only", "no-common-cipher"]


def answer(sock, timeout=10.0):
    """What the server did with the hello: its first record, or closed."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(5)
    except socket.timeout:
        return "timeout"
    except ConnectionResetError:
        return "closed"
    if not data:
        return "closed"
    if len(data) >= 1 and data[0] == 21:
        try:
            rest = sock.recv(2)
        except OSError:
            rest = b""
        return "alert %d" % rest[1] if len(rest) == 2 else "alert"
    if data[0] == 22:
        return "serverhello"
    return "other %d" % data[0]


def do_hello(host, port, args):
    sni = None
    case = None
    i = 0
    while i < len(args):
        if args[i] == "--sni-hex":
            sni = [bytes.fromhex(args[i + 1])]
            i += 2
        elif args[i] == "--case":
            case = args[i + 1]
            i += 2
        else:
            raise SystemExit("bad argument " + args[i])
    data = case_bytes(case) if case else client_hello(sni)
    s = socket.create_connection((host, port), timeout=10)
    try:
        s.sendall(data)
    except OSError:
        print("closed")
        return
    print(answer(s))


def open_partial(host, port, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(b"\x16\x03\x01")
        socks.append(s)
    return socks


def closed_count(socks, deadline):
    closed = set()
    while len(closed) < len(socks) and time.monotonic() < deadline:
        for i, s in enumerate(socks):
            if i in closed:
                continue
            s.settimeout(0.05)
            try:
                if s.recv(4096) == b"":
                    closed.add(i)
            except socket.timeout:
                pass
            except OSError:
                closed.add(i)
    return len(closed)


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    cmd = sys.argv[1]
    if cmd == "cases":
        print("\n".join(CASES))
    elif cmd == "hello":
        do_hello(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
    elif cmd == "hold":
        host, port, n, ready, release = sys.argv[2:7]
        socks = open_partial(host, int(port), int(n))
        open(ready, "w").close()
        while not os.path.exists(release):
            time.sleep(0.05)
        print(closed_count(socks, time.monotonic() + 0.5))
    elif cmd == "await-closed":
        host, port, n, secs = sys.argv[2:6]
        socks = open_partial(host, int(port), int(n))
        print(closed_count(socks, time.monotonic() + float(secs)))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
