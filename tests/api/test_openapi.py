"""openapi.yaml against the app: the same routes, a sound document, and real answers that match.

- every (method, path) of the app is in the spec and the other way round;
- the document is structurally sound ($refs resolve, path parameters declared, operationIds...);
- a flow over HTTP (both database engines) checks each answer against the schema the spec gives
  for that operation and status, each accepted request body against the request schema, and
  each role's access against the operation's `x-roles`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from starlette.routing import Route

from dkim_support import ed25519_pem
from openapi_profiles import check_profile_operations
from txmsg.app import Role, create_app
from txmsg.config import Settings
from txmsg.testing import FakeSMTPServer, FakeTwilio

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
ERROR_STATUSES = {"400", "401", "403", "404", "409", "412", "413", "422"}
UNKNOWN_PKEY = "0" * 26
# Headers of HTTP itself (uvicorn, Starlette's FileResponse); any other must be in the spec.
TRANSPORT_HEADERS = {
    "content-type",
    "content-length",
    "date",
    "server",
    "connection",
    "transfer-encoding",
    "keep-alive",
    "etag",
    "last-modified",
    "accept-ranges",
    "content-disposition",
    "vary",
}


class _UniqueKeys(yaml.SafeLoader):
    """A YAML loader refusing a key given twice in one mapping (invalid YAML: lenient loaders
    keep the last one silently, strict ones refuse the file)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        twice = sorted({str(k) for k in keys if keys.count(k) > 1})
        if twice:
            raise yaml.constructor.ConstructorError(
                None, None, f"keys given twice: {twice}", node.start_mark
            )
        return super().construct_mapping(node, deep=deep)


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded = yaml.load(SPEC_PATH.read_text("utf-8"), Loader=_UniqueKeys)  # a SafeLoader
    assert isinstance(loaded, dict)
    return loaded


# --- reading the spec -------------------------------------------------------------------------


def resolve_pointer(spec: dict[str, Any], ref: str) -> Any:
    """The value a local `$ref` ("#/a/b") points at; KeyError/IndexError when it points nowhere."""
    assert ref.startswith("#/"), f"only local $refs are used here, not {ref!r}"
    node: Any = spec
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def deref(spec: dict[str, Any], node: Any) -> Any:
    """Follow `$ref`s (of parameters, responses, headers) to the object itself."""
    seen: set[str] = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref not in seen, f"$ref cycle through {ref}"
        seen.add(ref)
        node = resolve_pointer(spec, ref)
    return node


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(METHOD, path, path item, operation) for every operation of the spec."""
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield method.upper(), path, item, item[method]


def walk_refs(node: Any, where: str = "#") -> Iterator[tuple[str, str]]:
    """(location, $ref) for every `$ref` in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield where, value
            else:
                yield from walk_refs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk_refs(value, f"{where}/{i}")


def path_template_regex(path: str) -> re.Pattern[str]:
    return re.compile(
        "".join(
            "[^/]+" if part.startswith("{") else re.escape(part)
            for part in re.split(r"(\{[^}]+\})", path)
        )
    )


def _is_date_time(value: object) -> bool:
    """RFC 3339 date-time with its zone (JSON Schema's `date-time`), without extra packages."""
    if not isinstance(value, str):
        return True
    if len(value) < 20 or value[10] not in "Tt":
        return False
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return False
    return parsed.tzinfo is not None


FORMATS = FormatChecker()
FORMATS.checks("date-time")(_is_date_time)


