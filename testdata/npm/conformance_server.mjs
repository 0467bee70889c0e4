// conformance_server.mjs: the MCP server the conformance suite
// (@modelcontextprotocol/conformance `server --suite all`) is run against, directly
// and through mcpes's gateway. Built on the official TypeScript SDK's low-level
// Server, one instance per session, over streamable HTTP with an event store (so
// streams resume with Last-Event-ID) on 127.0.0.1.
//
//   node conformance_server.mjs        # prints "listening http://127.0.0.1:PORT/mcp"
//
// PORT in the environment picks the port (default: any free one).
import http from "node:http";
import { randomUUID } from "node:crypto";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import {
  CallToolRequestSchema, CompleteRequestSchema, ElicitResultSchema, GetPromptRequestSchema,
  ListPromptsRequestSchema, ListResourceTemplatesRequestSchema, ListResourcesRequestSchema,
  ListToolsRequestSchema, ReadResourceRequestSchema, SetLevelRequestSchema,
  SubscribeRequestSchema, UnsubscribeRequestSchema, CreateMessageResultSchema, ListRootsResultSchema,
} from "@modelcontextprotocol/sdk/types.js";

const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
const WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";
const empty = { type: "object", properties: {} };
const text = (t) => ({ content: [{ type: "text", text: t }] });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const tools = [
  { name: "test_simple_text", description: "Returns one text block", inputSchema: empty },
  { name: "test_image_content", description: "Returns an image", inputSchema: empty },
  { name: "test_audio_content", description: "Returns audio", inputSchema: empty },
  { name: "test_embedded_resource", description: "Returns an embedded resource", inputSchema: empty },
  { name: "test_multiple_content_types", description: "Returns text, image and resource", inputSchema: empty },
  { name: "test_tool_with_logging", description: "Logs three messages while it runs", inputSchema: empty },
  { name: "test_tool_with_progress", description: "Reports progress three times", inputSchema: empty },
  { name: "test_error_handling", description: "Always fails", inputSchema: empty },
  { name: "test_reconnection", description: "Closes its SSE stream before answering (SEP-1699)", inputSchema: empty },
  { name: "test_sampling", description: "Asks the client to sample",
    inputSchema: { type: "object", properties: { prompt: { type: "string" } }, required: ["prompt"] } },
  { name: "test_elicitation", description: "Asks the user for input",
    inputSchema: { type: "object", properties: { message: { type: "string" } }, required: ["message"] } },
  { name: "test_elicitation_sep1034_defaults", description: "Elicits with defaults", inputSchema: empty },
  { name: "test_elicitation_sep1330_enums", description: "Elicits with enum variants", inputSchema: empty },
  { name: "json_schema_2020_12_tool", description: "Keeps its JSON Schema 2020-12 keywords",
    inputSchema: {
      $schema: "https://json-schema.org/draft/2020-12/schema", type: "object",
      $defs: { address: { type: "object", properties: { street: { type: "string" }, city: { type: "string" } } } },
      properties: { name: { type: "string" }, address: { $ref: "#/$defs/address" } },
      additionalProperties: false,
    } },
  { name: "test_roots", description: "Asks the client for its roots", inputSchema: empty },
  { name: "test_elicitation_url", description: "Asks the user to visit a URL (URL-mode elicitation)", inputSchema: empty },
  { name: "test_resource_link", description: "Returns a link to a resource", inputSchema: empty },
  { name: "annotated_tool", title: "Annotated", description: "Carries every optional tool field",
    inputSchema: empty, outputSchema: { type: "object", properties: { n: { type: "number" } } },
    annotations: { readOnlyHint: true, openWorldHint: false }, icons: [{ src: "data:image/png;base64," + PNG, mimeType: "image/png" }],
    _meta: { ui: { resourceUri: "ui://annotated" } } },
];

