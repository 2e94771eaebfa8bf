/* Similar songs: pick a song, list its nearest songs, make a playlist of them. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const picker = AM.songPicker($("song"), { onPick: () => find() });
  let results = [];

  async function find() {
    const form = $("similar-form");
    AM.clearFieldErrors(form);
    if (!picker.song) { AM.toast("Pick a song from the suggestions first", "warn"); $("song").focus(); return; }
    $("find").disabled = true;
    try {
      results = await AM.get("/api/similar_tracks", {
        item_id: picker.song.item_id, n: $("n").value, eliminate_duplicates: $("dedup").checked,
      });
      $("results-card").classList.remove("hidden");
      $("results-title").textContent = `${results.length} songs like “${picker.song.title}”`;
      AM.songTable($("results"), results);
      if (!$("playlist-name").value) $("playlist-name").value = `Like ${picker.song.title}`;
    } catch (err) {
      if (!AM.showFieldError(form, err)) AM.toast(err.message, "bad", 8000);
    } finally {
      $("find").disabled = false;
    }
  }

  $("similar-form").addEventListener("submit", (e) => { e.preventDefault(); find(); });
  $("playlist-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = $("playlist-form");
    const ids = results.map((s) => s.item_id);
    if ($("with-seed").checked && picker.song) ids.unshift(picker.song.item_id);
    $("create-playlist").disabled = true;
    try {
      AM.clearFieldErrors(form);
      await AM.createPlaylist($("playlist-name").value.trim(), ids);
    } catch (err) {
      const named = err.status === 400 ? Object.assign(err, { detail: { field: "playlist_name" } }) : err;
      if (!AM.showFieldError(form, named)) AM.toast(err.message, "bad", 8000);
    } finally {
      $("create-playlist").disabled = false;
    }
  });

  const given = new URLSearchParams(location.search).get("item_id");
  if (given) {
    picker.song = { item_id: given, title: given };
    find();
  }
})();
