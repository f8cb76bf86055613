// Drives the dashboard in headless Chromium (the system's, never a downloaded one) for
// tests/dashboard_browser.rs and scripts/screenshots.
//
//   node dashboard.mjs snapshot URL            → one JSON line: the tiles as the page shows them
//   node dashboard.mjs live URL                → "READY <json>", then waits for the page to update by
//                                                itself (no reload) and prints "UPDATED <json>"
//   node dashboard.mjs screenshot URL FILE.png → a full-page screenshot
//   node dashboard.mjs timings URL N           → N reloads; per data call the durations (ms) seen by the page
//   node dashboard.mjs calls URL N [HOSPITAL]  → every data call N times in turn (no browser): p50/p95 ms
//
// The token, when needed, goes in PF_TOKEN (handed to the page in the URL fragment, never logged).
// Chromium: PF_CHROMIUM, else /usr/bin/chromium.
import puppeteer from 'puppeteer-core';

const [mode, url, arg] = process.argv.slice(2);
const executablePath = process.env.PF_CHROMIUM || '/usr/bin/chromium';
const token = process.env.PF_TOKEN || '';
const timeoutMs = Number(process.env.PF_TIMEOUT_MS || 120000);
const pageUrl = token ? `${url}#token=${encodeURIComponent(token)}` : url;

const problems = [];

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo);
}

if (mode === 'calls') {
  // Sequential data calls as one client makes them, timed end to end (HTTP included).
  const n = Number(arg || 20);
  const hospital = process.argv[5] || '';
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const data = new URL('data/', url.endsWith('/') ? url : url + '/');
  const catalog = await (await fetch(new URL('catalog', data), { headers })).json();
  const ids = ['version', ...catalog.tiles.map((t) => t.id)];
  const result = {};
  for (const id of ids) {
    const t = catalog.tiles.find((x) => x.id === id);
    const q = hospital && t && t.per_hospital ? `?hospital=${hospital}` : '';
    const times = [];
    let rows = 0;
    let server = [];
    for (let i = 0; i < n + 2; i++) {
      const started = performance.now();
      const r = await fetch(new URL(id + q, data), { headers });
      const body = await r.json();
      const ms = performance.now() - started;
      if (!r.ok) throw new Error(`${id}: HTTP ${r.status} ${JSON.stringify(body)}`);
      if (i >= 2) {
        times.push(ms);
        if (body.elapsed_ms !== undefined) server.push(body.elapsed_ms);
      }
      rows = body.rows ? body.rows.length : 0;
    }
    result[id] = { rows, p50_ms: quantile(times, 0.5), p95_ms: quantile(times, 0.95), max_ms: Math.max(...times), query_p95_ms: server.length ? quantile(server, 0.95) : null };
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

const browser = await puppeteer.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--headless=new', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1400,1000'],
  defaultViewport: { width: 1400, height: 1000 },
});

function collect() {
  const tiles = [...document.querySelectorAll('section[data-tile]')].map((s) => ({
    id: s.dataset.tile,
    state: s.dataset.state,
    loadedAt: s.dataset.loadedAt || '',
    kpis: Object.fromEntries([...s.querySelectorAll('[data-kpi]')].map((e) => [e.dataset.kpi, e.dataset.value])),
    rows: [...s.querySelectorAll('table[data-source=rows] tbody tr')].map((tr) =>
      Object.fromEntries([...tr.querySelectorAll('td[data-col]')].map((td) => [td.dataset.col, td.dataset.value]))),
  }));
  return {
    loadId: window.__pf && window.__pf.loadId,
    updates: window.__pf ? window.__pf.updates : 0,
    role: document.body.dataset.role || '',
    hospital: document.body.dataset.hospital || '',
    hospitalOptions: [...document.querySelectorAll('#hospital option')].map((o) => o.value).filter(Boolean),
    asOf: document.getElementById('as-of').dataset.value || '',
    tiles,
  };
}

async function open() {
  const page = await browser.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url().split('#')[0]} ${r.failure() && r.failure().errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  await page.goto(pageUrl, { waitUntil: 'load', timeout: timeoutMs });
  await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state), { timeout: timeoutMs });
  return page;
}

function out(prefix, value) {
  process.stdout.write(`${prefix}${JSON.stringify(value)}\n`);
}

try {
  if (mode === 'snapshot') {
    const page = await open();
    out('', { ...(await page.evaluate(collect)), problems });
  } else if (mode === 'live') {
    const page = await open();
    const before = await page.evaluate(collect);
    out('READY ', { ...before, problems });
    const asOf = before.asOf;
    // Updated: the summary shows another "now", and every tile has settled (none loading).
    await page.waitForFunction(
      (old) => {
        const v = document.getElementById('as-of').dataset.value || '';
        const settled = ![...document.querySelectorAll('section[data-tile]')].some((s) => s.dataset.state === 'loading');
        return v && v !== old && settled && window.__pf.updates > 0;
      },
      { timeout: timeoutMs, polling: 250 },
      asOf,
    );
    // Let re-fetches triggered by the same refresh finish (Gold writes its tables one after another).
    await new Promise((r) => setTimeout(r, Number(process.env.PF_SETTLE_MS || 4000)));
    out('UPDATED ', { ...(await page.evaluate(collect)), problems });
  } else if (mode === 'screenshot') {
    const page = await open();
    await new Promise((r) => setTimeout(r, 500));
    await page.screenshot({ path: arg, fullPage: true });
    out('', { screenshot: arg, problems });
  } else if (mode === 'timings') {
    const page = await open();
    const n = Number(arg || 20);
    const calls = {};
    for (let i = 0; i < n; i++) {
      await page.reload({ waitUntil: 'load' });
      await page.waitForFunction(() => document.body.dataset.state === 'ready', { timeout: timeoutMs });
      const entries = await page.evaluate(() =>
        performance.getEntriesByType('resource').filter((e) => e.name.includes('/data/')).map((e) => [e.name.split('/data/')[1].split('?')[0], e.duration]));
      for (const [k, d] of entries) (calls[k] = calls[k] || []).push(d);
    }
    out('', { calls, problems });
  } else {
    throw new Error(`unknown mode '${mode}'`);
  }
} catch (e) {
  out('FAILED ', { error: String(e && e.stack ? e.stack : e), problems });
  process.exitCode = 1;
} finally {
  await browser.close();
}
