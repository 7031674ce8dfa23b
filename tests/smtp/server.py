"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1:PORT, which stores each message it
accepts as NUMBER.json in FOLDER (written whole, then renamed into place), decoded: envelope,
headers, the text and HTML parts, and the user that authenticated. Prints `ready` once listening.
With --auth USER:PASSWORD, it takes mail only after AUTH with them (over plain TCP: tests only)."""

import argparse
import asyncio
import email
import email.policy
import itertools
import json
import os

from aiosmtpd.smtp import SMTP, AuthResult


class Store:
    def __init__(self, folder):
        self.folder = folder
        self.numbers = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        parts = {}
        for part in message.walk():
            if part.get_content_type() in ("text/plain", "text/html") and not part.is_multipart():
                parts[part.get_content_type()] = part.get_content()
        login = session.auth_data.login.decode() if session.authenticated else None
        stored = {
            "mail_from": envelope.mail_from,
            "rcpt_to": envelope.rcpt_tos,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "message_id": str(message["Message-ID"]),
            "content_type": message.get_content_type(),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
            "auth_user": login,
        }
        number = next(self.numbers)
        path = os.path.join(self.folder, f"{number:06}.json")
        with open(path + ".partial", "w") as file:
            json.dump(stored, file)
        os.rename(path + ".partial", path)
        return "250 OK"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login.decode() == user and auth_data.password.decode() == password
        return AuthResult(success=ok, auth_data=auth_data)

    return check


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--auth")
    args = parser.parse_args()
    store = Store(args.dir)
    options = {}
    if args.auth:
        user, password = args.auth.split(":", 1)
        options = dict(
            authenticator=authenticator(user, password),
            auth_required=True,
            auth_require_tls=False,
        )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(store, hostname="smtp.test", **options), "127.0.0.1", args.port
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
