#!/usr/bin/env python3
"""Writes docs/openapi.json, the OpenAPI document of ctihost's REST API.

The host serves the file it was built with at GET /api/openapi.json, and a
test checks the two are the same and that every endpoint is described.
Edit this script, run it, commit both."""
import json, pathlib

def ref(name): return {"$ref": f"#/components/schemas/{name}"}
def body(schema): return {"required": True, "content": {"application/json": {"schema": schema}}}
def ok(desc, schema=None):
    r = {"description": desc}
    if schema is not None: r["content"] = {"application/json": {"schema": schema}}
    return r
ERR = {"description": "error", "content": {"application/json": {"schema": ref("Error")}}}
def errors(*codes):
    text = {400: "bad input", 401: "no or expired session / token", 403: "not allowed for this principal",
            404: "unknown call, agent or plugin", 409: "does not fit the current state",
            410: "the recording was purged", 415: "the body is not JSON (Content-Type: application/json)",
            422: "body does not match the schema", 429: "too many failed logins",
            500: "the store or the file could not be read",
            503: "call center not running"}
    return {str(c): {**ERR, "description": text[c]} for c in codes}
SESSION = [{"session": []}]
ADMIN = [{"admin": []}]
def op(summary, responses, security=SESSION, request=None, params=None, tags=None):
    # What axum's extractors answer by themselves: a JSON body that is not
    # JSON (400), not declared as JSON (415) or not of the schema (422); a
    # query or path value of the wrong type (400).
    implied = []
    if request: implied += [400, 415, 422]
    if params and any(p["in"] in ("query", "path") and p["schema"]["type"] != "string" for p in params): implied += [400]
    responses = {**errors(*[c for c in implied if str(c) not in responses]), **responses}
    o = {"summary": summary, "responses": responses, "security": security}
    if request: o["requestBody"] = request
    if params: o["parameters"] = params
    if tags: o["tags"] = tags
    return o
