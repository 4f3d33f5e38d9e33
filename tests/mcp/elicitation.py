"""Elicitation through the official MCP Python SDK: a client that can ask its user is asked the
choice's question too. Run by tests/components/mcp_http.rs with the base URL and the mode:
"legacy" (2025-11-25, a session: the server sends an elicitation request) or "2026-07-28" (no
session: the call answers input_required, and the SDK retries it with its user's answer).

1. The callback answers "b" with a note: the call returns it, and the choice was decided
   via "mcp-elicitation" (its JSON and its page say so).
2. The callback declines: nothing is decided; the person then answers on the page, and the
   call returns that answer (via "web").
"""

import asyncio
import json
import sys
import urllib.parse
import urllib.request

import mcp_types as types
from mcp import Client

BASE = sys.argv[1]
MODE = sys.argv[2] if len(sys.argv) > 2 else "legacy"
OPTIONS = [{"id": "a", "label": "Apples"}, {"id": "b", "label": "Bananas"}]
asked = []


def get(path):
    with urllib.request.urlopen(BASE + path, timeout=10) as response:
        return response.read().decode()


def submit_on_the_page(choice_id, selection):
    form = urllib.parse.urlencode({"selection": selection}).encode()
    request = urllib.request.Request(BASE + f"/choice/{choice_id}/submit", data=form, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    request.add_header("Accept", "text/html")
    # As a browser without JavaScript posts the page's form: 303 back to the page.
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.url.endswith(f"/choice/{choice_id}"), response.url
    return json.loads(get(f"/api/choices/{choice_id}"))


async def until_asked():
    """Waits (up to 10 s) until the client's callback has been asked."""
    for _ in range(200):
        if asked:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the client was never asked")


async def answer_b(context, params):
    asked.append(params)
    schema = params.requested_schema
    assert "selection" in schema["properties"] and "selection" in schema.get("required", []), schema
    values = [choice["const"] for choice in schema["properties"]["selection"]["oneOf"]]
    assert values == ["a", "b"], schema
    return types.ElicitResult(action="accept", content={"selection": "b", "note": "from the client"})


async def decline(context, params):
    asked.append(params)
    return types.ElicitResult(action="decline")


async def main():
    async with Client(BASE + "/mcp", mode=MODE, elicitation_callback=answer_b) as client:
        result = await client.call_tool("provide_choice", {"title": "Fruit, asked in the client", "options": OPTIONS, "timeout_seconds": 60})
        content = result.structured_content
        assert len(asked) == 1 and "Fruit, asked in the client" in asked[0].message, asked
        assert content["action_status"] == "selected" and content["selected_indices"] == ["b"], content
        assert content["additional_annotation"] == "from the client", content
        choice = json.loads(get(f"/api/choices/{content['choice_id']}"))
        assert choice["result"]["via"] == "mcp-elicitation", choice["result"]
        page = get(f"/choice/{content['choice_id']}")
        assert "Answered in the asking agent&#39;s client" in page or "Answered in the asking agent's client" in page, page
        print("answered in the client: via", choice["result"]["via"])

    asked.clear()
    async with Client(BASE + "/mcp", mode=MODE, elicitation_callback=decline) as client:
        call = asyncio.ensure_future(client.call_tool("provide_choice", {"title": "Fruit, declined in the client", "options": OPTIONS, "timeout_seconds": 60}))
        await until_asked()
        await asyncio.sleep(0.3)
        active = json.loads(get("/api/choices"))["choices"]
        choice = next(c for c in active if c["title"] == "Fruit, declined in the client")
        assert choice["status"] == "pending", "a decline decides nothing"
        submitted = submit_on_the_page(choice["id"], "a")
        assert submitted["status"] == "submitted", submitted
        content = (await call).structured_content
        assert content["action_status"] == "selected" and content["selected_indices"] == ["a"], content
        assert json.loads(get(f"/api/choices/{choice['id']}"))["result"]["via"] == "web"
        print("declined in the client, answered on the page")


async def withdrawn():
    """3. The person answers on the page while the client's question is still open: the
    question is withdrawn (the SDK cancels the callback). Sessions only: a 2026-07-28 input
    request has nothing to withdraw."""
    withdrawn = asyncio.Event()

    async def wait_forever(context, params):
        asked.append(params)
        try:
            await asyncio.sleep(3600)
        except BaseException:
            withdrawn.set()
            raise
        return types.ElicitResult(action="cancel")

    asked.clear()
    async with Client(BASE + "/mcp", mode=MODE, elicitation_callback=wait_forever) as client:
        call = asyncio.ensure_future(client.call_tool("provide_choice", {"title": "Fruit, answered while asked", "options": OPTIONS, "timeout_seconds": 60}))
        await until_asked()
        active = json.loads(get("/api/choices"))["choices"]
        choice = next(c for c in active if c["title"] == "Fruit, answered while asked")
        submit_on_the_page(choice["id"], "b")
        content = (await call).structured_content
        assert content["selected_indices"] == ["b"], content
        await asyncio.wait_for(withdrawn.wait(), 5)
        print("answered on the page: the question in the client was withdrawn")


asyncio.run(main())
if MODE == "legacy":
    asyncio.run(withdrawn())
