"""Resources: the model list, statuses (JSON) and the live statechart."""

from __future__ import annotations

import json

import pytest
from mcp import Client, MCPError
from mcp.types import TextResourceContents

from tests.mcp_frontend.mcp_support import Fake


async def read(client: Client, uri: str) -> str:
    result = await client.read_resource(uri)
    [content] = result.contents
    assert isinstance(content, TextResourceContents)
    return content.text


async def test_the_resources_are_listed(fake: Fake) -> None:
    listed = {str(r.uri): r.mime_type for r in (await fake.client.list_resources()).resources}
    templates = [
        t.uri_template for t in (await fake.client.list_resource_templates()).resource_templates
    ]

    assert listed == {
        "lmsorch://models": "application/json",
        "lmsorch://status": "application/json",
        "lmsorch://statechart": "text/vnd.mermaid",
    }
    assert templates == ["lmsorch://status/{+model}"]


async def test_models_and_status_are_json(fake: Fake) -> None:
    await fake.orch.ensure_loaded("model-a")

    models = json.loads(await read(fake.client, "lmsorch://models"))
    status = json.loads(await read(fake.client, "lmsorch://status"))
    one = json.loads(await read(fake.client, "lmsorch://status/model-a"))
    fresh = json.loads(await read(fake.client, "lmsorch://status/model-b"))

    assert [(m["key"], m["state"]) for m in models["models"]] == [
        ("model-a", "READY"),
        ("model-b", None),
    ]
    assert [(s["model"], s["state"]) for s in status] == [("model-a", "READY")]
    assert one["state"] == "READY"
    assert fresh["state"] == "UNLOADED"


async def test_an_unknown_model_status_is_not_found(fake: Fake) -> None:
    with pytest.raises(MCPError) as caught:
        await read(fake.client, "lmsorch://status/nope")

    assert "unknown model 'nope'" in str(caught.value)


async def test_the_statechart_marks_each_model_in_its_state(fake: Fake) -> None:
    await fake.orch.ensure_loaded("model-a")

    chart = await read(fake.client, "lmsorch://statechart")

    assert chart.startswith("stateDiagram-v2")
    assert "UNLOADED --> LOADING: REQUESTED" in chart
    assert "class READY active" in chart
    assert "note right of READY: model-a" in chart