CALL_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "call id (the inbound SIP Call-ID)"}
NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}, "description": "plugin name"}
REC_ID = {"name": "call_id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "call id of the recorded call"}
def q(name, typ, desc): return {"name": name, "in": "query", "required": False, "schema": {"type": typ}, "description": desc}

paths = {
 "/api/login": {"post": op("Log an agent or supervisor in; returns a session token",
    {"200": ok("session opened", ref("LoginAnswer")), **errors(400, 401, 422, 429)},
    security=[], request=body(ref("Login")), tags=["session"])},
 "/api/logout": {"post": op("End the session (an agent also leaves the queues unless on a call)",
    {"204": ok("session ended"), **errors(401)}, tags=["session"])},
 "/api/me": {"get": op("Who the session is; for an agent their state and current call",
    {"200": ok("the principal", ref("Me")), **errors(400, 401)}, tags=["agent"])},
 "/api/me/state": {"post": op("Change the agent's state: ready (logs in when logged out), not-ready with a reason, wrap-up-done",
    {"200": ok("the agent after the change", ref("Agent")), **errors(400, 401, 403, 409, 422, 503)},
    request=body(ref("StateChange")), tags=["agent"])},
 "/api/calls": {"get": op("Live calls (an agent sees their own)",
    {"200": ok("calls, oldest first", {"type": "array", "items": ref("Call")}), **errors(401, 503)}, tags=["calls"])},
 "/api/calls/{id}/hangup": {"post": op("End the call (agents: their own call); audited",
    {"202": ok("the call is being ended"), **errors(401, 403, 404, 503)}, params=[CALL_ID], tags=["calls"])},
 "/api/calls/{id}/transfer": {"post": op("Blind transfer to a queue, a ready agent, or (before the answer) an outside number; audited. A connected caller is re-INVITEd with the new agent's media.",
    {"202": ok("transfer started"), **errors(400, 401, 403, 404, 409, 422, 503)},
    params=[CALL_ID], request=body(ref("TransferTarget")), tags=["calls"])},
 "/api/calls/{id}/recording": {"post": op("Secure pause or resume of the recording; the recording-policy plugin decides; audited",
    {"200": ok("what the policy decided", ref("RecordingAnswer")), **errors(400, 401, 403, 404, 409, 422, 503)},
    params=[CALL_ID], request=body(ref("RecordingRequest")), tags=["calls"])},
 "/api/queues": {"get": op("Live queues with waiting calls and today's figures, and agents (the wallboard)",
    {"200": ok("the wallboard", ref("Wallboard")), **errors(401)}, tags=["supervisor"])},
 "/api/agents": {"get": op("Every agent's live state (supervisors and admin)",
    {"200": ok("agents", {"type": "array", "items": ref("Agent")}), **errors(401, 403, 503)}, tags=["supervisor"])},
 "/api/audit": {"get": op("The audit log: logins, hang-ups, transfers, secure pauses (supervisors and admin)",
    {"200": ok("entries, oldest first", {"type": "array", "items": ref("AuditEntry")}), **errors(401, 403)},
    params=[q("since_ms", "integer", "from this time (ms since the epoch)"), q("limit", "integer", "at most this many (1000)")],
    tags=["supervisor"])},
 "/api/events": {"get": op("WebSocket event stream. The first message must be {\"token\": \"...\"} (a session or the admin token); then events arrive as JSON objects with a `type`: hello, call-arrived, call-queued, call-offered, card, call-connected, call-transferred, call-ended, agent-state, queues (agents) or wallboard (supervisors, every second), lagged. A `card` with provisional=true is the host's, sent before the phone rings; the screen-pop plugin's card follows.",
    {"101": ok("switching to WebSocket"), "400": ERR}, security=[], tags=["events"])},
 "/api/openapi.json": {"get": op("This document", {"200": ok("OpenAPI 3.0 document")}, security=[], tags=["meta"])},
 "/admin/plugins": {"get": op("Loaded plugins with their versions and counters",
    {"200": ok("plugins", {"type": "array", "items": {"type": "object"}}), **errors(401, 403)}, security=ADMIN, tags=["plugins"])},
 "/admin/plugins/history": {"get": op("Version history of every plugin",
    {"200": ok("entries", {"type": "array", "items": ref("HistoryEntry")}), **errors(401, 403)}, security=ADMIN,
    params=[q("limit", "integer", "at most this many")], tags=["plugins"])},
 "/admin/plugins/{name}/reload": {"post": op("Reload a plugin from its manifest (rejected loads keep the old version serving)",
    {"200": ok("load report", {"type": "object"}), **errors(401, 403, 404), "422": {**ERR, "description": "the new version was rejected; the old one serves"}},
    security=ADMIN, params=[NAME, q("by", "string", "cli when the CLI asks")], tags=["plugins"])},
 "/admin/plugins/{name}/rollback": {"post": op("Go back to the previous version",
    {"200": ok("load report", {"type": "object"}), **errors(401, 403, 404, 409)}, security=ADMIN, params=[NAME], tags=["plugins"])},
 "/admin/plugins/{name}/history": {"get": op("Version history of one plugin",
    {"200": ok("entries", {"type": "array", "items": ref("HistoryEntry")}), **errors(401, 403)}, security=ADMIN,
    params=[NAME, q("limit", "integer", "at most this many")], tags=["plugins"])},
 "/admin/cdr": {"get": op("Call records (json or csv)",
    {"200": ok("records", {"type": "array", "items": {"type": "object"}}), **errors(401, 403)}, security=ADMIN,
    params=[q("since_ms", "integer", "ended at or after"), q("limit", "integer", "at most"), q("format", "string", "json or csv")], tags=["records"])},
 "/admin/queue-log": {"get": op("The queue log (enter-queue, offered, connect, abandon, ...)",
    {"200": ok("entries", {"type": "array", "items": {"type": "object"}}), **errors(401, 403)}, security=ADMIN,
    params=[q("since_ms", "integer", "from"), q("limit", "integer", "at most")], tags=["records"])},
 "/admin/reports": {"get": op("Per queue and agent per interval: offered, answered, abandoned, SL, SL2, ASA, AHT, abandon rate, occupancy",
    {"200": ok("report (json) or csv", {"type": "object"}), **errors(400, 401, 403)}, security=ADMIN,
    params=[q("since_ms", "integer", "from"), q("until_ms", "integer", "until"), q("queue", "string", "one queue"),
            q("interval", "string", "15m, 1h or 1d, aligned to the center's timezone (the report's time_zone)"), q("format", "string", "json or csv")], tags=["records"])},
 "/admin/sip/registrations": {"get": op("Registered phones",
    {"200": ok("bindings by SIP user", {"type": "object"}), **errors(401, 403, 503)}, security=ADMIN, tags=["sip"])},
 "/admin/media": {"get": op("The RTP relay: ports in use and every live relay (latched peers, packet counts)",
    {"200": ok("relay status", {"type": "object"}), **errors(401, 403, 503)}, security=ADMIN, tags=["media"])},
 "/admin/recordings": {"get": op("The recording index: every recording with its file, duration, silent spans, policy and version, retention and SHA-256",
    {"200": ok("recordings", {"type": "array", "items": ref("Recording")}), **errors(401, 403, 500)}, security=ADMIN, tags=["recordings"])},
 "/admin/recordings/purge": {"post": op("Delete the recordings past their retention now (the host also does so every purge_interval_secs)",
    {"200": ok("what was purged", {"type": "object"}), **errors(401, 403, 500)}, security=ADMIN,
    params=[q("as_of_ms", "integer", "purge what has expired by this time (default now)")], tags=["recordings"])},
 "/admin/recordings/{call_id}": {"get": op("One recording's index entry",
    {"200": ok("the entry", ref("Recording")), **errors(401, 403, 404, 500)}, security=ADMIN, params=[REC_ID], tags=["recordings"])},
 "/admin/recordings/{call_id}/audio": {"get": op("The recording's audio (WAV), served only when the file still matches the SHA-256 of its index entry",
    {"200": {"description": "the WAV file", "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
     **errors(401, 403, 404, 410, 500), "409": {**ERR, "description": "the file does not match its index hash"}},
    security=ADMIN, params=[REC_ID], tags=["recordings"])},
 "/admin/drain": {
    "get": op("Where a stop stands: running, draining, ending-calls, stopped; live calls; the drain's deadline",
        {"200": ok("the stop's status", ref("StopStatus")), **errors(401, 403)}, security=ADMIN, tags=["operations"]),
    "post": op("Stop the host without losing a call: new calls and OPTIONS get 503 with Retry-After, live calls get within_secs to finish, the calls left are ended with BYE both ways, every record and recording index is written, then the process exits (`ctihost drain`). A second request can only shorten the drain.",
        {"202": ok("the stop has begun", ref("StopStatus")), **errors(400, 401, 403), "409": {**ERR, "description": "too many stop requests at once"}},
        security=ADMIN, params=[q("within_secs", "integer", "longest drain, at most 86400 (default 0: end the calls at once)")], tags=["operations"])},
 "/metrics": {"get": op("Prometheus text format 0.0.4 (send the admin token as a bearer token)",
    {"200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}, **errors(401, 403)},
    security=ADMIN, tags=["metrics"])},
}

S = lambda **p: {"type": "object", "properties": p}
string, integer, number, boolean = ({"type": t} for t in ["string", "integer", "number", "boolean"])
nullable = lambda s: {**s, "nullable": True}
AGENT_STATES = ["logged-out", "ready", "not-ready", "ringing", "on-call", "wrap-up"]
schemas = {
 "Error": {**S(error=string), "required": ["error"]},
 "Login": {**S(id=string, password=string), "required": ["id", "password"], "additionalProperties": False},
 "LoginAnswer": S(token=string, id=string, name=string, role={"type": "string", "enum": ["agent", "supervisor"]}),
 "StateChange": {**S(state={"type": "string", "enum": ["ready", "not-ready", "wrap-up-done"]},
                    reason={**string, "description": "not-ready reason (break when absent)"}),
                 "required": ["state"], "additionalProperties": False},
 "Agent": {**S(id=string, name=string, state={"type": "string", "enum": AGENT_STATES},
              reason=nullable(string), call_id=nullable(string), since_ms=integer, calls_today=integer,
              queues={"type": "array", "items": string})},
 "Call": S(call_id=string, caller=string, dialed=string, trunk=string,
           state={"type": "string", "enum": ["routing", "ivr", "queued", "ringing", "connected"]},
           queue=nullable(string), agent=nullable(string), priority=integer, arrived_ms=integer, answered_ms=nullable(integer)),
 "Me": S(id=string, name=string, role={"type": "string", "enum": ["agent", "supervisor"]},
         agent={**ref("Agent"), "nullable": True}, call={**ref("Call"), "nullable": True}),
 "TransferTarget": {"oneOf": [
     {**S(queue=string), "required": ["queue"], "additionalProperties": False},
     {**S(agent=string), "required": ["agent"], "additionalProperties": False},
     {**S(number=string), "required": ["number"], "additionalProperties": False}]},
 "RecordingRequest": {**S(action={"type": "string", "enum": ["pause", "resume"]}), "required": ["action"], "additionalProperties": False},
 "RecordingAnswer": S(call_id=string, paused=boolean, policy_action={"type": "string", "enum": ["keep", "pause", "resume"]},
                      plugin=string, plugin_version=string, failure=nullable(string)),
 "QueueToday": S(queue=string, interval_start_ms=integer, threshold_secs=integer, offered=integer, answered=integer,
                 abandoned=integer, answered_within=integer, abandoned_within=integer, service_level=nullable(number),
                 service_level_2=nullable(number), asa_secs=nullable(number), aht_secs=nullable(number), abandon_rate=nullable(number)),
 "WaitingCall": S(call_id=string, caller=string, priority=integer, wait_ms=integer),
 "QueueBoard": S(name=string, waiting=integer, longest_wait_ms=integer, agents_logged_in=integer, agents_ready=integer,
                 calls={"type": "array", "items": ref("WaitingCall")}, today=ref("QueueToday")),
 "Wallboard": S(at_ms=integer, time_zone=string, queues={"type": "array", "items": ref("QueueBoard")},
                agents={"type": "array", "items": ref("Agent")},
                agents_by_state={"type": "object", "additionalProperties": integer}),
 "AuditEntry": S(at_ms=integer, who=string, action=string, call_id=nullable(string), outcome=string),
 "Recording": S(call_id=string, file=string, started_ms=integer, duration_ms=integer,
                legs={"type": "string", "enum": ["caller", "agent", "both"]},
                silent_spans={"type": "array", "items": S(start_ms=integer, end_ms=integer, reason=string)},
                policy=string, policy_version=string, reason=string, retention_days=integer,
                expires_ms=nullable(integer), sha256=string, purged_ms=nullable(integer),
                state={"type": "string", "enum": ["recording", "complete", "interrupted"],
                       "description": "recording: being written (indexed as it starts); interrupted: the host died mid-call and the WAV was repaired at the next start"}),
 "StopStatus": S(phase={"type": "string", "enum": ["running", "draining", "ending-calls", "stopped"]},
                 live_calls=integer, drain_deadline_ms=nullable(integer), retry_after_secs=integer),
 "HistoryEntry": S(at_ms=integer, plugin=string, version=string, trigger=string, outcome=string, message=string),
}

doc = {
 "openapi": "3.0.3",
 "info": {"title": "ctihost API", "version": "0.1.0",
          "description": "REST API of ctihost: the CTI API for agent desktops and supervisors (session tokens from POST /api/login) and the admin API (admin token). Nothing is open without a token; CORS is closed."},
 "paths": paths,
 "components": {"schemas": schemas, "securitySchemes": {
     "session": {"type": "http", "scheme": "bearer", "description": "token from POST /api/login (the admin token is accepted too)"},
     "admin": {"type": "http", "scheme": "bearer", "description": "the admin token ([admin] token, or <data_dir>/admin.token)"}}},
}
out = pathlib.Path(__file__).resolve().parent.parent / "openapi.json"
out.write_text(json.dumps(doc, indent=2) + "\n")
print(f"wrote {out}")
