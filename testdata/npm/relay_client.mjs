// relay_client.mjs: a client on the official TypeScript SDK for the /mcp/{server}
// tests. It declares sampling, elicitation (form and URL) and roots and answers
// them deterministically, lists what the server offers, makes the calls of the
// plan, and counts on the wire (a fetch wrapper reading the event streams) how
// many progress notifications of each call arrived before its result: the SDK
// client itself drops one that shares a read with the result.
//
//   node relay_client.mjs '<plan JSON>'
//
// plan: {"url": "...", "token": "..." | "command": "...", "args": [...] (stdio, no wire counts), "calls": [{"name": "...", "arguments": {}, "progress": true}],
//        "list": true, "who": "name in answers", "elicitDelayMs": 0, "readLinks": true,
//        "rootsChanged": true (after the calls: notifications/roots/list_changed, then 500 ms)}
// output: {"tools": [...], "prompts": [...], "resources": [...], "templates": [...],
//          "calls": [{"result": {...}} | {"error": {"code", "message", "data"}}],
//          "wire": [n, ...], "asked": ["sampling/createMessage", ...],
//          "reads": [readResource result of each resource link the calls returned]}
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const plan = JSON.parse(process.argv[2] ?? "{}");
const out = { tools: [], prompts: [], resources: [], templates: [], calls: [], wire: [], asked: [], reads: [] };

// wire[id] counts progress notifications seen before the response to request id.
const seen = new Map();
const answered = new Set();
function watch(text) {
  for (const line of text.split("\n")) {
    if (!line.startsWith("data:")) continue;
    let m;
    try { m = JSON.parse(line.slice(5)); } catch { continue; }
    if (m.method === "notifications/progress") {
      const k = JSON.stringify(m.params.progressToken);
      if (!answered.has(k)) seen.set(k, (seen.get(k) ?? 0) + 1);
    } else if (m.id !== undefined && !m.method) {
      answered.add(JSON.stringify(m.id));
    }
  }
}
async function wiredFetch(url, init) {
  const res = await fetch(url, init);
  if (!(res.headers.get("content-type") ?? "").includes("text/event-stream") || !res.body) return res;
  const [a, b] = res.body.tee();
  (async () => {
    const dec = new TextDecoderStream();
    const reader = b.pipeThrough(dec).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ done: true }));
      if (done) break;
      buf += value;
      const cut = buf.lastIndexOf("\n\n");
      if (cut >= 0) { watch(buf.slice(0, cut)); buf = buf.slice(cut + 2); }
    }
  })();
  return new Response(a, { status: res.status, statusText: res.statusText, headers: res.headers });
}

const headers = plan.token ? { Authorization: `Bearer ${plan.token}` } : {};
const transport = plan.command
  ? new StdioClientTransport({ command: plan.command, args: plan.args ?? [], stderr: "ignore" })
  : new StreamableHTTPClientTransport(new URL(plan.url), { requestInit: { headers }, fetch: wiredFetch });
const client = new Client({ name: "mcpes-relay-test", version: "0.0.0" },
  { capabilities: { sampling: {}, elicitation: { form: {}, url: {} }, roots: { listChanged: true } } });
client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
  out.asked.push(req.method);
  return { role: "assistant", model: "test-model", content: { type: "text", text: `sampled: ${req.params.messages[0].content.text}` } };
});
client.setRequestHandler(ElicitRequestSchema, async (req) => {
  out.asked.push(`${req.method}:${req.params.mode ?? "form"}`);
  if (plan.elicitDelayMs) await new Promise((r) => setTimeout(r, plan.elicitDelayMs));
  if (req.params.mode === "url") return { action: "accept" };
  return { action: "accept", content: { response: `${plan.who ?? "client"} answers` } };
});
client.setRequestHandler(ListRootsRequestSchema, async (req) => {
  out.asked.push(req.method);
  return { roots: [{ uri: "file:///tmp/mcpes-root", name: plan.who ?? "root" }] };
});

try {
  await client.connect(transport);
  if (plan.list) {
    out.tools = (await client.listTools()).tools;
    out.prompts = (await client.listPrompts()).prompts;
    out.resources = (await client.listResources()).resources;
    out.templates = (await client.listResourceTemplates()).resourceTemplates;
  }
  let n = 0;
  for (const call of plan.calls ?? []) {
    const options = call.progress ? { onprogress: () => {} } : {};
    const before = new Set(seen.keys());
    try {
      const result = await client.callTool({ name: call.name, arguments: call.arguments ?? {} }, undefined, options);
      out.calls.push({ result });
      for (const c of plan.readLinks ? result.content ?? [] : []) {
        if (c.type === "resource_link") out.reads.push(await client.readResource({ uri: c.uri }));
      }
    } catch (err) {
      out.calls.push({ error: { code: err?.code, message: String(err?.message ?? err), data: err?.data } });
    }
    await new Promise((r) => setTimeout(r, 5));
    let count = 0;
    for (const [k, v] of seen) if (!before.has(k)) count += v;
    out.wire.push(count);
    n++;
  }
  if (plan.rootsChanged) {
    await client.sendRootsListChanged();
    await new Promise((r) => setTimeout(r, 500));
  }
} catch (err) {
  out.fatal = String(err?.stack ?? err);
} finally {
  await client.close().catch(() => {});
}
process.stdout.write(JSON.stringify(out) + "\n");
