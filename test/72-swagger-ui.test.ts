/**
 * 72 Swagger UI: the page at /api/v1/swagger/index.html, opened in a real browser (Debian's chromium, headless,
 * driven by playwright-core; scripts/provision.sh installs it), lists every operation of the OpenAPI document,
 * and "Try it out" calls the API: 401 before the token is given through "Authorize", 200 with this node's
 * counters after.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startBroker, type RunningBroker, httpBase } from './helpers/broker.js';
import { strictConnect } from './helpers/strict/tap.js';

const TOKEN = 'swagger-t0ken';
let broker: RunningBroker;
let base: string;
let browser: Browser;
let page: Page;
let client: MqttClient;

before(async () => {
  broker = await startBroker({ config: { http: { enable: true, host: '127.0.0.1', port: 0, tokens: [TOKEN] } } });
  base = await httpBase(broker);
  // One client, so that the counters the page shows are not all zero.
  client = strictConnect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'swagger-ui-watcher', reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  page = await browser.newPage();
  await page.goto(`${base}/api/v1/swagger/index.html`);
  await page.locator('.opblock').first().waitFor();
});

after(async () => {
  await browser?.close();
  client?.end(true);
  await broker?.stop();
});

test('the page shows our API and lists every operation of /api/v1/openapi.json', async () => {
  const doc = (await (await fetch(`${base}/api/v1/openapi.json`)).json()) as {
    info: { title: string };
    paths: Record<string, Record<string, unknown>>;
  };
  const methods = new Set(['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace']);
  const documented = Object.entries(doc.paths)
    .flatMap(([path, item]) => Object.keys(item).filter((m) => methods.has(m)).map((m) => `${m.toUpperCase()} ${path}`))
    .sort();
  assert.ok(documented.length >= 10, `the document has ${documented.length} operations`);
  assert.match((await page.locator('.info .title').textContent()) ?? '', new RegExp(`^${doc.info.title}`));
  const listed = await page.locator('.opblock').evaluateAll((blocks) =>
    blocks.map((b) => `${b.querySelector('.opblock-summary-method')?.textContent ?? '?'} ${b.querySelector('.opblock-summary-path')?.getAttribute('data-path') ?? '?'}`));
  assert.deepEqual(listed.sort(), documented);
});

/** Opens GET /stats, turns "Try it out" on (once), presses "Execute" and waits for the call to be answered. */
async function executeStats(): Promise<{ status: string; body: string; curl: string }> {
  const op = page.locator('#operations-default-get_stats');
  if (!(await op.locator('.execute').isVisible())) {
    if (!(await op.locator('.try-out__btn').isVisible())) await op.locator('.opblock-summary-control').click();
    await op.locator('.try-out__btn').click();
  }
  const answered = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/stats');
  await op.locator('.execute').click();
  const res = await answered;
  // The rendered answer: the status cell of the live response must show what the server said.
  const status = op.locator('.live-responses-table .response-col_status', { hasText: String(res.status()) });
  await status.waitFor();
  return {
    status: ((await status.textContent()) ?? '').trim(),
    body: (await op.locator('.live-responses-table .response-col_description pre').first().textContent()) ?? '',
    curl: (await op.locator('.curl-command').textContent()) ?? '',
  };
}

test('"Try it out" without authorizing shows 401 and the JSON error', async () => {
  const { status, body } = await executeStats();
  assert.equal(status, '401');
  assert.deepEqual(JSON.parse(body), { code: 'UNAUTHORIZED', message: 'a valid x-token header is required' });
});

test('after "Authorize" with the x-token, "Try it out" on GET /stats shows 200 and this node\'s counters', async () => {
  const stats = (await (await fetch(`${base}/api/v1/stats`, { headers: { 'x-token': TOKEN } })).json()) as { node: string };
  assert.equal(typeof stats.node, 'string');
  await page.locator('.auth-wrapper .authorize').click();
  const modal = page.locator('.modal-ux');
  await modal.locator('code', { hasText: 'x-token' }).waitFor();
  await modal.locator('input').fill(TOKEN);
  await modal.locator('button[type=submit]').click();
  // Authorized: the dialog now offers "Logout" instead of the input.
  await modal.locator('button', { hasText: 'Logout' }).waitFor();
  await modal.locator('.btn-done').click();
  await modal.waitFor({ state: 'detached' });

  const { status, body, curl } = await executeStats();
  assert.equal(status, '200');
  const shown = JSON.parse(body) as { node: string; connections: number };
  assert.equal(shown.node, stats.node);
  assert.ok(shown.connections >= 1, `connections ${shown.connections}`);
  assert.match(curl, new RegExp(`x-token: ${TOKEN}`), 'the call carried the token');
});
