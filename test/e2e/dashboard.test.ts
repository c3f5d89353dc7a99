import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.js';
import { ClusterView } from '../../src/api/cluster-view.js';
import { score, T0, testDeps } from './fixtures.js';

// Drives the real dashboard in Debian's headless Chromium against the real app on loopback, with an in-memory action
// engine behind the API seam. Screenshots go to test-artifacts/ (git-ignored) for a human to look at.

const ARTIFACTS = join(process.cwd(), 'test-artifacts');
const OPERATOR_TOKEN = 'e2e-operator-token';
const VIEWER_TOKEN = 'e2e-viewer-token';

const cluster = new ClusterView({ threshold: 0.7 });
const { deps, actions } = testDeps(cluster, 4);
// What /api/model answers; the scorer-in-charge test swaps it for a model lifecycle's answer after a promotion.
let modelInfo: Record<string, unknown> = { name: 'statistical', version: 'stat-v1', kind: 'stat', threshold: 0.7 };
deps.model = { info: () => modelInfo as { name: string; version: string } };
const app = buildApp(deps, {
  tokens: [
    { name: 'olga', token: OPERATOR_TOKEN, role: 'operator' },
    { name: 'vera', token: VIEWER_TOKEN, role: 'viewer' },
  ],
});
let browser: Browser;
let base: string;

