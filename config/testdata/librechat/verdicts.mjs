// Prints LibreChat's verdict on every *.yaml case in this directory, as one JSON
// object keyed by file name: {ok, error?, servers: {name: {type, fields}}}.
// Run: node verdicts.mjs <dir of testdata/npm>. The cases are judged with the schema
// LibreChat itself validates librechat.yaml with (librechat-data-provider's
// MCPServersSchema), after loading the file with js-yaml as LibreChat does.
import { createRequire } from 'node:module';
import { readdirSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const npmDir = process.argv[2];
if (!npmDir) {
  console.error('usage: node verdicts.mjs <testdata/npm dir>');
  process.exit(2);
}
const require = createRequire(join(npmDir, 'package.json'));
const { MCPServersSchema } = require('librechat-data-provider');
const yaml = require('js-yaml');

const here = dirname(fileURLToPath(import.meta.url));
const out = {};
for (const file of readdirSync(here).filter((f) => f.endsWith('.yaml')).sort()) {
  let doc;
  try {
    doc = yaml.load(readFileSync(join(here, file), 'utf8'));
  } catch (err) {
    out[file] = { ok: false, error: 'yaml: ' + err.message };
    continue;
  }
  let res;
  try {
    res = MCPServersSchema.safeParse(doc?.mcpServers);
  } catch (err) {
    // Some refinements throw (new URL('') inside a refine): LibreChat then fails to
    // load the file, which is a refusal too.
    out[file] = { ok: false, error: 'schema threw: ' + err.message };
    continue;
  }
  if (!res.success) {
    out[file] = { ok: false, error: res.error.issues.map((i) => i.path.join('.') + ': ' + i.message).join('; ') };
    continue;
  }
  const servers = {};
  for (const [name, cfg] of Object.entries(res.data)) {
    servers[name] = { type: cfg.type, fields: Object.keys(cfg).filter((k) => cfg[k] !== undefined).sort() };
  }
  out[file] = { ok: true, servers };
}
process.stdout.write(JSON.stringify(out, null, 1) + '\n');
