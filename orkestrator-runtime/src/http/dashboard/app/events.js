// The event stream and polling what events do not carry.
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
  // Volumes are recorded when an instance is placed, change hands when a worker goes down, and
  // go when their job's garbage is collected.
  if (k.type === "instance_placed" || k.type === "task_state_changed" || k.type === "job_collected" ||
      k.type === "collected" || k.type.startsWith("worker") || k.type === "job_stopped") {
    scheduleVolumes();
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
    scheduleVolumes();
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
      await Promise.all([loadWorkers(), loadVolumes(), loadHealth(), ...[...state.open.keys()].map(refreshOpen)]);
    }
    if (gen === auth.gen) poll(gen);
  }, POLL_MS);
}
