/* Shared by the dashboard and the analysis page: names of tasks, and watching the running task.
 *   AM.tasks.title(task)                          "Analysis", "Clustering", ...
 *   AM.tasks.watch({onTask, onEnd, fastMs, slowMs})  polls /api/status of the running task every
 *        fastMs (<= 2 s), and /api/active_tasks every slowMs while nothing runs; returns {follow(id), stop()}
 */
(function () {
  "use strict";
  const ACTIVE = new Set(["PENDING", "STARTED", "PROGRESS"]);
  const TITLES = {
    main_analysis: "Analysis", album_analysis: "Album", library_sync: "Library sync",
    main_clustering: "Clustering", clustering_batch: "Clustering batch",
  };
  const title = (t) => TITLES[t.task_type] || t.task_type;
  const isActive = (t) => t && ACTIVE.has(t.status);

  function watch({ onTask, onEnd, fastMs = 1500, slowMs = 5000, childrenLimit = 50 }) {
    let current = null, lastSlow = 0, seen = null, stopped = false;
    const tick = async () => {
      if (current) {
        const t = await AM.get(`/api/status/${encodeURIComponent(current)}`, { children_limit: childrenLimit });
        onTask(t);
        if (!isActive(t)) {
          current = null;
          if (onEnd && seen === t.task_id) onEnd(t);
          seen = null;
        }
        return;
      }
      if (Date.now() - lastSlow < slowMs) return;
      lastSlow = Date.now();
      const active = await AM.get("/api/active_tasks");
      if (active.length) {
        current = seen = active[0].task_id;
        await tick();
      }
    };
    const stop = AM.poll(async () => { if (!stopped) await tick(); }, fastMs);
    return {
      follow(id) { current = seen = id; lastSlow = 0; tick().catch((e) => console.warn(e)); },
      stop() { stopped = true; stop(); },
      get current() { return current; },
    };
  }

  function endToast(t) {
    const name = title(t);
    if (t.status === "SUCCESS") AM.toast(`${name} finished`, "ok", 8000);
    else if (t.status === "REVOKED") AM.toast(`${name} cancelled`, "warn", 8000);
    else AM.toast(`${name} ended: ${t.status_message || t.status}`, "bad", 10000);
  }

  window.AM.tasks = { title, isActive, watch, endToast, ACTIVE };
})();
