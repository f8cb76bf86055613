// patientflow dashboard: tiles from /api/dashboard/data/{tile}, refreshed when the versions of their
// tables change (polled from /api/dashboard/data/version). No data is embedded in the page.
(() => {
  'use strict';
  const C = {
    blue: '#0072B2', orange: '#E69F00', sky: '#56B4E9', green: '#009E73',
    yellow: '#F0E442', vermillion: '#D55E00', purple: '#CC79A7', black: '#000000', grey: '#999999',
  };
  const PALETTE = [C.blue, C.orange, C.green, C.vermillion, C.purple, C.sky, C.black, C.yellow];
  const WIDE = new Set(['summary', 'occupancy', 'census_48h', 'hospitals']);
  const pf = (window.__pf = { loadId: Math.random().toString(36).slice(2), updates: 0, polls: 0 });

  // A token may be handed over in the fragment (#token=...): kept for this tab only, removed from the URL.
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get('token')) {
    sessionStorage.setItem('pf_token', hash.get('token'));
    history.replaceState(null, '', location.pathname + location.search);
  }
  const query = new URLSearchParams(location.search);
  let hospital = query.get('hospital') || '';
  const pollMs = Math.max(500, Number(query.get('poll')) || 5000);

  async function get(path) {
    const headers = {};
    const t = sessionStorage.getItem('pf_token');
    if (t) headers.Authorization = 'Bearer ' + t;
    const r = await fetch(new URL('data/' + path, document.baseURI), { headers, cache: 'no-store' });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      const msg = (body.error && (body.error.message || body.error)) || r.statusText;
      throw new Error(`${r.status}: ${typeof msg === 'string' ? msg : JSON.stringify(msg)}`);
    }
    return body;
  }

  // ---------- formatting ----------
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k === 'style') e.setAttribute('style', v);
      else e.setAttribute(k, v);
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  };
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  const ts = (v) => (v ? new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(v) ? v : v + 'Z') : null);
  function fmtTime(v) {
    const d = ts(v);
    if (!d || isNaN(d)) return v ?? '–';
    return d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  }
  function fmtLag(s) {
    if (!isNum(s)) return '–';
    if (s < 120) return `${s} s`;
    if (s < 7200) return `${Math.round(s / 60)} min`;
    if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
    return `${(s / 86400).toFixed(1)} d`;
  }
  const int = (v) => (isNum(v) ? Math.round(v).toLocaleString('en-US') : '–');
  const pct = (v) => (isNum(v) ? `${v.toFixed(1)} %` : '–');
  function fmt(col, type, v) {
    if (v === null || v === undefined) return '–';
    if (/Timestamp/.test(type)) return fmtTime(v);
    if (col === 'month_key') return `${String(v).slice(0, 4)}-${String(v).slice(4)}`;
    if (col === 'hour_of_day') return `${String(v).padStart(2, '0')}:00`;
    if (!isNum(v)) return String(v);
    if (col.endsWith('_pct')) return pct(v);
    if (col.endsWith('_minutes')) return `${Math.round(v)} min`;
    if (col === 'alos_days') return `${v.toFixed(2)} d`;
    if (col.endsWith('_hours') || col === 'hours') return `${v.toFixed(1)} h`;
    if (col === 'lag_seconds') return fmtLag(v);
    if (col === 'duration_ms') return `${int(v)} ms`;
    if (col === 'threshold' || col.endsWith('_value')) return v.toFixed(1);
    return int(v);
  }
  const num = (v) => (v === null || v === undefined ? null : v);

  // The tile's rows as a table; every cell carries its raw value (data-value) for checks.
  function dataTable(d) {
    const cols = d.columns;
    const thead = el('thead', {}, el('tr', {}, ...cols.map((c) => el('th', { class: /Int|Float|Decimal/.test(c.type) ? 'n' : '', text: c.name.replace(/_/g, ' ') }))));
    const tbody = el('tbody');
    d.rows.forEach((r, i) => {
      const tr = el('tr', { 'data-row': i });
      for (const c of cols) {
        const v = r[c.name];
        const td = el('td', {
          class: /Int|Float|Decimal/.test(c.type) ? 'n' : '',
          'data-col': c.name,
          'data-value': v === undefined || v === null ? '' : JSON.stringify(v),
        });
        if (c.name === 'status') td.append(el('span', { class: `badge ${v}`, text: v }));
        else td.textContent = fmt(c.name, c.type, v);
        tr.append(td);
      }
      tbody.append(tr);
    });
    return el('div', { class: 'scroll' }, el('table', { class: 'data', 'data-source': 'rows' }, thead, tbody));
  }
  const fig = (label, key, value, text) =>
    el('div', { class: 'fig' }, el('b', { 'data-kpi': key, 'data-value': value === null || value === undefined ? '' : JSON.stringify(value), text }), el('span', { class: 'l', text: label }));
  const level = (p) => (!isNum(p) ? 'lvl-ok' : p >= 95 ? 'lvl-crit' : p >= 85 ? 'lvl-high' : 'lvl-ok');
  function bar(p, max = 120) {
    const b = el('div', { class: 'bar', role: 'img', 'aria-label': pct(p) });
    b.append(el('div', { class: `fill ${level(p)}`, style: `width:${Math.min(100, (100 * (p || 0)) / max)}%` }));
    b.append(el('div', { class: 'mark m85', style: `left:${(100 * 85) / max}%` }));
    b.append(el('div', { class: 'mark m95', style: `left:${(100 * 95) / max}%` }));
    return b;
  }
  const thresholdLegend = () =>
    el('div', { class: 'legend' },
      el('span', {}, el('i', { style: `background:${C.blue}` }), '< 85 %'),
      el('span', {}, el('i', { style: `background:${C.orange}` }), '85–95 %'),
      el('span', {}, el('i', { style: `background:${C.vermillion}` }), '≥ 95 %'),
      el('span', {}, el('i', { class: 'dash' }), '85 % line'),
      el('span', {}, el('i', { class: 'dash', style: `border-color:${C.vermillion}` }), '95 % line'));
  const details = (d, open) => {
    const x = el('details', open ? { open: '' } : {}, el('summary', { text: `Data (${d.rows.length} rows) and definition` }));
    x.append(el('p', { class: 'doc', text: d.doc }), dataTable(d));
    return x;
  };

  let renderWidth = 600;
  function lineChart(target, xs, series, opts = {}) {
    const width = Math.max(280, renderWidth);
    const single = xs.length === 1 ? [xs[0] - 3600, xs[0] + 3600] : undefined;
    const u = new uPlot({
      width, height: opts.height || 220,
      scales: { x: { time: opts.time !== false, range: single } },
      series: [{ label: opts.xLabel || 'time' }, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, dash: s.dash, points: { show: xs.length < 3 }, value: (u, v) => (v === null ? '–' : `${Math.round(v * 10) / 10}${s.unit || ''}`) }))],
      axes: [{ values: opts.xValues }, { label: opts.yLabel, size: 60 }],
      legend: { live: true },
    }, [xs, ...series.map((s) => s.values)], target);
    return u;
  }

  // ---------- tiles ----------
  const R = {};
  R.summary = (body, d) => {
    const r = d.rows[0] || {};
    document.getElementById('as-of').textContent = r.as_of ? `now = ${fmtTime(r.as_of)}` : 'no data yet';
    document.getElementById('as-of').dataset.value = JSON.stringify(r.as_of ?? null);
    body.append(el('div', { class: 'big' },
      fig(`inpatient beds occupied (${int(r.inpatient_occupied_beds)} of ${int(r.inpatient_staffed_beds)} staffed)`, 'inpatient_occupancy_pct', num(r.inpatient_occupancy_pct), pct(r.inpatient_occupancy_pct)),
      fig('inpatient beds occupied', 'inpatient_occupied_beds', num(r.inpatient_occupied_beds), int(r.inpatient_occupied_beds)),
      fig(`ED spaces occupied (of ${int(r.ed_staffed_spaces)})`, 'ed_occupied', num(r.ed_occupied), int(r.ed_occupied)),
      fig(`departments at or over 85 % (of ${int(r.departments)})`, 'departments_at_or_over_85_pct', num(r.departments_at_or_over_85_pct), int(r.departments_at_or_over_85_pct)),
      fig('hospitals', 'hospitals', num(r.hospitals), int(r.hospitals))));
    body.append(details(d));
  };
  R.hospitals = (body, d) => {
    const g = el('div', { class: 'bars' });
    for (const r of d.rows) {
      const a = el('a', { href: `?hospital=${encodeURIComponent(r.hospital_id)}`, text: `${r.name || r.hospital_id} (${r.hospital_id})` });
      a.addEventListener('click', (e) => { e.preventDefault(); selectHospital(r.hospital_id); });
      g.append(a, bar(r.inpatient_occupancy_pct),
        el('span', { text: `${pct(r.inpatient_occupancy_pct)} · ${int(r.inpatient_occupied_beds)}/${int(r.inpatient_staffed_beds)} beds · ED ${int(r.ed_occupied)}/${int(r.ed_staffed_spaces)}` }));
    }
    body.append(thresholdLegend(), g, details(d));
  };
  R.occupancy = (body, d) => {
    const g = el('div', { class: 'bars' });
    for (const r of d.rows) {
      g.append(el('span', { text: hospital ? r.department_code : `${r.hospital_id} ${r.department_code}` }), bar(r.occupancy_pct),
        el('span', { text: `${pct(r.occupancy_pct)} · ${int(r.occupied_beds)}/${int(r.staffed_beds)} ${r.department_type === 'Emergency' ? 'spaces' : 'beds'}` }));
    }
    body.append(thresholdLegend(), g, details(d));
  };
  R.census_48h = (body, d) => {
    const xs = d.rows.map((r) => ts(r.hour_start).getTime() / 1000);
    const col = (k) => d.rows.map((r) => num(r[k]));
    const staffed = col('inpatient_staffed');
    const target = el('div', { class: 'chart' });
    body.append(target, details(d));
    if (!xs.length) return target.append(el('p', { class: 'note', text: 'No census hours yet.' }));
    lineChart(target, xs, [
      { label: 'inpatient beds occupied', color: C.blue, values: col('inpatient_occupied'), unit: ' beds' },
      { label: 'staffed beds', color: C.black, values: staffed, unit: ' beds' },
      { label: '85 % of staffed', color: C.orange, dash: [6, 4], values: staffed.map((s) => (s === null ? null : 0.85 * s)), unit: ' beds' },
      { label: '95 % of staffed', color: C.vermillion, dash: [2, 3], values: staffed.map((s) => (s === null ? null : 0.95 * s)), unit: ' beds' },
      { label: 'ED occupied', color: C.sky, values: col('ed_occupied'), unit: ' spaces' },
      { label: 'ED boarders', color: C.purple, values: col('ed_boarders'), unit: ' patients' },
    ], { yLabel: 'beds / patients' });
  };
  R.census_monthly = (body, d) => {
    const g = el('div', { class: 'bars' });
    for (const r of d.rows) {
      g.append(el('span', { text: fmt('month_key', '', r.month_key) }), bar(r.occupancy_pct),
        el('span', { text: `${pct(r.occupancy_pct)} · ${int(r.occupied_bed_days)}/${int(r.available_bed_days)} bed-days` }));
    }
    body.append(thresholdLegend(), g, details(d));
  };
  const SEX_COLORS = { female: C.orange, male: C.blue, other: C.green, unknown: C.grey };
  R.sex_now = (body, d) => {
    const total = d.rows.reduce((a, r) => a + (r.occupied_beds || 0), 0);
    const stack = el('div', { class: 'stack', role: 'img', 'aria-label': 'sex distribution' });
    const legend = el('div', { class: 'legend' });
    for (const r of d.rows) {
      const c = SEX_COLORS[r.sex_group] || C.purple;
      stack.append(el('div', { style: `background:${c};width:${total ? (100 * (r.occupied_beds || 0)) / total : 0}%`, title: r.sex_group }));
      legend.append(el('span', {}, el('i', { style: `background:${c}` }), `${r.sex_group}: ${int(r.occupied_beds)} (${pct(r.share_pct)})`));
    }
    body.append(stack, legend, details(d));
  };
  R.age_now = (body, d) => {
    const r = d.rows[0] || {};
    const bands = [['0–17', 'age_0_17'], ['18–44', 'age_18_44'], ['45–64', 'age_45_64'], ['65–84', 'age_65_84'], ['85+', 'age_85_plus'], ['unknown', 'age_unknown']];
    const max = Math.max(1, ...bands.map(([, k]) => r[k] || 0));
    const g = el('div', { class: 'bars' });
    bands.forEach(([label, k], i) => {
      const b = el('div', { class: 'bar' }, el('div', { class: 'fill', style: `width:${(100 * (r[k] || 0)) / max}%;background:${PALETTE[i % PALETTE.length]}` }));
      g.append(el('span', { text: label }), b, el('span', { text: `${int(r[k])} patients` }));
    });
    body.append(g, details(d));
  };
  R.alos = (body, d) => {
    const months = [...new Set(d.rows.map((r) => r.month_key))].sort();
    const last = months[months.length - 1];
    const latest = d.rows.filter((r) => r.month_key === last);
    const max = Math.max(1, ...latest.map((r) => r.alos_days || 0));
    const g = el('div', { class: 'bars' });
    for (const r of latest) {
      g.append(el('span', { text: r.department_code }),
        el('div', { class: 'bar' }, el('div', { class: 'fill', style: `width:${(100 * (r.alos_days || 0)) / max}%;background:${C.green}` })),
        el('span', { text: `${fmt('alos_days', '', r.alos_days)} · ${fmt('alos_hours', '', r.alos_hours)} · ${int(r.discharges)} discharges` }));
    }
    if (last) body.append(el('p', { class: 'note', text: `Discharge month ${fmt('month_key', '', last)}; every month in the data below.` }));
    body.append(g, details(d));
  };
  R.wait_by_hour = (body, d) => {
    const keys = [...new Set(d.rows.map((r) => `${r.hospital_id}/${r.department_code}`))];
    const allHours = (k) => d.rows.find((r) => `${r.hospital_id}/${r.department_code}` === k && r.hour_of_day == null);
    keys.sort((a, b) => ((allHours(b) || {}).admissions || 0) - ((allHours(a) || {}).admissions || 0));
    const sel = el('select', { 'aria-label': 'admitting department' }, ...keys.map((k) => el('option', { value: k, text: hospital ? k.split('/')[1] : k })));
    const head = el('p', { class: 'note' });
    const target = el('div', { class: 'chart' });
    body.append(el('label', { text: 'Admitting department ' }, sel), head, target, details(d));
    const w = renderWidth;
    const draw = () => {
      renderWidth = w;
      target.textContent = '';
      const k = sel.value;
      const a = allHours(k) || {};
      head.textContent = `All hours: median ${fmt('x_minutes', '', a.wait_median_minutes)}, 90th percentile ${fmt('x_minutes', '', a.wait_p90_minutes)}, ${int(a.admissions)} admissions.`;
      const rows = d.rows.filter((r) => `${r.hospital_id}/${r.department_code}` === k && r.hour_of_day != null);
      const byHour = (f) => Array.from({ length: 24 }, (_, h) => { const r = rows.find((x) => x.hour_of_day === h); return r ? num(r[f]) : null; });
      lineChart(target, Array.from({ length: 24 }, (_, h) => h), [
        { label: 'median', color: C.blue, values: byHour('wait_median_minutes'), unit: ' min' },
        { label: '90th percentile', color: C.vermillion, values: byHour('wait_p90_minutes'), unit: ' min' },
        { label: '4 h', color: C.black, dash: [6, 4], values: Array(24).fill(240), unit: ' min' },
      ], { time: false, xLabel: 'hour of arrival', xValues: (u, vals) => vals.map((v) => `${String(v).padStart(2, '0')}h`), yLabel: 'minutes' });
    };
    sel.addEventListener('change', draw);
    if (keys.length) draw(); else head.textContent = 'No admissions through the ED yet.';
  };
  const tableTile = (empty) => (body, d) => {
    if (!d.rows.length) body.append(el('p', { class: 'note', text: empty }));
    body.append(dataTable(d), el('p', { class: 'doc', text: d.doc }));
  };
  R.bottlenecks = tableTile('No ongoing bottleneck.');
  R.ed_boarding = tableTile('Nobody is boarding in an ED at the latest census hour.');
  R.long_stays = tableTile('No admitted patient in house.');
  R.dq_latest = tableTile('No Silver run yet.');
  R.pipeline = tableTile('No run in the ledger yet.');
  R.feed_lag = tableTile('No ADT message yet.');
  R.dq_trend = (body, d) => {
    const xs = d.rows.map((r) => ts(r.run_at).getTime() / 1000);
    const target = el('div', { class: 'chart' });
    body.append(target, details(d));
    if (!xs.length) return target.append(el('p', { class: 'note', text: 'No Silver run yet.' }));
    lineChart(target, xs, [{ label: 'valid records', color: C.green, values: d.rows.map((r) => num(r.valid_pct)), unit: ' %' }], { yLabel: '% of records valid', height: 180 });
  };

  // ---------- loading ----------
  let catalog = null;
  const sections = new Map();
  async function loadTile(t) {
    const s = sections.get(t.id);
    const q = hospital && t.per_hospital ? `?hospital=${encodeURIComponent(hospital)}` : '';
    try {
      const d = await get(`${t.id}${q}`);
      d.doc = t.doc;
      const body = el('div', { class: 'body' });
      renderWidth = s.clientWidth - 34;
      if (!d.available) {
        s.dataset.state = 'unavailable';
        body.append(el('p', { class: 'note', text: `Not shown: ${d.reason}.` }));
      } else {
        (R[t.id] || tableTile(''))(body, d);
        if (d.suppressed) body.append(el('p', { class: 'note', text: 'Counts from 1 to 10 are not shown (small-cell suppression for this role).' }));
        s.dataset.state = 'ready';
      }
      s.querySelector('.body').replaceWith(body);
      s.dataset.loadedAt = String(Date.now());
      s.dataset.hospital = hospital;
    } catch (e) {
      s.dataset.state = 'error';
      s.querySelector('.body').replaceWith(el('div', { class: 'body' }, el('p', { class: 'err', text: `Could not load: ${e.message}` })));
      console.error(`tile ${t.id}: ${e.message}`);
    }
  }
  async function loadAll() {
    document.body.dataset.state = 'loading';
    document.getElementById('scope-title').textContent = hospital
      ? (catalog.hospitals.find((h) => h.hospital_id === hospital) || { name: hospital }).name + ` (${hospital})`
      : 'Hospital network';
    await Promise.all(catalog.tiles.map(loadTile));
    document.body.dataset.state = 'ready';
    document.body.dataset.hospital = hospital;
  }
  function selectHospital(h) {
    hospital = h;
    document.getElementById('hospital').value = h;
    const q = new URLSearchParams(location.search);
    if (h) q.set('hospital', h); else q.delete('hospital');
    history.replaceState(null, '', `${location.pathname}${q.toString() ? '?' + q : ''}`);
    loadAll();
  }
  let versions = null;
  async function poll() {
    try {
      const v = await get('version');
      pf.polls++;
      const changed = new Set();
      if (versions) for (const [t, n] of Object.entries(v.versions)) if (versions[t] !== n) changed.add(t);
      versions = v.versions;
      if (changed.size && document.body.dataset.state === 'ready') {
        const due = catalog.tiles.filter((t) => t.tables.some((x) => changed.has(x)));
        await Promise.all(due.map(loadTile));
        pf.updates++;
        const live = document.getElementById('live');
        live.dataset.updates = String(pf.updates);
        live.textContent = `Live: updated ${new Date().toISOString().slice(11, 19)} UTC (${due.length} tiles); checking every ${pollMs / 1000} s`;
      }
    } catch (e) {
      console.warn(`version poll: ${e.message}`);
    } finally {
      setTimeout(poll, pollMs);
    }
  }
  async function start() {
    try {
      catalog = await get('catalog');
    } catch (e) {
      document.getElementById('tiles').append(el('p', { class: 'err', text: `The dashboard cannot load: ${e.message}` }));
      document.body.dataset.state = 'error';
      console.error(`catalog: ${e.message}`);
      return;
    }
    const id = catalog.identity;
    document.getElementById('who').textContent = `${id.subject} · ${id.role.replace(/_/g, ' ')}${id.scopes.length ? ' · ' + id.scopes.join(', ') : ''}${id.method === 'demo' ? ' (demo: PHI masked)' : ''}`;
    document.body.dataset.role = id.role;
    const sel = document.getElementById('hospital');
    for (const h of catalog.hospitals) sel.append(el('option', { value: h.hospital_id, text: `${h.name || h.hospital_id} (${h.hospital_id})` }));
    if (id.role === 'department_staff' || id.role === 'hospital_manager') sel.options[0].textContent = 'All my departments';
    sel.value = hospital;
    sel.addEventListener('change', () => selectHospital(sel.value));
    const main = document.getElementById('tiles');
    for (const t of catalog.tiles) {
      const s = el('section', { class: `tile${WIDE.has(t.id) ? ' wide' : ''}`, 'data-tile': t.id, 'data-state': 'loading', 'aria-labelledby': `h-${t.id}` },
        el('h2', { id: `h-${t.id}`, text: t.title }), el('div', { class: 'body' }, el('p', { class: 'note', text: 'Loading…' })));
      sections.set(t.id, s);
      main.append(s);
    }
    await loadAll();
    setTimeout(poll, 0);
  }
  start();
})();
