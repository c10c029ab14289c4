// Calling the API, and the header counts.
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
    count("Tasks", sum(tasks), breakdown(tasks, ["Running", "Waiting", "Starting", "Restarting", "Pending", "Failed", "Lost"])),
    count("Schedulers", (h.schedulers || []).length),
    count("Index", h.manager ? h.manager.index : "?"),
  );
}
