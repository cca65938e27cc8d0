#!/usr/bin/env python3
"""pty-bridge.py LINK_A LINK_B: a virtual null-modem cable, like
`socat pty,raw,echo=0,link=LINK_A pty,raw,echo=0,link=LINK_B`, for machines without socat.

Opens two pseudo-terminals, puts both slave ends in raw mode, symlinks them to LINK_A and LINK_B, prints
"ready" and copies bytes master<->master. The slave fds stay open here so the masters never read EIO when a
client closes its end. SIGTERM/SIGINT remove the links, so a client sees the port vanish as it would an
unplugged USB adapter.
"""
import os
import select
import signal
import sys
import tty


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: pty-bridge.py LINK_A LINK_B")
    links = sys.argv[1:3]
    masters = []
    for link in links:
        master, slave = os.openpty()
        tty.setraw(slave)
        try:
            os.unlink(link)
        except FileNotFoundError:
            pass
        os.symlink(os.ttyname(slave), link)
        masters.append((master, slave))

    def bye(*_: object) -> None:
        for link in links:
            try:
                os.unlink(link)
            except FileNotFoundError:
                pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, bye)
    signal.signal(signal.SIGINT, bye)
    print("ready", flush=True)

    (a, _), (b, _) = masters
    peer = {a: b, b: a}
    while True:
        readable, _, _ = select.select([a, b], [], [])
        for fd in readable:
            try:
                data = os.read(fd, 4096)
            except OSError:
                continue
            if data:
                os.write(peer[fd], data)


if __name__ == "__main__":
    main()
