"""A local stand-in for the Slack Web API, reached over real HTTP by the real `slack_sdk` client.

It records every call (method, arguments, when) and answers like Slack does, including under faults queued by a
test: HTTP 429 with Retry-After, 5xx, `ok: false` errors, slow answers. Run in a thread of the test process;
`url` is what SLACK_API_URL should be set to.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlparse


@dataclass
class Call:
    method: str
    args: dict
    at: float
    token: str | None


@dataclass
class SlackStandIn:
    users_by_email: dict[str, str] = field(default_factory=dict)
    channel_errors: dict[str, str] = field(default_factory=dict)
    """channel → error code answered (ok: false) for every post to it."""
    timezones: dict[str, str] = field(default_factory=dict)
    """user id → IANA zone, what users.info answers as the user's `tz`."""
    delay_seconds: float = 0.0
    socket_url: str | None = None
    """What apps.connections.open answers (a local WebSocket server for Socket Mode tests)."""
    calls: list[Call] = field(default_factory=list)
    shared_files: list[dict] = field(default_factory=list)
    """Files shared by files.completeUploadExternal: channel, thread_ts, ts of the message holding them, files
    (id, title, name); conversations.replies lists them in their thread, as Slack does."""
    _file_names: dict[str, str] = field(default_factory=dict)
    _faults: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: int = 0

    def start(self) -> SlackStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                self._answer()

            def do_POST(self):
                self._answer()

            def _answer(self):
                parsed = urlparse(self.path)
                method = parsed.path.rsplit("/", 1)[-1]
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if len(raw) < length:
                    # The client died mid-request (a test's kill -9): Slack never sees a cut-off body as a call.
                    self.close_connection = True
                    return
                if parsed.path.startswith("/upload/"):  # a file's bytes, to the URL files.getUploadURLExternal gave
                    with standin._lock:
                        standin.calls.append(Call("file_upload", {"path": parsed.path, "data": raw}, time.time(), None))
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"OK")
                    return
                body = raw.decode()
                args = dict(parse_qsl(parsed.query))
                if body:
                    if "json" in (self.headers.get("Content-Type") or ""):
                        args.update(json.loads(body))
                    else:
                        args.update(dict(parse_qsl(body)))
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ") or None
                if parsed.path.startswith("/commands/"):  # a command's response_url: Slack answers "ok"
                    with standin._lock:
                        standin.calls.append(Call("response_url", {"path": parsed.path, **args}, time.time(), None))
                    status, headers, payload = 200, {}, "ok"
                else:
                    status, headers, payload = standin._respond(method, args, token)
                data = json.dumps(payload).encode() if isinstance(payload, dict) else payload.encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json" if isinstance(payload, dict) else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    def response_url(self, name: str = "abc") -> str:
        """A command's response_url served by this stand-in (Slack's are https://hooks.slack.com/commands/…)."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/commands/T0001/1/{name}"

    def follow_ups(self) -> list[Call]:
        """What was posted to response_urls, in the order received."""
        return [c for c in self.calls if c.method == "response_url"]

    def fail_next(self, method: str, *faults: tuple) -> None:
        """Queue faults for the next calls of `method`: ("429", retry_after), ("500",), ("error", code), ("slow", s),
        ("hold", event): the call is recorded, then answered only once `event` is set."""
        with self._lock:
            self._faults[method].extend(faults)

    def posts(self, channel: str | None = None) -> list[Call]:
        """Successful chat.postMessage calls (optionally to one channel, by name or id), in the order received."""
        return [
            c
            for c in self.calls
            if c.method == "chat.postMessage"
            and c.args.get("ok_answer")
            and (channel is None or c.args.get("answered_channel") == channel_id(channel))
        ]

    def _respond(self, method: str, args: dict, token: str | None) -> tuple[int, dict, dict | str]:
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        with self._lock:
            fault = self._faults[method].popleft() if self._faults[method] else None
            call = Call(method, args, time.time(), token)
            self.calls.append(call)
        if fault:
            kind = fault[0]
            if kind == "429":
                return 429, {"Retry-After": str(fault[1])}, {"ok": False, "error": "ratelimited"}
            if kind == "500":
                return 500, {}, "internal server error"
            if kind == "error":
                return 200, {}, {"ok": False, "error": fault[1]}
            if kind == "slow":
                time.sleep(fault[1])
            if kind == "hold":
                fault[1].wait(30)
        return 200, {}, self._ok(method, args, call)

    def _ok(self, method: str, args: dict, call: Call) -> dict:
        if method == "auth.test":
            return {"ok": True, "user_id": "UBOT", "team_id": "T0001", "bot_id": "B0001", "user": "salesintel"}
        if method == "apps.connections.open":
            return {"ok": True, "url": self.socket_url} if self.socket_url else {"ok": False, "error": "not_allowed"}
        if method == "users.lookupByEmail":
            user = self.users_by_email.get(args.get("email", ""))
            return {"ok": True, "user": {"id": user}} if user else {"ok": False, "error": "users_not_found"}
        if method == "users.info":
            user = args.get("user", "")
            return {
                "ok": True,
                "user": {"id": user, **({"tz": self.timezones[user]} if user in self.timezones else {})},
            }
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + str(args.get("users", "")).lstrip("U")}}
        if method in ("chat.postMessage", "chat.postEphemeral", "chat.update"):
            channel = args.get("channel", "")
            if channel in self.channel_errors:
                return {"ok": False, "error": self.channel_errors[channel]}
            with self._lock:
                self._ts += 1
                ts = f"{1700000000 + self._ts}.000100"
            call.args["ok_answer"] = True
            call.args["answered_ts"] = args.get("ts", ts)
            call.args["answered_channel"] = channel_id(channel)
            return {
                "ok": True,
                "channel": channel_id(channel),
                "ts": args.get("ts", ts),
                "message": {"text": args.get("text")},
            }
        if method in ("conversations.history", "conversations.replies") and args.get("channel", "").startswith("#"):
            return {"ok": False, "error": "channel_not_found"}  # these take a channel's id, never its name
        if method == "conversations.history":
            return {"ok": True, "messages": self.history(args.get("channel", ""), int(args.get("limit", 100)))}
        if method == "files.getUploadURLExternal":
            with self._lock:
                self._ts += 1
                file_id = f"F{self._ts:05d}"
                self._file_names[file_id] = args.get("filename")
            base = self.url.removesuffix("/api/")
            return {"ok": True, "upload_url": f"{base}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = args.get("files")
            files = json.loads(files) if isinstance(files, str) else files
            shared = [
                {"id": f["id"], "title": f.get("title"), "name": self._file_names.get(f["id"])} for f in files or []
            ]
            if str(args.get("channel_id", "")).startswith("#"):
                return {"ok": False, "error": "invalid_channel"}
            if args.get("channel_id"):  # shared: a message holding the files, in the thread when one is given
                with self._lock:
                    self._ts += 1
                    self.shared_files.append(
                        {
                            "channel": args["channel_id"],
                            "thread_ts": args.get("thread_ts"),
                            "ts": f"{1700000000 + self._ts}.000100",
                            "files": shared,
                        }
                    )
            return {"ok": True, "files": [{"id": f["id"], "title": f["title"]} for f in shared]}
        if method == "conversations.replies":
            thread = self.replies(args.get("channel", ""), args.get("ts", ""))
            return {"ok": True, "messages": thread} if thread else {"ok": False, "error": "thread_not_found"}
        return {"ok": True}

    def replies(self, channel: str, ts: str) -> list[dict]:
        """A thread as conversations.replies gives it: the parent first, then its replies, oldest first. `channel`:
        an id, or (for a test's convenience; Slack's API refuses it) a name."""
        channel = channel_id(channel)
        posted = [c for c in self.posts(channel) if c.args.get("answered_ts") == ts or c.args.get("thread_ts") == ts]
        messages = [self._as_message(call) for call in posted]
        if not messages:
            return []
        files = [
            {"type": "message", "ts": f["ts"], "thread_ts": ts, "files": f["files"]}
            for f in self.shared_files
            if f["channel"] == channel and f["thread_ts"] == ts
        ]
        return [messages[0], *sorted(messages[1:] + files, key=lambda m: float(m["ts"]))]

    def _as_message(self, call: Call) -> dict:
        metadata = call.args.get("metadata")
        metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
        message = {"type": "message", "text": call.args.get("text"), "ts": call.args.get("answered_ts")}
        if call.args.get("thread_ts"):
            message["thread_ts"] = call.args["thread_ts"]
        if metadata:
            message["metadata"] = metadata
        return message

    def history(self, channel: str, limit: int = 100) -> list[dict]:
        """The channel's posted messages, newest first, with their metadata (as conversations.history gives them
        with include_all_metadata)."""
        # Thread replies are not in a channel's history (Slack lists them with conversations.replies).
        posted = [c for c in self.posts(channel) if c.method == "chat.postMessage" and not c.args.get("thread_ts")]
        return [self._as_message(call) for call in reversed(posted[-limit:])]


def channel_id(channel: str) -> str:
    """The id Slack answers for a channel posted to by name (`#cro-vp` → `C…`, the same every time); an id as is."""
    return f"C{zlib.crc32(channel.encode()):08X}" if channel.startswith("#") else channel
