// grid dashboard (docs/operations.md "Dashboard"): polls the master's JSON and redraws.
// Plain browser JavaScript, no build step. Text always goes through textContent (no HTML
// injection from job names, errors or log tails). ?refresh=MS sets the poll interval.
'use strict';

(function () {
  const params = new URLSearchParams(location.search);
  const REFRESH_MS = Math.max(250, Number(params.get('refresh')) || 1000);
  const $ = (sel) => document.querySelector(sel);
  let selectedJob = null;
  let lastOverview = null;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  const badge = (s) => el('span', { class: `badge ${s}` }, s);
  const short = (id) => (id ? String(id).slice(0, 8) : '—');
  const dash = (v) => (v === null || v === undefined || v === '' ? '—' : v);

  function ago(ms) {
    if (ms === null || ms === undefined) return '—';
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }
  function dur(ms) {
    if (ms === null || ms === undefined) return '—';
    if (ms < 1000) return `${ms} ms`;
    return ago(ms).replace(/^0 s$/, '< 1 s');
  }
  function bytes(n) {
    if (n === null || n === undefined) return '—';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return `${i ? n.toFixed(1) : n} ${u[i]}`;
  }

  async function getJson(path) {
    const r = await fetch(path, { cache: 'no-store' });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || `${path}: HTTP ${r.status}`);
    return body;
  }

  function fill(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  function progressBar(j) {
    const t = j.tasks;
    const total = Math.max(1, j.taskCount);
    const part = (k) => el('span', { class: k, style: `width:${(100 * t[k]) / total}%` });
    return el('div', { class: 'bar', title: `${t.succeeded} succeeded, ${t.running} running, ${t.pending} pending, ${t.failed} failed, ${t.cancelled} cancelled` },
      part('succeeded'), part('failed'), part('cancelled'), part('running'));
  }

  function drawOverview(o) {
    lastOverview = o;
    const s = o.servedBy;
    const role = s.raftRole === 'leader' ? 'leader' : `${s.raftRole || 'master'} (replicated state up to index ${s.applied}; leader: ${s.leader || 'none known'})`;
    $('#served-by').textContent = `served by master ${short(s.nodeId)} at ${s.endpoint} · ${role} · term ${dash(s.term)}`;

    const chips = [];
    for (const [k, v] of Object.entries(o.jobsByState)) chips.push(el('span', { class: 'chip', 'data-jobs': k }, `jobs ${k}`, el('b', {}, v)));
    for (const [k, v] of Object.entries(o.tasksByState)) chips.push(el('span', { class: 'chip', 'data-tasks': k }, `tasks ${k}`, el('b', {}, v)));
    $('#summary').replaceChildren(...chips);

    fill($('#jobs tbody'), o.jobs.map((j) => {
      const done = j.tasks.succeeded + j.tasks.failed + j.tasks.cancelled;
      const end = j.finishedAtMs || o.nowMs;
      return el('tr', { class: `clickable${j.jobId === selectedJob ? ' selected' : ''}`, 'data-job-id': j.jobId, onclick: () => selectJob(j.jobId) },
        el('td', { class: 'mono', title: j.jobId }, short(j.jobId)),
        el('td', {}, j.program),
        el('td', { class: 'state' }, badge(j.state)),
        el('td', { class: 'progress' }, el('span', { class: 'count' }, `${j.tasks.succeeded}/${j.taskCount} done`), progressBar(j)),
        el('td', { class: 'tasks muted' }, `${j.tasks.running} running · ${j.tasks.pending} pending${j.tasks.failed ? ` · ${j.tasks.failed} failed` : ''}${j.tasks.cancelled ? ` · ${j.tasks.cancelled} cancelled` : ''}${done ? '' : ''}`),
        el('td', { class: 'owner muted' }, dash(j.owner)),
        el('td', { class: 'age' }, ago(o.nowMs - j.createdAtMs)),
        el('td', { class: 'took' }, j.finishedAtMs ? dur(end - j.createdAtMs) : '—'));
    }));
    $('#jobs-empty').hidden = o.jobs.length > 0;

    fill($('#masters tbody'), o.masters.map((m) => el('tr', { 'data-endpoint': m.endpoint },
      el('td', {}, m.name, m.self ? el('span', { class: 'muted' }, ' (this page)') : null),
      el('td', { class: 'mono' }, dash(m.endpoint)),
      el('td', { class: 'raft' }, m.reachable === false ? badge('down') : badge(m.role || 'unknown')),
      el('td', { class: 'term' }, dash(m.term)),
      el('td', {}, m.commit === null ? '—' : `${m.commit} / ${m.applied}`),
      el('td', { class: 'muted' }, dash(m.error)))));

    fill($('#balancers tbody'), o.balancers.map((b) => el('tr', {},
      el('td', { title: b.nodeId || '' }, b.name),
      el('td', { class: 'mono' }, dash(b.endpoint)),
      el('td', {}, b.reachable === false ? badge('down') : badge(b.masterState || 'unknown')),
      el('td', {}, dash(b.workers)),
      el('td', {}, b.tasksQueued === null ? dash(b.error) : `${b.tasksQueued} / ${b.tasksRunning}`))));

    fill($('#storage tbody'), o.storage.map((s) => el('tr', {},
      el('td', { title: s.nodeId || '' }, s.name),
      el('td', { class: 'mono' }, dash(s.endpoint)),
      el('td', {}, s.reachable === false ? badge('down') : dash(s.files)),
      el('td', {}, s.reachable === false ? dash(s.error) : `${bytes(s.bytesStored)} / ${bytes(s.quotaBytes)}`),
      el('td', {}, dash(s.corruptChunks)))));

    fill($('#workers tbody'), o.workers.map((w) => el('tr', { 'data-worker-id': w.nodeId },
      el('td', { title: w.nodeId || '' }, w.name, w.staged ? el('span', { class: 'muted' }, ' (staged)') : null),
      el('td', {}, w.reachable === false ? badge('down') : badge(w.balancerState || (w.reachable ? 'up' : 'unknown'))),
      el('td', { class: 'slots' }, w.slots === null ? '—' : `${w.reachable ? w.running.length : dash(w.load)} / ${w.slots}`),
      el('td', { class: 'mono' }, w.running.length ? w.running.map((t) => `${short(t.jobId)}#${t.taskIndex}`).join(' ') : '—'),
      el('td', {}, dash(w.queued)),
      el('td', {}, w.tasksOk === null ? '—' : `${w.tasksOk} / ${w.tasksFailed}`),
      el('td', {}, w.lastSeenMsAgo === null ? dash(w.error) : `${ago(w.lastSeenMsAgo)} ago`))));
    $('#nodes-note').hidden = o.nodesConfigured;
  }

  function workerName(id) {
    if (!id) return '—';
    const w = lastOverview && lastOverview.workers.find((x) => x.nodeId === id);
    return w ? w.name : short(id);
  }

  function drawJob(d) {
    const j = d.job;
    $('#job-detail').hidden = false;
    $('#job-detail').dataset.jobId = j.jobId;
    $('#job-detail').dataset.state = j.state;
    $('#job-title').textContent = j.jobId;
    $('#job-info').replaceChildren(el('div', {},
      badge(j.state), ' ', `${j.program} · ${j.tasks.succeeded}/${j.taskCount} tasks succeeded · submitted ${ago(d.nowMs - j.createdAtMs)} ago`,
      j.finishedAtMs ? ` · took ${dur(j.finishedAtMs - j.createdAtMs)}` : '',
      j.owner ? ` · owner ${j.owner}` : '',
      j.error ? el('div', { class: 'err' }, j.error) : null));
    fill($('#tasks tbody'), d.tasks.map((t) => {
      const duration = t.durationMs !== null ? dur(t.durationMs) : t.startedAtMs ? `${dur(d.nowMs - t.startedAtMs)} so far` : '—';
      const log = [];
      if (t.error) log.push(el('div', { class: 'err' }, t.error));
      if (t.logTail) log.push(el('pre', {}, t.logTail));
      return el('tr', { 'data-task-index': t.index, 'data-state': t.state },
        el('td', {}, t.index),
        el('td', { class: 'state' }, badge(t.state)),
        el('td', { class: 'attempts' }, t.attempts),
        el('td', { class: 'worker', title: t.workerId || '' }, workerName(t.workerId)),
        el('td', { class: 'duration' }, duration),
        el('td', {}, t.state === 'succeeded' || t.state === 'failed' ? t.exitCode : '—'),
        el('td', { class: 'log' }, log.length ? log : el('span', { class: 'muted' }, '—')));
    }));
    const more = $('#tasks-more');
    more.hidden = !d.more;
    more.textContent = d.more ? `showing tasks ${d.offset}–${d.offset + d.tasks.length - 1} of ${j.taskCount}` : '';
  }

  function selectJob(id) {
    location.hash = id ? `job=${id}` : '';
  }
  function readHash() {
    const m = /job=([0-9a-f-]{36})/.exec(location.hash);
    selectedJob = m ? m[1] : null;
    if (!selectedJob) $('#job-detail').hidden = true;
  }

  let timer = null;
  let busy = false;
  async function refresh() {
    if (busy) return;
    busy = true;
    clearTimeout(timer);
    try {
      const state = $('#job-filter').value;
      const o = await getJson(`/dashboard/api/overview${state ? `?state=${state}` : ''}`);
      drawOverview(o);
      if (selectedJob) drawJob(await getJson(`/dashboard/api/jobs/${selectedJob}`));
      $('#error').hidden = true;
      $('#updated').textContent = `updated ${new Date().toLocaleTimeString()} · every ${REFRESH_MS / 1000} s`;
    } catch (e) {
      $('#error').hidden = false;
      $('#error').textContent = `Cannot reach this master: ${e.message}. Retrying every ${REFRESH_MS / 1000} s.`;
    } finally {
      busy = false;
      timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  window.addEventListener('hashchange', () => { readHash(); refresh(); });
  $('#job-close').addEventListener('click', (ev) => { ev.preventDefault(); selectJob(null); });
  $('#job-filter').addEventListener('change', () => refresh());
  readHash();
  refresh();
})();
