/* Instant playlist: a plain-language request, how it was understood, the songs, a playlist. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let songs = [];

  $("chat-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = $("chat-form");
    AM.clearFieldErrors(form);
    const text = $("request").value.trim();
    if (!text) { $("request").focus(); return; }
    const body = { userInput: text, ai_provider: $("ai_provider").value };
    if ($("ai_model").value.trim()) body.ai_model = $("ai_model").value.trim();
    $("ask").disabled = true;
    $("chat-busy").textContent = "Thinking…";
    try {
      const r = (await AM.api("POST", "/api/chat/playlist", body)).response;
      songs = r.query_results || [];
      $("answer").classList.remove("hidden");
      $("answer-title").textContent = songs.length ? `${songs.length} songs` : "No song matched";
      $("understood").textContent = r.understood_as || "(the model's query below)";
      $("provider").textContent = r.ai_provider_used === "NONE" || !r.ai_provider_used ? "rules (no AI model)" : `${r.ai_provider_used}${r.ai_model_selected ? " · " + r.ai_model_selected : ""}`;
      $("query").textContent = r.executed_query || "(none)";
      $("attempts").textContent = r.message || "";
      AM.songTable($("songs"), songs, { distance: false, album: false });
      $("create-playlist").disabled = !songs.length;
      if (!$("playlist-name").value) $("playlist-name").value = text.slice(0, 60);
    } catch (err) {
      if (err.status === 400) {
        const field = /^userInput/.test(err.error) ? "userInput" : /provider/i.test(err.error) ? "ai_provider" : /model/i.test(err.error) ? "ai_model" : "userInput";
        AM.showFieldError(form, Object.assign(err, { detail: { field } }));
      } else AM.toast(err.message, "bad", 8000);
    } finally {
      $("ask").disabled = false;
      $("chat-busy").textContent = "";
    }
  });

  $("playlist-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = $("playlist-form");
    AM.clearFieldErrors(form);
    try {
      const out = await AM.api("POST", "/chat/api/create_playlist", {
        playlist_name: $("playlist-name").value.trim(), item_ids: songs.map((s) => s.item_id),
      });
      AM.toast(`Playlist “${out.name}” created with ${out.track_count} songs`, "ok");
    } catch (err) {
      const msg = (err.body && err.body.message) || err.message;
      AM.showFieldError(form, Object.assign(new AM.ApiError(err.status, { error: msg, detail: { field: "playlist_name" } })));
    }
  });
})();
