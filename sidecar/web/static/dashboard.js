/* Dashboard: library coverage, health, the running task (live), failed tracks, next steps. */
(function () {
  "use strict";
  const { el, fmt } = AM;
  const $ = (id) => document.getElementById(id);
  const PAGE = 50;
  let failedShown = 0;

  async function loadStats() {
    const s = await AM.get("/api/library/stats");
    const total = (s.pending || 0) + (s.analyzing || 0) + (s.analyzed || 0) + (s.failed || 0);
    $("stat-total").textContent = fmt.num(total);
    $("stat-analyzed").textContent = fmt.num(s.analyzed);
    $("stat-pending").textContent = fmt.num((s.pending || 0) + (s.analyzing || 0));
    $("stat-failed").textContent = fmt.num(s.failed);
    const share = (n) => (total ? `${(100 * (n || 0)) / total}%` : "0");
    $("cov-analyzed").style.width = share(s.analyzed);
    $("cov-analyzing").style.width = share(s.analyzing);
    $("cov-failed").style.width = share(s.failed);
    $("coverage-pct").textContent = total ? `${Math.floor((100 * (s.analyzed || 0)) / total)}% analysed` : "no track listed yet";
    markSteps(total, s.analyzed || 0);
    return s;
  }

  function markSteps(total, analyzed) {
    const done = { library: total > 0, analysis: analyzed > 0, clustering: window.DASHBOARD.hasClustering, explore: false };
    for (const li of document.querySelectorAll("#steps li")) li.classList.toggle("done", !!done[li.dataset.step]);
  }

  async function loadHealth() {
    let h;
    try {
      h = await AM.get("/healthz");
    } catch (err) {
      h = err.body || { database: { status: "error" }, redis: { status: "error" } };
    }
    const badge = (status, text) => [el("span", { class: `badge ${status === "ok" ? "ok" : status === "degraded" ? "warn" : "bad"}` }, status), " ", text || ""];
    const db = h.database || {};
    $("health-db").replaceChildren(...badge(db.status, db.status === "ok" ? `PostgreSQL ${db.version || ""}, pgvector ${db.pgvector || "?"}, schema ${db.schema_version ?? "?"}` : db.detail));
    const r = h.redis || {};
    $("health-redis").replaceChildren(...badge(r.status === "error" ? "error" : "ok", r.status === "error" ? r.detail : "reachable"));
    const workerOk = r.worker === "ok";
    $("health-worker").replaceChildren(...badge(workerOk ? "ok" : r.status === "error" ? "error" : "degraded", workerOk ? "a worker is running" : r.worker || ""));
  }

  async function loadFailed(append) {
    const start = append ? failedShown : 0;
    const f = await AM.get("/api/library/failed", { start, end: start + PAGE });
    $("failed-total").textContent = f.total ? `(${fmt.num(f.total)})` : "";
    $("failed-none").classList.toggle("hidden", f.total > 0);
    $("failed-some").classList.toggle("hidden", f.total === 0);
    $("failed-reasons").replaceChildren(...f.reasons.map((r) =>
      el("span", { class: "badge bad", title: r.example || "" }, `${r.reason} × ${r.count}`)));
    const rows = f.items.map((t) => el("tr", {},
      el("td", {}, t.title || t.file_path || t.item_id),
      el("td", {}, t.artist || ""),
      el("td", {}, t.album || ""),
      el("td", { class: "small" }, t.failure_reason || ""),
      el("td", { class: "small" }, fmt.ago(t.analyzed_at))));
    if (append) $("failed-rows").append(...rows);
    else $("failed-rows").replaceChildren(...rows);
    failedShown = start + f.items.length;
    $("failed-more").classList.toggle("hidden", failedShown >= f.total);
  }
  $("failed-more").addEventListener("click", () => loadFailed(true).catch((e) => AM.toast(e.message, "bad")));

  function renderRunning(t) {
    const active = AM.tasks.isActive(t);
    $("running-title").textContent = active ? `${AM.tasks.title(t)} running` : "Nothing running";
    const badge = $("running-status");
    badge.textContent = t.status;
    badge.className = `badge ${t.status}${active ? "" : " hidden"}`;
    $("running-bar").style.width = `${active ? Math.max(0, Math.min(100, t.progress || 0)) : 0}%`;
    if (active) $("running-message").textContent = `${t.progress || 0}% · ${t.status_message || ""}`;
    const row = document.querySelector(`#last-tasks tr[data-task="${CSS.escape(t.task_id)}"]`);
    if (row) {
      row.querySelector(".badge").textContent = t.status;
      row.querySelector(".badge").className = `badge ${t.status}`;
    }
  }

  for (const cell of document.querySelectorAll("td.when")) if (cell.dataset.iso) cell.textContent = fmt.when(cell.dataset.iso);

  AM.tasks.watch({
    onTask: (t) => { renderRunning(t); loadStats().catch(() => {}); },
    onEnd: (t) => {
      AM.tasks.endToast(t);
      $("running-message").textContent = `Last: ${AM.tasks.title(t)} ${t.status.toLowerCase()}`;
      if (t.task_type === "main_clustering" && t.status === "SUCCESS") window.DASHBOARD.hasClustering = true;
      loadStats().then(() => loadFailed(false)).catch(() => {});
    },
  });
  loadStats().catch((e) => AM.toast(e.message, "bad"));
  loadHealth();
  setInterval(loadHealth, 10000);
  loadFailed(false).catch((e) => AM.toast(e.message, "bad"));
})();