const elicitForms = {
  test_elicitation_sep1034_defaults: {
    message: "Review the defaults",
    requestedSchema: { type: "object", required: [], properties: {
      name: { type: "string", description: "User name", default: "John Doe" },
      age: { type: "integer", description: "User age", default: 30 },
      score: { type: "number", description: "User score", default: 95.5 },
      status: { type: "string", description: "User status", enum: ["active", "inactive", "pending"], default: "active" },
      verified: { type: "boolean", description: "Verification status", default: true },
    } },
  },
  test_elicitation_sep1330_enums: {
    message: "Pick options",
    requestedSchema: { type: "object", required: [], properties: {
      untitledSingle: { type: "string", enum: ["option1", "option2", "option3"] },
      titledSingle: { type: "string", oneOf: [{ const: "value1", title: "First" }, { const: "value2", title: "Second" }, { const: "value3", title: "Third" }] },
      legacyEnum: { type: "string", enum: ["opt1", "opt2", "opt3"], enumNames: ["One", "Two", "Three"] },
      untitledMulti: { type: "array", minItems: 1, maxItems: 3, items: { type: "string", enum: ["option1", "option2", "option3"] } },
      titledMulti: { type: "array", minItems: 1, maxItems: 3, items: { anyOf: [{ const: "value1", title: "First" }, { const: "value2", title: "Second" }, { const: "value3", title: "Third" }] } },
    } },
  },
};

const resources = [
  { uri: "test://static-text", name: "static-text", title: "Static Text", description: "A text resource", mimeType: "text/plain" },
  { uri: "test://static-binary", name: "static-binary", title: "Static Binary", description: "A PNG", mimeType: "image/png" },
  { uri: "test://watched-resource", name: "watched-resource", title: "Watched", description: "Can be subscribed to", mimeType: "text/plain" },
];

const prompts = [
  { name: "test_simple_prompt", title: "Simple", description: "No arguments" },
  { name: "test_prompt_with_arguments", title: "With arguments", description: "Two required arguments",
    arguments: [{ name: "arg1", description: "First", required: true }, { name: "arg2", description: "Second", required: true }] },
  { name: "test_prompt_with_embedded_resource", title: "Embedded resource", description: "Embeds a resource",
    arguments: [{ name: "resourceUri", description: "URI to embed", required: true }] },
  { name: "test_prompt_with_image", title: "Image", description: "Includes an image" },
];

const levels = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];
const sessions = new Map(); // session id -> transport

