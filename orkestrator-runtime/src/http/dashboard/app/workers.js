// The workers panel.
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