def schema_errors(spec: dict[str, Any], schema: dict[str, Any], value: Any) -> list[str]:
    """Validation errors of `value` against a schema of the spec (its $refs resolve in it)."""
    root = {"allOf": [schema], "components": spec["components"]}
    validator = Draft202012Validator(root, format_checker=FORMATS)
    return [
        f"at /{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    ]


# --- 1. routes ----------------------------------------------------------------------------------


def test_every_route_is_in_the_spec_and_back(spec: dict[str, Any], tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/t.db")
    app = create_app(settings, role=Role.API)
    implemented: set[tuple[str, str]] = set()
    for route in app.routes:
        assert isinstance(route, Route), f"not a plain Route, compare it by hand: {route!r}"
        assert route.methods, f"{route.path} has no methods"
        implemented |= {(m, route.path) for m in route.methods if m != "HEAD"}
    documented = {(method, path) for method, path, _, _ in operations(spec)}

    undocumented = sorted(implemented - documented)
    not_implemented = sorted(documented - implemented)
    assert not undocumented and not not_implemented, (
        "openapi.yaml and the app's routes differ:\n"
        f"  routes missing from openapi.yaml: {undocumented}\n"
        f"  operations in openapi.yaml the app does not serve: {not_implemented}"
    )


# --- 2. the document itself ---------------------------------------------------------------------


def test_spec_is_structurally_sound(spec: dict[str, Any]) -> None:
    assert spec["openapi"] == "3.1.0"
    assert spec["info"]["title"] == "txmsg"
    assert spec["info"]["version"] == "0.1.0"
    assert spec["info"].get("description")

    dangling = []
    for where, ref in walk_refs(spec):
        try:
            resolve_pointer(spec, ref)
        except (KeyError, IndexError, ValueError, TypeError):
            dangling.append(f"{where}: {ref}")
    assert not dangling, "$refs that resolve to nothing:\n  " + "\n  ".join(dangling)

    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    problems: list[str] = []
    ids: dict[str, str] = {}
    for method, path, item, op in operations(spec):
        name = f"{method} {path}"
        op_id = op.get("operationId")
        if not op_id:
            problems.append(f"{name}: no operationId")
        elif op_id in ids:
            problems.append(f"{name}: operationId {op_id} also used by {ids[op_id]}")
        else:
            ids[op_id] = name
        summary = op.get("summary", "")
        if not summary or "\n" in summary.strip():
            problems.append(f"{name}: needs a one-line summary")
        if not op.get("responses"):
            problems.append(f"{name}: no responses")
        for status in op.get("responses", {}):
            if not re.fullmatch(r"[1-5]\d\d|default", str(status)):
                problems.append(f"{name}: response key {status!r} is not a status code")

        # security: every requirement names a scheme; secured operations name their roles
        security = op.get("security", spec.get("security", []))
        for requirement in security:
            problems += [f"{name}: unknown scheme {s}" for s in requirement if s not in schemes]
        if security:
            roles = op.get("x-roles", [])
            if "admin" not in roles:
                problems.append(f"{name}: x-roles must list admin (admin may do everything)")
            description = op.get("description", "")
            problems += [
                f"{name}: the description does not name role {role}"
                for role in roles
                if role != "admin" and role not in description
            ]
            if "Role:" not in description:
                problems.append(f"{name}: the description does not say which role it needs")
            for status in ("401", "403"):
                if status not in op["responses"]:
                    problems.append(f"{name}: secured but {status} is not documented")

        # every parameter of the path template is declared (path level or operation level)
        params = [deref(spec, p) for p in (*item.get("parameters", []), *op.get("parameters", []))]
        declared = {p["name"] for p in params if p["in"] == "path"}
        in_template = set(re.findall(r"\{([^}]+)\}", path))
        if declared != in_template:
            problems.append(
                f"{name}: path parameters {sorted(in_template)} but declared {sorted(declared)}"
            )
        problems += [
            f"{name}: path parameter {p['name']} must be required"
            for p in params
            if p["in"] == "path" and p.get("required") is not True
        ]

        # responses: errors are problem+json, bodies have schemas
        for status, raw in op.get("responses", {}).items():
            response = deref(spec, raw)
            if not response.get("description"):
                problems.append(f"{name} {status}: no description")
            for media, content in response.get("content", {}).items():
                if "schema" not in content:
                    problems.append(f"{name} {status}: {media} has no schema")
            if str(status) in ERROR_STATUSES and set(response.get("content", {})) != {
                "application/problem+json"
            }:
                problems.append(f"{name} {status}: errors must be application/problem+json")
    assert not problems, "openapi.yaml problems:\n  " + "\n  ".join(problems)


def test_component_schemas_are_valid_json_schemas(spec: dict[str, Any]) -> None:
    for name, schema in spec["components"]["schemas"].items():
        try:
            Draft202012Validator.check_schema(schema)
        except Exception as exc:  # noqa: BLE001 - name the schema that failed
            pytest.fail(f"components/schemas/{name} is not a valid JSON Schema: {exc}")


def _properties_named(node: Any, name: str, spec: dict[str, Any], seen: set[str]) -> bool:
    """Whether a schema (following $refs) has a property called `name` anywhere."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in seen:
                return False
            seen.add(ref)
            return _properties_named(resolve_pointer(spec, ref), name, spec, seen)
        if name in node.get("properties", {}):
            return True
        return any(_properties_named(v, name, spec, seen) for v in node.values())
    if isinstance(node, list):
        return any(_properties_named(v, name, spec, seen) for v in node)
    return False


def test_secrets_are_write_only(spec: dict[str, Any]) -> None:
    smtp_input = spec["components"]["schemas"]["SmtpSettingsInput"]
    assert smtp_input["properties"]["password"].get("writeOnly") is True
    twilio_input = spec["components"]["schemas"]["TwilioSettingsInput"]
    assert twilio_input["properties"]["auth_token"].get("writeOnly") is True
    leaking = [
        f"{method} {path} {status}"
        for method, path, _, op in operations(spec)
        for status, response in op["responses"].items()
        for secret in ("password", "auth_token")
        if _properties_named(deref(spec, response), secret, spec, set())
    ]
    assert not leaking, f"answers documented with a password property: {leaking}"


def test_spec_passes_openapi_spec_validator(spec: dict[str, Any]) -> None:
    from openapi_spec_validator import validate  # type: ignore[import-not-found]

    validate(spec)


# --- 3. real answers ----------------------------------------------------------------------------


class SpecChecker:
    """Checks answers (and accepted request bodies) against the spec; remembers what it saw."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.seen: set[tuple[str, str, str]] = set()

    def check(self, response: httpx.Response, path: str, status: int | None = None) -> Any:
        """The answer's body (JSON parsed) once it matched the spec for `path` and its method."""
        method = response.request.method
        name = f"{method} {path} -> {response.status_code}"
        if status is not None:
            assert response.status_code == status, f"{name}, expected {status}: {response.text}"
        assert path_template_regex(path).fullmatch(response.request.url.path), (
            f"{response.request.url.path} is not an instance of {path}"
        )
        op = self.spec["paths"].get(path, {}).get(method.lower())
        assert op is not None, f"{method} {path} is not in openapi.yaml"
        code = str(response.status_code)
        assert code in op["responses"], (
            f"{name}: this status is not documented for the operation: {response.text}"
        )
        self.seen.add((method, path, code))
        documented = deref(self.spec, op["responses"][code])

        if response.is_success and "requestBody" in op and response.request.content:
            # Form and JSON bodies are checked against their schema; streamed imports
            # (NDJSON, CSV) are checked row by row by their own tests.
            sent_type = response.request.headers.get("content-type", "").split(";")[0]
            sent: Any = None
            if sent_type == "application/x-www-form-urlencoded":
                sent = dict(parse_qsl(response.request.content.decode()))
            elif sent_type == "application/json":
                sent = json.loads(response.request.content)
            if sent is not None:
                media = op["requestBody"]["content"][sent_type]
                errors = schema_errors(self.spec, media["schema"], sent)
                assert not errors, (
                    f"{name}: the server accepted a request body the spec rejects:\n  "
                    + "\n  ".join(errors)
                    + f"\nbody: {sent}"
                )

        documented_headers = {h.lower() for h in documented.get("headers", {})}
        undocumented = {
            h for h in response.headers if h not in TRANSPORT_HEADERS | documented_headers
        }
        assert not undocumented, f"{name}: headers the spec does not document: {undocumented}"
        for header, raw in documented.get("headers", {}).items():
            spec_header = deref(self.spec, raw)
            value = response.headers.get(header)
            if value is None:
                assert not spec_header.get("required"), f"{name}: header {header} is missing"
                continue
            errors = schema_errors(self.spec, spec_header["schema"], value)
            assert not errors, f"{name}: header {header}: {value!r}: {errors}"

        content = documented.get("content")
        if not content:
            assert response.content == b"", f"{name}: a body where the spec documents none"
            return None
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        assert media_type in content, (
            f"{name}: answered {media_type!r}, the spec documents {sorted(content)}"
        )
        if not media_type.endswith("json"):
            return response.text
        body = response.json()
        errors = schema_errors(self.spec, content[media_type]["schema"], body)
        assert not errors, (
            f"{name}: the answer does not match openapi.yaml:\n  "
            + "\n  ".join(errors)
            + f"\nbody: {json.dumps(body, indent=1)}"
        )
        if media_type == "application/problem+json":
            assert body["status"] == response.status_code, f"{name}: problem status differs"
        return body

    def operations_not_seen(self) -> list[str]:
        seen = {(method, path) for method, path, _ in self.seen}
        return sorted(f"{m} {p}" for m, p, _, _ in operations(self.spec) if (m, p) not in seen)


async def poll_status(
    chk: SpecChecker, client: httpx.AsyncClient, href: str, wanted: set[str]
) -> dict[str, Any]:
    last: dict[str, Any] = {}
    for _ in range(300):
        last = chk.check(await client.get(href), "/rest/mc/{eventId}/{PKey}", 200)
        if last["status"] in wanted:
            return last
        await asyncio.sleep(0.03)
    raise AssertionError(f"status never became {wanted}; last seen: {last}")


# A 2 s lease lapsed mid-send at load 15 and the SMS was (by design) sent again.
@pytest.mark.server_settings(lease=timedelta(seconds=30))
async def test_answers_match_the_spec(
    server: Any,
    smtp: FakeSMTPServer,
    fake_twilio: FakeTwilio,
    spec: dict[str, Any],
    tmp_path: Path,
) -> None:
    chk = SpecChecker(spec)
    c = chk.check
    admin = server.admin
    anon = server.client()

    # service
    assert c(await anon.get("/health"), "/health", 200) == {"status": "ok"}
    ready = c(await anon.get("/ready"), "/ready", 200)
    assert ready == {
        "status": "ready",
        "checks": {"database": "ok", "schema": "ok", "dispatcher": "ok"},
    }
    c(await anon.get("/metrics"), "/metrics", 401)
    metrics = c(await admin.get("/metrics"), "/metrics", 200)
    assert 'txmsg_queue_depth{lane="transactional",status="pending"}' in metrics
    served = c(await anon.get("/openapi.yaml"), "/openapi.yaml", 200)
    assert yaml.safe_load(served) == spec

    # keys
    keys = "/api/v1/keys"
    marketer_key = c(await admin.post(keys, json={"role": "marketer", "label": "M"}), keys, 201)
    trigger_key = c(await admin.post(keys, json={"role": "trigger", "label": "Web"}), keys, 201)
    spare = c(await admin.post(keys, json={"role": "trigger", "label": "Spare"}), keys, 201)
    listed = c(await admin.get(keys), keys, 200)
    assert {marketer_key["id"], trigger_key["id"], spare["id"]} <= {
        k["id"] for k in listed["items"]
    }
    c(await admin.post(keys, json={"role": "root", "label": "x"}), keys, 400)
    c(
        await admin.post(keys, content=b"{not json", headers={"content-type": "application/json"}),
        keys,
        400,
    )
    limited = {"rate_limit": {"per_second": 50, "burst": 100}}
    c(await admin.patch(f"{keys}/{spare['id']}", json=limited), "/api/v1/keys/{id}", 200)
    c(await admin.patch(f"{keys}/{spare['id']}", json={"rate_limit": 5}), "/api/v1/keys/{id}", 400)
    rotate = "/api/v1/keys/{id}/rotate"
    spare = c(
        await admin.post(f"{keys}/{spare['id']}/rotate", json={"grace_seconds": 0}), rotate, 200
    )
    c(await admin.post(f"{keys}/{spare['id']}/rotate", json={"grace_seconds": -1}), rotate, 400)
    c(await admin.post(f"{keys}/0123456789abcdef/rotate"), rotate, 404)
    c(await admin.delete(f"{keys}/{spare['id']}"), "/api/v1/keys/{id}", 204)
    c(await admin.delete(f"{keys}/{spare['id']}"), "/api/v1/keys/{id}", 404)
    revoked = c(
        await server.client(spare["key"]).get("/rest/mc/EVTx/" + UNKNOWN_PKEY),
        "/rest/mc/{eventId}/{PKey}",
        401,
    )
    assert "revoked" in revoked["detail"]
    marketer = server.client(marketer_key["key"])
    website = server.client(trigger_key["key"])
    c(await marketer.get(keys), keys, 403)

    # channel configurations
    channels = "/api/v1/channel-configs"
    channel = "/api/v1/channel-configs/{name}"
    mail = {
        "name": "mail",
        "channel": "email",
        "from_email": "shop@example.com",
        "from_name": "Example Shop",
        "reply_to": "help@example.com",
        "smtp": {"host": smtp.host, "port": smtp.port, "tls": "none", "timeout": 5},
    }
    created = c(await admin.post(channels, json=mail), channels, 201)
    assert created["smtp"]["password_set"] is False
    c(await admin.post(channels, json=mail), channels, 409)
    secure = {
        "name": "secure",
        "channel": "email",
        "from_email": "noreply@example.com",
        "smtp": {"host": "smtp.example.com", "tls": "starttls", "username": "u", "password": "pw"},
        "message_export": True,
        "bounce_domain": "bounces.example.com",
    }
    created = c(await admin.post(channels, json=secure), channels, 201)
    assert created["bounce_domain"] == "bounces.example.com"
    bad_domain = {**secure, "name": "bad", "bounce_domain": "not a domain"}
    c(await admin.post(channels, json=bad_domain), channels, 400)
    assert created["smtp"]["password_set"] is True
    assert created["smtp"]["port"] == 587
    assert "pw" not in json.dumps(created)
    c(await admin.post(channels, json={**secure, "name": "bad", "smtp": {}}), channels, 400)
    assert len(c(await admin.get(channels), channels, 200)["items"]) == 2
    c(await admin.get(f"{channels}/secure"), channel, 200)
    c(await admin.get(f"{channels}/nope"), channel, 404)
    updated = c(
        await admin.patch(
            f"{channels}/secure", json={"from_name": "Secure", "smtp": {"password": None}}
        ),
        channel,
        200,
    )
    assert updated["from_name"] == "Secure" and updated["smtp"]["password_set"] is False
    c(await admin.patch(f"{channels}/secure", json={"name": "renamed"}), channel, 400)
    c(await admin.patch(f"{channels}/nope", json={}), channel, 404)
    dns = "/api/v1/channel-configs/{name}/dns"
    relay = {"host": "relay2.example.com", "port": 2525, "password": "pw2"}
    backed = c(
        await admin.patch(f"{channels}/secure", json={"fallbacks": [relay], "breaker": None}),
        channel,
        200,
    )
    assert backed["fallbacks"][0]["password_set"] is True and "pw2" not in json.dumps(backed)
    c(await admin.patch(f"{channels}/secure", json={"fallbacks": [{}]}), channel, 400)
    signing = {"domain": "example.com", "selector": "s1", "private_key": ed25519_pem()}
    signed = c(await admin.patch(f"{channels}/secure", json={"dkim": signing}), channel, 200)
    assert signed["dkim"]["private_key_set"] is True
    records = c(await admin.get(f"{channels}/secure/dns"), dns, 200)
    assert records["dkim"]["name"] == "s1._domainkey.example.com"
    assert c(await admin.get(f"{channels}/mail/dns"), dns, 200)["dkim"] is None
    c(await admin.get(f"{channels}/nope/dns"), dns, 404)

    # shipped templates
    templates = "/api/v1/templates"
    listed = c(await marketer.get(templates), templates, 200)
    assert "default" in {t["name"] for t in listed["items"]}
    c(await marketer.get(f"{templates}/cart_abandonment"), "/api/v1/templates/{name}", 200)
    c(await marketer.get(f"{templates}/nope"), "/api/v1/templates/{name}", 404)

    # event configurations
    events = "/api/v1/event-configs"
    event = "/api/v1/event-configs/{eventId}"
    cart = {
        "eventId": "cartAbandonment",
        "label": "Cart abandonment",
        "channel": "email",
        "channel_config": "mail",
        "target": "event",
        "fields": [
            {"name": "firstName", "type": "string", "required": True},
            {"name": "amount", "type": "number"},
        ],
    }
    created = c(await admin.post(events, json=cart), events, 201)
    assert created["eventId"] == "EVTcartAbandonment" and created["state"] == "draft"
    eid = created["eventId"]
    c(await admin.post(events, json=cart), events, 409)
    bad = c(await admin.post(events, json={**cart, "eventId": "1bad"}), events, 400)
    assert bad["errors"][0]["field"] == "eventId"
    c(await admin.post(events, json={**cart, "template": "nope"}), events, 400)
    c(await marketer.post(events, json=cart), events, 403)
    assert [e["eventId"] for e in c(await marketer.get(events), events, 200)["items"]] == [eid]
    c(await marketer.get(f"{events}/{eid}"), event, 200)
    c(await marketer.get(f"{events}/EVTnope"), event, 404)
    c(await admin.patch(f"{events}/{eid}", json={"label": "Cart"}), event, 200)
    c(await admin.patch(f"{events}/{eid}", json={"channel": "sms"}), event, 409)
    c(await admin.patch(f"{events}/{eid}", json={"channel": "fax"}), event, 400)
    c(await admin.patch(f"{events}/EVTnope", json={}), event, 404)
    draft_only = c(
        await admin.post(
            events, json={"eventId": "scratch", "channel": "email", "channel_config": "secure"}
        ),
        events,
        201,
    )
    c(await admin.delete(f"{events}/{draft_only['eventId']}"), event, 204)
    c(await admin.delete(f"{events}/{draft_only['eventId']}"), event, 404)
    in_use = c(await admin.delete(f"{channels}/mail"), channel, 409)
    assert in_use["used_by"] == {"event_configs": [eid], "total": 1}
    c(await admin.post(channels, json={**mail, "name": "gone"}), channels, 201)
    c(await admin.delete(f"{channels}/gone"), channel, 204)
    c(await admin.delete(f"{channels}/gone"), channel, 404)

    # lifecycle (1): publish
    lifecycle = "/api/v1/event-configs/{eventId}/"
    message = "/api/v1/messages/{eventId}"
    c(await marketer.get(f"/api/v1/messages/{eid}"), message, 404)
    c(await admin.post(f"{events}/{eid}/pause"), lifecycle + "pause", 409)
    published = c(await admin.post(f"{events}/{eid}/publish"), lifecycle + "publish", 200)
    assert published["state"] == "published"
    assert published["api_preview"]["url"].endswith(f"/rest/mc/{eid}")
    c(await admin.post(f"{events}/{eid}/publish"), lifecycle + "publish", 409)
    c(await admin.patch(f"{events}/{eid}", json={"fields": []}), event, 409)
    c(await admin.delete(f"{events}/{eid}"), event, 409)

    # the transactional message
    got = c(await marketer.get(f"/api/v1/messages/{eid}"), message, 200)
    assert got["published"] is None and got["versions"] == []
    draft = {
        "subject": "Hello {{ ctx.firstName }}",
        "html": "<p>Hi {{ ctx.firstName }}, ref {{ event.PKey }}</p>",
        "text": "Hi {{ ctx.firstName }}, ref {{ event.PKey }}",
        "sample_ctx": {"firstName": "Sam"},
    }
    put = c(
        await marketer.put(f"/api/v1/messages/{eid}/draft", json=draft), message + "/draft", 200
    )
    assert put["sample_ctx"] == {"firstName": "Sam"}
    # Concurrent editing: a save from the tag read passes, one from a tag since gone is a 412.
    tag = (await marketer.get(f"/api/v1/messages/{eid}")).headers["ETag"]
    matched = await marketer.put(
        f"/api/v1/messages/{eid}/draft", json=draft, headers={"If-Match": tag}
    )
    c(matched, message + "/draft", 200)
    stale = await marketer.put(
        f"/api/v1/messages/{eid}/draft", json=draft, headers={"If-Match": '"gone"'}
    )
    c(stale, message + "/draft", 412)
    broken = c(
        await marketer.put(
            f"/api/v1/messages/{eid}/draft", json={**draft, "html": "<p>{{ ctx.firstName </p>"}
        ),
        message + "/draft",
        422,
    )
    assert broken["errors"][0]["field"] == "html"
    c(
        await marketer.put(f"/api/v1/messages/{eid}/draft", json={"html": "<p>x</p>"}),
        message + "/draft",
        422,  # the parts an email draft needs: its event's channel's rule
    )
    untyped = await marketer.put(f"/api/v1/messages/{eid}/draft", json={"html": 1})
    c(untyped, message + "/draft", 400)
    c(await marketer.put("/api/v1/messages/EVTnope/draft", json=draft), message + "/draft", 404)
    preview = message + "/preview"
    rendered = c(
        await marketer.post(
            f"/api/v1/messages/{eid}/preview", json={"ctx": {"firstName": "Ada", "amount": 2}}
        ),
        preview,
        200,
    )
    assert rendered["subject"] == "Hello Ada"
    assert (
        c(await marketer.post(f"/api/v1/messages/{eid}/preview"), preview, 200)["subject"]
        == "Hello Sam"
    )
    wrong = c(
        await marketer.post(f"/api/v1/messages/{eid}/preview", json={"ctx": {"amount": "many"}}),
        preview,
        422,  # the event's declared fields refuse it
    )
    assert {e["field"] for e in wrong["errors"]} == {"ctx.firstName", "ctx.amount"}
    c(await marketer.post("/api/v1/messages/EVTnope/preview"), preview, 404)
    version = c(
        await marketer.post(f"/api/v1/messages/{eid}/publish", json={"ctx": {"firstName": "Ada"}}),
        message + "/publish",
        201,
    )
    assert version["version"] == 1
    got = c(await marketer.get(f"/api/v1/messages/{eid}"), message, 200)
    assert got["published"]["version"] == 1 and len(got["versions"]) == 1
    versioned = message + "/versions/{version}"
    got = c(await marketer.get(f"/api/v1/messages/{eid}/versions/1"), versioned, 200)
    assert got["version"] == 1
    c(await marketer.get(f"/api/v1/messages/{eid}/versions/7"), versioned, 404)
    dry = c(
        await marketer.post(f"/api/v1/messages/{eid}/publish?dry_run=true"),
        message + "/publish",
        200,
    )
    assert dry["dry_run"] is True and dry["published_version"] == 1

    # the console: its page and assets, a session, sign-out
    browser = server.client()
    c(await browser.get("/console"), "/console", 200)
    csrf = {"X-CSRF-Token": browser.cookies["txmsg_csrf"]}
    asset = "/console/assets/{name}"
    c(await browser.get("/console/assets/console.js"), asset, 200)
    c(await browser.get("/console/assets/console.css"), asset, 200)
    c(await browser.get("/console/assets/nope.js"), asset, 404)
    session = "/console/session"
    c(await browser.get(session), session, 401)
    c(await browser.post(session, json={"api_key": marketer_key["key"]}), session, 403)
    c(await browser.post(session, json={"key": "x"}, headers=csrf), session, 400)
    c(await browser.post(session, json={"api_key": "nope"}, headers=csrf), session, 401)
    signed = c(
        await browser.post(session, json={"api_key": marketer_key["key"]}, headers=csrf),
        session,
        200,
    )
    assert signed["role"] == "marketer"
    assert c(await browser.get(session), session, 200)["role"] == "marketer"
    c(await browser.delete(session), session, 403)
    c(await browser.delete(session, headers=csrf), session, 204)
    await browser.aclose()

    # latest events (admin)
    latest = "/api/v1/events/{eventId}"
    c(await admin.get(f"/api/v1/events/{eid}?limit=5"), latest, 200)
    paged = c(await admin.get(f"/api/v1/events/{eid}", params={"limit": 1}), latest, 200)
    assert "next_cursor" in paged
    forged = base64.urlsafe_b64encode(b"1.1700000000000000.12.0123456789abcdef").decode()
    forged = forged.rstrip("=")  # of the right shape, but of no listing
    c(await admin.get(f"/api/v1/events/{eid}", params={"cursor": forged}), latest, 422)
    c(await admin.get(f"/api/v1/events/{eid}", params={"cursor": "x"}), latest, 400)
    c(await admin.get(f"/api/v1/events/{eid}", params={"since": "now"}), latest, 400)
    c(await admin.get(f"/api/v1/events/{eid}?status=nope"), latest, 400)
    c(await admin.get("/api/v1/events/EVTnope"), latest, 404)

    # the trigger API
    trigger = "/rest/mc/{eventId}"
    body = {"email": "ada@example.org", "ctx": {"firstName": "Ada", "amount": 42}}
    idem = {"Idempotency-Key": "order-1"}
    r = await website.post(f"/rest/mc/{eid}", json=body, headers=idem)
    accepted = c(r, trigger, 201)
    assert accepted["status"] == "pending" and "Idempotent-Replayed" not in r.headers
    r = await website.post(f"/rest/mc/{eid}", json=body, headers=idem)
    assert c(r, trigger, 201) == accepted
    assert r.headers["Idempotent-Replayed"] == "true"
    c(
        await website.post(
            f"/rest/mc/{eid}", json={**body, "email": "bob@example.org"}, headers=idem
        ),
        trigger,
        422,
    )
    c(
        await website.post(f"/rest/mc/{eid}", json={"email": "ada@example.org", "ctx": {}}),
        trigger,
        422,  # the event's declared fields refuse the ctx
    )
    c(await website.post(f"/rest/mc/{eid}", json={**body, "ctx": []}), trigger, 400)
    c(await website.post(f"/rest/mc/{eid}", json={**body, "extra": 1}), trigger, 400)
    c(await website.post("/rest/mc/EVTnope", json=body), trigger, 404)
    r = await anon.post(f"/rest/mc/{eid}", json=body)
    c(r, trigger, 401)
    c(await marketer.post(f"/rest/mc/{eid}", json=body), trigger, 403)
    too_big = b'{"ctx": "' + b"x" * server.settings.max_body_bytes + b'"}'
    c(
        await website.post(
            f"/rest/mc/{eid}", content=too_big, headers={"content-type": "application/json"}
        ),
        trigger,
        413,
    )
    scheduled = c(
        await website.post(
            f"/rest/mc/{eid}",
            json={
                **body,
                "scheduled": "2099-01-01 10:00:00",
                "expiration": "2099-01-02T10:00:00+02:00",
            },
        ),
        trigger,
        201,
    )
    assert scheduled["scheduled"] is not None
    assert scheduled["priority"] == "transactional"

    status = "/rest/mc/{eventId}/{PKey}"
    done = await poll_status(chk, website, accepted["href"], {"processed"})
    assert "reason" not in done
    c(await website.get(f"/rest/mc/{eid}/{UNKNOWN_PKEY}"), status, 404)

    # lifecycle (2): pause, resume, unpublish, publish again
    paused = c(await admin.post(f"{events}/{eid}/pause"), lifecycle + "pause", 200)
    assert paused["state"] == "paused" and "api_preview" not in paused
    held = c(await website.post(f"/rest/mc/{eid}", json=body), trigger, 201)
    assert held["status"] == "paused"
    resumed = c(await admin.post(f"{events}/{eid}/resume"), lifecycle + "resume", 200)
    assert resumed["state"] == "published"
    c(await admin.post(f"{events}/{eid}/resume"), lifecycle + "resume", 409)
    await poll_status(chk, website, held["href"], {"processed"})
    c(await admin.post(f"{events}/{eid}/pause"), lifecycle + "pause", 200)
    dropped = c(await website.post(f"/rest/mc/{eid}", json=body), trigger, 201)
    unpublished = c(await admin.post(f"{events}/{eid}/unpublish"), lifecycle + "unpublish", 200)
    assert unpublished["state"] == "unpublished"
    c(await admin.post(f"{events}/{eid}/unpublish"), lifecycle + "unpublish", 409)
    ignored = await poll_status(chk, website, dropped["href"], {"ignored"})
    assert ignored["reason"]
    c(await website.post(f"/rest/mc/{eid}", json=body), trigger, 404)
    c(await admin.post(f"{events}/EVTnope/publish"), lifecycle + "publish", 404)
    c(await admin.post(f"{events}/{eid}/publish"), lifecycle + "publish", 200)

    # reports
    c(await admin.patch(f"{events}/{eid}", json={"tags": ["shop"]}), event, 200)
    report = c(await marketer.get(f"/api/v1/reports/{eid}"), "/api/v1/reports/{eventId}", 200)
    assert report["total"]["sent"] == 2 and report["total"]["ignored"] == 2  # + scheduled
    c(
        await marketer.get(f"/api/v1/reports/{eid}", params={"format": "csv"}),
        "/api/v1/reports/{eventId}",
        200,
    )
    c(await marketer.get("/api/v1/reports/EVTnope"), "/api/v1/reports/{eventId}", 404)
    c(await marketer.get(f"/api/v1/reports/{eid}?from=x"), "/api/v1/reports/{eventId}", 400)
    tagged = c(await marketer.get("/api/v1/reports?tag=shop"), "/api/v1/reports", 200)
    assert [e["eventId"] for e in tagged["events"]] == [eid]
    c(await marketer.get("/api/v1/reports?tag=shop&format=csv"), "/api/v1/reports", 200)
    unknown = c(await marketer.get("/api/v1/reports?tag=shpo"), "/api/v1/reports", 404)
    assert unknown["detail"] == "no event configuration is tagged 'shpo'"
    c(await marketer.get("/api/v1/reports"), "/api/v1/reports", 400)
    recipients = "/api/v1/reports/{eventId}/recipients"
    listed = c(await admin.get(f"/api/v1/reports/{eid}/recipients?format=json"), recipients, 200)
    assert len(listed["items"]) == 4
    c(await admin.get(f"/api/v1/reports/{eid}/recipients"), recipients, 200)
    c(await admin.get(f"/api/v1/reports/{eid}/recipients?format=x"), recipients, 400)
    c(await admin.get("/api/v1/reports/EVTnope/recipients"), recipients, 404)
    c(await marketer.get(f"/api/v1/reports/{eid}/recipients"), recipients, 403)
    restore = "/api/v1/event-configs/{eventId}/restore-interactions"
    nothing = c(await admin.post(f"{events}/{eid}/restore-interactions"), restore, 200)
    assert nothing == {"eventId": eid, "files": 0, "rows": 0}
    c(await admin.post(f"{events}/EVTnope/restore-interactions"), restore, 404)
    by_tag = "/api/v1/event-configs:restore-interactions"
    restored = c(await admin.post(by_tag, json={"tag": "shop"}), by_tag, 200)
    assert restored["items"] == [nothing]
    c(await admin.post(by_tag, json={"tag": ""}), by_tag, 400)

    # SMS: channel configuration, event, message, trigger, receipts, delivery log
    sms_channel = {
        "name": "sms",
        "channel": "sms",
        "twilio": {
            "account_sid": fake_twilio.account_sid,
            "auth_token": fake_twilio.auth_token,
            "from_number": "+1 415 555 0100",
            "status_callback_base_url": server.base_url,
            "api_base_url": fake_twilio.base_url,
        },
    }
    created = c(await admin.post(channels, json=sms_channel), channels, 201)
    assert created["twilio"]["auth_token_set"] is True
    assert created["twilio"]["from_number"] == "+14155550100"
    assert fake_twilio.auth_token not in json.dumps(created)
    both = {**sms_channel["twilio"], "messaging_service_sid": "MG" + "0" * 32}
    c(await admin.post(channels, json={**sms_channel, "name": "x", "twilio": both}), channels, 400)
    patched = c(await admin.patch(f"{channels}/sms", json={"twilio": {"timeout": 5}}), channel, 200)
    assert patched["twilio"]["timeout"] == 5 and patched["twilio"]["auth_token_set"] is True
    c(await admin.patch(f"{channels}/sms", json={"smtp": {"host": "x"}}), channel, 422)
    c(await admin.patch(f"{channels}/sms", json={"nope": 1}), channel, 400)
    sms_event = {
        "eventId": "codeSent",
        "channel": "sms",
        "channel_config": "sms",
        "fields": [{"name": "code", "type": "string", "required": True}],
    }
    sid = c(await admin.post(events, json=sms_event), events, 201)["eventId"]
    c(
        await admin.post(events, json={**sms_event, "eventId": "y", "channel_config": "mail"}),
        events,
        422,  # an email configuration, for an SMS event
    )
    published = c(await admin.post(f"{events}/{sid}/publish"), lifecycle + "publish", 200)
    assert set(published["api_preview"]["body"]) == {"mobilePhone", "ctx"}
    c(
        await marketer.put(f"/api/v1/messages/{sid}/draft", json={"body": "Code {{ ctx.code }}"}),
        message + "/draft",
        200,
    )
    shown = c(
        await marketer.post(f"/api/v1/messages/{sid}/preview", json={"ctx": {"code": "7"}}),
        preview,
        200,
    )
    assert shown == {
        "text": "Code 7",
        "encoding": "GSM-7",
        "segments": 1,
        "characters": 6,
        "units": 6,
        "render_warnings": [],
    }
    assert (
        c(await marketer.post(f"/api/v1/messages/{sid}/publish"), message + "/publish", 201)["body"]
        == "Code {{ ctx.code }}"
    )
    got = c(await marketer.get(f"/api/v1/messages/{sid}"), message, 200)
    assert got["published"]["body"] == "Code {{ ctx.code }}"
    c(
        await website.post(f"/rest/mc/{sid}", json={"mobilePhone": "12", "ctx": {"code": "1"}}),
        trigger,
        400,
    )
    sent = c(
        await website.post(
            f"/rest/mc/{sid}", json={"mobilePhone": "+14155552671", "ctx": {"code": "7"}}
        ),
        trigger,
        201,
    )
    assert sent["mobilePhone"] == "+14155552671"
    await poll_status(chk, website, sent["href"], {"processed"})
    [sms] = await fake_twilio.wait_for(1)
    assert sms.body == "Code 7"
    webhook = "/webhooks/twilio/status"
    assert sms.status_callback is not None
    params = fake_twilio.callback_params(sms, "delivered")
    callback = sms.status_callback.removeprefix(server.base_url)
    signed = {"X-Twilio-Signature": fake_twilio.sign(sms.status_callback, params)}
    c(await anon.post(callback, data=params, headers=signed), webhook, 204)
    c(await anon.post(callback, data=params), webhook, 403)
    c(await anon.post(callback, data=params, headers={"X-Twilio-Signature": "x"}), webhook, 403)
    c(await anon.post(callback, content=b"\xff", headers=signed), webhook, 400)
    log_path = "/api/v1/events/{eventId}/{PKey}/delivery-log"
    log = c(await admin.get(f"/api/v1/events/{sid}/{sent['PKey']}/delivery-log"), log_path, 200)
    assert [e["kind"] for e in log["items"]] == ["delivered"]
    c(await admin.get(f"/api/v1/events/{sid}/{UNKNOWN_PKEY}/delivery-log"), log_path, 404)
    c(await website.get(f"/api/v1/events/{sid}/{sent['PKey']}/delivery-log"), log_path, 403)
    # a STOP (Twilio's 21610) is an opt-out: logged as one, the number held as one
    fake_twilio.fail_next(400, 21610, "Attempt to send to unsubscribed recipient")
    stop = {"mobilePhone": "+14155552679", "ctx": {"code": "8"}}
    stopped = c(await website.post(f"/rest/mc/{sid}", json=stop), trigger, 201)
    await poll_status(chk, website, stopped["href"], {"deliveryFailed"})
    log = c(await admin.get(f"/api/v1/events/{sid}/{stopped['PKey']}/delivery-log"), log_path, 200)
    assert [e["kind"] for e in log["items"]] == ["unsubscribed"]
    why = "/api/v1/suppressions/{channel}/{address}"
    answer = c(await admin.get("/api/v1/suppressions/sms/+14155552679"), why, 200)
    assert [r["reason"] for r in answer["reasons"]] == ["sms_stop"]
    held = c(await admin.get("/api/v1/quarantine"), "/api/v1/quarantine", 200)["items"]
    assert [h["opted_out"] for h in held if h["channel"] == "sms"] == [True]
    released = "/api/v1/quarantine/{channel}/{address}"
    c(await admin.delete("/api/v1/quarantine/sms/+14155552679"), released, 204)
    plain = server.base_url + webhook  # no pkey: receipts are matched by it alone
    c(
        await anon.post(
            webhook,
            data=params,
            headers={"X-Twilio-Signature": fake_twilio.sign(plain, params)},
        ),
        webhook,
        400,
    )
    unknown = f"{webhook}?pkey={UNKNOWN_PKEY}"
    c(
        await anon.post(
            unknown,
            data=params,
            headers={"X-Twilio-Signature": fake_twilio.sign(server.base_url + unknown, params)},
        ),
        webhook,
        404,
    )
    too_big = b"Body=" + b"x" * server.settings.max_body_bytes
    c(await anon.post(webhook, content=too_big, headers=signed), webhook, 413)
    # export flows and the message export dataset
    c(await admin.patch(f"{channels}/mail", json={"message_export": True}), channel, 200)
    exported = c(await website.post(f"/rest/mc/{eid}", json=body), trigger, 201)
    await poll_status(chk, website, exported["href"], {"processed"})
    flows, flow = "/api/v1/export-flows", "/api/v1/export-flows/{name}"
    lake = {
        "name": "lake",
        "format": "parquet",
        "destination": {"type": "local", "path": str(tmp_path / "lake")},
        "schedule": "PT1H",
    }
    created = c(await admin.post(flows, json=lake), flows, 201)
    assert created["compression"] == "snappy" and created["watermark"] == 0
    c(await admin.post(flows, json=lake), flows, 409)
    rare = {**lake, "name": "x", "schedule": "P8D"}  # past the installation's retention
    too_rare = c(await admin.post(flows, json=rare), flows, 422)
    assert too_rare["errors"][0]["field"] == "schedule"
    c(await marketer.get(flows), flows, 403)
    s3_flow = {
        "name": "bucket",
        "format": "json",
        "destination": {
            "type": "s3",
            "bucket": "exports",
            "endpoint_url": "http://127.0.0.1:9",
            "access_key_id": "id",
            "secret_access_key": "very-secret",
        },
    }
    created = c(await admin.post(flows, json=s3_flow), flows, 201)
    assert created["destination"]["secret_access_key_set"] is True
    assert "very-secret" not in json.dumps(created)
    assert len(c(await admin.get(flows), flows, 200)["items"]) == 2
    c(await admin.get(f"{flows}/lake"), flow, 200)
    c(await admin.get(f"{flows}/nope"), flow, 404)
    patched = c(await admin.patch(f"{flows}/lake", json={"compression": "zstd"}), flow, 200)
    assert patched["compression"] == "zstd"
    c(await admin.patch(f"{flows}/lake", json={"name": "other"}), flow, 400)
    c(await admin.patch(f"{flows}/nope", json={}), flow, 404)
    run = c(await admin.post(f"{flows}/lake/run"), flow + "/run", 200)
    assert run["status"] == "succeeded" and run["run"] == 1 and run["records"] == 1
    failed = c(await admin.post(f"{flows}/bucket/run"), flow + "/run", 200)
    assert failed["status"] == "failed" and failed["error"]
    assert "very-secret" not in failed["error"]
    c(await admin.post(f"{flows}/nope/run"), flow + "/run", 404)
    runs = c(await admin.get(f"{flows}/lake/runs"), flow + "/runs", 200)
    assert [r["run"] for r in runs["items"]] == [1]
    c(await admin.get(f"{flows}/nope/runs"), flow + "/runs", 404)
    records = "/api/v1/message-export/records"
    page = c(await admin.get(records, params={"limit": 10}), records, 200)
    assert [r["messageID"] for r in page["items"]] == [exported["PKey"]]
    assert page["next_after"] == page["items"][0]["id"]
    c(await admin.get(records, params={"limit": 0}), records, 400)
    c(await marketer.get(records), records, 403)
    c(await admin.delete(f"{flows}/bucket"), flow, 204)
    c(await admin.delete(f"{flows}/bucket"), flow, 404)
    # profiles, typology, fatigue rules, unsubscribe, test profiles and proofs
    await check_profile_operations(chk, server, smtp, marketer, website)

    # the batch trigger (last: its sends would change the counts checked above)
    batch = "/rest/mc/{eventId}/batch"
    two = {"events": [body, {**body, "email": "bob@example.org"}]}
    batch_key = {"Idempotency-Key": "batch-1"}
    r = await website.post(f"/rest/mc/{eid}/batch", json=two, headers=batch_key)
    all_in = c(r, batch, 201)
    assert all_in["accepted"] == 2 and [i["index"] for i in all_in["items"]] == [0, 1]
    r = await website.post(f"/rest/mc/{eid}/batch", json=two, headers=batch_key)
    assert c(r, batch, 201) == all_in and r.headers["Idempotent-Replayed"] == "true"
    c(
        await website.post(f"/rest/mc/{eid}/batch", json={"events": [body]}, headers=batch_key),
        batch,
        422,
    )
    mixed = c(
        await website.post(f"/rest/mc/{eid}/batch", json={"events": [body, {"ctx": {}}]}),
        batch,
        207,
    )
    assert mixed["accepted"] == 1 and mixed["items"][1]["problem"]["status"] == 400
    c(await website.post(f"/rest/mc/{eid}/batch", json={"events": []}), batch, 400)
    c(await website.post("/rest/mc/EVTnope/batch", json=two), batch, 404)
    c(await anon.post(f"/rest/mc/{eid}/batch", json=two), batch, 401)
    c(await marketer.post(f"/rest/mc/{eid}/batch", json=two), batch, 403)
    c(
        await website.post(
            f"/rest/mc/{eid}/batch", content=too_big, headers={"content-type": "application/json"}
        ),
        batch,
        413,
    )

    # every operation of the spec met a real answer, and every documented kind of error did
    assert not chk.operations_not_seen(), (
        f"operations of openapi.yaml this test never called: {chk.operations_not_seen()}"
    )
    statuses = {status for _, _, status in chk.seen}
    assert statuses >= ERROR_STATUSES, f"error statuses never seen: {ERROR_STATUSES - statuses}"
    for client in (anon, marketer, website):
        await client.aclose()


def _example_url(path: str) -> str:
    values = {
        "eventId": "EVTnope",
        "PKey": UNKNOWN_PKEY,
        "id": "0" * 16,
        "name": "nope",
        "profile_id": "nope",
        "channel": "email",
        "address": "nobody@example.org",
        "token": "nope",
        "version": "1",
    }
    return re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], path)


