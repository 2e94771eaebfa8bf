/* Search-as-you-type song picker: AM.songPicker(input, {onPick}) over GET /api/search_tracks.
 * Arrow keys move, Enter picks, Escape closes. picker.song is the chosen {item_id, title, author, album}. */
(function () {
  "use strict";
  const { el } = AM;

  function songPicker(input, { onPick, limit = 12 } = {}) {
    const box = input.closest(".suggest");
    const list = el("ul", { role: "listbox", class: "hidden" });
    const chosen = el("div", { class: "chosen muted" });
    box.append(list, chosen);
    let items = [], active = -1, seq = 0;
    const picker = { song: null, set };

    function label(s) {
      return [el("div", {}, s.title || s.item_id), el("div", { class: "muted" }, [s.author, s.album].filter(Boolean).join(" · "), s.analyzed === false ? " · not analysed" : "")];
    }
    function render() {
      list.replaceChildren(...items.map((s, i) => el("li", {
        role: "option", class: i === active ? "active" : null, "aria-selected": i === active ? "true" : "false",
        onmousedown: (e) => { e.preventDefault(); set(s); },
      }, label(s))));
      list.classList.toggle("hidden", !items.length);
    }
    function set(s) {
      picker.song = s;
      input.value = s ? `${s.title}${s.author ? " – " + s.author : ""}` : "";
      chosen.replaceChildren(s ? `Chosen: ${s.title || s.item_id}${s.album ? " (" + s.album + ")" : ""}` : "");
      items = [];
      render();
      if (s && onPick) onPick(s);
    }
    const search = AM.debounce(async () => {
      const q = input.value.trim();
      const mine = ++seq;
      if (q.length < 2) { items = []; render(); return; }
      try {
        const found = await AM.get("/api/search_tracks", { search_query: q, start: 0, end: limit });
        if (mine !== seq) return;
        items = found;
        active = found.length ? 0 : -1;
        render();
      } catch (err) {
        AM.toast(err.message, "bad");
      }
    }, 180);
    input.setAttribute("autocomplete", "off");
    input.addEventListener("input", () => { picker.song = null; chosen.replaceChildren(); search(); });
    input.addEventListener("keydown", (e) => {
      if (!items.length) return;
      if (e.key === "ArrowDown") { active = (active + 1) % items.length; render(); e.preventDefault(); }
      else if (e.key === "ArrowUp") { active = (active - 1 + items.length) % items.length; render(); e.preventDefault(); }
      else if (e.key === "Enter" && active >= 0) { set(items[active]); e.preventDefault(); }
      else if (e.key === "Escape") { items = []; render(); }
    });
    input.addEventListener("blur", () => setTimeout(() => { items = []; render(); }, 150));
    return picker;
  }

  /** a results table of songs: [{title, author|artist, album, distance?}] */
  function songTable(tbody, songs, { numbered = true, distance = true, album = true } = {}) {
    tbody.replaceChildren(...songs.map((s, i) => el("tr", {},
      numbered ? el("td", { class: "num muted" }, i + 1) : null,
      el("td", {}, s.title || s.item_id),
      el("td", {}, s.author || s.artist || ""),
      album ? el("td", {}, s.album || "") : null,
      distance ? el("td", { class: "num" }, AM.fmt.dist(s.distance)) : null)));
  }

  window.AM.songPicker = songPicker;
  window.AM.songTable = songTable;
})();
