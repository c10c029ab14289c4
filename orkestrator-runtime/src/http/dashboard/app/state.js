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
//
// The script is served as one file: mod.rs puts these parts, in order, inside one strict-mode
// closure, so they share its names and nothing leaks into the page's global scope.

// The page's settings and what it knows of one session.
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
const STATES = new Set(["pending", "scheduled", "waiting", "starting", "running", "restarting", "completed",
  "failed", "lost", "stopping", "stopped", "ready", "unhealthy", "down"]);

/** What the page knows of one session; everything is forgotten on signing out. */
const freshState = () => ({
  jobs: new Map(), // name -> JobSummary
  names: [], // job names, sorted as the API lists them
  rows: new Map(), // name -> {summary, tr}
  open: new Map(), // name -> {view, metrics, tr}
  workers: [],
  workerMetrics: new Map(), // worker id -> WorkerMetrics
  volumes: [], // VolumeView, as GET /v1/volumes lists them
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
