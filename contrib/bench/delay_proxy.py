#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A TCP proxy on 127.0.0.1 that delays every chunk by a fixed one-way time, and may limit
the bandwidth, for a bench of a far server on one machine (`run.py bench --delay-ms N
[--rate-mbit R]`: a round trip of N ms between the tools and Dovecot's plain-TCP port; no
netem needed, nor root).

    delay_proxy.py TARGET_PORT ONE_WAY_MS [MBIT]   # prints the port it listens on, serves

Without MBIT the delay is a pure latency: chunks go out in order, each ONE_WAY_MS after it
arrived, with no bandwidth limit beyond the proxy's own (a few hundred MB/s). With MBIT,
each direction is one link of that many megabits a second, shared by all connections: a
chunk leaves once the link has sent the chunks before it, then takes ONE_WAY_MS more; at most 1 MB waits in the proxy
per direction (the router's buffer), then the sender's TCP window fills and it waits.
The tools' kernel sees a loopback round trip (run.py tells tandem the real one with
TANDEM_ROUND_TRIP_MS).
"""
import asyncio
import sys


BUFFER = 1 << 20  # bytes a connection's direction holds before it stops reading


class Link:
    """One direction of the link, shared by all connections: when it is free again."""
    def __init__(self):
        self.free = 0.0


async def pipe(reader, writer, delay, rate, link):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()
    held = 0
    room = asyncio.Event()
    room.set()

    async def send():
        nonlocal held
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                try:
                    writer.write_eof()
                except OSError:
                    pass
                return
            writer.write(data)
            await writer.drain()
            held -= len(data)
            if held < BUFFER:
                room.set()

    sender = asyncio.create_task(send())
    try:
        while True:
            await room.wait()
            data = await reader.read(1 << 16)
            now = loop.time()
            if rate:
                link.free = max(link.free, now) + len(data) / rate
                due = link.free + delay
            else:
                due = now + delay
            held += len(data)
            if rate and held >= BUFFER:
                room.clear()
            queue.put_nowait((due, data))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        sender.cancel()
    finally:
        writer.close()


async def serve(target_port, delay, rate):
    up, down = Link(), Link()

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, server_writer, delay, rate, up),
                             pipe(server_reader, client_writer, delay, rate, down),
                             return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    rate = float(sys.argv[3]) * 1e6 / 8 if len(sys.argv) == 4 else 0  # bytes a second
    asyncio.run(serve(int(sys.argv[1]), float(sys.argv[2]) / 1000.0, rate))


if __name__ == "__main__":
    main()
