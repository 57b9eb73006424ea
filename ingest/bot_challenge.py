"""The bot challenge over HTTP: public, no credentials.

GET  /api/validate    -> 200 an ALTCHA challenge: {algorithm, challenge, maxnumber, salt,
                         signature} (the ALTCHA widget's `challengeurl`)
POST /api/validate    JSON {"altcha": "<the widget's base64 payload>"}, or the payload's
                      JSON object itself {algorithm, challenge, number, salt, signature}
                      -> 200 {"verified": true}, once per challenge; otherwise 400 with
                      the code saying why (ingest/bot_challenge_commands.py)
"""

from __future__ import annotations

import falcon.asgi

from ingest import bot_challenge_commands as commands
from state.command_context import CommandContext
from web.body import read_json_object, send_json

MAX_BODY_BYTES = 8 * 1024


class BotChallenge:
    def __init__(self, ctx: CommandContext, key: bytes) -> None:
        self._ctx = ctx
        self._key = key

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        settings = self._ctx.settings
        challenge = commands.issue(
            self._key, settings.challenge_max_number, settings.challenge_ttl_s
        )
        resp.set_header("Cache-Control", "no-store")  # each visitor gets a challenge of their own
        send_json(resp, 200, challenge)

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json_object(req, MAX_BODY_BYTES)
        solution = commands.parse(body.get("altcha", body))
        await commands.redeem(self._ctx, self._key, solution)
        resp.set_header("Cache-Control", "no-store")
        send_json(resp, 200, {"verified": True})
