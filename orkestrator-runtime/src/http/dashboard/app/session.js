// Signing in and out, and starting the page.
// ---------------------------------------------------------------------------------------
// Signing in and out

/** Stops everything a session started and forgets what it showed. */
function forget() {
  closeStream();
  for (const k of Object.keys(timers)) { clearTimeout(timers[k]); timers[k] = 0; }
  clearTimeout(healthTimer); healthTimer = 0;
  clearTimeout(workersTimer); workersTimer = 0;
  clearTimeout(volumesTimer); volumesTimer = 0;
  clearTimeout(state.dirtyTimer);
  Object.assign(state, freshState(), { filter: state.filter });
  renderGen++; // cancels the row chunks of an older render
  $("counts").replaceChildren();
  $("workers-count").textContent = "";
  $("workers").replaceChildren(el("p", { class: "empty" }, "Loading workers…"));
  $("volumes-count").textContent = "";
  $("volumes-body").replaceChildren();
  $("volumes-empty").textContent = "Loading volumes…";
  $("volumes-empty").hidden = false;
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
  const volumes = loadVolumes();
  await relist(index);
  if (gen !== auth.gen) return;
  performance.mark("orkestrator:jobs-rendered");
  await new Promise(afterPaint);
  performance.mark("orkestrator:jobs-painted");
  await Promise.all([workers, volumes]);
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
    scheduleWorkers(); scheduleVolumes(); scheduleHealth(); for (const n of state.open.keys()) refreshOpen(n);
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
