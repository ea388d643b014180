"""A local stand-in for Slack's Socket Mode WebSocket: says hello, pushes envelopes, collects the app's acks."""

from __future__ import annotations

import json
import queue
import threading

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve


class SocketModeStandIn:
    def __init__(self):
        self.outgoing: queue.Queue = queue.Queue()
        self.acks: list[dict] = []
        self.connected = threading.Event()
        self.server = serve(self._session, "127.0.0.1", 0)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> SocketModeStandIn:
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/link/?ticket=test"

    def push(self, envelope: dict) -> None:
        self.outgoing.put(envelope)

    def _session(self, connection) -> None:
        connection.send(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "connection_info": {"app_id": "A0001"},
                    "debug_info": {"host": "standin"},
                }
            )
        )
        self.connected.set()
        try:
            while True:
                try:
                    connection.send(json.dumps(self.outgoing.get(timeout=0.05)))
                except queue.Empty:
                    pass
                try:
                    message = connection.recv(timeout=0.05)
                except TimeoutError:
                    continue
                self.acks.append(json.loads(message))
        except ConnectionClosed:
            return

    def stop(self) -> None:
        self.server.shutdown()
