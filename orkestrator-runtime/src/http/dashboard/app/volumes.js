// The volumes panel.
// ---------------------------------------------------------------------------------------
// Volumes (GET /v1/volumes): where each instance's named volumes live

let volumesTimer = 0;
function scheduleVolumes() {
  if (!volumesTimer) volumesTimer = setTimeout(() => { volumesTimer = 0; loadVolumes(); }, 1000);
}

async function loadVolumes() {
  const gen = auth.gen;
  try {
    const list = await api("/v1/volumes");
    if (gen !== auth.gen) return;
    state.volumes = list.volumes || [];
    renderVolumes();
  } catch (e) {
    showError(e);
  }
}

/** The states a volume may be in; the class of its badge comes from this fixed list. */
const VOLUME_STATES = new Set(["active", "retained", "orphan", "removing"]);

function volumeBadge(s) {
  const v = String(s ?? "unknown");
  const cls = VOLUME_STATES.has(v) ? "v-" + v : "s-unknown";
  return el("span", { class: "badge " + cls }, v);
}

function renderVolumes() {
  const list = state.volumes;
  $("volumes-count").textContent = list.length ? "(" + list.length + ")" : "";
  $("volumes-body").replaceChildren(...list.map((v) => el("tr", {
    class: "volume", "data-volume": v.job + "/" + v.index + "/" + v.volume, "data-worker": v.worker,
  },
    el("td", { class: "name" }, v.job),
    el("td", { class: "num" }, String(v.index)),
    el("td", { class: "mono" }, v.volume),
    el("td", null, v.worker),
    el("td", { class: "state" }, volumeBadge(v.state)),
    el("td", { class: "in-use" }, v.in_use ? "yes" : "no"),
    el("td", { class: "retain" }, v.retain ? "yes" : "no"),
    el("td", { class: "mono vname", title: "created " + fmtAgo(v.created_at) }, v.name),
  )));
  const empty = $("volumes-empty");
  empty.hidden = list.length > 0;
  empty.textContent = "No named volumes. A job's `type: volume` volumes appear here once an instance is placed.";
}
