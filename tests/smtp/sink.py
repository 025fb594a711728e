"""A real SMTP server on loopback for doorman's tests (aiosmtpd).

Usage: python3 sink.py DIR [--fail-first N]

Listens on 127.0.0.1 on a free port, prints that port on the first line of
standard output, and writes every message it accepts to DIR as one .eml file
(written under a temporary name, then renamed, so a reader never sees half a
message). With --fail-first N the first N messages are refused with a transient
451, as a busy relay would, so a sender's retries can be tested. It serves until
standard input closes or it is killed.
"""

import argparse
import asyncio
import os
import sys
import time
import uuid

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, directory, fail_first):
        self.directory = directory
        self.to_fail = fail_first

    async def handle_DATA(self, server, session, envelope):
        if self.to_fail > 0:
            self.to_fail -= 1
            return "451 4.3.0 try again later"
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}"
        tmp = os.path.join(self.directory, f".{name}.tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(self.directory, f"{name}.eml"))
        return "250 2.0.0 OK"


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--fail-first", type=int, default=0)
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    handler = Sink(args.directory, args.fail_first)
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.test"), "127.0.0.1", 0
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    # Serve until the test closes our standard input (or kills us).
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