async def test_roles_match_the_spec(server: Any, spec: dict[str, Any]) -> None:
    """Each operation answers 403 to the roles its `x-roles` leaves out, and not to the others.

    Calls use unknown path parameters and empty bodies, so allowed calls change nothing.
    """
    chk = SpecChecker(spec)
    clients = {"admin": server.admin, "": server.client()}
    for role in ("marketer", "trigger"):
        r = await server.admin.post("/api/v1/keys", json={"role": role, "label": role})
        clients[role] = server.client(chk.check(r, "/api/v1/keys", 201)["key"])
    wrong: list[str] = []
    for method, path, _, op in operations(spec):
        secured = bool(op.get("security", spec.get("security")))
        roles = set(op.get("x-roles", []))
        for role, client in clients.items():
            kwargs: dict[str, Any] = {"json": {}} if "requestBody" in op else {}
            r = await client.request(method, _example_url(path), **kwargs)
            chk.check(r, path)
            if "x-signature" in op or "x-csrf" in op:
                # Authenticated by a provider's signature, or by the console's CSRF token,
                # not a key: no key gets past it.
                if r.status_code != 403:
                    wrong.append(f"{method} {path} as {role or 'anonymous'}: {r.status_code}")
                continue
            if not secured:
                # Unsecured operations (health, unsubscribe links) never ask for a key.
                allowed = r.status_code not in (401, 403)
            elif not role:
                allowed = r.status_code != 401
            else:
                allowed = r.status_code not in (401, 403)
            should = not secured or (role in roles)
            if allowed != should:
                wrong.append(
                    f"{method} {path} as {role or 'anonymous'}: {r.status_code} "
                    f"(x-roles: {sorted(roles)})"
                )
    for role in ("", "marketer", "trigger"):
        await clients[role].aclose()
    assert not wrong, "role checks that disagree with openapi.yaml:\n  " + "\n  ".join(wrong)
