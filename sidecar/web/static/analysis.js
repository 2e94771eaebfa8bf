/* Analysis & clustering page: start/cancel both runs, follow the running task (<= 2 s), show the
 * last clustering's playlists. */
(function () {
  "use strict";
  const { el, fmt } = AM;
  const $ = (id) => document.getElementById(id);
  const aForm = $("analysis-form"), cForm = $("clustering-form");
  let shown = null; // the task on screen

  /** the form's values for the API: every field for the analysis, the changed ones for clustering */
  function values(form, changedOnly) {
    const out = {};
    for (const input of form.querySelectorAll("[name]")) {
      const kind = input.dataset.kind, raw = input.value.trim();
      let v;
      if (kind === "bool") v = input.checked;
      else if (kind === "int" || kind === "float") {
        if (raw === "") continue;
        v = Number(raw);
      } else if (kind === "list") v = raw.split(",").map((s) => s.trim()).filter(Boolean);
      else if (kind === "secret") { if (!raw) continue; v = raw; }
      else v = raw;
      const def = input.dataset.default;
      const same = kind === "bool" ? String(v) === def
        : kind === "list" ? v.join(", ") === def
        : kind === "int" || kind === "float" ? v === Number(def) : v === def;
      if (changedOnly && same) continue;
      out[input.name] = v;
    }
    return out;
  }

  async function start(form, path, body, what) {
    AM.clearFieldErrors(form);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const out = await AM.api("POST", path, body);
      AM.toast(`${what} started`, "ok");
      watcher.follow(out.task_id);
    } catch (err) {
      if (err.status === 409 && err.detail && err.detail.task_id) {
        AM.toast(`${what} is already running: following it`, "warn");
        watcher.follow(err.detail.task_id);
      } else if (!AM.showFieldError(form, err)) {
        AM.toast(err.message, "bad", 10000);
      }
    } finally {
      button.disabled = false;
    }
  }

  aForm.addEventListener("submit", (e) => {
    e.preventDefault();
    start(aForm, "/api/analysis/start", values(aForm, false), "Analysis");
  });
  cForm.addEventListener("submit", (e) => {
    e.preventDefault();
    start(cForm, "/api/clustering/start", values(cForm, true), "Clustering");
  });
  $("reset-clustering").addEventListener("click", () => {
    cForm.reset();
    AM.clearFieldErrors(cForm);
  });
  for (const [button, type] of [["cancel-analysis", "main_analysis"], ["cancel-clustering", "main_clustering"]]) {
    $(button).addEventListener("click", async () => {
      if (!shown || shown.task_type !== type) return;
      try {
        await AM.api("POST", `/api/cancel/${encodeURIComponent(shown.task_id)}`);
        AM.toast("Cancelling…", "warn");
      } catch (err) {
        AM.toast(err.message, "bad");
      }
    });
  }

  function renderTask(t) {
    shown = t;
    const active = AM.tasks.isActive(t);
    $("task-title").textContent = active ? `${AM.tasks.title(t)} running` : `Last task: ${AM.tasks.title(t)}`;
    const badge = $("task-status");
    badge.textContent = t.status;
    badge.className = `badge ${t.status}`;
    $("task-when").textContent = t.finished_at ? `ended ${fmt.ago(t.finished_at)}` : t.started_at ? `started ${fmt.ago(t.started_at)}` : "";
    const pct = Math.max(0, Math.min(100, Number(t.progress) || 0));
    $("task-bar").style.width = `${pct}%`;
    $("task-percent").textContent = `${pct}%`;
    $("task-message").textContent = t.status_message || "";
    $("cancel-analysis").classList.toggle("hidden", !(active && t.task_type === "main_analysis"));
    $("cancel-clustering").classList.toggle("hidden", !(active && t.task_type === "main_clustering"));
    $("analysis-state").textContent = active && t.task_type === "main_analysis" ? `${pct}% done` : "";

    const kids = t.children || { total: 0, items: [], by_status: {} };
    $("task-children").classList.toggle("hidden", !kids.total);
    $("children-counts").textContent = kids.total
      ? `(${kids.total}: ${Object.entries(kids.by_status).map(([s, n]) => `${n} ${s.toLowerCase()}`).join(", ")})` : "";
    $("children-rows").replaceChildren(...kids.items.map((c) => el("tr", {},
      el("td", {}, AM.tasks.title(c), (c.details && c.details.album) ? el("div", { class: "muted small" }, c.details.album) : null),
      el("td", {}, el("span", { class: `badge ${c.status}` }, c.status)),
      el("td", { class: "num" }, `${c.progress || 0}%`),
      el("td", { class: "small" }, c.last_log || ""),
    )));
    const reasons = (t.details && t.details.failure_reasons) || [];
    $("task-failures").classList.toggle("hidden", !reasons.length);
    $("failure-reasons").replaceChildren(...reasons.map((r) =>
      el("li", {}, el("strong", {}, r.reason), ` × ${r.count}`, r.example ? el("span", { class: "muted small" }, ` (e.g. ${r.example})`) : null)));
    const log = $("task-log");
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent = (t.log || []).join("\n") || "(empty)";
    if (atEnd) log.scrollTop = log.scrollHeight;
  }

  function profileLine(p) {
    if (!p) return null;
    const moods = Object.entries(p.moods || {});
    return el("div", {},
      el("div", { class: "chips" }, moods.map(([m, v]) => el("span", { class: "badge", title: `score ${v}` }, m))),
      el("div", { class: "muted small", style: "margin-top:.35rem" },
        `tempo ${fmt.pct(p.tempo_normalized)} · energy ${fmt.pct(p.energy_normalized)}`));
  }

  async function loadResult() {
    let r;
    if (!window.ANALYSIS.hasClustering) {
      $("result-summary").textContent = "No clustering has finished yet. Analyse the library, then start a clustering above.";
      return;
    }
    try {
      r = await AM.get("/api/clustering/result");
    } catch (err) {
      if (err.status !== 404) throw err;
      $("result-summary").textContent = "No clustering has finished yet. Analyse the library, then start a clustering above.";
      $("result-playlists").replaceChildren();
      return;
    }
    $("result-summary").replaceChildren(
      `${r.playlists.length} playlists from ${fmt.num(r.tracks)} tracks, finished ${fmt.when(r.finished_at)}`,
      r.best_score !== null && r.best_score !== undefined ? ` · score ${Number(r.best_score).toFixed(3)}` : "",
      r.runs_done ? ` · ${fmt.num(r.runs_done)} runs` : "",
      r.best_params && r.best_params.method ? ` · ${r.best_params.method}` : "");
    $("result-playlists").replaceChildren(...r.playlists.map((pl) => el("div", { class: "card playlist-card", style: "margin:0" },
      el("h3", {}, pl.name, " ", el("span", { class: "muted small" }, `${pl.size} songs`)),
      profileLine(pl.profile),
      el("details", {}, el("summary", { class: "small" }, "Songs"),
        el("ol", { class: "small" }, pl.songs.map((s) => el("li", {}, s.title || s.item_id, s.author ? el("span", { class: "muted" }, ` – ${s.author}`) : null)))),
    )));
  }

  const watcher = AM.tasks.watch({
    onTask: renderTask,
    onEnd: (t) => {
      AM.tasks.endToast(t);
      if (t.task_type === "main_clustering" && t.status === "SUCCESS") window.ANALYSIS.hasClustering = true;
      if (t.task_type === "main_clustering") loadResult().catch((e) => AM.toast(e.message, "bad"));
    },
  });
  AM.get("/api/last_task").then((t) => { if (t.task_id && !shown) renderTask(t); }).catch((e) => console.warn(e));
  loadResult().catch((e) => AM.toast(e.message, "bad"));
})();
