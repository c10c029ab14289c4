// The job list and a job's details.
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
    specVolumes(v.spec),
    ...v.spec.tasks.map((t) => specTask(t, v.spec)));

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
        el("td", null, task, ...roleTags(v.spec, task)),
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

/**
 * What a task is for its job, as tags: `sidecar` (it does not keep its instance from
 * completing), `init` (others wait for it to complete successfully).
 */
function roleTags(spec, name) {
  const t = (spec.tasks || []).find((x) => x.name === name);
  if (!t) return [];
  const init = (spec.tasks || []).some((x) => x.depends_on && x.depends_on[name] && x.depends_on[name].condition === "completed_successfully");
  return [t.sidecar && "sidecar", init && "init"].filter(Boolean).map((tag) => el("span", { class: "tag" }, tag));
}

/** What a volume of the job is: its type and the keys of that type. */
function volumeWords(vol) {
  if (!vol) return "undeclared";
  const words = [vol.type || "volume"];
  if (vol.type === "host" && vol.source) words.push("source " + vol.source);
  if (vol.size) words.push(String(vol.size));
  if (vol.read_only) words.push("read-only");
  if (vol.retain) words.push("retain");
  if (vol.on_worker_loss === "recreate") words.push("recreate on worker loss");
  return words.join(" · ");
}

/** The job's volumes, by name (nothing when it declares none). */
function specVolumes(spec) {
  const vols = Object.entries(spec.volumes || {});
  if (!vols.length) return null;
  return el("dl", { class: "kv volumes-spec" }, el("dt", null, "volumes"), el("dd", null,
    ...vols.map(([name, vol]) => el("div", { class: "mono", "data-volume": name }, name + ": " + volumeWords(vol)))));
}

function specTask(t, spec) {
  const env = Object.entries(t.env || {});
  const r = t.resources || {};
  const words = (list) => el("span", { class: "cmd" }, list.map(quoteArg).join(" "));
  const dl = el("dl", { class: "kv" },
    el("dt", null, "image"), el("dd", { class: "mono" }, t.image));
  if (t.entrypoint) {
    dl.append(el("dt", null, "entrypoint"), el("dd", null, t.entrypoint.length
      ? words(t.entrypoint) : el("span", { class: "muted" }, "(cleared)")));
  }
  dl.append(
    el("dt", null, "command"), el("dd", null, t.command && t.command.length
      ? words(t.command)
      : el("span", { class: "muted" }, "(image default)")),
    el("dt", null, "resources"), el("dd", null, "cpu " + (r.cpu ?? "?") + " · memory " + (r.memory ?? "?") + " · disk " + (r.disk ?? "?")));
  if (t.working_dir) dl.append(el("dt", null, "working dir"), el("dd", { class: "mono" }, t.working_dir));
  const deps = Object.entries(t.depends_on || {});
  if (deps.length) {
    dl.append(el("dt", null, "waits for"), el("dd", null,
      deps.map(([d, c]) => d + " " + String((c && c.condition) || "started").replace(/_/g, " ")).join(" · ")));
  }
  if (t.stop_signal || t.stop_grace || t.init) {
    dl.append(el("dt", null, "stop"), el("dd", null,
      [t.stop_signal || "SIGTERM", t.stop_grace ? "grace " + t.stop_grace : "", t.init ? "init as PID 1" : ""].filter(Boolean).join(" · ")));
  }
  if (t.mounts && t.mounts.length) {
    const vols = (spec && spec.volumes) || {};
    dl.append(el("dt", null, "mounts"), el("dd", { class: "mounts" },
      ...t.mounts.map((m) => {
        const vol = vols[m.volume];
        const ro = m.read_only || (vol && vol.read_only);
        return el("div", { class: "mono", "data-mount": m.path },
          m.volume + (m.subpath ? "/" + m.subpath : "") + " → " + m.path +
          " (" + (vol ? vol.type : "?") + (ro ? ", read-only" : "") + ")");
      })));
  }
  // A secret's name, where its file appears and its mode; the API never carries a value.
  if (t.secrets && t.secrets.length) {
    dl.append(el("dt", null, "secrets"), el("dd", { class: "secrets" },
      ...t.secrets.map((s) => el("div", { class: "mono", "data-secret": s.name },
        s.name + " → " + s.path + " (" + s.mode + ")"))));
  }
  if (t.files && t.files.length) {
    dl.append(el("dt", null, "files"), el("dd", null,
      ...t.files.map((f) => el("div", { class: "mono" }, f.path + " (" + f.mode + ")"))));
  }
  if (env.length) {
    dl.append(el("dt", null, "env"), el("dd", null, ...env.map(([k, v]) => el("div", { class: "mono" }, k + "=" + v))));
  }
  return el("div", { class: "spec-task" }, el("div", { class: "title" }, t.name, ...(t.sidecar ? [el("span", { class: "tag" }, "sidecar")] : [])), dl);
}

/** A command argument as a shell would need it (for reading, not for running). */
function quoteArg(a) {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : "'" + a.replace(/'/g, "'\\''") + "'";
}
