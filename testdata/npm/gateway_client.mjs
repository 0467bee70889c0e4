// gateway_client.mjs: an MCP client built on the official TypeScript SDK, for the
// gateway tests. It connects to one target, lists tools (and prompts and resources
// when asked), makes the calls in the plan in order, and prints one JSON object on
// stdout.
//
//   node gateway_client.mjs '<plan JSON>'
//
// plan: {
//   "url": "http://127.0.0.1:PORT/mcp", "token": "...",   // streamable HTTP, or
//   "command": "node", "args": ["..."],                  // stdio
//   "calls": [{"name": "clock__echo", "arguments": {...}, "progress": true}],
//   "prompts": true, "resources": true
// }
// output: {"tools": [...], "prompts": [...], "resources": [...],
//          "calls": [{"result": {...}} | {"error": "..."}], "progress": [n, ...]}
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const plan = JSON.parse(process.argv[2] ?? "{}");

let transport;
if (plan.url) {
  const headers = plan.token ? { Authorization: `Bearer ${plan.token}` } : {};
  transport = new StreamableHTTPClientTransport(new URL(plan.url), { requestInit: { headers } });
} else {
  transport = new StdioClientTransport({ command: plan.command, args: plan.args ?? [], stderr: "ignore" });
}

const client = new Client({ name: "mcpes-ts-test", version: "0.0.0" });
const out = { tools: [], prompts: [], resources: [], calls: [], progress: [] };

try {
  await client.connect(transport);
  out.tools = (await client.listTools()).tools;
  if (plan.prompts) out.prompts = (await client.listPrompts()).prompts;
  if (plan.resources) out.resources = (await client.listResources()).resources;
  for (const call of plan.calls ?? []) {
    const options = {};
    let seen = 0;
    if (call.progress) options.onprogress = () => { seen++; };
    try {
      const result = await client.callTool({ name: call.name, arguments: call.arguments ?? {} }, undefined, options);
      out.calls.push({ result });
    } catch (err) {
      out.calls.push({ error: String(err?.message ?? err) });
    }
    out.progress.push(seen);
  }
  if (plan.read) {
    out.read = await client.readResource({ uri: plan.read });
  }
} catch (err) {
  out.fatal = String(err?.stack ?? err);
} finally {
  await client.close().catch(() => {});
}
process.stdout.write(JSON.stringify(out) + "\n");