function newServer(getTransport) {
  const s = new Server({ name: "mcpes-conformance-server", version: "1.0.0" }, {
    capabilities: { tools: { listChanged: true }, resources: { subscribe: true, listChanged: true },
      prompts: { listChanged: true }, logging: {}, completions: {} },
    instructions: "Conformance reference server for mcpes tests.",
  });
  let minLevel = 0;
  const log = (level, data, extra) => {
    if (levels.indexOf(level) < minLevel) return Promise.resolve();
    return extra.sendNotification({ method: "notifications/message", params: { level, logger: "conformance", data } });
  };
  s.setRequestHandler(ListToolsRequestSchema, async () => ({ tools }));
  s.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
    const { name, arguments: args = {} } = req.params;
    switch (name) {
      case "test_simple_text": return text("This is a simple text response for testing.");
      case "test_image_content": return { content: [{ type: "image", data: PNG, mimeType: "image/png" }] };
      case "test_audio_content": return { content: [{ type: "audio", data: WAV, mimeType: "audio/wav" }] };
      case "test_embedded_resource":
        return { content: [{ type: "resource", resource: { uri: "test://embedded-resource", mimeType: "text/plain", text: "Embedded content." } }] };
      case "test_multiple_content_types":
        return { content: [{ type: "text", text: "Several kinds:" }, { type: "image", data: PNG, mimeType: "image/png" },
          { type: "resource", resource: { uri: "test://mixed", mimeType: "application/json", text: "{\"n\":1}" } }] };
      case "test_tool_with_logging":
        for (const m of ["Tool execution started", "Tool processing data", "Tool execution completed"]) {
          await log("info", m, extra);
          await sleep(20);
        }
        return text("logged");
      case "test_tool_with_progress": {
        // steps and delayMs (optional) make a longer run; by default three steps.
        const token = req.params._meta?.progressToken ?? 0;
        const steps = Math.min(Number(args.steps ?? 2), 100), delay = Math.min(Number(args.delayMs ?? 20), 1000);
        for (let i = 0; i <= steps; i++) {
          const p = Math.round((100 * i) / steps);
          await extra.sendNotification({ method: "notifications/progress", params: { progressToken: token, progress: p, total: 100, message: `step ${p}` } });
          if (i < steps) await sleep(delay);
        }
        return text(String(token));
      }
      case "test_error_handling":
        return { isError: true, content: [{ type: "text", text: "This tool intentionally returns an error for testing" }] };
      case "test_reconnection": {
        const t = getTransport();
        if (t && extra.requestId !== undefined) t.closeSSEStream(extra.requestId);
        await sleep(100);
        return text("Reconnection test completed successfully.");
      }
      case "test_sampling": {
        const r = await extra.sendRequest({ method: "sampling/createMessage",
          params: { messages: [{ role: "user", content: { type: "text", text: String(args.prompt) } }], maxTokens: 100 } },
          CreateMessageResultSchema);
        return text(`LLM response: ${r.content?.text ?? "none"}`);
      }
      case "test_elicitation": {
        if (args.delayMs) await sleep(Math.min(Number(args.delayMs), 5000));
        const r = await extra.sendRequest({ method: "elicitation/create", params: { mode: "form", message: String(args.message),
          requestedSchema: { type: "object", properties: { response: { type: "string" } }, required: ["response"] } } }, ElicitResultSchema);
        return text(`User response: action=${r.action}, content=${JSON.stringify(r.content ?? {})}`);
      }
      case "test_elicitation_sep1034_defaults":
      case "test_elicitation_sep1330_enums": {
        const r = await extra.sendRequest({ method: "elicitation/create", params: { mode: "form", ...elicitForms[name] } }, ElicitResultSchema);
        return text(`Elicitation completed: action=${r.action}, content=${JSON.stringify(r.content ?? {})}`);
      }
      case "test_roots": {
        const r = await extra.sendRequest({ method: "roots/list" }, ListRootsResultSchema);
        return text(JSON.stringify(r.roots));
      }
      case "test_elicitation_url": {
        const r = await extra.sendRequest({ method: "elicitation/create", params: { mode: "url", message: "Sign in",
          url: "https://example.com/consent", elicitationId: "e-1" } }, ElicitResultSchema);
        return text(`url elicitation: action=${r.action}`);
      }
      case "test_resource_link":
        return { content: [{ type: "resource_link", uri: "test://static-text", name: "static-text", mimeType: "text/plain" }] };
      case "json_schema_2020_12_tool": return text(`called with ${JSON.stringify(args)}`);
      case "annotated_tool": return { content: [{ type: "text", text: "{\"n\":1}" }], structuredContent: { n: 1 } };
    }
    // An unknown tool is a protocol error whose code and data must survive a relay.
    const err = new Error(`Unknown tool: ${name}`);
    err.code = -32602;
    err.data = { tool: name };
    throw err;
  });
  s.setRequestHandler(ListResourcesRequestSchema, async () => ({ resources }));
  s.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({ resourceTemplates: [
    { uriTemplate: "test://template/{id}/data", name: "template", title: "Template", description: "Data by id", mimeType: "application/json" }] }));
  s.setRequestHandler(ReadResourceRequestSchema, async (req) => {
    const uri = req.params.uri;
    if (uri === "test://static-binary") return { contents: [{ uri, mimeType: "image/png", blob: PNG }] };
    if (uri === "test://static-text") return { contents: [{ uri, mimeType: "text/plain", text: "This is the content of the static text resource." }] };
    if (uri === "test://watched-resource") return { contents: [{ uri, mimeType: "text/plain", text: "Watched resource content" }] };
    const m = /^test:\/\/template\/([^/]+)\/data$/.exec(uri);
    if (m) return { contents: [{ uri, mimeType: "application/json", text: JSON.stringify({ id: m[1], templateTest: true, data: `Data for ID: ${m[1]}` }) }] };
    const err = new Error(`Resource not found: ${uri}`);
    err.code = -32002;
    err.data = { uri };
    throw err;
  });
  s.setRequestHandler(SubscribeRequestSchema, async (req, extra) => {
    setTimeout(() => s.notification({ method: "notifications/resources/updated", params: { uri: req.params.uri } }).catch(() => {}), 20);
    return {};
  });
  s.setRequestHandler(UnsubscribeRequestSchema, async () => ({}));
  s.setRequestHandler(ListPromptsRequestSchema, async () => ({ prompts }));
  s.setRequestHandler(GetPromptRequestSchema, async (req) => {
    const a = req.params.arguments ?? {};
    switch (req.params.name) {
      case "test_simple_prompt":
        return { messages: [{ role: "user", content: { type: "text", text: "This is a simple prompt for testing." } }] };
      case "test_prompt_with_arguments":
        return { messages: [{ role: "user", content: { type: "text", text: `Prompt with arguments: arg1='${a.arg1}', arg2='${a.arg2}'` } }] };
      case "test_prompt_with_embedded_resource":
        return { messages: [
          { role: "user", content: { type: "resource", resource: { uri: a.resourceUri, mimeType: "text/plain", text: "Embedded resource content for testing." } } },
          { role: "user", content: { type: "text", text: "Please process the embedded resource above." } }] };
      case "test_prompt_with_image":
        return { messages: [{ role: "user", content: { type: "image", data: PNG, mimeType: "image/png" } },
          { role: "user", content: { type: "text", text: "Please analyze the image above." } }] };
    }
    const err = new Error(`Unknown prompt: ${req.params.name}`);
    err.code = -32602;
    throw err;
  });
  s.setRequestHandler(SetLevelRequestSchema, async (req) => {
    minLevel = Math.max(0, levels.indexOf(req.params.level));
    return {};
  });
  s.setRequestHandler(CompleteRequestSchema, async (req) => {
    const v = req.params.argument?.value ?? "";
    const values = ["alpha", "beta", "gamma"].filter((x) => x.startsWith(v));
    return { completion: { values, total: values.length, hasMore: false } };
  });
  return s;
}

