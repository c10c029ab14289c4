// Orkestrator dashboard: reads the manager's JSON API and follows its event stream.
//
// Safety rule: everything that comes from a job file, a container or the manager is put in the
// page as text (textContent, attribute values), never parsed as markup. Elements are built with
// el() / svg() below; nothing here assigns innerHTML.
//
// Signing in: the API answers 401 without a credential. The page then shows a sign-in form and
// POSTs the token typed there to /v1/session, which answers with an HttpOnly cookie; every call
// after that (fetch and EventSource, same origin) carries the cookie, so the token itself is
// dropped at once: it is never kept in a variable, a URL or the browser's web storage.
"use strict";

(() => {
  const JOB_PAGE = 2000; // jobs per API page
  const SHOW_STEP = 2000; // job rows rendered before "Show more"
  const FIRST_ROWS = 150; // rows put in the page before the first paint (more than a screenful)
  const ROW_CHUNK = 400; // rows added per task after it
  const EVENTS_KEPT = 200; // lines in the events panel
  const METRICS_LAST = 60; // samples per sparkline
  const POLL_MS = 5000; // workers, health and open jobs' metrics
  const DIRTY_MS = 250; // gather job events this long before fetching
  const RELIST_OVER = 50; // more dirty jobs than this: re-list instead of fetching each
  const PHASES = ["Pending", "Starting", "Running", "Completed", "Failed", "Lost", "Stopping", "Stopped"];
  const STATES = new Set(["pending", "scheduled", "starting", "running", "restarting", "completed",
    "failed", "lost", "stopping", "stopped", "ready", "unhealthy", "down"]);

  /** What the page knows of one session; everything is forgotten on signing out. */
  const freshState = () => ({
    jobs: new Map(), // name -> JobSummary
    names: [], // job names, sorted as the API lists them
    rows: new Map(), // name -> {summary, tr}
    open: new Map(), // name -> {view, metrics, tr}
    workers: [],
    workerMetrics: new Map(), // worker id -> WorkerMetrics
    filter: "",
    shown: SHOW_STEP,
    baseIndex: 0, // the job list reflects every change up to this state index
    dirty: new Set(),
    dirtyTimer: 0,
    listing: null,
    relistAgain: false,
    lastEventId: "",
    pendingEvents: [],
  });
  const state = freshState();

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------------------------------
  // DOM helpers (text only)

  /** An element with attributes and children; string children become text nodes. */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      e.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    setAttrs(e, attrs);
    return e;
  }

  function setAttrs(e, attrs) {
    if (!attrs) return;
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.setAttribute("class", v);
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, String(v));
    }
  }

  /** A badge for a phase, task state or liveness; the class comes from a fixed list. */
  function badge(value) {
    const v = String(value ?? "unknown");
    const cls = STATES.has(v.toLowerCase()) ? "s-" + v.toLowerCase() : "s-unknown";
    return el("span", { class: "badge " + cls }, v);
  }

  // ---------------------------------------------------------------------------------------
  // Units

  function cores(q) {
    if (typeof q === "number") return q;
    const s = String(q ?? "").trim();
    if (s.endsWith("m")) return (parseFloat(s) || 0) / 1000;
    return parseFloat(s) || 0;
  }

  const SIZE_UNITS = [["Ei", 2 ** 60], ["Pi", 2 ** 50], ["Ti", 2 ** 40], ["Gi", 2 ** 30], ["Mi", 2 ** 20],
    ["Ki", 2 ** 10], ["E", 1e18], ["P", 1e15], ["T", 1e12], ["G", 1e9], ["M", 1e6], ["k", 1e3]];

  function bytes(q) {
    if (typeof q === "number") return q;
    const s = String(q ?? "").trim();
    for (const [suffix, mult] of SIZE_UNITS) {
      if (s.endsWith(suffix)) return (parseFloat(s.slice(0, -suffix.length)) || 0) * mult;
    }
    return parseFloat(s) || 0;
  }

  function fmtBytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    const digits = i === 0 || n >= 100 ? 0 : n >= 10 ? 1 : 2;
    return n.toFixed(digits) + " " + units[i];
  }

  function fmtCores(c) {
    if (c === 0) return "0";
    if (c < 1) return Math.round(c * 1000) + "m";
    return String(Math.round(c * 100) / 100);
  }

  function fmtTime(ms) {
    const d = new Date(ms);
    return d.toLocaleTimeString([], { hour12: false });
  }

  function fmtAgo(ms) {
    const s = Math.max(0, (Date.now() - ms) / 1000);
    if (s < 60) return Math.round(s) + "s ago";
    if (s < 3600) return Math.round(s / 60) + "m ago";
    if (s < 86400) return Math.round(s / 3600) + "h ago";
    return Math.round(s / 86400) + "d ago";
  }

  // ---------------------------------------------------------------------------------------
  // API

  /**
   * Who is signed in, and a generation that every sign-in and sign-out advances: an answer to a
   * request made in an older generation is dropped (its data belongs to a session that ended).
   */
  const auth = { who: null, gen: 0 };
  /** Timers that belong to a session (cleared on signing out). */
  const timers = { poll: 0, stream: 0, retry: 0 };

  /** An error that only says "this answer came for a session that has ended". */
  function stale() {
    const err = new Error("stale answer");
    err.stale = true;
    return err;
  }

  /**
   * A JSON request to the manager. `init` is fetch's; `init.signingIn` keeps a 401 from
   * signing the page out (it is the answer to a sign-in). Any other 401 means the session is
   * gone (expired, its token revoked, the manager restarted): the page shows the sign-in form.
   */
  async function api(path, init) {
    const gen = auth.gen;
    const headers = Object.assign({ accept: "application/json" }, init && init.headers);
    const r = await fetch(path, Object.assign({ credentials: "same-origin" }, init, { headers }));
    if (gen !== auth.gen) throw stale();
    if (!r.ok) {
      let message = "HTTP " + r.status;
      let code = "";
      try {
        const body = await r.json();
        if (body && body.message) message = body.message;
        if (body && body.code) code = body.code;
      } catch (_) { /* not JSON */ }
      if (gen !== auth.gen) throw stale();
      // The manager's 401 goes on to tell API clients how to send a token: not the page's news.
      if (r.status === 401) message = message.replace(/: send `Authorization[\s\S]*$/, "");
      const err = new Error(path + ": " + message);
      err.status = r.status;
      err.code = code;
      err.reason = message;
      if (r.status === 401 && !(init && init.signingIn)) signedOut(message);
      throw err;
    }
    const body = await r.json();
    if (gen !== auth.gen) throw stale();
    return body;
  }

  function showError(e) {
    const box = $("error");
    if (!e) { box.hidden = true; return; }
    // A 401 shows the sign-in form instead; a stale answer is nobody's business.
    if (e.stale || e.status === 401) return;
    if (e.status === 403) {
      const who = auth.who ? "Not allowed with a " + auth.who.role + " token: " : "Not allowed: ";
      box.textContent = who + (e.reason || e.message);
    } else {
      box.textContent = "Cannot reach the manager: " + (e.message || String(e));
    }
    box.hidden = false;
  }

  // ---------------------------------------------------------------------------------------
  // Header counts

  let healthTimer = 0;
  function scheduleHealth() {
    if (!healthTimer) healthTimer = setTimeout(() => { healthTimer = 0; loadHealth(); }, 500);
  }

  async function loadHealth() {
    try {
      const h = await api("/v1/health");
      renderHealth(h);
      return h;
    } catch (e) {
      showError(e);
      return null;
    }
  }

  function sum(obj) { return Object.values(obj || {}).reduce((a, b) => a + b, 0); }

  function count(label, n, detail) {
    return el("div", { class: "count" }, el("span", { class: "label" }, label),
      el("span", { class: "n" }, String(n)), detail ? el("span", { class: "detail" }, detail) : null);
  }

  function breakdown(obj, order) {
    const keys = order || Object.keys(obj || {});
    return keys.filter((k) => obj && obj[k]).map((k) => obj[k] + " " + k.toLowerCase()).join(" · ");
  }

  function renderHealth(h) {
    const workers = h.workers || {};
    const jobs = h.jobs || {};
    const tasks = h.tasks || {};
    $("counts").replaceChildren(
      count("Workers", (workers.Ready || 0) + "/" + sum(workers), breakdown(workers, ["Unhealthy", "Down"])),
      count("Jobs", sum(jobs), breakdown(jobs, PHASES)),
      count("Tasks", sum(tasks), breakdown(tasks, ["Running", "Starting", "Restarting", "Pending", "Failed", "Lost"])),
      count("Schedulers", (h.schedulers || []).length),
      count("Index", h.manager ? h.manager.index : "?"),
    );
  }

  // ---------------------------------------------------------------------------------------
  // Workers

  let workersTimer = 0;
  function scheduleWorkers() {
    if (!workersTimer) workersTimer = setTimeout(() => { workersTimer = 0; loadWorkers(); }, 1000);
  }

  async function loadWorkers() {
    const gen = auth.gen;
    try {
      const items = [];
      let token = null;
      do {
        const q = token ? "?limit=1000&continue=" + encodeURIComponent(token) : "?limit=1000";
        const page = await api("/v1/workers" + q);
        items.push(...page.items);
        token = page.continue;
      } while (token);
      if (gen !== auth.gen) return;
      state.workers = items;
      // Host sparklines: a few workers are usual; past 50, leave them out.
      if (items.length <= 50) {
        await Promise.all(items.map(async (w) => {
          try {
            state.workerMetrics.set(w.id, await api("/v1/workers/" + encodeURIComponent(w.id) + "/metrics?last=" + METRICS_LAST));
          } catch (_) { state.workerMetrics.delete(w.id); }
        }));
      }
      if (gen !== auth.gen) return;
      renderWorkers();
      showError(null);
    } catch (e) {
      showError(e);
    }
  }

  function resourceBar(name, reserved, used, total, fmt) {
    const pct = (x) => total > 0 ? Math.min(100, (x / total) * 100) : 0;
    const bar = el("div", { class: "bar" + (reserved > total ? " over" : "") });
    const r = el("div", { class: "reserved" });
    r.style.width = pct(reserved) + "%";
    bar.append(r);
    let text = "reserved " + fmt(reserved) + " of " + fmt(total);
    if (used !== null && used !== undefined) {
      const u = el("div", { class: "used" });
      u.style.width = pct(used) + "%";
      bar.append(u);
      text += " · tasks use " + fmt(used);
    }
    bar.title = text;
    return [el("span", { class: "res-name" }, name), bar, el("span", { class: "res-text" }, text)];
  }

  function renderWorkers() {
    const box = $("workers");
    $("workers-count").textContent = state.workers.length ? "(" + state.workers.length + ")" : "";
    if (!state.workers.length) {
      box.replaceChildren(el("p", { class: "empty" }, "No workers registered. Start one with `orkestrator worker`."));
      return;
    }
    box.replaceChildren(...state.workers.map(renderWorker));
  }

  /**
   * What the worker's tasks use now: the sum of the newest sample of each task series that is
   * still reporting (within 15 s of the worker's newest sample). Null without samples.
   */
  function tasksUsage(m) {
    const series = ((m && m.tasks) || []).filter((t) => t.samples && t.samples.length);
    if (!series.length) return null;
    const lastOf = (t) => t.samples[t.samples.length - 1];
    const newest = Math.max(...series.map((t) => lastOf(t).at));
    let cpu = 0, memory = 0;
    for (const t of series) {
      const s = lastOf(t);
      if (s.at < newest - 15000) continue;
      cpu += s.cpu_cores;
      memory += s.memory_working_set_bytes;
    }
    return { cpu, memory };
  }

  function renderWorker(w) {
    const total = w.resources.total;
    const reserved = w.reserved;
    const m = state.workerMetrics.get(w.id);
    const usage = tasksUsage(m);
    const labels = Object.entries(w.labels || {});
    const meta = [w.instances + " instance" + (w.instances === 1 ? "" : "s"), "seen " + fmtAgo(Date.now() - w.last_seen_ms_ago)];
    if (w.address) meta.push(w.address);
    const card = el("div", { class: "worker", "data-worker": w.id },
      el("div", { class: "worker-head" }, el("span", { class: "worker-name", title: w.id }, w.id), badge(w.status)),
      el("div", { class: "worker-meta" }, meta.join(" · ")),
      w.message ? el("div", { class: "worker-meta" }, w.message) : null,
      labels.length ? el("div", { class: "labels" }, ...labels.map(([k, v]) => el("span", { class: "label-chip" }, k + "=" + v))) : null,
      el("div", { class: "res" },
        ...resourceBar("CPU", cores(reserved.cpu), usage ? usage.cpu : null, cores(total.cpu), fmtCores),
        ...resourceBar("Memory", bytes(reserved.memory), usage ? usage.memory : null, bytes(total.memory), fmtBytes),
        ...resourceBar("Disk", bytes(reserved.disk), null, bytes(total.disk), fmtBytes)),
    );
    const node = (m && m.node) || [];
    const last = node.length ? node[node.length - 1] : null;
    card.append(el("div", { class: "sparks" },
      el("span", { class: "res-name" }, "Host CPU"),
      sparkline("cpu", "host CPU in use", node.map((s) => s.cpu_cores_used),
        last ? last.cpu_cores_total : 0, fmtCores, last ? " of " + fmtCores(last.cpu_cores_total) : ""),
      el("span", { class: "res-name" }, "Host mem"),
      sparkline("mem", "host memory in use", node.map((s) => s.memory_used_bytes),
        last ? last.memory_total_bytes : 0, fmtBytes, last ? " of " + fmtBytes(last.memory_total_bytes) : "")));
    return card;
  }

  // ---------------------------------------------------------------------------------------
  // Sparklines (inline SVG)

  /** `values` as a line over `max` (or their own maximum), then the newest value and `suffix`. */
  function sparkline(kind, label, values, max, fmt, suffix) {
    const wrap = el("span", { class: "spark " + kind, title: label });
    if (!values.length) {
      wrap.append(el("span", { class: "nosamples" }, "no samples yet"));
      return wrap;
    }
    const W = 96, H = 24;
    const top = Math.max(max || 0, ...values) || 1;
    const step = values.length > 1 ? W / (values.length - 1) : 0;
    const pts = values.map((v, i) => [values.length > 1 ? i * step : W, H - 1 - (v / top) * (H - 2)]);
    const line = pts.map(([x, y]) => x.toFixed(1) + "," + y.toFixed(1)).join(" ");
    const s = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": label });
    s.append(svg("polygon", { class: "area", points: "0," + H + " " + line + " " + W + "," + H }));
    s.append(svg("polyline", { points: values.length > 1 ? line : "0," + pts[0][1].toFixed(1) + " " + line }));
    wrap.append(s, el("span", null, fmt(values[values.length - 1]) + (suffix || "")));
    return wrap;
  }

  // ---------------------------------------------------------------------------------------
  // Jobs list

  async function listAllJobs() {
    const jobs = new Map();
    const names = [];
    let token = null;
    let first = true;
    do {
      const q = "?limit=" + JOB_PAGE + (token ? "&continue=" + encodeURIComponent(token) : "");
      const page = await api("/v1/jobs" + q);
      if (first) performance.mark("orkestrator:jobs-fetched");
      for (const j of page.items) { jobs.set(j.name, j); names.push(j.name); }
      token = page.continue;
      if (first && token) {
        // Paint the first page at once; the rest follows.
        state.jobs = new Map(jobs); state.names = names.slice(); renderJobs();
      }
      first = false;
    } while (token);
    return { jobs, names };
  }

  /**
   * Lists every job again (at most one listing at a time; a request during one runs after).
   * `knownIndex`: a state index just read, so that the first listing needs no health request.
   */
  function relist(knownIndex) {
    if (state.listing) { state.relistAgain = true; return state.listing; }
    const gen = auth.gen;
    state.listing = (async () => {
      try {
        do {
          state.relistAgain = false;
          if (knownIndex === undefined) {
            const h = await loadHealth();
            if (gen !== auth.gen) return;
            if (h && h.manager) state.baseIndex = Math.max(state.baseIndex, h.manager.index);
          }
          knownIndex = undefined;
          const { jobs, names } = await listAllJobs();
          state.jobs = jobs;
          state.names = names;
          for (const name of state.rows.keys()) if (!jobs.has(name)) state.rows.delete(name);
          for (const name of state.open.keys()) if (!jobs.has(name)) state.open.delete(name);
          renderJobs();
          for (const name of state.open.keys()) refreshOpen(name);
          showError(null);
        } while (state.relistAgain);
      } catch (e) {
        showError(e);
      } finally {
        if (gen === auth.gen) state.listing = null;
      }
    })();
    return state.listing;
  }

  function matches(j, f) {
    if (j.name.toLowerCase().includes(f)) return true;
    if (String(j.phase).toLowerCase() === f) return true;
    if ((j.workers || []).some((w) => w.toLowerCase().includes(f))) return true;
    return !!j.reason && j.reason.toLowerCase().includes(f);
  }

  function visibleNames() {
    const f = state.filter;
    if (!f) return state.names;
    return state.names.filter((n) => matches(state.jobs.get(n), f));
  }

  let renderQueued = false;
  function queueRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => { renderQueued = false; renderJobs(); });
  }

  function rowsFragment(names, from, to) {
    const frag = document.createDocumentFragment();
    for (let i = from; i < to; i++) {
      const name = names[i];
      frag.append(rowFor(name));
      const o = state.open.get(name);
      if (o) frag.append(o.tr);
    }
    return frag;
  }

  /** Runs `f` once the browser has painted the next frame. */
  function afterPaint(f) {
    // A frame callback runs before the frame is painted; a task queued from it, after.
    requestAnimationFrame(() => setTimeout(f, 0));
  }

  let renderGen = 0;
  let allRowsMarked = false;

  /**
   * Shows the jobs that pass the filter: the first FIRST_ROWS at once, the rest in chunks after
   * the browser has painted, so that a long list shows its top quickly and the page never
   * freezes. A newer render cancels the chunks of an older one.
   */
  function renderJobs() {
    const gen = ++renderGen;
    const names = visibleNames();
    const n = Math.min(names.length, state.shown);
    const body = $("jobs-body");
    const first = Math.min(n, FIRST_ROWS);
    body.replaceChildren(rowsFragment(names, 0, first));
    const done = () => {
      if (!allRowsMarked && state.names.length) {
        allRowsMarked = true;
        performance.mark("orkestrator:jobs-all-rows");
      }
    };
    const step = (from) => afterPaint(() => {
      if (gen !== renderGen) return;
      const to = Math.min(n, from + ROW_CHUNK);
      body.append(rowsFragment(names, from, to));
      if (to < n) step(to); else done();
    });
    if (first < n) step(first); else done();
    const total = state.names.length;
    $("jobs-count").textContent = state.filter
      ? "(" + names.length + " of " + total + ")"
      : "(" + total + ")";
    const empty = $("jobs-empty");
    empty.hidden = names.length > 0;
    empty.textContent = total ? "No job matches the filter." : "No jobs. Submit one with `orkestrator run -f job.yaml`.";
    const more = $("more");
    more.hidden = names.length <= n;
    more.textContent = "Show " + Math.min(SHOW_STEP, names.length - n) + " more (" + (names.length - n) + " not shown)";
  }

  /** The row of `name`, built again only when its summary changed. */
  function rowFor(name) {
    const summary = state.jobs.get(name);
    const cached = state.rows.get(name);
    if (cached && cached.summary === summary) return cached.tr;
    const tr = cached ? cached.tr : el("tr", { class: "job", "data-job": name, onclick: () => toggle(name) });
    fillRow(tr, name, summary);
    state.rows.set(name, { summary, tr });
    return tr;
  }

  function fillRow(tr, name, j) {
    const open = state.open.has(name);
    tr.classList.toggle("open", open);
    const button = el("button", {
      class: "toggle", type: "button", "aria-expanded": open ? "true" : "false",
      "aria-label": (open ? "Collapse " : "Expand ") + name,
    }, open ? "▾" : "▸");
    tr.replaceChildren(
      el("td", null, button),
      el("td", { class: "name" }, j.name),
      el("td", { class: "phase" }, badge(j.phase)),
      el("td", { class: "num" }, String(j.version)),
      el("td", { class: "num" }, String(j.tasks)),
      el("td", { class: "job-workers" }, (j.workers || []).join(", ")),
      el("td", { class: "reason" }, j.reason || ""),
    );
  }

  function toggle(name) {
    if (state.open.has(name)) {
      state.open.delete(name);
    } else {
      const tr = el("tr", { class: "detail", "data-detail": name },
        el("td", { colspan: 7 }, el("p", { class: "empty" }, "Loading…")));
      state.open.set(name, { view: null, metrics: null, tr });
      refreshOpen(name);
    }
    state.rows.delete(name); // its toggle changes
    renderJobs();
  }

  /** The summary the list would show, from a job's full view. */
  function summaryOf(v) {
    const live = v.instances.filter((i) => i.desired === "run");
    const workers = [];
    for (const i of live) if (i.worker && !workers.includes(i.worker)) workers.push(i.worker);
    let reason;
    if (v.phase === "Pending") {
      const p = v.instances.find((i) => i.pending_reason);
      reason = p ? p.pending_reason : undefined;
    } else {
      for (const i of v.instances) {
        for (const [task, s] of Object.entries(i.tasks)) {
          if (!reason && s.state === "Failed") reason = "task " + task + ": " + (s.reason || "failed");
        }
      }
    }
    return { name: v.name, phase: v.phase, version: v.version, tasks: v.spec.tasks.length, workers, reason };
  }

  function insertName(name) {
    let lo = 0, hi = state.names.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (state.names[mid] < name) lo = mid + 1; else hi = mid;
    }
    if (state.names[lo] !== name) state.names.splice(lo, 0, name);
  }

  function removeJob(name) {
    if (!state.jobs.delete(name)) return;
    const i = state.names.indexOf(name);
    if (i >= 0) state.names.splice(i, 1);
    state.rows.delete(name);
    state.open.delete(name);
    queueRender();
  }

  function markDirty(name) {
    state.dirty.add(name);
    if (!state.dirtyTimer) state.dirtyTimer = setTimeout(flushDirty, DIRTY_MS);
  }

  async function flushDirty() {
    state.dirtyTimer = 0;
    const names = [...state.dirty];
    state.dirty.clear();
    if (names.length > RELIST_OVER) { relist(); return; }
    await Promise.all(names.map(refreshJob));
  }

  /** Fetches one job again and updates its row (and its details when open). */
  async function refreshJob(name) {
    let view;
    try {
      view = await api("/v1/jobs/" + encodeURIComponent(name));
    } catch (e) {
      if (e.status === 404) removeJob(name); else showError(e);
      return;
    }
    if (!state.jobs.has(name)) insertName(name);
    state.jobs.set(name, summaryOf(view));
    const o = state.open.get(name);
    if (o) { o.view = view; renderDetail(name); }
    queueRender();
  }

  async function refreshOpen(name) {
    const o = state.open.get(name);
    if (!o) return;
    const path = "/v1/jobs/" + encodeURIComponent(name);
    const [view, metrics] = await Promise.all([
      api(path).catch((e) => (e.status === 404 ? null : o.view)),
      api(path + "/metrics?last=" + METRICS_LAST).catch(() => o.metrics),
    ]);
    if (state.open.get(name) !== o) return;
    if (view === null) { removeJob(name); return; }
    o.view = view;
    o.metrics = metrics;
    if (view) {
      const s = summaryOf(view);
      const old = state.jobs.get(name);
      if (!old || old.phase !== s.phase || old.version !== s.version || old.reason !== s.reason ||
          (old.workers || []).join() !== s.workers.join()) {
        state.jobs.set(name, s);
        queueRender();
      }
    }
    renderDetail(name);
  }

  // ---------------------------------------------------------------------------------------
  // Job details

  function renderDetail(name) {
    const o = state.open.get(name);
    if (!o || !o.view) return;
    const v = o.view;
    const series = new Map();
    for (const t of (o.metrics && o.metrics.tasks) || []) series.set(t.instance + "/" + t.task, t.samples || []);

    const spec = el("div", { class: "spec" },
      el("div", { class: "muted" },
        "version " + v.version + " · submitted " + fmtAgo(v.submitted_at) + " · " +
        v.instances.length + " instance" + (v.instances.length === 1 ? "" : "s") +
        (v.spec.count !== undefined ? " (count " + v.spec.count + ")" : "")),
      ...v.spec.tasks.map(specTask));

    const head = el("tr", null, ...["Instance", "Worker", "Task", "State", "Exit", "Restarts", "Since", "Reason", "CPU", "Memory"]
      .map((h) => el("th", null, h)));
    const rows = [];
    for (const inst of v.instances) {
      for (const [task, s] of Object.entries(inst.tasks)) {
        const samples = series.get(inst.id + "/" + task) || [];
        const limit = samples.length ? samples[samples.length - 1].memory_limit_bytes : 0;
        const reason = [s.reason, inst.pending_reason].filter(Boolean).join(" · ");
        rows.push(el("tr", { "data-task": task },
          el("td", { class: "idx", title: inst.id }, "#" + inst.index + (inst.desired === "stop" ? " (stopping)" : "")),
          el("td", null, inst.worker || "—"),
          el("td", null, task),
          el("td", null, badge(s.state), s.healthy === false ? " unhealthy" : s.healthy ? " healthy" : ""),
          el("td", { class: "num" }, s.exit_code === undefined || s.exit_code === null ? "" : String(s.exit_code)),
          el("td", { class: "num" }, String(s.restarts || 0)),
          el("td", null, s.since ? fmtAgo(s.since) : ""),
          el("td", { class: "reason" }, reason),
          el("td", null, sparkline("cpu", "CPU cores", samples.map((x) => x.cpu_cores), 0, fmtCores)),
          el("td", null, sparkline("mem", "memory working set", samples.map((x) => x.memory_working_set_bytes), limit, fmtBytes)),
        ));
      }
    }
    const tasks = rows.length
      ? el("table", { class: "tasks" }, el("thead", null, head), el("tbody", null, ...rows))
      : el("p", { class: "empty" }, "No instances.");
    o.tr.replaceChildren(el("td", { colspan: 7 }, spec, tasks));
  }

  function specTask(t) {
    const env = Object.entries(t.env || {});
    const r = t.resources || {};
    const dl = el("dl", { class: "kv" },
      el("dt", null, "image"), el("dd", { class: "mono" }, t.image),
      el("dt", null, "command"), el("dd", null, t.command && t.command.length
        ? el("span", { class: "cmd" }, t.command.map(quoteArg).join(" "))
        : el("span", { class: "muted" }, "(image default)")),
      el("dt", null, "resources"), el("dd", null, "cpu " + (r.cpu ?? "?") + " · memory " + (r.memory ?? "?") + " · disk " + (r.disk ?? "?")));
    if (env.length) {
      dl.append(el("dt", null, "env"), el("dd", null, ...env.map(([k, v]) => el("div", { class: "mono" }, k + "=" + v))));
    }
    return el("div", { class: "spec-task" }, el("div", { class: "title" }, t.name), dl);
  }

  /** A command argument as a shell would need it (for reading, not for running). */
  function quoteArg(a) {
    return /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : "'" + a.replace(/'/g, "'\\''") + "'";
  }

  // ---------------------------------------------------------------------------------------
  // Events

  function describe(k) {
    const parts = [];
    switch (k.type) {
      case "task_state_changed":
        parts.push(k.job + " · " + k.task + ": " + k.from + " → " + k.to);
        if (k.reason) parts.push(k.reason);
        break;
      case "instance_placed": parts.push(k.job + " on " + k.worker); break;
      case "instance_unschedulable": parts.push(k.job + ": " + k.reason); break;
      case "job_submitted": case "job_updated": parts.push(k.job + " v" + k.version); break;
      case "worker_liveness": parts.push(k.worker + " is " + k.status); break;
      case "scheduler_liveness": parts.push(k.scheduler + " is " + k.status); break;
      case "collected": parts.push(k.jobs + " jobs, " + k.instances + " instances, " + k.workers + " workers"); break;
      default:
        for (const key of ["job", "worker", "scheduler", "reason"]) if (k[key]) parts.push(String(k[key]));
    }
    return parts.join(" — ");
  }

  function queueEventLine(li) {
    state.pendingEvents.push(li);
    if (state.pendingEvents.length === 1) requestAnimationFrame(flushEventLines);
  }

  function flushEventLines() {
    const list = $("events");
    const lines = state.pendingEvents.splice(0).slice(-EVENTS_KEPT).reverse();
    list.prepend(...lines);
    while (list.childElementCount > EVENTS_KEPT) list.lastElementChild.remove();
    $("events-empty").hidden = list.childElementCount > 0;
  }

  function eventLine(ev) {
    const type = String(ev.kind.type || "event").replace(/_/g, " ");
    return el("li", { class: "new", "data-type": ev.kind.type },
      el("time", null, fmtTime(ev.at)), el("span", { class: "type" }, type),
      el("span", { class: "text" }, describe(ev.kind)));
  }

  function onEvent(ev) {
    queueEventLine(eventLine(ev));
    const k = ev.kind;
    // What the list already reflects needs no fetch.
    const fresh = ev.index > state.baseIndex;
    if (k.type === "job_collected") removeJob(k.job);
    else if (k.job && fresh) markDirty(k.job);
    if (k.type.startsWith("worker") || k.type === "instance_placed" || k.type === "task_state_changed" || k.type === "collected") {
      scheduleWorkers();
    }
    scheduleHealth();
  }

  let stream = null;
  function openStream(fromIndex) {
    const conn = $("conn");
    const q = state.lastEventId ? "?index=" + encodeURIComponent(state.lastEventId) : "?index=" + fromIndex;
    const es = new EventSource("/v1/events" + q);
    stream = es;
    es.onopen = () => { conn.dataset.state = "live"; conn.textContent = "live"; };
    es.onmessage = (m) => {
      state.lastEventId = m.lastEventId || state.lastEventId;
      let ev;
      try { ev = JSON.parse(m.data); } catch (_) { return; }
      onEvent(ev);
    };
    es.addEventListener("reset", (m) => {
      state.lastEventId = m.lastEventId || state.lastEventId;
      let reset = {};
      try { reset = JSON.parse(m.data); } catch (_) { /* keep */ }
      // The stream goes on after reset.index: a listing as new as that misses nothing.
      if (typeof reset.index === "number" && reset.index <= state.baseIndex) return;
      queueEventLine(el("li", { class: "new reset" }, el("time", null, fmtTime(Date.now())),
        el("span", { class: "type" }, "reset"),
        el("span", { class: "text" }, reset.message || "events were missed; re-listing")));
      relist();
      scheduleWorkers();
    });
    es.onerror = () => {
      if (stream !== es) return;
      conn.dataset.state = "down";
      conn.textContent = "reconnecting";
      // The browser retries by itself unless the answer was not a stream (a 401 when the
      // session is gone, say); then ask who is signed in (a 401 there shows the sign-in form)
      // and start anew.
      if (es.readyState === EventSource.CLOSED) {
        timers.stream = setTimeout(async () => {
          timers.stream = 0;
          if (stream !== es) return;
          try {
            await api("/v1/auth/whoami");
          } catch (e) {
            if (e.stale || e.status === 401) return;
          }
          if (stream === es) openStream(state.baseIndex);
        }, 3000);
      }
    };
  }

  function closeStream() {
    if (stream) stream.close();
    stream = null;
  }

  // ---------------------------------------------------------------------------------------
  // Polling what events do not carry (measured use, metrics windows)

  function poll(gen) {
    timers.poll = setTimeout(async () => {
      timers.poll = 0;
      if (gen !== auth.gen) return;
      if (!document.hidden) {
        await Promise.all([loadWorkers(), loadHealth(), ...[...state.open.keys()].map(refreshOpen)]);
      }
      if (gen === auth.gen) poll(gen);
    }, POLL_MS);
  }

  // ---------------------------------------------------------------------------------------
  // Signing in and out

  /** Stops everything a session started and forgets what it showed. */
  function forget() {
    closeStream();
    for (const k of Object.keys(timers)) { clearTimeout(timers[k]); timers[k] = 0; }
    clearTimeout(healthTimer); healthTimer = 0;
    clearTimeout(workersTimer); workersTimer = 0;
    clearTimeout(state.dirtyTimer);
    Object.assign(state, freshState(), { filter: state.filter });
    renderGen++; // cancels the row chunks of an older render
    $("counts").replaceChildren();
    $("workers-count").textContent = "";
    $("workers").replaceChildren(el("p", { class: "empty" }, "Loading workers…"));
    $("jobs-body").replaceChildren();
    $("jobs-count").textContent = "";
    $("jobs-empty").textContent = "Loading jobs…";
    $("jobs-empty").hidden = false;
    $("more").hidden = true;
    $("events").replaceChildren();
    $("events-empty").hidden = false;
    showError(null);
  }

  /**
   * Signed in as `info` (a TokenInfo): shows who, and loads everything (`health`: a health
   * report just read, if any).
   */
  function signedIn(info, health) {
    forget();
    auth.gen++;
    auth.who = info;
    document.documentElement.dataset.auth = "signed-in";
    $("signin").hidden = true;
    $("signin-message").hidden = true;
    const role = $("who-role");
    role.textContent = String(info.role) + (info.name ? " · " + info.name : "");
    role.dataset.role = String(info.role);
    role.title = "token " + info.id;
    $("who").hidden = false;
    $("counts").hidden = false;
    $("layout").hidden = false;
    begin(auth.gen, health);
  }

  /**
   * The session is gone (or never was): forgets its data and shows the sign-in form, saying
   * `why` when the page was signed in.
   */
  function signedOut(why) {
    const was = auth.who;
    auth.gen++;
    auth.who = null;
    forget();
    const html = document.documentElement;
    html.dataset.auth = "signed-out";
    delete html.dataset.ready;
    $("who").hidden = true;
    $("counts").hidden = true;
    $("layout").hidden = true;
    const conn = $("conn");
    conn.dataset.state = "signed-out";
    conn.textContent = "signed out";
    if (was && why) signInMessage("note", why); else $("signin-message").hidden = true;
    $("signin").hidden = false;
    $("signin-token").focus();
  }

  function signInMessage(kind, text) {
    const m = $("signin-message");
    m.dataset.kind = kind;
    m.textContent = text;
    m.hidden = false;
  }

  /** The sign-in form's submit: POST /v1/session; the answer sets the session cookie. */
  async function signIn(ev) {
    ev.preventDefault();
    const input = $("signin-token");
    const button = $("signin-button");
    if (!input.value.trim()) { signInMessage("error", "Enter a token."); return; }
    button.disabled = true;
    $("signin-message").hidden = true;
    let info;
    try {
      info = await api("/v1/session", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token: input.value.trim() }),
        signingIn: true,
      });
    } catch (e) {
      if (e.stale) return;
      let text;
      if (e.status === 401 && /session/.test(e.reason)) {
        // The answer is about the cookie of an old session, not the token typed.
        text = "Cannot sign in: " + e.reason + " (the browser still sends an old session's " +
          "cookie; clear this site's cookies)";
      } else if (e.status === 401) text = "That token is not valid: " + e.reason;
      else if (e.status === 403) text = e.reason;
      else if (e.status) text = "Cannot sign in: " + e.reason;
      else text = "Cannot reach the manager: " + (e.message || String(e));
      signInMessage("error", text);
      input.select();
      return;
    } finally {
      button.disabled = false;
    }
    input.value = "";
    signedIn(info);
  }

  async function signOut() {
    try {
      await api("/v1/session", { method: "DELETE", signingIn: true });
    } catch (_) { /* signed out all the same */ }
    signedOut(null);
    signInMessage("note", "Signed out.");
  }

  /**
   * Asks who the page is signed in as: signs in, shows the form (401), or tries again. The
   * health report the page starts from is read at the same time (one round trip less).
   */
  async function whoAmI() {
    let who, health;
    try {
      [who, health] = await Promise.all([api("/v1/auth/whoami"), api("/v1/health")]);
    } catch (e) {
      if (e.stale || e.status === 401) return; // api() showed the sign-in form
      showError(e);
      timers.retry = setTimeout(whoAmI, 3000);
      return;
    }
    signedIn(who, health && health.manager ? health : null);
  }

  // ---------------------------------------------------------------------------------------
  // Start

  /** Loads everything for the session of generation `gen` and follows its events. */
  async function begin(gen, health) {
    let h = health;
    if (h) renderHealth(h); else h = await loadHealth();
    if (gen !== auth.gen) return;
    const index = h && h.manager ? h.manager.index : 0;
    state.baseIndex = index;
    // Follow from the last few changes on (a little history for the panel), then list: nothing
    // that happens after the list is missed.
    openStream(Math.max(0, index - 20));
    const workers = loadWorkers();
    await relist(index);
    if (gen !== auth.gen) return;
    performance.mark("orkestrator:jobs-rendered");
    await new Promise(afterPaint);
    performance.mark("orkestrator:jobs-painted");
    await workers;
    if (gen !== auth.gen) return;
    document.documentElement.dataset.ready = "true";
    poll(gen);
  }

  function start() {
    let filterTimer = 0;
    $("filter").addEventListener("input", (e) => {
      clearTimeout(filterTimer);
      filterTimer = setTimeout(() => {
        state.filter = e.target.value.trim().toLowerCase();
        state.shown = SHOW_STEP;
        renderJobs();
      }, 120);
    });
    $("more").addEventListener("click", () => { state.shown += SHOW_STEP; renderJobs(); });
    // Back to a hidden tab: catch up on what polling skipped meanwhile.
    document.addEventListener("visibilitychange", () => {
      if (document.hidden || !auth.who) return;
      scheduleWorkers(); scheduleHealth(); for (const n of state.open.keys()) refreshOpen(n);
    });
    $("events-clear").addEventListener("click", () => {
      $("events").replaceChildren();
      $("events-empty").hidden = false;
    });
    $("signin-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", signOut);
    whoAmI();
  }

  start();
})();
