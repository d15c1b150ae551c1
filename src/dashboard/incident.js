// zegolog incident view: the last hours of one app in 1- or 5-minute buckets, from
// /dashboard/api/incident/*, drawn as inline SVG and tables. Plain JavaScript, nothing loaded
// from outside this server. Refreshes every 30 s.
//
// Its state (appid, last, bucket, until) is the query string, kept current with
// history.replaceState, so the URL can be pasted into an incident channel.
//
// For tests and tools: <body data-state="loading|ready|error" data-refreshes="N">, each chart's
// <svg> has data-points, each card data-state, and #spike carries data-bucket, data-reason,
// data-lift when there is a spike.
'use strict';

(function () {
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const REFRESH_MS = 30000;
  const REASONS = [
    ['normal', '#4e79a7'],
    ['heartbeat_timeout', '#f28e2b'],
    ['connection_lost', '#e15759'],
    ['kicked_out', '#b07aa1'],
    ['token_expired', '#edc948'],
    ['unknown', '#9aa5b1'],
  ];
  const TEAL = '#3a9e8f';
  const LASTS = ['1h', '6h', '24h'];
  const byId = (id) => document.getElementById(id);
  let apps = [];
  let timer = null;
  let refreshes = 0;

  function el(tag, attrs, parent, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function count(n) {
    return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }

  function percent(x) {
    return x === null || x === undefined ? '–' : (x * 100).toFixed(x < 0.1 ? 1 : 0) + '%';
  }

  function lift(x) {
    return x === null || x === undefined ? 'new' : '×' + x.toFixed(2);
  }

  function hhmm(iso) {
    return new Date(iso).toISOString().slice(11, 16);
  }

  function ticks(max, n) {
    if (!(max > 0)) return [0, 1];
    const raw = Math.max(1, max / n);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
    const values = [];
    for (let v = 0; v < max + step * 0.999; v += step) values.push(+v.toPrecision(12));
    return values;
  }

  // Axes for a chart of width w and height h over `buckets` (ISO starts); returns helpers.
  function frame(svg, w, h, buckets, max) {
    const m = { top: 16, right: 16, bottom: 40, left: 56 };
    const inner = { x: m.left, y: m.top, w: w - m.left - m.right, h: h - m.top - m.bottom };
    const yValues = ticks(max, 4);
    const yMax = yValues[yValues.length - 1] || 1;
    const y = (v) => inner.y + inner.h - Math.min(1, Math.max(0, v / yMax)) * inner.h;
    const step = inner.w / Math.max(1, buckets.length);
    const g = el('g', { class: 'axes' }, svg);
    for (const v of yValues) {
      el('line', { class: 'grid', x1: inner.x, x2: inner.x + inner.w, y1: y(v), y2: y(v) }, g);
      el('text', { x: inner.x - 6, y: y(v) + 4, 'text-anchor': 'end' }, g, count(v));
    }
    el('line', { class: 'axis', x1: inner.x, x2: inner.x + inner.w, y1: inner.y + inner.h, y2: inner.y + inner.h }, g);
    const every = Math.max(1, Math.ceil(buckets.length / 12));
    buckets.forEach((b, i) => {
      if (i % every === 0) el('text', { x: inner.x + step * i, y: inner.y + inner.h + 14, 'text-anchor': 'start' }, g, hhmm(b));
    });
    return { inner, y, step, x: (i) => inner.x + step * i };
  }

  function bucketStarts(body) {
    const starts = [];
    for (let t = Date.parse(body.from); t < Date.parse(body.to); t += body.bucket_s * 1000) starts.push(new Date(t).toISOString());
    return starts;
  }

  function key(iso) {
    return new Date(iso).toISOString();
  }

  function finish(svg, points) {
    svg.setAttribute('data-points', String(points));
    if (points === 0) el('text', { class: 'empty', x: 600, y: 120, 'text-anchor': 'middle' }, svg, 'No logouts in this window');
    svg.closest('.card').setAttribute('data-state', points > 0 ? 'ready' : 'empty');
  }

  function drawBuckets(body) {
    const svg = byId('chart-buckets');
    clear(svg);
    const starts = bucketStarts(body);
    const index = new Map(starts.map((s, i) => [s, i]));
    const perBucket = starts.map(() => new Map());
    for (const r of body.rows) {
      const i = index.get(key(r.bucket_start));
      if (i !== undefined) perBucket[i].set(r.reason, r);
    }
    const max = Math.max(0, ...perBucket.map((m) => [...m.values()].reduce((s, r) => s + r.logouts, 0)));
    const f = frame(svg, 1200, 320, starts, max);
    const order = REASONS.filter(([name]) => body.rows.some((r) => r.reason === name));
    let points = 0;
    perBucket.forEach((rows, i) => {
      let base = 0;
      for (const [reason, color] of order) {
        const r = rows.get(reason);
        if (!r) continue;
        points += 1;
        const top = f.y(base + r.logouts);
        const rect = el('rect', { class: 'seg', x: f.x(i) + f.step * 0.1, y: top, width: Math.max(0.5, f.step * 0.8), height: f.y(base) - top, fill: color }, svg);
        el('title', {}, rect, `${hhmm(r.bucket_start)} ${reason}: ${count(r.logouts)} of ${count(r.bucket_logouts)} (${percent(r.share)}), usual ${percent(r.usual_share)}, lift ${lift(r.lift)}`);
        base += r.logouts;
      }
    });
    if (body.spike) {
      const i = index.get(key(body.spike.bucket_start));
      if (i !== undefined) {
        el('rect', { class: 'spike-mark', x: f.x(i) - 1, y: f.inner.y, width: Math.max(3, f.step) + 2, height: f.inner.h }, svg);
        const labelX = Math.min(f.x(i) + 6, 1200 - 200);
        el('text', { class: 'spike-label', x: labelX, y: f.inner.y + 12 }, svg, `spike: ${body.spike.reason} ${lift(body.spike.lift)}`);
      }
    }
    const legend = el('g', { class: 'legend' }, svg);
    let x = 56;
    for (const [name, color] of order) {
      el('rect', { x, y: 320 - 14, width: 10, height: 10, rx: 2, fill: color }, legend);
      el('text', { x: x + 14, y: 320 - 5 }, legend, name);
      x += 30 + name.length * 6.6;
    }
    byId('buckets-caption').textContent = `per ${body.bucket === '1m' ? 'minute' : '5 minutes'}, ${hhmm(body.from)}–${hhmm(body.to)} UTC`;
    finish(svg, points);
  }

  function drawOnline(body) {
    const svg = byId('chart-online');
    clear(svg);
    const starts = bucketStarts(body);
    const index = new Map(starts.map((s, i) => [s, i]));
    const max = Math.max(0, ...body.buckets.map((b) => b.users_online));
    const f = frame(svg, 1200, 240, starts, max);
    let d = '';
    let points = 0;
    for (const b of body.buckets) {
      const i = index.get(key(b.bucket_start));
      if (i === undefined) continue;
      points += 1;
      d += `${d ? 'L' : 'M'}${(f.x(i) + f.step / 2).toFixed(1)},${f.y(b.users_online).toFixed(1)}`;
    }
    if (d) el('path', { d, fill: 'none', stroke: TEAL, 'stroke-width': 2, 'stroke-linejoin': 'round' }, svg);
    for (const b of body.buckets) {
      const i = index.get(key(b.bucket_start));
      if (i === undefined) continue;
      const dot = el('circle', { class: 'dot', cx: f.x(i) + f.step / 2, cy: f.y(b.users_online), r: starts.length > 120 ? 1.2 : 2.5, fill: TEAL }, svg);
      el('title', {}, dot, `${hhmm(b.bucket_start)}: at most ${count(b.users_online)} online, at least ${count(b.fewest_online)}`);
    }
    finish(svg, points);
  }

  function fillTable(id, rows, cells, emptyText) {
    const tbody = byId(id).querySelector('tbody');
    clear(tbody);
    for (const row of rows) {
      const tr = document.createElement('tr');
      for (const [text, high] of cells(row)) {
        const td = document.createElement('td');
        td.textContent = text;
        if (high) td.className = 'high';
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
    if (rows.length === 0) {
      const tr = document.createElement('tr');
      const td = document.createElement('td');
      td.colSpan = 7;
      td.className = 'empty';
      td.textContent = emptyText;
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
    byId(id).closest('.card').setAttribute('data-state', rows.length ? 'ready' : 'empty');
    byId(id).setAttribute('data-rows', String(rows.length));
  }

  function offenderCells(r) {
    return [[r.key], [count(r.abnormal), true], [count(r.heartbeat_timeout)], [count(r.connection_lost)], [count(r.kicked_out)], [count(r.token_expired)], [count(r.others)]];
  }

  function showSpike(spike) {
    const p = byId('spike');
    for (const a of ['data-bucket', 'data-reason', 'data-lift']) p.removeAttribute(a);
    if (!spike) {
      p.setAttribute('data-state', 'none');
      p.textContent = 'No spike: no abnormal reason at twice its usual share or more (on 5 logouts or more) in any bucket.';
      byId('tile-spike').textContent = '–';
      byId('tile-spike-name').textContent = 'spike';
      return;
    }
    p.setAttribute('data-state', 'spike');
    p.setAttribute('data-bucket', key(spike.bucket_start));
    p.setAttribute('data-reason', spike.reason);
    p.setAttribute('data-lift', String(spike.lift));
    const end = new Date(Date.parse(spike.bucket_start) + (state.bucket === '5m' ? 300000 : 60000)).toISOString();
    p.textContent = `Spike: ${spike.reason} at ${hhmm(spike.bucket_start)}–${hhmm(end)} UTC, ${count(spike.logouts)} of ${count(spike.bucket_logouts)} logouts (${percent(spike.share)}, usually ${percent(spike.usual_share)}): lift ${lift(spike.lift)}`;
    byId('tile-spike').textContent = lift(spike.lift);
    byId('tile-spike-name').textContent = `spike: ${spike.reason} at ${hhmm(spike.bucket_start)}`;
  }

  // ---- state in the URL ---------------------------------------------------------------------

  const state = { appid: '', last: '6h', bucket: '1m', until: '' };

  function readUrl() {
    const q = new URLSearchParams(location.search);
    state.appid = q.get('appid') || '';
    state.last = q.get('last') || '6h';
    state.bucket = q.get('bucket') === '5m' ? '5m' : '1m';
    state.until = q.get('until') || '';
  }

  function params() {
    const p = { appid: state.appid, last: state.last, bucket: state.bucket };
    if (state.until) p.until = state.until;
    return p;
  }

  function writeUrl() {
    const query = new URLSearchParams(params()).toString();
    history.replaceState(null, '', 'incident?' + query);
    document.body.setAttribute('data-url', 'incident?' + query);
    byId('to-dashboard').setAttribute('href', '../dashboard?' + new URLSearchParams({ appid: state.appid }).toString());
    for (const b of document.querySelectorAll('#last-presets button')) b.classList.toggle('primary', b.dataset.last === state.last);
  }

  async function api(path) {
    const response = await fetch('api/incident/' + path + '?' + new URLSearchParams(params()).toString(), {
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
    });
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) throw new Error(body && body.message ? body.message : 'HTTP ' + response.status);
    return body;
  }

  function setStatus(text, isError) {
    const status = byId('status');
    status.textContent = text;
    status.classList.toggle('error', Boolean(isError));
  }

  async function load() {
    writeUrl();
    document.body.setAttribute('data-appid', state.appid);
    try {
      const [reasons, online, offenders] = await Promise.all([api('reasons'), api('online'), api('offenders')]);
      drawBuckets(reasons);
      drawOnline(online);
      showSpike(reasons.spike);
      const usual = reasons.usual;
      byId('usual-caption').textContent = usual.logouts > 0
        ? `usual: ${count(usual.logouts)} logouts of ${usual.from_day} to ${usual.to_day} (UTC days)`
        : `no logouts ${usual.from_day} to ${usual.to_day}: no usual share, every lift is "new"`;
      fillTable('table-lift', reasons.totals, (t) => [
        [t.reason], [count(t.logouts)], [percent(t.share)], [percent(t.usual_share)],
        [lift(t.lift), t.lift !== null && t.lift >= 2 && t.reason !== 'normal'], [t.peak_lift === null ? '–' : lift(t.peak_lift)],
      ], 'No logouts in this window');
      fillTable('table-rooms', offenders.rooms, offenderCells, 'No abnormal disconnects in this window');
      fillTable('table-users', offenders.users, offenderCells, 'No abnormal disconnects in this window');
      const all = reasons.totals.reduce((s, t) => s + t.logouts, 0);
      const abnormal = reasons.totals.filter((t) => ['heartbeat_timeout', 'connection_lost', 'kicked_out', 'token_expired'].includes(t.reason)).reduce((s, t) => s + t.logouts, 0);
      byId('tile-logouts').textContent = count(all);
      byId('tile-abnormal').textContent = all ? `${count(abnormal)} (${percent(abnormal / all)})` : '–';
      const lastOnline = online.buckets[online.buckets.length - 1];
      byId('tile-online').textContent = lastOnline ? count(lastOnline.users_online) : '–';
      byId('tile-worst-room').textContent = offenders.rooms.length ? `${offenders.rooms[0].key} (${count(offenders.rooms[0].abnormal)})` : '–';
      setStatus(`appid ${state.appid}: ${reasons.from.slice(0, 16).replace('T', ' ')} to ${reasons.to.slice(0, 16).replace('T', ' ')} UTC in ${state.bucket === '1m' ? '1-minute' : '5-minute'} buckets, ${count(all)} logouts`);
      refreshes += 1;
      byId('refreshed-at').textContent = new Date().toISOString().slice(11, 19) + ' UTC';
      byId('refreshed-at').setAttribute('datetime', new Date().toISOString());
      document.body.setAttribute('data-refreshes', String(refreshes));
      document.body.setAttribute('data-state', 'ready');
    } catch (error) {
      setStatus(error.message, true);
      document.body.setAttribute('data-state', 'error');
    }
  }

  function schedule() {
    if (timer) clearInterval(timer);
    timer = setInterval(load, REFRESH_MS);
    byId('pause').textContent = 'Pause';
  }

  async function start() {
    readUrl();
    try {
      const response = await fetch('api/apps', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      const body = await response.json();
      if (!response.ok) throw new Error(body && body.message ? body.message : 'HTTP ' + response.status);
      apps = body.apps;
    } catch (error) {
      setStatus(error.message, true);
      document.body.setAttribute('data-state', 'error');
      return;
    }
    const select = byId('appid');
    for (const app of apps) {
      const option = document.createElement('option');
      option.value = String(app.appid);
      option.textContent = `${app.appid} (${count(app.sessions)} sessions)`;
      select.appendChild(option);
    }
    if (!apps.some((a) => String(a.appid) === state.appid)) state.appid = apps.length ? String(apps[0].appid) : '';
    if (!state.appid) {
      setStatus('No logouts stored yet: nothing to show.');
      document.body.setAttribute('data-state', 'ready');
      return;
    }
    select.value = state.appid;
    byId('bucket').value = state.bucket;
    byId('until').value = state.until;
    const apply = () => {
      state.appid = select.value;
      state.bucket = byId('bucket').value;
      state.until = byId('until').value.trim();
      load();
    };
    byId('filters').addEventListener('submit', (event) => {
      event.preventDefault();
      apply();
    });
    select.addEventListener('change', apply);
    byId('bucket').addEventListener('change', apply);
    for (const button of document.querySelectorAll('#last-presets button')) {
      button.addEventListener('click', () => {
        state.last = LASTS.includes(button.dataset.last) ? button.dataset.last : '6h';
        apply();
      });
    }
    byId('pause').addEventListener('click', () => {
      if (timer) {
        clearInterval(timer);
        timer = null;
        byId('pause').textContent = 'Resume';
      } else {
        load();
        schedule();
      }
    });
    await load();
    schedule();
  }

  document.addEventListener('DOMContentLoaded', start);
})();
