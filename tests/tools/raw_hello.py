#!/usr/bin/python3
"""raw_hello.py HOST PORT SNI_HEX: sends one TLS ClientHello whose server_name
holds the exact bytes SNI_HEX (any bytes: newlines, NUL, controls, which
openssl s_client and the TLS libraries refuse to send), reads until the server
closes or sends its first record, and prints the client's local port."""
import os
import socket
import struct
import sys


def u8(b):
    return struct.pack("!B", len(b)) + b


def u16(b):
    return struct.pack("!H", len(b)) + b


def ext(kind, body):
    return struct.pack("!H", kind) + u16(body)


def client_hello(sni):
    exts = b"".join([
        ext(0, u16(b"\x00" + u16(sni))),                     # server_name
        ext(10, u16(b"\x00\x1d\x00\x17")),                   # x25519, P-256
        ext(11, u8(b"\x00")),                                # ec_point_formats
        ext(13, u16(b"\x04\x03\x08\x04\x04\x01")),          # signature_algorithms
        ext(43, u8(b"\x03\x04\x03\x03")),                    # TLS 1.3, 1.2
        ext(51, u16(b"\x00\x1d" + u16(os.urandom(32)))),     # key_share x25519
    ])
    body = (b"\x03\x03" + os.urandom(32) + u8(os.urandom(32)) +
            u16(b"\x13\x01\x13\x02\xc0\x2b\xc0\x2f") + u8(b"\x00") + u16(exts))
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + u16(hs)


def main():
    host, port, sni = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
    s = socket.create_connection((host, port), timeout=10)
    print(s.getsockname()[1], flush=True)
    s.sendall(client_hello(sni))
    try:
        s.recv(65536)
    except OSError:
        pass
    s.close()


main()
