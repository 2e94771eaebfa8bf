/* Song path: two songs, a number of steps, the path with its distances, a playlist of it. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const from = AM.songPicker($("start")), to = AM.songPicker($("end"));
  let path = [];

  // /path?start_song_id=&end_song_id= (the map's "song path" link): both songs chosen already
  (async () => {
    const q = new URLSearchParams(location.search);
    const ids = [q.get("start_song_id"), q.get("end_song_id")];
    if (!ids[0] && !ids[1]) return;
    try {
      const found = await AM.get("/api/map/tracks", { ids: ids.filter(Boolean).join(",") });
      const byId = Object.fromEntries(found.map((t) => [t.item_id, { ...t, author: t.artist }]));
      if (byId[ids[0]]) from.set(byId[ids[0]]);
      if (byId[ids[1]]) to.set(byId[ids[1]]);
    } catch (err) {
      AM.toast(err.message, "bad");
    }
  })();

  $("path-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = $("path-form");
    AM.clearFieldErrors(form);
    if (!from.song || !to.song) { AM.toast("Pick both songs from the suggestions", "warn"); return; }
    $("find-path").disabled = true;
    try {
      const r = await AM.get("/api/find_path", {
        start_song_id: from.song.item_id, end_song_id: to.song.item_id, max_steps: $("max_steps").value,
      });
      path = r.path;
      $("path-card").classList.remove("hidden");
      $("path-title").textContent = `${path.length} songs from “${from.song.title}” to “${to.song.title}”`;
      $("path-total").textContent = `total distance ${AM.fmt.dist(r.total_distance)}${r.relaxed && r.relaxed.length ? " · rules relaxed: " + r.relaxed.join(", ") : ""}`;
      AM.songTable($("path-rows"), path);
      if (!$("playlist-name").value) $("playlist-name").value = `${from.song.title} to ${to.song.title}`.slice(0, 200);
    } catch (err) {
      if (!AM.showFieldError(form, err)) AM.toast(err.message, "bad", 8000);
    } finally {
      $("find-path").disabled = false;
    }
  });

  $("playlist-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await AM.createPlaylist($("playlist-name").value.trim(), path.map((s) => s.item_id));
    } catch (err) {
      AM.toast(err.message, "bad", 8000);
    }
  });
})();
