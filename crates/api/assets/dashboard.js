// Stock Observer dashboard: everything it shows comes from /api/v1 (with the session cookie
// that POST /api/v1/session sets) and, for disk and queue figures, the open /metrics.
// Served under `Content-Security-Policy: default-src 'self'`: no inline script or style, so
// the DOM is built with createElement/textContent only (never innerHTML with data).
(function () {
  'use strict';

  // How often each part is asked again (the live feed is pushed, not polled).
  const STATUS_REFRESH_MS = 2000;
  const DAY_REFRESH_MS = 30000;
  const CANDLE_REFRESH_MS = 30000;
  const SPARK_REDRAW_MS = 1000;
  const STREAM_RETRY_MS = 5000;
  const RESIZE_SETTLE_MS = 200;
  // Points kept per sparkline (at 2 Hz: the last minute) and rows kept in the event list.
  const SPARK_POINTS = 120;
  const EVENTS_SHOWN = 60;
  const GAP_ROWS_SHOWN = 100;
  // The timeline shows at least this much before the market clock's now.
  const TIMELINE_MIN_SPAN_S = 3600;
  // The timeline's right end follows the market clock in steps of this much.
  const TIMELINE_STEP_S = 60;
  const CANDLE_HEIGHT = 320;
  const TIMELINE_HEIGHT = 170;
  const SPARK_HEIGHT = 34;
  // A candle's body takes this share of its interval's width.
  const CANDLE_BODY = 0.7;
  // Korean time has no daylight saving: a fixed +9 h.
  const KST_OFFSET_MS = 9 * 3600 * 1000;
  // When the session cookie ends (it is HttpOnly: the page cannot read it). Not a secret.
  const SESSION_MARK = 'stock-observer.session-expires';

  const INTERVAL_S = { '1m': 60, '10m': 600, '1h': 3600, '1d': 86400 };
  const COLORS = {
    text: '#dbe4ec', muted: '#8aa0b2', line: '#263544', accent: '#4fc3f7',
    up: '#26a69a', down: '#ef5350', warn: '#ffb74d',
  };
  const PROVIDER_COLORS = ['#ef5350', '#ffb74d', '#ba68c8', '#4dd0e1'];

  const $ = (id) => document.getElementById(id);

  const state = {
    timers: [],
    es: null,
    streamRetry: null,
    streamProbing: false,
    streamOff: false, // refused for good (a key without scope stream)
    metricsRoute: true, // until /metrics is refused
    collector: true, // false in `stock-observer serve`: no status, no live feed
    slotsRoute: true, // until /api/v1/slots answers 404
    status: null,
    slots: null,
    metrics: null,
    nowMs: null, // the market clock, from the last status
    day: null, // YYYYMMDD of the gaps and overflow shown
    today: null, // YYYYMMDD of the server's today
    dayGaps: [],
    liveGaps: new Map(),
    overflow: [],
    cards: new Map(), // symbol -> slot card
    slotLists: new Map(), // provider -> Set of its slot symbols, from /api/v1/slots
    samples: 0,
    candle: null, // { symbol, interval, plot }
    timeline: null,
    timelineHi: null, // the market time (s) the timeline ends at
  };

  // ---------------------------------------------------------------- time, numbers, DOM

  function pad(n, w) { return String(n).padStart(w || 2, '0'); }

  // "YYYY-MM-DD HH:MM:SS" in Seoul for a Unix time in ms.
  function fmtKst(ms, parts) {
    const d = new Date(ms + KST_OFFSET_MS);
    const date = d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate());
    const time = pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds());
    if (parts === 'time') return time;
    if (parts === 'date') return date;
    return date + ' ' + time;
  }

  const DAY_MS = 86400 * 1000;

  // The day chosen in the header (YYYY-MM-DD, Seoul), or null for today.
  function chosenDay() { return $('day-input').value || null; }

  // 00:00 Seoul time of a YYYY-MM-DD day, as Unix ms.
  function dayStartMs(day) {
    const [y, m, d] = day.split('-').map(Number);
    return Date.UTC(y, m - 1, d) - KST_OFFSET_MS;
  }

  // uPlot's tzDate: a Date whose local fields are Seoul's wall clock, so its ticks fall on
  // Seoul minutes, hours and midnights whatever zone the browser is in.
  function kstDate(ts) {
    const d = new Date(ts * 1000 + KST_OFFSET_MS);
    return new Date(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(),
      d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds());
  }

  // Axis labels in 24-hour Seoul time, as fine as the tick spacing needs.
  function kstAxisValues(u, splits, axisIdx, space, incr) {
    let prevDate = null;
    return splits.map((ts) => {
      if (ts == null) return null;
      const ms = ts * 1000;
      const date = fmtKst(ms, 'date');
      let label;
      if (incr >= 86400) label = date.slice(5);
      else if (incr >= 60) label = fmtKst(ms, 'time').slice(0, 5);
      else label = fmtKst(ms, 'time');
      if (incr < 86400 && date !== prevDate) label += '\n' + date.slice(5);
      prevDate = date;
      return label;
    });
  }

  function timeAxis() {
    return {
      // Room for "HH:MM:SS" between ticks.
      space: 80,
      stroke: COLORS.muted, grid: { stroke: COLORS.line, width: 1 }, ticks: { stroke: COLORS.line, width: 1 },
      values: kstAxisValues,
    };
  }

  function valueAxis(extra) {
    return Object.assign({
      stroke: COLORS.muted, grid: { stroke: COLORS.line, width: 1 }, ticks: { stroke: COLORS.line, width: 1 },
      size: (u, values) => (values && values.length ? Math.max.apply(null, values.map((v) => String(v).length)) * 7 + 20 : 50),
    }, extra || {});
  }

  function ms(rfc3339) { return rfc3339 == null ? null : Date.parse(rfc3339); }

  // Prices come as decimal strings; numbers only for drawing.
  function num(s) { return s == null ? null : Number(s); }

  // A decimal string without its trailing fractional zeros ("1046.00000000" → "1046"),
  // trimmed as text so no digit is rounded.
  function plain(s) {
    return s == null ? '—' : String(s).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
  }

  function fmtBytes(n) {
    if (n == null || !isFinite(n)) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
  }

  function fmtAge(seconds) {
    if (seconds == null || !isFinite(seconds)) return '—';
    if (seconds < 60) return seconds.toFixed(1) + ' s';
    if (seconds < 3600) return (seconds / 60).toFixed(1) + ' min';
    if (seconds < 86400) return (seconds / 3600).toFixed(1) + ' h';
    return (seconds / 86400).toFixed(1) + ' d';
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function figures(dl, rows) {
    dl.replaceChildren(...rows.map(([label, value, cls]) => {
      const d = el('div');
      d.append(el('dt', null, label), el('dd', cls || null, value));
      return d;
    }));
  }

  function every(msInterval, fn) {
    fn();
    state.timers.push(setInterval(fn, msInterval));
  }

  // ---------------------------------------------------------------- API

  class Unauthorized extends Error {}

  // GET a JSON route; { status, body }. A 401 ends the session (to the login form).
  async function getJson(path) {
    const r = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (r.status === 401) {
      signOut('Your session has ended (expired, revoked, or the server restarted with another secret): sign in again.');
      throw new Unauthorized(path);
    }
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    return { status: r.status, body };
  }

  function errorText(r) {
    return (r.body && r.body.error && r.body.error.message) || ('HTTP ' + r.status);
  }

  // ---------------------------------------------------------------- sign in and out

  function showLogin(message) {
    $('dashboard').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    $('api-key').focus();
  }

  function signOut(message) {
    localStorage.removeItem(SESSION_MARK);
    state.timers.forEach(clearInterval);
    state.timers = [];
    if (state.es) state.es.close();
    state.es = null;
    clearTimeout(state.streamRetry);
    state.streamRetry = null;
    // Another key may be allowed more: ask everything afresh after the next sign-in.
    Object.assign(state, { streamOff: false, metricsRoute: true, slotsRoute: true, collector: true });
    setLive('offline', 'off');
    showLogin(message);
  }

  async function login(ev) {
    ev.preventDefault();
    const input = $('api-key');
    const key = input.value.trim();
    input.value = '';
    $('login-error').textContent = '';
    $('login-submit').disabled = true;
    try {
      const r = await fetch('/api/v1/session', {
        method: 'POST', credentials: 'same-origin', headers: { Authorization: 'Bearer ' + key },
      });
      let body = null;
      try { body = await r.json(); } catch (e) { body = null; }
      if (!r.ok) {
        $('login-error').textContent = errorText({ status: r.status, body });
        return;
      }
      // The token is also in the body; the HttpOnly cookie is all the page needs, so the
      // token is dropped here and never reaches script-readable storage.
      localStorage.setItem(SESSION_MARK, body.expires_at);
      start();
    } catch (e) {
      $('login-error').textContent = 'The server did not answer: ' + e.message;
    } finally {
      $('login-submit').disabled = false;
    }
  }

  // ---------------------------------------------------------------- status, slots, metrics

  function parseMetrics(text) {
    const out = new Map();
    for (const line of text.split('\n')) {
      if (!line || line[0] === '#') continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const labels = {};
      if (m[2]) for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
      if (!out.has(m[1])) out.set(m[1], []);
      out.get(m[1]).push({ labels, value: Number(m[3]) });
    }
    return out;
  }

  // /metrics as text; null when it is not there. `serve` has none, and a server may guard
  // it: then it is not asked again.
  async function getMetrics() {
    try {
      const r = await fetch('/metrics', { credentials: 'same-origin' });
      if (r.ok) return await r.text();
      if (r.status === 404 || r.status === 401 || r.status === 403) state.metricsRoute = false;
    } catch (e) {
      // The next poll asks again.
    }
    return null;
  }

  // The value of `name` whose labels include `want`; null when absent.
  function metric(name, want) {
    const series = state.metrics && state.metrics.get(name);
    if (!series) return null;
    const hit = series.find((s) => Object.keys(want || {}).every((k) => s.labels[k] === want[k]));
    return hit ? hit.value : null;
  }

  async function refreshStatus() {
    try {
      const [st, slots, metrics] = await Promise.all([
        state.collector ? getJson('/api/v1/status') : Promise.resolve(null),
        state.slotsRoute ? getJson('/api/v1/slots') : Promise.resolve(null),
        state.metricsRoute ? getMetrics() : Promise.resolve(null),
      ]);
      if (st && st.status === 404) {
        // `stock-observer serve`: a database, no collector; candles and the day's evidence only.
        state.collector = false;
        $('status-note').textContent = errorText(st);
        setLive('no collector', 'off');
      } else if (st && st.status === 200) {
        state.status = st.body;
        state.nowMs = ms(st.body.market_time);
        $('status-note').textContent = '';
        if (!state.es && !state.streamRetry && !state.streamProbing && !state.streamOff) openStream();
      } else if (st) {
        $('status-note').textContent = 'status: ' + errorText(st);
      }
      if (slots && slots.status === 404) state.slotsRoute = false;
      state.slots = slots && slots.status === 200 ? slots.body : null;
      state.metrics = metrics ? parseMetrics(metrics) : null;
      renderProviders();
      renderRun();
      renderSystem();
      syncSlotCards();
      if (!chosenDay() && state.nowMs != null && state.day && (state.timelineHi == null || state.nowMs / 1000 - state.timelineHi >= TIMELINE_STEP_S)) {
        renderTimeline();
      }
      const t = $('providers');
      t.dataset.updates = String(Number(t.dataset.updates) + 1);
      if (state.nowMs != null) $('clock').textContent = fmtKst(state.nowMs) + ' KST';
    } catch (e) {
      if (!(e instanceof Unauthorized)) $('status-note').textContent = 'status: ' + e.message;
    }
  }

  // One row per provider: from /api/v1/slots when the server has it, else /health's list
  // with /metrics' per-provider series.
  function providerRows() {
    if (state.slots && Array.isArray(state.slots.providers)) {
      return state.slots.providers.map((p) => ({
        provider: p.provider, market: p.market, connection: p.connection,
        assigned: p.assigned, capacity: p.capacity, streaming: p.streaming,
      }));
    }
    const names = state.status ? state.status.providers.map((s) => s.split('/'))
      : (state.metrics && state.metrics.get('stock_observer_slot_capacity') || []).map((s) => [s.labels.provider, s.labels.market]);
    return names.map(([provider, market]) => {
      const pm = { provider, market };
      const conn = state.metrics && (state.metrics.get('stock_observer_connection_state') || [])
        .find((s) => s.labels.provider === provider && s.value === 1);
      return {
        provider, market,
        connection: conn ? conn.labels.state : (state.status ? state.status.connection : null),
        assigned: metric('stock_observer_slots_assigned', pm),
        capacity: metric('stock_observer_slot_capacity', pm),
        streaming: metric('stock_observer_slots_streaming', pm),
      };
    });
  }

  function renderProviders() {
    const body = $('providers').tBodies[0];
    body.replaceChildren(...providerRows().map((p) => {
      const tr = el('tr');
      const gaps = allGaps().filter((g) => g.provider === p.provider).length;
      const cells = [
        p.provider + (p.market ? ' / ' + p.market : ''),
        p.connection || '—',
        p.assigned == null ? '—' : p.assigned + ' / ' + (p.capacity == null ? '?' : p.capacity),
        p.streaming == null ? '—' : String(p.streaming),
        fmtCount(metric('stock_observer_universe_symbols', { provider: p.provider, market: p.market })),
        fmtCount(metric('stock_observer_frame_queue_length', { provider: p.provider })),
        String(gaps),
      ];
      cells.forEach((c, i) => {
        const td = el('td', i === 1 ? 'state-' + c : null, c);
        tr.append(td);
      });
      tr.dataset.provider = p.provider;
      return tr;
    }));
  }

  function fmtCount(v) { return v == null || !isFinite(v) ? '—' : String(v); }

  function renderRun() {
    const s = state.status;
    if (!s) { figures($('run'), []); return; }
    const hz = state.slots ? state.slots.hz : s.hz;
    const level = state.slots ? state.slots.level : s.mitigation_level;
    const lag = metric('stock_observer_queue_lag_seconds');
    const rate = s.recording_rate;
    const lastAge = s.last_record_time ? (ms(s.market_time) - ms(s.last_record_time)) / 1000 : null;
    figures($('run'), [
      ['Track B rate · level', hz + ' Hz · L' + level, level > 0 ? 'warn' : null],
      ['recording rate', rate == null ? '—' : (rate * 100).toFixed(1) + ' %', rate != null && rate < 0.9 ? 'warn' : null],
      ['slots · streaming', s.slots + ' / ' + s.slot_capacity + ' · ' + s.slots_streaming],
      ['reconnects today (this run)', String(s.reconnects_today), s.reconnects_today ? 'warn' : null],
      ['gaps today (this run)', String(s.gaps_today), s.gaps_today ? 'warn' : null],
      ['queue lag', lag == null ? '—' : fmtAge(lag), lag > 1 ? 'warn' : null],
      ['last record', lastAge == null ? 'none yet' : fmtAge(lastAge) + ' ago'],
      ['samples due · stale · empty', s.scalp_samples_due + ' · ' + s.scalp_samples_stale + ' · ' + s.scalp_samples_no_data],
      ['anomalies today', s.anomalies_today.length ? s.anomalies_today.join(', ') : 'none', s.anomalies_today.length ? 'bad' : null],
    ]);
  }

  function renderSystem() {
    const used = metric('stock_observer_data_filesystem_used_bytes');
    const avail = metric('stock_observer_data_filesystem_avail_bytes');
    const backup = metric('stock_observer_backup_last_success_timestamp_seconds');
    const durable = metric('stock_observer_archive_last_durable_write_timestamp_seconds');
    const failed = metric('stock_observer_archive_lines_failed_total');
    const lost = metric('stock_observer_archive_lines_lost_total');
    const pct = used != null && avail != null && used + avail > 0 ? (100 * used) / (used + avail) : null;
    if (!state.metrics) {
      figures($('system'), [['files open', state.status ? String(state.status.files_open) : '—']]);
      $('system-note').textContent = 'Disk and backup figures come from /metrics, which this server does not serve to the page.';
      return;
    }
    $('system-note').textContent = '';
    figures($('system'), [
      ['data disk used', pct == null ? '—' : pct.toFixed(1) + ' %', pct > 90 ? 'bad' : pct > 80 ? 'warn' : null],
      ['data disk free', fmtBytes(avail)],
      ['last backup (KST)', backup ? fmtKst(backup * 1000) : 'none yet', backup ? null : 'warn'],
      ['last durable write', durable ? fmtAge(Date.now() / 1000 - durable) + ' ago' : '—'],
      ['archive queue', fmtCount(metric('stock_observer_archive_queue_length'))],
      ['files open', fmtCount(metric('stock_observer_archive_files_open'))],
      ['lines failed · lost', fmtCount(failed) + ' · ' + fmtCount(lost), failed || lost ? 'bad' : null],
    ]);
  }

  // ---------------------------------------------------------------- slots and sparklines

  // The slot list: /api/v1/slots, for each provider it names symbols of; else the symbols
  // the live feed's samples name (every Track B sample is of a slot symbol).
  function syncSlotCards() {
    state.slotLists = new Map();
    if (state.slots && Array.isArray(state.slots.providers)) {
      for (const p of state.slots.providers) {
        if (!p.symbols || !p.symbols.length) continue;
        state.slotLists.set(p.provider, new Set(p.symbols));
        for (const sym of p.symbols) card(sym, p.provider);
      }
    }
    for (const [sym, c] of state.cards) {
      const list = state.slotLists.get(c.provider);
      if (list && !list.has(sym)) { c.plot.destroy(); c.el.remove(); state.cards.delete(sym); }
    }
    $('slots-note').textContent = state.cards.size ? ''
      : !state.collector ? 'Slots are a collector\'s live state; this server has none.'
        : 'Waiting for the slot list or the live feed\'s first samples.';
    $('slots').dataset.symbols = String(state.cards.size);
    const list = $('slot-symbols');
    if (list.children.length !== state.cards.size) {
      list.replaceChildren(...[...state.cards.keys()].map((s) => { const o = el('option'); o.value = s; return o; }));
    }
    const s = state.status;
    $('slots-summary').textContent = s ? '(' + s.slots + ' assigned, ' + s.slots_streaming + ' streaming)' : '';
    if (!state.candle && state.cards.size) {
      // Something to look at from the first second: the first slot symbol.
      $('chart-symbol').value = state.cards.keys().next().value;
      loadCandles();
    }
  }

  function card(symbol, provider) {
    let c = state.cards.get(symbol);
    if (c) return c;
    const root = el('div', 'slot');
    const head = el('div', 'head');
    const sym = el('span', 'sym', symbol);
    const price = el('span', 'price', '—');
    head.append(sym, price);
    const chart = el('div', 'spark');
    root.append(head, chart, el('div', 'prov', provider || ''));
    root.title = 'Show ' + symbol + ' candles';
    root.addEventListener('click', () => {
      $('chart-symbol').value = symbol;
      loadCandles();
    });
    // Grouped by provider, then in symbol order, whatever order the feed names them in.
    const order = (prov, sym) => (prov || '') + '\u0000' + sym;
    const mine = order(provider, symbol);
    const next = [...state.cards.values()].filter((o) => order(o.provider, o.symbol) > mine)
      .sort((x, y) => (order(x.provider, x.symbol) < order(y.provider, y.symbol) ? -1 : 1))[0];
    $('slots').insertBefore(root, next ? next.el : null);
    const plot = new uPlot({
      width: Math.max(chart.clientWidth, 1), height: SPARK_HEIGHT,
      legend: { show: false }, cursor: { show: false }, select: { show: false },
      axes: [{ show: false }, { show: false }],
      scales: { x: { time: true } },
      series: [{}, { stroke: COLORS.accent, width: 1.5, spanGaps: true, points: { show: false } }],
    }, [[], []], chart);
    c = { el: root, provider, symbol, price, chart, plot, times: [], prices: [], last: null, dirty: false };
    state.cards.set(symbol, c);
    return c;
  }

  function onSample(s) {
    state.samples++;
    const listed = state.slotLists.get(s.provider);
    // A symbol the provider's slot list no longer names: not drawn (the list is newer).
    if (!state.cards.has(s.symbol) && listed && !listed.has(s.symbol)) return;
    const c = card(s.symbol, s.provider);
    const p = num(s.last_price);
    if (p != null) {
      c.times.push(ms(s.event_time) / 1000);
      c.prices.push(p);
      if (c.times.length > SPARK_POINTS) { c.times.shift(); c.prices.shift(); }
      c.last = s.last_price;
    }
    c.quality = s.quality_flag;
    c.dirty = true;
  }

  function redrawSparks() {
    let drawn = 0;
    for (const c of state.cards.values()) {
      if (c.dirty) {
        c.dirty = false;
        c.plot.setData([c.times.slice(), c.prices.slice()]);
        c.price.textContent = plain(c.last);
        const first = c.prices[0];
        const last = c.prices[c.prices.length - 1];
        c.price.className = 'price' + (last > first ? ' up' : last < first ? ' down' : '');
        c.el.classList.toggle('stale', c.quality === 'stale' || c.quality === 'no_data');
      }
      if (c.times.length >= 2) drawn++;
    }
    const s = $('slots');
    s.dataset.samples = String(state.samples);
    s.dataset.drawn = String(drawn);
    s.dataset.symbols = String(state.cards.size);
  }

  // ---------------------------------------------------------------- the live feed

  function setLive(text, cls) {
    const p = $('live');
    p.textContent = text;
    p.className = 'pill ' + cls;
  }

  function openStream() {
    clearTimeout(state.streamRetry);
    state.streamRetry = null;
    // Samples (sparklines) and system events; ticks are many and the candles have bars.
    const es = new EventSource('/api/v1/stream?kinds=sample,event');
    state.es = es;
    es.addEventListener('open', () => setLive('live', 'on'));
    es.addEventListener('sample', (e) => onSample(JSON.parse(e.data)));
    es.addEventListener('event', (e) => onEvent(JSON.parse(e.data)));
    es.addEventListener('lost', (e) => {
      addEvent(state.nowMs, 'lost', 'the feed skipped ' + JSON.parse(e.data).missed + ' items (a slow reader or a long reconnect)');
    });
    es.addEventListener('error', () => {
      // The browser reconnects by itself after a dropped connection (with Last-Event-ID);
      // it gives up only on a refusal.
      if (es.readyState !== EventSource.CLOSED) { setLive('reconnecting', 'off'); return; }
      es.close();
      state.es = null;
      whyStreamClosed();
    });
  }

  // EventSource does not say why it was refused: ask once with fetch, for the status only.
  async function whyStreamClosed() {
    state.streamProbing = true;
    let status = 0;
    const ctl = new AbortController();
    try {
      const r = await fetch('/api/v1/stream?kinds=event', { credentials: 'same-origin', signal: ctl.signal });
      status = r.status;
    } catch (e) {
      status = 0;
    } finally {
      ctl.abort();
      state.streamProbing = false;
    }
    if (status === 401) {
      signOut('Your session has ended: sign in again.');
    } else if (status === 403 || status === 404) {
      // Asking again would be refused again: the live parts stay off for this session.
      state.streamOff = true;
      setLive(status === 403 ? 'no live feed: the key lacks scope stream' : 'no live feed here', 'bad');
    } else {
      setLive('feed closed', 'bad');
      state.streamRetry = setTimeout(openStream, STREAM_RETRY_MS);
    }
  }

  function summary(e) {
    switch (e.event_type) {
      case 'gap_marker': return e.scope + ' ' + e.reason + ', ' + e.gap_seconds + ' s' + (e.detail ? ': ' + e.detail : '');
      case 'reconnection_event': return 'attempt ' + e.attempt_no + ': ' + e.result + ', level after L' + e.mitigation_level_after;
      case 'slot_decision': return e.slots.length + ' slots, +' + e.added.length + ' −' + e.removed.length
        + (e.added.length ? ' (' + e.added.slice(0, 8).join(' ') + ')' : '');
      case 'mitigation': return 'L' + e.from + ' → L' + e.to + ': ' + e.reason;
      case 'self_healing': return e.action + ' (L' + e.level + '): ' + e.reason;
      case 'slot_dark': return e.symbol + ' dark ' + e.waited_ms + ' ms after it entered' + (e.seeded ? ', seeded' : '');
      case 'anomaly_day': return e.condition + ' ' + e.value + ' over ' + e.threshold;
      case 'overrun': return e.track + ': ' + e.detail;
      case 'record_rejected': return e.stage + ' ' + e.reason + (e.symbol ? ' ' + e.symbol : '');
      default: return '';
    }
  }

  function onEvent(e) {
    addEvent(ms(e.event_time), e.event_type, summary(e));
    if (e.event_type === 'gap_marker') {
      // The stream's events do not name their provider; /api/v1/gaps will, once stored.
      const g = { provider: null, start: e.gap_start_ts, end: e.gap_end_ts, seconds: e.gap_seconds, scope: e.scope, reason: e.reason };
      state.liveGaps.set(gapKey(g), g);
      renderTimeline();
    }
  }

  function addEvent(t, kind, text) {
    const li = el('li', kind);
    li.append(el('span', 't', t == null ? '' : fmtKst(t, 'time')), el('span', 'k', kind), document.createTextNode(text));
    const list = $('events');
    list.prepend(li);
    while (list.children.length > EVENTS_SHOWN) list.lastChild.remove();
  }

  // ---------------------------------------------------------------- candles

  function candlePlugin(intervalS) {
    return {
      hooks: {
        draw: (u) => {
          const [t, o, h, l, c] = u.data;
          if (!t.length) return;
          const ctx = u.ctx;
          const x0 = u.valToPos(t[0], 'x', true);
          const body = Math.max(1, Math.abs(u.valToPos(t[0] + intervalS, 'x', true) - x0) * CANDLE_BODY);
          ctx.save();
          ctx.beginPath();
          ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
          ctx.clip();
          for (let i = 0; i < t.length; i++) {
            if (o[i] == null) continue;
            // A bar's time is its start; draw it in the middle of its interval.
            const x = u.valToPos(t[i] + intervalS / 2, 'x', true);
            const yo = u.valToPos(o[i], 'y', true);
            const yc = u.valToPos(c[i], 'y', true);
            const color = c[i] >= o[i] ? COLORS.up : COLORS.down;
            ctx.strokeStyle = color;
            ctx.fillStyle = color;
            ctx.lineWidth = Math.max(1, devicePixelRatio);
            ctx.beginPath();
            ctx.moveTo(Math.round(x), u.valToPos(h[i], 'y', true));
            ctx.lineTo(Math.round(x), u.valToPos(l[i], 'y', true));
            ctx.stroke();
            ctx.fillRect(Math.round(x - body / 2), Math.min(yo, yc), Math.round(body), Math.max(1, Math.abs(yc - yo)));
          }
          ctx.restore();
        },
      },
    };
  }

  async function loadCandles(ev) {
    if (ev) ev.preventDefault();
    const symbol = $('chart-symbol').value.trim();
    const interval = $('chart-interval').value;
    if (!symbol) return;
    const box = $('candles');
    const note = $('chart-note');
    let r;
    try {
      // A chosen day: its intraday bars, or the daily bars up to it.
      const day = chosenDay();
      const iso = (t) => encodeURIComponent(new Date(t).toISOString());
      const range = !day ? '' : (interval === '1d' ? '' : '&from=' + iso(dayStartMs(day)))
        + '&to=' + iso(dayStartMs(day) + DAY_MS);
      r = await getJson('/api/v1/bars/' + encodeURIComponent(symbol) + '?interval=' + encodeURIComponent(interval) + range);
    } catch (e) {
      if (!(e instanceof Unauthorized)) note.textContent = 'bars: ' + e.message;
      return;
    }
    const same = state.candle && state.candle.plot && state.candle.symbol === symbol && state.candle.interval === interval;
    if (!same || r.status !== 200 || !r.body.bars.length) {
      if (state.candle && state.candle.plot) state.candle.plot.destroy();
      state.candle = { symbol, interval, plot: null };
      box.replaceChildren();
    }
    box.dataset.symbol = symbol;
    box.dataset.interval = interval;
    if (r.status !== 200) {
      box.dataset.candles = '0';
      note.textContent = symbol + ': ' + errorText(r);
      return;
    }
    // One provider's bars: the first one's (a symbol is normally one provider's).
    const bars = r.body.bars.filter((b) => b.provider === (r.body.bars[0] || {}).provider);
    box.dataset.candles = String(bars.length);
    box.dataset.firstKst = bars.length ? fmtKst(ms(bars[0].time)) : '';
    box.dataset.lastKst = bars.length ? fmtKst(ms(bars[bars.length - 1].time)) : '';
    if (!bars.length) {
      note.textContent = 'No ' + interval + ' bars of ' + symbol + ' in the database between '
        + fmtKst(ms(r.body.from)) + ' and ' + fmtKst(ms(r.body.to))
        + ' KST. Bars are built from the archive by `stock-observer etl`.';
      return;
    }
    const step = INTERVAL_S[interval];
    const data = [
      bars.map((b) => ms(b.time) / 1000),
      bars.map((b) => num(b.open)), bars.map((b) => num(b.high)),
      bars.map((b) => num(b.low)), bars.map((b) => num(b.close)),
    ];
    const last = bars[bars.length - 1];
    note.textContent = symbol + ' · ' + last.provider + ' · ' + bars.length + ' bars of ' + interval
      + ' · last close ' + plain(last.close) + ' at ' + fmtKst(ms(last.time)) + ' KST · coverage ' + (last.coverage_ratio * 100).toFixed(0) + ' %';
    if (state.candle.plot) {
      // The periodic refresh of the same chart: new data in the existing plot.
      state.candle.plot.setData(data);
      return;
    }
    const hidden = { paths: () => null, points: { show: false } };
    state.candle.plot = new uPlot({
      width: Math.max(box.clientWidth, 1), height: CANDLE_HEIGHT,
      tzDate: kstDate,
      scales: { x: { time: true, range: (u, min, max) => [min, max + step] } },
      axes: [timeAxis(), valueAxis()],
      series: [
        { label: 'KST', value: (u, ts) => (ts == null ? '—' : fmtKst(ts * 1000)) },
        Object.assign({ label: 'open', stroke: COLORS.muted }, hidden),
        Object.assign({ label: 'high', stroke: COLORS.up }, hidden),
        Object.assign({ label: 'low', stroke: COLORS.down }, hidden),
        Object.assign({ label: 'close', stroke: COLORS.text }, hidden),
      ],
      plugins: [candlePlugin(step)],
    }, data, box);
  }

  // ---------------------------------------------------------------- gaps and overflow

  function gapKey(g) { return [g.start, g.end, g.scope, g.reason].join('|'); }

  // The day's stored gaps, and the live feed's not yet stored.
  function allGaps() {
    if (chosenDay()) return state.dayGaps;
    const stored = new Set(state.dayGaps.map(gapKey));
    return state.dayGaps.concat([...state.liveGaps.values()].filter((g) => !stored.has(gapKey(g))));
  }

  async function refreshDay() {
    try {
      const q = chosenDay() ? '?date=' + chosenDay().replace(/-/g, '') : '';
      const [g, o] = await Promise.all([getJson('/api/v1/gaps' + q), getJson('/api/v1/overflow' + q)]);
      if (g.status === 200) {
        // The live feed's gaps are today's: a new day starts without them.
        if (!chosenDay()) {
          if (state.today && state.today !== g.body.date) state.liveGaps.clear();
          state.today = g.body.date;
        }
        state.day = g.body.date;
        state.dayGaps = g.body.gaps;
      }
      if (o.status === 200) state.overflow = o.body.overflow;
      $('day').textContent = state.day ? '(' + state.day.slice(0, 4) + '-' + state.day.slice(4, 6) + '-' + state.day.slice(6) + ', Seoul)' : '';
      renderTimeline();
      renderProviders();
    } catch (e) {
      if (!(e instanceof Unauthorized)) $('day').textContent = e.message;
    }
  }

  function renderTimeline() {
    const gaps = allGaps();
    const providers = [...new Set(gaps.map((g) => g.provider || 'live'))].sort();
    // Overflow entries per decision instant: how many candidates were left without a slot.
    const counts = new Map();
    for (const o of state.overflow) {
      const t = Math.floor(ms(o.time) / 1000);
      counts.set(t, (counts.get(t) || 0) + 1);
    }
    const ends = gaps.map((g) => ms(g.end) / 1000);
    const starts = gaps.map((g) => ms(g.start) / 1000);
    // Today's timeline ends at the market clock; another day's at its last item, or its end.
    const now = chosenDay() ? 0 : state.nowMs != null ? state.nowMs / 1000 : 0;
    let hi = Math.max(now, ...ends, ...counts.keys());
    if ((!isFinite(hi) || hi <= 0) && chosenDay()) hi = (dayStartMs(chosenDay()) + DAY_MS) / 1000;
    if (!isFinite(hi) || hi <= 0) return;
    const lo = Math.min(hi - TIMELINE_MIN_SPAN_S, ...starts, ...counts.keys());
    state.timelineHi = hi;
    const xs = [...new Set([lo, hi, ...counts.keys()])].sort((a, b) => a - b);
    const data = [xs, xs.map((x) => (counts.has(x) ? counts.get(x) : null))];
    const box = $('timeline');
    box.dataset.gaps = String(gaps.length);
    box.dataset.overflow = String(state.overflow.length);
    const color = (p) => PROVIDER_COLORS[Math.max(0, providers.indexOf(p)) % PROVIDER_COLORS.length];
    const bands = {
      hooks: {
        drawClear: (u) => {
          const ctx = u.ctx;
          ctx.save();
          for (const g of gaps) {
            const a = u.valToPos(ms(g.start) / 1000, 'x', true);
            const b = u.valToPos(ms(g.end) / 1000, 'x', true);
            ctx.fillStyle = color(g.provider || 'live');
            ctx.globalAlpha = 0.45;
            // At least two pixels, so a one-second gap on a day-wide axis still shows.
            ctx.fillRect(a, u.bbox.top, Math.max(2 * devicePixelRatio, b - a), u.bbox.height);
          }
          ctx.restore();
        },
      },
    };
    if (state.timeline) state.timeline.destroy();
    box.replaceChildren();
    state.timeline = new uPlot({
      width: Math.max(box.clientWidth, 1), height: TIMELINE_HEIGHT,
      tzDate: kstDate,
      legend: { live: false },
      cursor: { y: false },
      scales: { x: { time: true, range: () => [lo, hi] }, n: { range: (u, min, max) => [0, Math.max(1, max || 0) * 1.2] } },
      axes: [timeAxis(), valueAxis({ scale: 'n', label: 'overflow', labelSize: 16 })],
      series: [
        {},
        { label: 'overflow candidates', scale: 'n', stroke: COLORS.warn, paths: () => null, points: { show: true, size: 7, fill: COLORS.warn } },
        ...providers.map((p) => ({ label: 'gap: ' + p, scale: 'n', stroke: color(p), fill: color(p), paths: () => null, points: { show: false } })),
      ],
      plugins: [bands],
    }, [...data, ...providers.map(() => xs.map(() => null))], box);

    const rows = gaps.slice().sort((a, b) => ms(b.start) - ms(a.start)).slice(0, GAP_ROWS_SHOWN);
    $('gaps').tBodies[0].replaceChildren(...rows.map((g) => {
      const tr = el('tr');
      [g.provider || 'live', fmtKst(ms(g.start)), fmtKst(ms(g.end), 'time'), String(g.seconds), g.scope, g.reason]
        .forEach((c) => tr.append(el('td', null, c)));
      if (g.detail) tr.title = g.detail;
      return tr;
    }));
  }

  // ---------------------------------------------------------------- start

  function resized() {
    if (state.candle && state.candle.plot) state.candle.plot.setSize({ width: $('candles').clientWidth, height: CANDLE_HEIGHT });
    if (state.timeline) state.timeline.setSize({ width: $('timeline').clientWidth, height: TIMELINE_HEIGHT });
    for (const c of state.cards.values()) c.plot.setSize({ width: c.chart.clientWidth, height: SPARK_HEIGHT });
  }

  async function start() {
    $('login').hidden = true;
    $('dashboard').hidden = false;
    // /health is open and says whether a collector runs here: `stock-observer serve` has no
    // status, slots, live feed or /metrics, and asking would only log 404s.
    try {
      const h = await (await fetch('/health', { credentials: 'same-origin' })).json();
      if (h && h.mode === 'serve') {
        Object.assign(state, { collector: false, slotsRoute: false, metricsRoute: false, streamOff: true });
        $('status-note').textContent = 'No collector runs in this server (stock-observer serve): the database and archive only.';
        setLive('no collector', 'off');
      }
    } catch (e) {
      // The status poll reports what is wrong.
    }
    every(STATUS_REFRESH_MS, refreshStatus);
    every(DAY_REFRESH_MS, refreshDay);
    state.timers.push(setInterval(redrawSparks, SPARK_REDRAW_MS));
    state.timers.push(setInterval(() => { if (state.candle) loadCandles(); }, CANDLE_REFRESH_MS));
  }

  function init() {
    $('login-form').addEventListener('submit', login);
    $('chart-form').addEventListener('submit', loadCandles);
    $('chart-interval').addEventListener('change', loadCandles);
    $('day-input').addEventListener('change', () => {
      state.timelineHi = null;
      refreshDay();
      if (state.candle) loadCandles();
    });
    let settle = null;
    window.addEventListener('resize', () => { clearTimeout(settle); settle = setTimeout(resized, RESIZE_SETTLE_MS); });
    // Sign-in survives a reload while the cookie lives; asking the server without one would
    // only log a 401, so the page remembers when it ends.
    const until = Date.parse(localStorage.getItem(SESSION_MARK) || '');
    if (until > Date.now()) start();
    else showLogin('');
  }

  init();
}());
