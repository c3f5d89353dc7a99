// Foresight dashboard: plain browser JavaScript, no build step. Talks to the API with the token kept in sessionStorage
// and follows Server-Sent Events read through fetch, so the token travels in a header rather than in a URL.
(() => {
  const TOKEN_KEY = 'foresight.token';
  const HISTORY_POINTS = 720;
  const DRAIN_KINDS = new Set(['DrainStarting', 'DrainSucceeded']);
  const RESTART_KINDS = new Set(['RestartStarting', 'RestartSucceeded']);

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    role: null,
    threshold: 0.7,
    nodes: new Map(),
    selected: null,
    chart: null,
    series: { ts: [], risk: [] },
    markers: [],
    audit: [],
    stream: null,
  };

  const $ = (id) => document.getElementById(id);

  // ---- API -------------------------------------------------------------------------------------------------------

  async function api(path, init = {}) {
    const headers = { accept: 'application/json', ...(init.headers || {}) };
    if (state.token) headers.authorization = `Bearer ${state.token}`;
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(path, { ...init, headers });
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const err = new Error(body?.error?.message || `HTTP ${res.status}`);
      err.status = res.status;
      err.code = body?.error?.code;
      throw err;
    }
    return body;
  }

  // ---- formatting ------------------------------------------------------------------------------------------------

  const fmtRisk = (r) => (r === null || r === undefined ? '–' : r.toFixed(2));
  const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString() : '–');
  function fmtDuration(s) {
    if (s === null || s === undefined) return '–';
    if (s < 90) return `${Math.round(s)} s`;
    if (s < 5400) return `${Math.round(s / 60)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  }
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'class') node.className = v;
      else if (k.startsWith('data-')) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  // ---- node cards ------------------------------------------------------------------------------------------------

  function riskClass(risk) {
    if (risk === null || risk === undefined) return '';
    if (risk >= state.threshold) return 'risk-bad';
    if (risk >= state.threshold * 0.7) return 'risk-warn';
    return '';
  }

  function renderCard(node) {
    const badges = [el('span', { class: `badge state-${node.state}`, 'data-testid': 'state' }, node.state)];
    if (!node.observed) badges.push(el('span', { class: 'badge unobserved' }, 'unobserved'));
    if (node.pinned) badges.push(el('span', { class: 'badge pinned' }, 'pinned'));
    if (node.manualOverride)
      badges.push(el('span', { class: 'badge override', title: node.manualOverride }, 'manual override'));

    const buttons = el('div', { class: 'buttons' });
    if (state.role === 'operator') {
      const add = (action, label) =>
        buttons.append(
          el(
            'button',
            {
              type: 'button',
              'data-action': action,
              onclick: (e) => {
                e.stopPropagation();
                confirmAction(node.nodeId, action);
              },
            },
            label,
          ),
        );
      if (node.state === 'active') add('drain', 'Drain');
      else add('undrain', 'Undrain');
      add('restart', 'Restart');
      add(node.pinned ? 'unpin' : 'pin', node.pinned ? 'Unpin' : 'Pin');
      if (node.manualOverride) add('clear-override', 'Clear override');
    }

    const card = el(
      'article',
      {
        class: `card ${riskClass(node.risk)} ${state.selected === node.nodeId ? 'selected' : ''}`,
        'data-node': node.nodeId,
        onclick: () => selectNode(node.nodeId),
      },
      el('h3', {}, el('span', {}, node.nodeId), ...badges),
      el(
        'dl',
        {},
        el('dt', {}, 'Risk'),
        el('dd', { 'data-testid': 'risk' }, fmtRisk(node.risk)),
        el('dt', {}, 'Time to failure'),
        el('dd', {}, fmtDuration(node.timeToFailureS)),
        el('dt', {}, 'Active calls'),
        // Unknown is not zero: a count always says who counted it (AMI, or Foresight's SIP dialog count).
        el(
          'dd',
          { 'data-testid': 'calls' },
          node.activeCalls === null || node.activeCalls === undefined
            ? 'unknown'
            : `${node.activeCalls} (${node.activeCallsSource ?? '?'})`,
        ),
        el('dt', {}, 'Why'),
        el('dd', {}, node.explanation?.[0]?.feature ?? '–'),
      ),
      buttons,
    );
    return card;
  }

  function renderCards() {
    const cards = $('cards');
    const ids = [...state.nodes.keys()].sort();
    cards.replaceChildren(...ids.map((id) => renderCard(state.nodes.get(id))));
    const select = $('chart-node');
    if (select.options.length !== ids.length) {
      select.replaceChildren(...ids.map((id) => el('option', { value: id }, id)));
    }
    if (state.selected) select.value = state.selected;
  }

  function updateCard(nodeId) {
    const node = state.nodes.get(nodeId);
    const old = document.querySelector(`.card[data-node="${CSS.escape(nodeId)}"]`);
    if (!node) return;
    if (old) old.replaceWith(renderCard(node));
    else renderCards();
  }

  // ---- risk chart ------------------------------------------------------------------------------------------------

  // Draws drain and restart markers as vertical lines in uPlot's draw hook, on uPlot's own canvas.
  function markersPlugin() {
    return {
      hooks: {
        draw: [
          (u) => {
            const { ctx } = u;
            const { top, height } = u.bbox;
            for (const m of state.markers) {
              const x = Math.round(u.valToPos(m.ts / 1000, 'x', true));
              if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
              ctx.save();
              ctx.setLineDash([]);
              ctx.strokeStyle = m.type === 'restart' ? '#7c3aed' : '#ea580c';
              ctx.lineWidth = 2 * devicePixelRatio;
              ctx.beginPath();
              ctx.moveTo(x, top);
              ctx.lineTo(x, top + height);
              ctx.stroke();
              ctx.restore();
            }
          },
        ],
      },
    };
  }

  function chartData() {
    const xs = state.series.ts.map((t) => t / 1000);
    return [xs, state.series.risk, xs.map(() => state.threshold)];
  }

  function drawChart() {
    const box = $('chart');
    const width = Math.max(320, box.clientWidth - 16);
    if (state.chart) state.chart.destroy();
    state.chart = new uPlot(
      {
        width,
        height: 300,
        scales: { y: { range: [0, 1] } },
        series: [
          {},
          { label: 'risk', stroke: '#2563eb', width: 2, spanGaps: false },
          { label: 'threshold', stroke: '#b91c1c', dash: [6, 6], width: 1, points: { show: false } },
        ],
        axes: [{}, { label: 'risk' }],
        plugins: [markersPlugin()],
      },
      chartData(),
      box,
    );
    noteChart();
  }

  function noteChart() {
    const box = $('chart');
    const n = state.series.ts.length;
    box.dataset.points = String(n);
    const last = state.series.risk[n - 1];
    box.dataset.lastRisk = last === undefined ? '' : String(last);
    $('chart-latest').textContent = n
      ? `latest ${fmtRisk(last)} at ${fmtTime(state.series.ts[n - 1])}`
      : 'no scores yet';
  }

  function markerFor(record) {
    if (DRAIN_KINDS.has(record.kind)) return { ts: record.ts, type: 'drain' };
    if (RESTART_KINDS.has(record.kind)) return { ts: record.ts, type: 'restart' };
    return null;
  }

  async function selectNode(nodeId) {
    if (!nodeId) return;
    state.selected = nodeId;
    for (const c of document.querySelectorAll('.card')) c.classList.toggle('selected', c.dataset.node === nodeId);
    $('chart-node').value = nodeId;
    const id = encodeURIComponent(nodeId);
    const [history, audit] = await Promise.all([
      api(`/api/nodes/${id}/history?limit=${HISTORY_POINTS}`),
      api(`/api/audit?nodeId=${id}&limit=200`),
    ]);
    if (state.selected !== nodeId) return;
    state.series = { ts: history.items.map((p) => p.ts), risk: history.items.map((p) => p.risk) };
    state.markers = audit.items.map(markerFor).filter(Boolean);
    drawChart();
  }

  function appendPoint(point) {
    const { ts, risk } = state.series;
    const last = ts[ts.length - 1];
    if (last !== undefined && point.ts <= last) return;
    ts.push(point.ts);
    risk.push(point.risk);
    if (ts.length > HISTORY_POINTS) {
      ts.shift();
      risk.shift();
    }
    state.chart?.setData(chartData());
    noteChart();
  }

  // ---- scorer in charge ------------------------------------------------------------------------------------------

  // Which scorer drives decisions, since when and why (the model lifecycle's promotion figures), from GET /api/model.
  async function loadScorer() {
    let info;
    try {
      info = await api('/api/model');
    } catch {
      $('scorer').replaceChildren('Scorer: unknown (the API did not answer)');
      return;
    }
    const inCharge = info.inCharge;
    const who = inCharge ? `${inCharge.kind} (${inCharge.name})` : `${info.kind || info.name} (${info.version})`;
    const line = el(
      'p',
      { id: 'scorer-line' },
      'Decisions by ',
      el('strong', { id: 'scorer-in-charge', 'data-kind': inCharge ? inCharge.kind : info.kind || '' }, who),
      inCharge?.since ? ` since ${fmtTime(Date.parse(inCharge.since))}` : '',
      inCharge?.why ? ` — ${inCharge.why}` : '',
    );
    const parts = [line];
    const lc = info.lifecycle;
    if (lc) {
      const phase =
        lc.phase === 'shadow' && lc.shadow
          ? `candidate ${lc.shadow.candidate} in shadow until ${fmtTime(Date.parse(lc.shadow.until))} ` +
            `(alarms: candidate ${lc.shadow.candidateAlarms}, in charge ${lc.shadow.incumbentAlarms}, ` +
            `${lc.shadow.windows} windows)`
          : `${lc.phase}${lc.nextCycleAt ? `, next training ${fmtTime(Date.parse(lc.nextCycleAt))}` : ''}`;
      parts.push(el('p', { id: 'scorer-lifecycle' }, `Model lifecycle: ${phase}`));
      const reasons = inCharge?.reasons?.length ? inCharge.reasons : lc.lastCycle?.reasons;
      if (reasons?.length) {
        const title = inCharge?.reasons?.length
          ? 'Why it was promoted'
          : `Last cycle: ${lc.lastCycle.outcome}${lc.lastCycle.candidate ? ` (${lc.lastCycle.candidate})` : ''}`;
        parts.push(el('details', {}, el('summary', {}, title), el('ul', {}, ...reasons.map((r) => el('li', {}, r)))));
      }
    }
    $('scorer').replaceChildren(...parts);
  }

  // ---- audit timeline --------------------------------------------------------------------------------------------

  function auditRow(r) {
    return el(
      'li',
      { 'data-seq': String(r.seq), 'data-kind': r.kind },
      el('span', { class: 'muted' }, fmtTime(r.ts)),
      el('span', {}, r.nodeId),
      el('span', { class: 'kind' }, r.kind),
      el('span', {}, r.actor),
      el('span', {}, r.reason + (r.dryRun ? ' (dry run)' : '')),
    );
  }

  function renderAudit() {
    $('audit').replaceChildren(...state.audit.map(auditRow));
  }

  function addAudit(record) {
    if (state.audit.some((r) => r.seq === record.seq && r.seq !== 0)) return;
    if (String(record.kind).startsWith('Model')) void loadScorer();
    state.audit.unshift(record);
    state.audit.length = Math.min(state.audit.length, 200);
    $('audit').prepend(auditRow(record));
    const marker = markerFor(record);
    if (marker && record.nodeId === state.selected) {
      state.markers.push(marker);
      state.chart?.redraw(false);
    }
  }

  // ---- overrides -------------------------------------------------------------------------------------------------

  function confirmAction(nodeId, action) {
    const dialog = $('confirm');
    $('confirm-title').textContent = `${action[0].toUpperCase()}${action.slice(1)} ${nodeId}?`;
    $('confirm-reason').value = '';
    $('confirm-force').checked = false;
    $('confirm-error').textContent = '';
    dialog.dataset.node = nodeId;
    dialog.dataset.action = action;
    dialog.showModal();
    $('confirm-reason').focus();
  }

  async function submitAction(event) {
    event.preventDefault();
    const dialog = $('confirm');
    const reason = $('confirm-reason').value.trim();
    if (!reason) {
      $('confirm-error').textContent = 'A reason is required.';
      return;
    }
    const { node, action } = dialog.dataset;
    try {
      const result = await api(`/api/nodes/${encodeURIComponent(node)}/${action}`, {
        method: 'POST',
        body: JSON.stringify({ reason, force: $('confirm-force').checked }),
      });
      addAudit(result.audit);
      dialog.close();
    } catch (err) {
      $('confirm-error').textContent = `${err.code || 'error'}: ${err.message}`;
    }
  }

  // ---- live updates ----------------------------------------------------------------------------------------------

  function setLive(on) {
    $('live').textContent = on ? 'live' : 'offline';
    $('live').className = `live ${on ? 'on' : 'off'}`;
  }

  function handleEvent(type, data) {
    if (type === 'snapshot') {
      state.threshold = data.threshold;
      state.nodes = new Map(data.nodes.map((n) => [n.nodeId, n]));
      renderCards();
    } else if (type === 'scores') {
      for (const p of data) {
        const node = state.nodes.get(p.nodeId) || { nodeId: p.nodeId, state: 'unknown', pinned: false };
        if (node.scoreTs === undefined || node.scoreTs === null || p.ts >= node.scoreTs) {
          Object.assign(node, {
            risk: p.risk,
            timeToFailureS: p.timeToFailureS,
            observed: p.observed,
            activeCalls: p.activeCalls,
            up: p.up,
            explanation: p.explanation,
            scoreTs: p.ts,
          });
        }
        state.nodes.set(p.nodeId, node);
        updateCard(p.nodeId);
        if (p.nodeId === state.selected) appendPoint(p);
      }
    } else if (type === 'node') {
      state.nodes.set(data.nodeId, data);
      updateCard(data.nodeId);
    } else if (type === 'audit') {
      addAudit(data);
      // A verdict moved a drain threshold: the line on the chart and the risk colours follow the one in use.
      if (data.kind === 'ThresholdMoved') {
        api('/api/nodes')
          .then((nodes) => {
            state.threshold = nodes.threshold;
            renderCards();
            drawChart();
          })
          .catch(() => {});
      }
    }
  }

  // Reads text/event-stream from a fetch body: frames end with a blank line, fields are `event:` and `data:` lines.
  async function follow() {
    const controller = new AbortController();
    state.stream = controller;
    try {
      const headers = { accept: 'text/event-stream' };
      if (state.token) headers.authorization = `Bearer ${state.token}`;
      const res = await fetch('/api/events', { headers, signal: controller.signal });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      setLive(true);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let type = 'message';
          let data = '';
          for (const line of frame.split('\n')) {
            if (line.startsWith('event:')) type = line.slice(6).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
          }
          if (data) handleEvent(type, JSON.parse(data));
          end = buffer.indexOf('\n\n');
        }
      }
    } catch (err) {
      if (controller.signal.aborted) return;
      console.warn('event stream interrupted', err);
    }
    setLive(false);
    if (!controller.signal.aborted) setTimeout(follow, 3000);
  }

  // ---- start -----------------------------------------------------------------------------------------------------

  function showLogin(message) {
    $('main').hidden = true;
    $('login').hidden = false;
    $('logout').hidden = true;
    $('login-error').textContent = message || '';
    $('token').focus();
  }

  async function start() {
    let session;
    try {
      session = await api('/api/session');
    } catch (err) {
      if (err.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        state.token = null;
        showLogin(err.message === 'unknown bearer token' ? 'That token was not accepted.' : '');
        return;
      }
      throw err;
    }
    state.role = session.role;
    $('who').textContent = `${session.actor} (${session.role})`;
    $('logout').hidden = !state.token;
    $('login').hidden = true;
    $('main').hidden = false;

    const [nodes, audit] = await Promise.all([api('/api/nodes'), api('/api/audit?limit=100')]);
    state.threshold = nodes.threshold;
    state.nodes = new Map(nodes.nodes.map((n) => [n.nodeId, n]));
    state.audit = audit.items;
    renderCards();
    renderAudit();
    void loadScorer();
    setInterval(() => void loadScorer(), 30_000);
    const first = [...state.nodes.keys()].sort()[0];
    if (first) await selectNode(first);
    else drawChart();
    void follow();
  }

  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    state.token = $('token').value.trim();
    sessionStorage.setItem(TOKEN_KEY, state.token);
    start().catch((err) => showLogin(err.message));
  });
  $('logout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.stream?.abort();
    location.reload();
  });
  $('confirm-form').addEventListener('submit', submitAction);
  $('confirm-cancel').addEventListener('click', () => $('confirm').close());
  $('chart-node').addEventListener('change', (e) => selectNode(e.target.value));
  window.addEventListener('resize', () =>
    state.chart?.setSize({ width: Math.max(320, $('chart').clientWidth - 16), height: 300 }),
  );

  start().catch((err) => showLogin(err.message));
})();