async function login(page: Page, token: string): Promise<void> {
  await page.goto(base);
  await page.locator('#token').fill(token);
  await page.locator('#login button[type=submit]').click();
  await page.locator('.card').first().waitFor();
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  // An hour of history: ast1 drifts upwards, the others stay calm.
  for (let i = 0; i < 360; i++) {
    const ts = T0 + i * 10_000;
    cluster.applyScores([
      score('ast1', ts, Math.min(0.95, 0.1 + (i / 360) * 0.6)),
      score('ast2', ts, 0.1 + 0.05 * Math.sin(i / 10)),
      score('ast3', ts, 0.2),
      score('ast4', ts, 0.15, { observed: i < 300 }),
    ]);
  }
  actions.append({
    nodeId: 'ast1',
    kind: 'RestartStarting',
    actor: 'auto',
    reason: 'earlier restart',
    ts: T0 + 600_000,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/`;
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await app.close();
});

describe('dashboard', () => {
  it('loads, shows the cluster and renders the risk chart', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await login(page, OPERATOR_TOKEN);
    await expect.poll(() => page.locator('.card').count()).toBe(4);
    await expect.poll(() => page.locator('#live').textContent()).toBe('live');
    await page.locator('#chart canvas').waitFor();
    expect(await page.locator('#chart').getAttribute('data-points')).toBe('360');
    expect(await page.locator('.card[data-node="ast4"] .badge.unobserved').count()).toBe(1);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-loaded.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('updates the chart and the cards when new scores arrive', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await login(page, OPERATOR_TOKEN);
    await expect.poll(() => page.locator('#live').textContent()).toBe('live');
    await page.locator('#chart canvas').waitFor();
    const before = await page.locator('#chart canvas').screenshot();
    for (let i = 0; i < 12; i++) cluster.applyScores([score('ast1', T0 + (360 + i) * 10_000, 0.97)]);
    await expect.poll(() => page.locator('#chart').getAttribute('data-points')).toBe('372');
    expect(await page.locator('#chart').getAttribute('data-last-risk')).toBe('0.97');
    await expect.poll(() => page.locator('.card[data-node="ast1"] [data-testid=risk]').textContent()).toBe('0.97');
    expect(await page.locator('.card[data-node="ast1"]').getAttribute('class')).toContain('risk-bad');
    const after = await page.locator('#chart canvas').screenshot();
    // The canvas itself changed, not only our bookkeeping.
    expect(after.equals(before)).toBe(false);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-updated.png'), fullPage: true });
    await page.close();
  });

  it('lets an operator drain a node after confirming, and the audit log shows it', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await login(page, OPERATOR_TOKEN);
    await expect.poll(() => page.locator('#live').textContent()).toBe('live');
    await page.locator('.card[data-node="ast2"] button[data-action=drain]').click();
    const dialog = page.locator('#confirm');
    await dialog.waitFor();
    expect(await page.locator('#confirm-title').textContent()).toBe('Drain ast2?');
    // An empty reason is refused by the page before anything is sent.
    await page.locator('#confirm-ok').click();
    expect(actions.calls.filter((c) => c.action === 'drain')).toHaveLength(0);
    await page.locator('#confirm-reason').fill('SIP retransmissions climbing, taking it out');
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-confirm.png') });
    await page.locator('#confirm-ok').click();
    await expect.poll(() => dialog.isVisible()).toBe(false);

    const row = page.locator('#audit li[data-kind=DrainStarting]').first();
    await row.waitFor();
    expect(await row.textContent()).toContain('ast2');
    expect(await row.textContent()).toContain('olga');
    expect(await row.textContent()).toContain('SIP retransmissions climbing');
    await expect.poll(() => page.locator('.card[data-node="ast2"] [data-testid=state]').textContent()).toBe('draining');
    expect(actions.calls).toContainEqual({
      action: 'drain',
      id: 'ast2',
      ctx: { actor: 'olga', reason: 'SIP retransmissions climbing, taking it out', force: false },
    });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-drained.png'), fullPage: true });
    await page.close();
  });

  it('shows which scorer drives decisions, since when and why, and follows a promotion', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await login(page, VIEWER_TOKEN);
    await expect.poll(() => page.locator('#scorer-in-charge').textContent()).toBe('stat (stat-v1)');
    await expect.poll(() => page.locator('#live').textContent()).toBe('live');
    const since = new Date(T0 + 3_600_000).toISOString();
    modelInfo = {
      name: 'cluster-1',
      version: 'tfjs-ae-v1',
      kind: 'tfjs',
      inCharge: {
        kind: 'tfjs',
        name: 'cluster-1',
        path: '/var/models/cluster-1',
        since,
        why: 'promoted: beat stat-v1 on the held-back recording and in 60 min of shadow',
        reasons: ['ok false alarms at the threshold: cluster-1 0.37 % (3) vs stat-v1 2.97 % (24)'],
        validation: null,
      },
      previous: { kind: 'stat', name: 'stat-v1', since: null, why: 'start', reasons: [], validation: null },
      lifecycle: { phase: 'idle', phaseSince: since, nextCycleAt: since, shadow: null, lastCycle: null },
    };
    // The promotion's audit record reaches the page over SSE, which makes it ask /api/model again.
    actions.append({ nodeId: 'model', kind: 'ModelPromoted', actor: 'auto', reason: 'promoted' });
    await expect.poll(() => page.locator('#scorer-in-charge').textContent()).toBe('tfjs (cluster-1)');
    expect(await page.locator('#scorer-in-charge').getAttribute('data-kind')).toBe('tfjs');
    const line = await page.locator('#scorer-line').textContent();
    expect(line).toContain('promoted: beat stat-v1');
    expect(line).toContain(`since ${await page.evaluate((s) => new Date(Date.parse(s)).toLocaleString(), since)}`);
    await page.locator('#scorer summary').click();
    expect(await page.locator('#scorer li').first().textContent()).toContain('0.37 % (3) vs stat-v1 2.97 % (24)');
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-scorer.png'), fullPage: true });
    await page.close();
  });

  it('shows no override buttons to a viewer and asks again for a wrong token', async () => {
    const page = await browser.newPage();
    await login(page, VIEWER_TOKEN);
    expect(await page.locator('.card button').count()).toBe(0);
    await page.evaluate(() => sessionStorage.setItem('foresight.token', 'wrong'));
    await page.reload();
    await page.locator('#login').waitFor();
    expect(await page.locator('#login-error').textContent()).toContain('not accepted');
    await page.close();
  });
});