function eventStore() {
  const events = []; // {id, stream, message}
  let seq = 0;
  return {
    async storeEvent(stream, message) {
      const id = `${stream}_${String(++seq).padStart(8, "0")}`;
      events.push({ id, stream, message });
      if (events.length > 1000) events.shift();
      return id;
    },
    async replayEventsAfter(last, { send }) {
      const i = events.findIndex((e) => e.id === last);
      if (i < 0) throw new Error("unknown event id");
      const stream = events[i].stream;
      for (const e of events.slice(i + 1)) if (e.stream === stream) await send(e.id, e.message);
      return stream;
    },
  };
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const s = Buffer.concat(chunks).toString("utf8");
  return s ? JSON.parse(s) : undefined;
}

const httpServer = http.createServer(async (req, res) => {
  if (!req.url.startsWith("/mcp")) { res.writeHead(404).end(); return; }
  try {
    const sid = req.headers["mcp-session-id"];
    const body = req.method === "POST" ? await readBody(req) : undefined;
    let t = sid ? sessions.get(sid) : undefined;
    if (!t) {
      const isInit = body && !Array.isArray(body) && body.method === "initialize";
      if (sid || !isInit) {
        res.writeHead(sid ? 404 : 400, { "Content-Type": "application/json" })
          .end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32000, message: sid ? "Session not found" : "Missing session id" } }));
        return;
      }
      const port = httpServer.address().port;
      t = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(), eventStore: eventStore(), retryInterval: 200,
        enableDnsRebindingProtection: true, allowedHosts: [`127.0.0.1:${port}`, `localhost:${port}`],
        onsessioninitialized: (id) => sessions.set(id, t),
      });
      const tr = t;
      tr.onclose = () => { if (tr.sessionId) sessions.delete(tr.sessionId); };
      await newServer(() => tr).connect(tr);
    }
    await t.handleRequest(req, res, body);
  } catch (err) {
    if (!res.headersSent) res.writeHead(400, { "Content-Type": "application/json" })
      .end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32700, message: String(err?.message ?? err) } }));
  }
});

httpServer.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  process.stdout.write(`listening http://127.0.0.1:${httpServer.address().port}/mcp\n`);
});
process.on("SIGTERM", () => process.exit(0));
