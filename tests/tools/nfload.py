#!/usr/bin/env python3
"""nfload: connection load for the netfilter flip tests.

    nfload.py STOP_FILE ALLOWED_PORTS TARGET...

TARGET is ADDR,PORT (IPv6 without brackets). Each target gets two threads
that open connections back to back until STOP_FILE exists: connect, read the
nfecho greeting (the instance port that answered), check it is one of
ALLOWED_PORTS (comma-separated), send a line, check the echo, close. Every
wait is bounded (5 s). Prints one line "ok N failed N" (and up to 5 failure
reasons on stderr); exits 1 if any connection failed. With NFLOAD_UP set in
the environment, creates that file once every target has answered one
connection, so that a test starts its flips while the load runs rather
than after a guessed delay. Only for test namespaces.
"""
import os
import socket
import sys
import threading

stop_file, allowed = sys.argv[1], set(sys.argv[2].split(","))
targets = [t.rsplit(",", 1) for t in sys.argv[3:]]
lock = threading.Lock()
counts = {"ok": 0, "failed": 0}
reasons = []
up_file = os.environ.get("NFLOAD_UP")
answered = set()


def one(addr, port):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect((addr, int(port)))
        f = s.makefile("rwb", buffering=0)
        greet = f.readline().decode().strip()
        if greet not in allowed:
            raise RuntimeError("landed on %r" % greet)
        s.sendall(b"x\n")
        if f.readline().decode().strip() != greet + " x":
            raise RuntimeError("bad echo")


def worker(addr, port):
    while not os.path.exists(stop_file):
        try:
            one(addr, port)
            key = "ok"
            if up_file and (addr, port) not in answered:
                with lock:
                    answered.add((addr, port))
                    if len(answered) == len(targets):
                        open(up_file, "w").close()
        except Exception as e:  # every failure is counted and a few shown
            key = "failed"
            with lock:
                if len(reasons) < 5:
                    reasons.append("%s:%s %s" % (addr, port, e))
        with lock:
            counts[key] += 1


threads = [threading.Thread(target=worker, args=t) for t in targets for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for r in reasons:
    print(r, file=sys.stderr)
print("ok %d failed %d" % (counts["ok"], counts["failed"]))
sys.exit(1 if counts["failed"] else 0)
