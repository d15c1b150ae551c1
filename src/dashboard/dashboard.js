// zegolog dashboard: fetches /dashboard/api/* and draws the charts as inline SVG.
// Plain JavaScript, no library, nothing loaded from outside this server.
//
// For tests and tools, the page reports what it drew: <body data-state="loading|ready|error">,
// and each chart's <svg> gets data-points (bars, segments or points drawn with data) and its
// card data-state ("ready", "empty" or "error").
'use strict';

(function () {
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const W = 600;
  const H = 320;
  const MARGIN = { top: 16, right: 16, bottom: 58, left: 56 };
  const REASONS = [
    ['normal', '#4e79a7'],
    ['heartbeat_timeout', '#f28e2b'],
    ['connection_lost', '#e15759'],
    ['kicked_out', '#b07aa1'],
    ['token_expired', '#edc948'],
    ['unknown', '#9aa5b1'],
  ];
  const BLUE = '#4e79a7';
  const ORANGE = '#f28e2b';
  const TEAL = '#3a9e8f';

  const byId = (id) => document.getElementById(id);
  let apps = [];

  // ---- helpers ----------------------------------------------------------------------------

  function el(tag, attrs, parent, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function tooltip(node, text) {
    el('title', {}, node, text);
    return node;
  }

  function clear(svg) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
  }

  function isoDay(ms) {
    return new Date(ms).toISOString().slice(0, 10);
  }

  function dayMs(iso) {
    const [y, m, d] = iso.split('-').map(Number);
    return Date.UTC(y, m - 1, d);
  }

  function addDays(iso, n) {
    return isoDay(dayMs(iso) + n * 86400000);
  }

  function daysBetween(from, to) {
    const days = [];
    for (let t = dayMs(from); t <= dayMs(to); t += 86400000) days.push(isoDay(t));
    return days;
  }

  function formatCount(n) {
    return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }

  function formatDuration(s) {
    if (s === null || s === undefined || Number.isNaN(s)) return '–';
    const a = Math.abs(s);
    const sign = s < 0 ? '-' : '';
    if (a === 0) return '0 s';
    if (a < 1) return sign + Math.round(a * 1000) + ' ms';
    if (a < 60) return sign + trim(a) + ' s';
    if (a < 3600) return sign + trim(a / 60) + ' min';
    return sign + trim(a / 3600) + ' h';
  }

  function trim(x) {
    return x >= 100 ? Math.round(x).toString() : x >= 10 ? x.toFixed(1).replace(/\.0$/, '') : x.toFixed(2).replace(/\.?0+$/, '');
  }

  function percent(x) {
    return (x * 100).toFixed(x < 0.1 ? 1 : 0) + '%';
  }

  // Round tick values (1, 2, 5 x 10^k, whole numbers: these are counts) from 0 to at least max.
  function ticks(max, count) {
    if (!(max > 0)) return [0, 1];
    const raw = Math.max(1, max / count);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
    const values = [];
    for (let v = 0; v < max + step * 0.999; v += step) values.push(+v.toPrecision(12));
    return values;
  }

  // Plot area, horizontal grid lines and y labels. `scale` maps a value to 0..1 (bottom to
  // top); by default linear from 0 to the last tick.
  function frame(svg, yValues, yFormat, scale) {
    const inner = { x: MARGIN.left, y: MARGIN.top, w: W - MARGIN.left - MARGIN.right, h: H - MARGIN.top - MARGIN.bottom };
    const yMax = yValues[yValues.length - 1] || 1;
    const unit = scale || ((v) => v / yMax);
    const y = (v) => inner.y + inner.h - Math.min(1, Math.max(0, unit(v))) * inner.h;
    const axes = el('g', { class: 'axes' }, svg);
    for (const v of yValues) {
      el('line', { class: 'grid', x1: inner.x, x2: inner.x + inner.w, y1: y(v), y2: y(v) }, axes);
      el('text', { x: inner.x - 6, y: y(v) + 4, 'text-anchor': 'end' }, axes, yFormat(v));
    }
    el('line', { class: 'axis', x1: inner.x, x2: inner.x + inner.w, y1: inner.y + inner.h, y2: inner.y + inner.h }, axes);
    return { inner, y };
  }

  // A log scale for durations (they spread from seconds to hours), with readable ticks.
  const DURATION_TICKS = [0.01, 0.1, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400, 604800];
  function durationScale(values) {
    const positive = values.filter((v) => v > 0);
    if (positive.length === 0) return { ticks: [1, 10, 60], scale: (v) => (v > 0 ? Math.log(v / 1) / Math.log(60) : 0) };
    const lo = Math.min(...positive) / 1.6;
    const hi = Math.max(...positive) * 1.25;
    const span = Math.log(hi / lo);
    let ticks = DURATION_TICKS.filter((t) => t >= lo && t <= hi);
    while (ticks.length > 6) ticks = ticks.filter((_, i) => i % 2 === 0);
    return { ticks, scale: (v) => (v > 0 ? Math.log(v / lo) / span : 0) };
  }

  // Day labels under a band of days, thinned to at most ~10.
  function dayLabels(svg, days, inner, xCenter) {
    const every = Math.max(1, Math.ceil(days.length / 10));
    const g = el('g', { class: 'x-labels' }, svg);
    days.forEach((day, i) => {
      if (i % every !== 0) return;
      el('text', { x: xCenter(i), y: inner.y + inner.h + 16, 'text-anchor': 'middle' }, g, day.slice(5));
    });
  }

  function legend(svg, entries) {
    const g = el('g', { class: 'legend' }, svg);
    let x = MARGIN.left;
    for (const [name, color] of entries) {
      el('rect', { x, y: H - 20, width: 10, height: 10, rx: 2, fill: color }, g);
      const label = el('text', { x: x + 14, y: H - 11 }, g, name);
      x += 22 + Math.max(40, name.length * 6.6);
      void label;
    }
  }

  function finish(svg, points) {
    svg.setAttribute('data-points', String(points));
    const card = svg.closest('.card');
    if (points === 0) {
      el('text', { class: 'empty', x: W / 2, y: H / 2, 'text-anchor': 'middle' }, svg, 'No data for this app and range');
    }
    card.setAttribute('data-state', points > 0 ? 'ready' : 'empty');
  }

  // ---- charts ------------------------------------------------------------------------------

  function drawHistogram(histogram) {
    const svg = byId('chart-histogram');
    clear(svg);
    const bins = histogram.bins;
    const max = Math.max(0, ...bins.map((b) => b.sessions));
    const { inner, y } = frame(svg, ticks(max, 5), formatCount);
    const band = inner.w / bins.length;
    let points = 0;
    bins.forEach((bin, i) => {
      const x = inner.x + i * band;
      if (bin.sessions > 0) {
        points += 1;
        const top = y(bin.sessions);
        tooltip(
          el('rect', { class: 'bar', x: x + band * 0.12, y: top, width: band * 0.76, height: inner.y + inner.h - top, fill: BLUE, rx: 2 }, svg),
          `${bin.label}: ${formatCount(bin.sessions)} sessions (${percent(bin.sessions / histogram.sessions)})`
        );
        if (band > 28) el('text', { class: 'value-label', x: x + band / 2, y: top - 3, 'text-anchor': 'middle' }, svg, formatCount(bin.sessions));
      }
      const lx = x + band / 2;
      const ly = inner.y + inner.h + 12;
      el('text', { x: lx, y: ly, 'text-anchor': 'end', transform: `rotate(-35 ${lx} ${ly})` }, svg, bin.label);
    });
    finish(svg, points);
  }

  function drawDurations(rows, days) {
    const svg = byId('chart-durations');
    clear(svg);
    const byDay = new Map(rows.map((r) => [r.day, r]));
    const values = rows.flatMap((r) => [r.p50_s, r.p90_s]).filter((v) => v !== null && v !== undefined);
    const log = durationScale(values);
    const { inner, y } = frame(svg, log.ticks, formatDuration, log.scale);
    const step = inner.w / days.length;
    const xCenter = (i) => inner.x + step * (i + 0.5);
    dayLabels(svg, days, inner, xCenter);
    let points = 0;
    for (const [key, color, name] of [['p90_s', ORANGE, 'p90'], ['p50_s', BLUE, 'p50']]) {
      // One path, broken where a day has no sessions.
      let d = '';
      let pen = false;
      days.forEach((day, i) => {
        const row = byDay.get(day);
        const v = row ? row[key] : null;
        if (v === null || v === undefined) {
          pen = false;
          return;
        }
        d += `${pen ? 'L' : 'M'}${xCenter(i).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      });
      if (d) el('path', { d, fill: 'none', stroke: color, 'stroke-width': 2, 'stroke-linejoin': 'round' }, svg);
      days.forEach((day, i) => {
        const row = byDay.get(day);
        const v = row ? row[key] : null;
        if (v === null || v === undefined) return;
        points += 1;
        tooltip(
          el('circle', { class: 'dot', cx: xCenter(i), cy: y(v), r: days.length > 60 ? 1.5 : 3, fill: color }, svg),
          `${day} ${name}: ${formatDuration(v)} (${formatCount(row.sessions)} sessions)`
        );
      });
    }
    legend(svg, [['p50 (median)', BLUE], ['p90', ORANGE]]);
    finish(svg, points);
  }

  function drawReasons(rows, days) {
    const svg = byId('chart-reasons');
    clear(svg);
    const perDay = new Map(days.map((d) => [d, new Map()]));
    for (const r of rows) if (perDay.has(r.day)) perDay.get(r.day).set(r.reason, r);
    const present = new Set(rows.map((r) => r.reason));
    const known = new Set(REASONS.map(([name]) => name));
    const order = REASONS.filter(([name]) => present.has(name));
    for (const name of present) if (!known.has(name)) order.push([name, '#52606d']);
    const totals = days.map((d) => [...perDay.get(d).values()].reduce((s, r) => s + r.logouts, 0));
    const { inner, y } = frame(svg, ticks(Math.max(0, ...totals), 5), formatCount);
    const step = inner.w / days.length;
    const xCenter = (i) => inner.x + step * (i + 0.5);
    dayLabels(svg, days, inner, xCenter);
    let points = 0;
    days.forEach((day, i) => {
      let base = 0;
      for (const [reason, color] of order) {
        const row = perDay.get(day).get(reason);
        if (!row || row.logouts <= 0) continue;
        points += 1;
        const top = y(base + row.logouts);
        tooltip(
          el('rect', { class: 'seg', x: xCenter(i) - step * 0.38, y: top, width: step * 0.76, height: y(base) - top, fill: color }, svg),
          `${day} ${reason}: ${formatCount(row.logouts)} logouts (${percent(row.share)})`
        );
        base += row.logouts;
      }
    });
    legend(svg, order);
    finish(svg, points);
  }

  function drawConcurrency(rows, days) {
    const svg = byId('chart-concurrency');
    clear(svg);
    const byDay = new Map(rows.map((r) => [r.day, r.peak_users]));
    const max = Math.max(0, ...rows.map((r) => r.peak_users));
    const { inner, y } = frame(svg, ticks(max, 5), formatCount);
    const step = inner.w / days.length;
    const xCenter = (i) => inner.x + step * (i + 0.5);
    dayLabels(svg, days, inner, xCenter);
    let points = 0;
    days.forEach((day, i) => {
      const peak = byDay.get(day);
      if (!(peak > 0)) return;
      points += 1;
      const top = y(peak);
      tooltip(
        el('rect', { class: 'bar', x: xCenter(i) - step * 0.38, y: top, width: step * 0.76, height: inner.y + inner.h - top, fill: TEAL, rx: 1 }, svg),
        `${day}: at most ${formatCount(peak)} users online`
      );
    });
    finish(svg, points);
  }

  // ---- data and filters ---------------------------------------------------------------------

  async function api(path, params) {
    const query = params ? '?' + new URLSearchParams(params).toString() : '';
    const response = await fetch('dashboard/api/' + path + query, {
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
    });
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) {
      const message = body && body.message ? body.message : 'HTTP ' + response.status;
      throw new Error(response.status === 401 ? 'Not signed in: ' + message : message);
    }
    return body;
  }

  function setStatus(text, isError) {
    const status = byId('status');
    status.textContent = text;
    status.classList.toggle('error', Boolean(isError));
  }

  function defaultRange(app) {
    const to = app ? app.last_day : isoDay(Date.now());
    return { from: addDays(to, -29), to };
  }

  function fillAppPicker(selected) {
    const select = byId('appid');
    while (select.firstChild) select.removeChild(select.firstChild);
    for (const app of apps) {
      const option = document.createElement('option');
      option.value = String(app.appid);
      option.textContent = `${app.appid} (${formatCount(app.sessions)} sessions)`;
      if (String(app.appid) === selected) option.selected = true;
      select.appendChild(option);
    }
  }

  function currentParams() {
    return { appid: byId('appid').value, from: byId('from').value, to: byId('to').value };
  }

  async function load() {
    const params = currentParams();
    document.body.setAttribute('data-state', 'loading');
    document.body.setAttribute('data-appid', params.appid);
    setStatus('Loading…');
    history.replaceState(null, '', 'dashboard?' + new URLSearchParams(params).toString());
    byId('to-incident').setAttribute('href', 'dashboard/incident?' + new URLSearchParams({ appid: params.appid }).toString());
    const days = daysBetween(params.from, params.to);
    try {
      const [histogram, durations, reasons, concurrency] = await Promise.all([
        api('histogram', params),
        api('durations', params),
        api('reasons', params),
        api('concurrency', params),
      ]);
      const h = histogram.histogram;
      drawHistogram(h);
      drawDurations(durations.days, days);
      drawReasons(reasons.rows, days);
      drawConcurrency(concurrency.days, days);

      const logouts = reasons.rows.reduce((s, r) => s + r.logouts, 0);
      const normal = reasons.rows.filter((r) => r.reason === 'normal').reduce((s, r) => s + r.logouts, 0);
      const peak = concurrency.days.reduce((best, r) => (r.peak_users > (best ? best.peak_users : -1) ? r : best), null);
      byId('tile-sessions').textContent = formatCount(h.sessions);
      byId('tile-p50').textContent = formatDuration(h.p50_s);
      byId('tile-p90').textContent = formatDuration(h.p90_s);
      byId('tile-abnormal').textContent = logouts ? percent((logouts - normal) / logouts) : '–';
      byId('tile-peak').textContent = peak ? formatCount(peak.peak_users) : '–';
      if (peak) byId('tile-peak').setAttribute('title', peak.day);
      setStatus(`appid ${params.appid}, ${params.from} to ${params.to} (days in ${histogram.time_zone || 'UTC'}): ${formatCount(h.sessions)} sessions`);
      document.body.setAttribute('data-state', 'ready');
    } catch (error) {
      setStatus(error.message, true);
      for (const card of document.querySelectorAll('.card')) card.setAttribute('data-state', 'error');
      document.body.setAttribute('data-state', 'error');
    }
  }

  async function start() {
    const query = new URLSearchParams(location.search);
    try {
      apps = (await api('apps')).apps;
    } catch (error) {
      setStatus(error.message, true);
      document.body.setAttribute('data-state', 'error');
      return;
    }
    if (apps.length === 0) {
      setStatus('No logouts stored yet: nothing to show.');
      for (const svg of document.querySelectorAll('svg.chart')) finish(svg, 0);
      document.body.setAttribute('data-state', 'ready');
      return;
    }
    const wanted = query.get('appid');
    const app = apps.find((a) => String(a.appid) === wanted) || apps[0];
    fillAppPicker(String(app.appid));
    const range = defaultRange(app);
    byId('from').value = query.get('from') || range.from;
    byId('to').value = query.get('to') || range.to;

    byId('filters').addEventListener('submit', (event) => {
      event.preventDefault();
      load();
    });
    byId('appid').addEventListener('change', () => {
      const chosen = apps.find((a) => String(a.appid) === byId('appid').value);
      const r = defaultRange(chosen);
      byId('from').value = r.from;
      byId('to').value = r.to;
      load();
    });
    for (const button of document.querySelectorAll('.presets button')) {
      button.addEventListener('click', () => {
        const to = byId('to').value || defaultRange(null).to;
        byId('from').value = addDays(to, -(Number(button.dataset.days) - 1));
        load();
      });
    }
    await load();
  }

  document.addEventListener('DOMContentLoaded', start);
})();
