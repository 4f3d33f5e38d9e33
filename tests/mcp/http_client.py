"""The official MCP Python SDK (`mcp` on PyPI) against choiceboard's `/mcp`.

Run by tests/components/mcp_http.rs with the server's base URL, the protocol mode to connect
with ("legacy": 2025-11-25 with initialize; "2026-07-28": without it), and the token if the
server has one. Every check is an assert: a failure exits non-zero with the reason.
"""

import asyncio
import json
import sys
import urllib.request

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

BASE, MODE = sys.argv[1], sys.argv[2]
TOKEN = sys.argv[3] if len(sys.argv) > 3 else None
HEADERS = {"Authorization": f"Bearer {TOKEN}"} if TOKEN else {}


def api(method, path, body=None):
    request = urllib.request.Request(
        BASE + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **HEADERS},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def connect():
    transport = streamable_http_client(BASE + "/mcp", http_client=httpx2.AsyncClient(headers=HEADERS, timeout=120))
    return Client(transport, mode=MODE, cache=None)


async def answer_in_reverse(titles, selections):
    """Waits until every asked choice is on the server, then answers them last one first."""
    for _ in range(200):
        active = {c["title"]: c for c in api("GET", "/api/choices")["choices"]}
        if all(t in active for t in titles):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"the choices never appeared: {titles}")
    for title in reversed(titles):
        choice = active[title]
        api("POST", f"/choice/{choice['id']}/submit", {"selection": [selections[title]]})
        await asyncio.sleep(0.1)


async def main():
    async with connect() as client:
        expected = "2025-11-25" if MODE == "legacy" else MODE
        assert client.protocol_version == expected, (client.protocol_version, expected)
        print("connected, protocol", client.protocol_version)

        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {"provide_choice", "poll_selection"}, tools
        provide = tools["provide_choice"].input_schema
        assert {"title", "options"} <= set(provide["properties"]), provide
        assert "title" in provide.get("required", []), provide
        assert "choice_id" in tools["poll_selection"].input_schema["properties"]
        print("tools:", sorted(tools))

        titles = [f"{MODE} question {i}" for i in range(3)]
        selections = {t: ("a", "b", "c")[i] for i, t in enumerate(titles)}
        calls = [
            client.call_tool(
                "provide_choice",
                {"title": t, "options": [{"id": "a"}, {"id": "b"}, {"id": "c"}], "timeout_seconds": 60},
            )
            for t in titles
        ]
        *results, _ = await asyncio.gather(*calls, answer_in_reverse(titles, selections))
        for title, result in zip(titles, results):
            content = result.structured_content
            assert not result.is_error, result
            assert content["action_status"] == "selected", content
            assert content["selected_indices"] == [selections[title]], (title, content)
            choice = api("GET", f"/api/choices/{content['choice_id']}")
            assert choice["title"] == title and choice["status"] == "submitted", choice
        print("three parallel calls answered in reverse order:", [r.structured_content["selected_indices"] for r in results])

        pending = await client.call_tool("poll_selection", {"choice_id": results[0].structured_content["choice_id"], "wait_seconds": 0})
        assert pending.structured_content["action_status"] == "selected", pending
        try:
            await client.call_tool("provide_choice", {"title": "no options", "options": []})
            raise AssertionError("a provide_choice without options was accepted")
        except MCPError as refused:
            assert refused.error.data == {"field": "options"}, refused.error
        print("poll_selection and a refused argument behave")


asyncio.run(main())
