// Drives the audit console at $MCPES_URL/ui/ in Debian's chromium through
// playwright-core, for e2e/console_test.go. Scenario "main" signs in as the admin and
// as alice and walks every view; "tamper" only reads the Integrity view; "cluster"
// reads a cluster node's Cluster view. Facts seen
// on the pages go to $RESULT as JSON; the Go test judges them. Screenshots of each view
// go to $SHOTS.
import { chromium } from 'playwright-core';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} not set`);
  return v;
};
const base = env('MCPES_URL');
const shots = env('SHOTS');
const scenario = process.argv[2] ?? 'main';
const timeout = 30_000;
const result = { scenario, steps: [], unlabelled: [] };
const t0 = Date.now();
const step = (name) => result.steps.push(`${Date.now() - t0} ms ${name}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const consoleErrors = [];

async function signIn(token) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  await page.goto(base + '/ui/');
  await page.getByTestId('token-input').fill(token);
  await page.getByTestId('token-input').press('Enter');
  await page.getByTestId('server-row').first().waitFor();
  return { context, page };
}

const shot = (page, name) => page.screenshot({ path: join(shots, name + '.png'), fullPage: true });
// unlabelled lists the form controls of the page that have no accessible name.
const unlabelled = (page) => page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => el.offsetParent !== null && !(el.labels?.length || el.getAttribute('aria-label') || el.textContent.trim()))
  .map((el) => el.outerHTML.slice(0, 80)));
const checkLabels = async (page, view) => { for (const u of await unlabelled(page)) result.unlabelled.push(`${view}: ${u}`); };
const names = (page) => page.getByTestId('server-row').evaluateAll((rows) => rows.map((r) => r.dataset.name));
const timelineEvents = (page) => page.getByTestId('timeline-event').evaluateAll((els) =>
  els.map((e) => ({ type: e.dataset.type, position: Number(e.dataset.position), label: e.getAttribute('aria-label') })));

async function integrity(page, name) {
  await page.goto(base + '/ui/#integrity');
  const status = page.locator('[data-testid="verify-status"]:not(.running)');
  await status.waitFor();
  await shot(page, name);
  return { ok: await status.getAttribute('data-ok'), text: await status.innerText(),
    firstBad: (await page.locator('#first-bad').count()) ? await page.locator('#first-bad').innerText() : '' };
}

try {
  if (scenario === 'main') {
    // Admin: servers and a detail view.
    step('browser up');
    const admin = await signIn(env('ADMIN_TOKEN'));
    step('admin signed in');
    let page = admin.page;
    result.adminServers = await names(page);
    result.driftBadges = await page.locator('[data-testid="server-row"]:has(.badge.drift)').evaluateAll((rows) => rows.map((r) => r.dataset.name));
    await shot(page, '1-servers');
    await checkLabels(page, 'servers');
    await page.getByRole('link', { name: env('DETAIL_SERVER'), exact: true }).click();
    await page.getByRole('heading', { name: 'Tools' }).or(page.getByRole('heading', { name: /^Tools/ })).first().waitFor();
    result.detailHeading = await page.locator('#view h2').innerText();
    await shot(page, '2-server-detail');
    await checkLabels(page, 'detail');
    step('detail');

    // Timeline: a config change made now appears without reloading the page.
    await page.goto(base + '/ui/#timeline');
    await page.locator('.lanes').waitFor();
    const before = await timelineEvents(page);
    result.timelineBefore = before.length;
    const change = env('CHANGE_SERVER');
    const res = await fetch(`${base}/v1/servers/${change}`, {
      method: 'PUT',
      headers: { Authorization: 'Bearer ' + env('ADMIN_TOKEN'), 'Content-Type': 'application/json' },
      body: env('CHANGE_BODY'),
    });
    result.changeStatus = res.status;
    const known = new Set(before.map((e) => e.position));
    const sel = '[data-testid="timeline-event"][data-type="mcpes.server.config_changed.v1"]';
    await page.waitForFunction(([s, k]) => [...document.querySelectorAll(s)].some((e) => !k.includes(Number(e.dataset.position))),
      [sel, [...known]], { timeout });
    result.liveChange = (await timelineEvents(page)).filter((e) => e.type === 'mcpes.server.config_changed.v1' && !known.has(e.position));
    await shot(page, '3-timeline');
    await checkLabels(page, 'timeline');
    step('timeline live change');

    // Explain as of a given time, the same question the Go test asks the CLI.
    await page.goto(base + '/ui/#explain');
    await page.locator('#ex-owner').fill(env('EXPLAIN_OWNER'));
    await page.locator('#ex-server').fill(env('EXPLAIN_SERVER'));
    await page.locator('#ex-at').fill(env('EXPLAIN_AT'));
    await page.getByRole('button', { name: 'Explain' }).click();
    await page.getByTestId('explain-verdict').waitFor();
    result.explainVerdict = await page.getByTestId('explain-verdict').innerText();
    result.explainPosition = Number(await page.locator('#ex-position').innerText());
    await shot(page, '4-explain');
    await checkLabels(page, 'explain');
    step('explain');

    result.integrity = await integrity(page, '5-integrity');
    step('integrity');
    await admin.context.close();

    // Alice: her servers and events only.
    const alice = await signIn(env('ALICE_TOKEN'));
    page = alice.page;
    result.aliceServers = await names(page);
    await shot(page, '6-alice-servers');
    // by keyboard alone: Tab to the Timeline link and follow it
    for (let i = 0; i < 15; i++) {
      await page.keyboard.press('Tab');
      if (await page.evaluate(() => document.activeElement?.textContent === 'Timeline')) break;
    }
    await page.keyboard.press('Enter');
    await page.locator('.lanes').waitFor();
    result.keyboardTimeline = page.url().endsWith('#timeline');
    result.aliceEvents = await timelineEvents(page);
    await shot(page, '7-alice-timeline');
    await page.goto(base + '/ui/#integrity');
    result.aliceIntegrity = await page.locator('#view').innerText();
    await alice.context.close();
    step('alice');
  } else if (scenario === 'tamper') {
    step('browser up');
    const admin = await signIn(env('ADMIN_TOKEN'));
    result.integrity = await integrity(admin.page, '8-integrity-broken');
    step('integrity');
    await admin.context.close();
  } else if (scenario === 'cluster') {
    // A cluster node's Cluster view: every node's shipped decisions, then one node's.
    step('browser up');
    const admin = await signIn(env('ADMIN_TOKEN'));
    const page = admin.page;
    const rows = () => page.getByTestId('cluster-decision').evaluateAll((els) =>
      els.map((e) => ({ node: e.dataset.node, type: e.dataset.type, rule: e.dataset.rule })));
    await page.getByRole('link', { name: 'Cluster', exact: true }).click();
    await page.getByTestId('cluster-decision').first().waitFor();
    result.clusterRows = await rows();
    await shot(page, '9-cluster-decisions');
    await checkLabels(page, 'cluster');
    step('cluster');
    await page.getByLabel('Node').fill(env('CLUSTER_NODE'));
    await page.getByRole('button', { name: 'Show' }).click();
    await page.waitForFunction((n) => {
      const els = [...document.querySelectorAll('[data-testid="cluster-decision"]')];
      return els.length > 0 && els.every((e) => e.dataset.node === n);
    }, env('CLUSTER_NODE'));
    result.clusterNodeRows = await rows();
    step('one node');
    await admin.context.close();
  } else {
    throw new Error('unknown scenario ' + scenario);
  }
} finally {
  result.consoleErrors = consoleErrors;
  writeFileSync(env('RESULT'), JSON.stringify(result, null, 2));
  await browser.close();
}
