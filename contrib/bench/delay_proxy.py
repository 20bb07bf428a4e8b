#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A TCP proxy on 127.0.0.1 that delays every chunk by a fixed one-way time, for a bench of
a far server on one machine (`run.py bench --delay-ms N`: a round trip of N ms between the
tools and Dovecot's plain-TCP port; no netem needed, nor root).

    delay_proxy.py TARGET_PORT ONE_WAY_MS     # prints the port it listens on, then serves

The delay is a pure latency: chunks go out in order, each ONE_WAY_MS after it arrived, with
no bandwidth limit beyond the proxy's own (a few hundred MB/s). The tools' kernel sees a
loopback round trip: a tool that decides by the measured round trip sees a near server.
"""
import asyncio
import sys


async def pipe(reader, writer, delay):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def send():
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

    sender = asyncio.create_task(send())
    try:
        while True:
            data = await reader.read(1 << 16)
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        sender.cancel()
    finally:
        writer.close()


async def serve(target_port, delay):
    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, server_writer, delay),
                             pipe(server_reader, client_writer, delay),
                             return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    asyncio.run(serve(int(sys.argv[1]), float(sys.argv[2]) / 1000.0))


if __name__ == "__main__":
    main()
