/* Playlists this service made: songs, export as .m3u8, write again to the media server, delete. */
(function () {
  "use strict";
  const { el, fmt } = AM;
  const $ = (id) => document.getElementById(id);
  let all = [];

  async function recreate(pl) {
    const ids = pl.songs.map((s) => s.item_id);
    try {
      if (pl.kind === "instant" && pl.name.endsWith("_instant")) {
        const out = await AM.api("POST", "/chat/api/create_playlist", { playlist_name: pl.name.slice(0, -"_instant".length), item_ids: ids });
        AM.toast(`“${out.name}” written again (${out.track_count} songs)`, "ok");
      } else {
        const out = await AM.api("POST", "/api/create_playlist", { playlist_name: pl.name, track_ids: ids });
        AM.toast(`“${out.name}” written again (${out.track_count} songs)`, "ok");
      }
      await load();
    } catch (err) {
      AM.toast(err.message, "bad", 8000);
    }
  }

  async function remove(pl, button) {
    const where = pl.provider === "local" ? "its .m3u8 file" : `the playlist on the media server (${pl.provider})`;
    if (!window.confirm(`Delete “${pl.name}”?\n\nThis deletes ${where} and forgets it here. The songs stay in your library.`)) return;
    button.disabled = true;
    try {
      await AM.api("DELETE", `/api/playlists/${encodeURIComponent(pl.playlist_id)}`);
      AM.toast(`“${pl.name}” deleted`, "ok");
      await load();
    } catch (err) {
      button.disabled = false;
      AM.toast(err.message, "bad", 8000);
    }
  }

  function card(pl) {
    return el("div", { class: "card playlist-card", style: "margin:0", dataset: { name: pl.name.toLowerCase(), kind: pl.kind } },
      el("h3", {}, pl.name),
      el("div", { class: "row small" },
        el("span", { class: "badge" }, pl.kind),
        el("span", { class: "muted" }, `${pl.track_count} songs${pl.missing_tracks ? ` (${pl.missing_tracks} no longer in the library)` : ""}`),
        el("span", { class: "muted" }, `· ${fmt.ago(pl.updated_at)}`)),
      el("details", { style: "margin:.6rem 0" }, el("summary", { class: "small" }, "Songs"),
        el("ol", { class: "small" }, pl.songs.map((s) => el("li", {}, s.title || s.item_id, s.author ? el("span", { class: "muted" }, ` – ${s.author}`) : null)))),
      el("div", { class: "row" },
        el("a", { class: "button secondary", href: pl.m3u8, download: `${pl.name}.m3u8` }, "Export .m3u8"),
        el("button", { type: "button", class: "secondary", title: "Write it to the media server again, replacing the copy there", onclick: () => recreate(pl) }, "Re-create"),
        el("button", { type: "button", class: "danger", title: "Delete it on the media server and here", onclick: (ev) => remove(pl, ev.currentTarget) }, "Delete")));
  }

  function render() {
    const q = $("filter").value.trim().toLowerCase(), kind = $("kind").value;
    const shown = all.filter((pl) => (!q || pl.name.toLowerCase().includes(q)) && (!kind || pl.kind === kind));
    $("playlists").replaceChildren(...shown.map(card));
    $("count").textContent = `${shown.length} of ${all.length}`;
    $("none").classList.toggle("hidden", all.length > 0);
  }

  async function load() {
    all = await AM.get("/api/playlists/list");
    const kinds = [...new Set(all.map((p) => p.kind))].sort();
    const current = $("kind").value;
    $("kind").replaceChildren(el("option", { value: "" }, "every kind"), ...kinds.map((k) => el("option", { value: k, selected: k === current }, k)));
    render();
  }

  $("filter").addEventListener("input", render);
  $("kind").addEventListener("change", render);
  load().catch((e) => AM.toast(e.message, "bad"));
})();
