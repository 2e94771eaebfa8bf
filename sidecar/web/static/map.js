/* The music map (/map): every analysed track as a point on a canvas (one ImageData write per
 * frame, no DOM node per track), coloured by top mood or genre; hover shows the song, a dragged
 * rectangle or clicks select songs for a playlist or a song path.
 * GET /api/map packs the points: ids, base64 uint16 x,y pairs (0..65535), base64 uint8 label
 * indices.  window.AM_MAP exposes the state for tests and the benchmark (first paint time). */
(function () {
  "use strict";
  const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
    "#ff9da7", "#9c755f", "#17becf", "#bcbd22", "#8c8c8c"];
  const OTHER_COLOUR = "#b8bcc8";
  const HOVER_PX = 7, CELL = 16, MAX_LISTED = 100;

  const canvas = document.getElementById("map-canvas");
  const ctx = canvas.getContext("2d");
  const tip = document.getElementById("map-tip");
  const statusBox = document.getElementById("map-status");
  const state = {
    n: 0, ids: [], x: null, y: null, labels: {}, colourBy: "mood",
    view: { x0: 0, y0: 0, x1: 65535, y1: 65535 },
    selected: new Set(), hidden: new Set(), grid: null, sx: null, sy: null,
    drag: null, details: new Map(), drawnAt: null, computedAt: null, timings: {},
  };
  window.AM_MAP = {
    get count() { return state.n; },
    get drawnAt() { return state.drawnAt; },
    /** ms since navigation start: map answer received, decoded, laid out, drawn (first map) */
    get timings() { return state.timings; },
    /** CSS px of point i inside the canvas (null when off screen) */
    pointAt(i) { return state.sx && state.sx[i] >= 0 ? [state.sx[i], state.sy[i]] : null; },
    selectedIds() { return [...state.selected].map((i) => state.ids[i]); },
  };

  function b64bytes(text) {
    const raw = atob(text), out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function load(data) {
    const xy = new Uint16Array(b64bytes(data.xy).buffer);
    state.n = data.count;
    state.ids = data.ids;
    state.x = new Uint16Array(state.n);
    state.y = new Uint16Array(state.n);
    for (let i = 0; i < state.n; i++) { state.x[i] = xy[2 * i]; state.y[i] = 65535 - xy[2 * i + 1]; }
    state.labels = {};
    for (const [kind, l] of Object.entries(data.labels)) {
      state.labels[kind] = { names: l.names, index: b64bytes(l.index) };
    }
    state.selected = new Set([...state.selected].filter((i) => i < state.n));
    state.computedAt = data.computed_at;
  }

  function colours() {
    const l = state.labels[state.colourBy];
    return l.names.map((name, k) => (name === "other" ? OTHER_COLOUR : PALETTE[k % PALETTE.length]));
  }

  function hexRgba(hex) {
    const v = parseInt(hex.slice(1), 16);
    // ImageData is RGBA bytes: little-endian uint32 = A B G R
    return (255 << 24) | ((v & 255) << 16) | (((v >> 8) & 255) << 8) | (v >> 16);
  }

  function resize() {
    const dpr = window.devicePixelRatio || 1;
    const r = canvas.getBoundingClientRect();
    canvas.width = Math.max(1, Math.round(r.width * dpr));
    canvas.height = Math.max(1, Math.round(r.height * dpr));
  }

  /** screen positions (CSS px) of every point in the current view, and a grid for hovering */
  function layout() {
    const r = canvas.getBoundingClientRect(), w = r.width, h = r.height, pad = 6;
    const v = state.view, kx = (w - 2 * pad) / (v.x1 - v.x0), ky = (h - 2 * pad) / (v.y1 - v.y0);
    state.sx = new Float32Array(state.n);
    state.sy = new Float32Array(state.n);
    const cols = Math.ceil(w / CELL) + 1, rows = Math.ceil(h / CELL) + 1;
    const grid = new Map();
    for (let i = 0; i < state.n; i++) {
      const px = pad + (state.x[i] - v.x0) * kx, py = pad + (state.y[i] - v.y0) * ky;
      if (px < 0 || py < 0 || px > w || py > h) { state.sx[i] = -1; state.sy[i] = -1; continue; }
      state.sx[i] = px; state.sy[i] = py;
      const key = Math.floor(py / CELL) * cols + Math.floor(px / CELL);
      const cell = grid.get(key);
      if (cell) cell.push(i); else grid.set(key, [i]);
    }
    state.grid = { cells: grid, cols, rows };
  }

  function draw() {
    if (!state.n) { ctx.clearRect(0, 0, canvas.width, canvas.height); return; }
    const dpr = window.devicePixelRatio || 1, W = canvas.width, H = canvas.height;
    const img = ctx.createImageData(W, H);
    const px = new Uint32Array(img.data.buffer);
    const label = state.labels[state.colourBy], rgba = colours().map(hexRgba);
    const size = Math.max(2, Math.round(2 * dpr));
    const plot = (i, c, s) => {
      const x = Math.round(state.sx[i] * dpr), y = Math.round(state.sy[i] * dpr);
      for (let dy = 0; dy < s; dy++) {
        const row = y + dy - (s >> 1);
        if (row < 0 || row >= H) continue;
        for (let dx = 0; dx < s; dx++) {
          const col = x + dx - (s >> 1);
          if (col >= 0 && col < W) px[row * W + col] = c;
        }
      }
    };
    // the "other" colour first, so real labels stay on top
    const other = label.names.indexOf("other");
    for (const pass of [true, false]) {
      for (let i = 0; i < state.n; i++) {
        if (state.sx[i] < 0) continue;
        const k = label.index[i];
        if ((k === other) !== pass || state.hidden.has(k)) continue;
        plot(i, rgba[k], size);
      }
    }
    const ring = hexRgba("#111111"), dot = hexRgba("#ffffff");
    for (const i of state.selected) {
      if (state.sx[i] < 0) continue;
      plot(i, ring, size + 4);
      plot(i, dot, size + 2);
      plot(i, rgba[label.index[i]], size);
    }
    ctx.putImageData(img, 0, 0);
    if (state.drag && state.drag.moved) {
      const d = state.drag;
      ctx.save();
      ctx.scale(dpr, dpr);
      ctx.strokeStyle = getComputedStyle(document.body).getPropertyValue("--accent") || "#5b5bd6";
      ctx.setLineDash([5, 4]);
      ctx.lineWidth = 1.5;
      ctx.strokeRect(d.x0, d.y0, d.x1 - d.x0, d.y1 - d.y0);
      ctx.restore();
    }
    if (state.drawnAt === null) {
      state.drawnAt = performance.now();
      document.body.dataset.mapDrawn = String(state.n);
    }
  }

  function redraw(relayout) {
    if (relayout) layout();
    draw();
  }

  function legend() {
    const box = document.getElementById("map-legend");
    const label = state.labels[state.colourBy];
    const counts = new Array(label.names.length).fill(0);
    for (let i = 0; i < state.n; i++) counts[label.index[i]]++;
    const cs = colours();
    box.replaceChildren(...label.names.map((name, k) => AM.el("li", {
      title: "click to hide or show", style: "cursor:pointer" + (state.hidden.has(k) ? ";opacity:.4" : ""),
      onclick: () => { state.hidden.has(k) ? state.hidden.delete(k) : state.hidden.add(k); legend(); redraw(false); },
    }, AM.el("span", { class: "swatch", style: `background:${cs[k]}` }), name, AM.el("span", { class: "n" }, AM.fmt.num(counts[k])))));
  }

  function nearest(cx, cy) {
    if (!state.grid) return -1;
    const { cells, cols } = state.grid;
    let best = -1, bestD = HOVER_PX * HOVER_PX;
    const gx = Math.floor(cx / CELL), gy = Math.floor(cy / CELL);
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const cell = cells.get((gy + dy) * cols + gx + dx);
        if (!cell) continue;
        for (const i of cell) {
          if (state.hidden.has(state.labels[state.colourBy].index[i])) continue;
          const ex = state.sx[i] - cx, ey = state.sy[i] - cy, d = ex * ex + ey * ey;
          if (d <= bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }

  async function details(ids) {
    const missing = ids.filter((id) => !state.details.has(id));
    for (let k = 0; k < missing.length; k += 500) {
      const rows = await AM.get("/api/map/tracks", { ids: missing.slice(k, k + 500).join(",") });
      for (const r of rows) state.details.set(r.item_id, r);
    }
    return ids.map((id) => state.details.get(id)).filter(Boolean);
  }

  let hoverSeq = 0;
  async function hover(ev) {
    const r = canvas.getBoundingClientRect(), cx = ev.clientX - r.left, cy = ev.clientY - r.top;
    const i = nearest(cx, cy);
    const seq = ++hoverSeq;
    if (i < 0) { tip.hidden = true; delete tip.dataset.itemId; return; }
    const id = state.ids[i];
    const moods = state.labels.mood, genres = state.labels.genre;
    const [d] = await details([id]).catch(() => [null]);
    if (seq !== hoverSeq) return;
    tip.replaceChildren(
      AM.el("strong", {}, d ? d.title || "(untitled)" : id),
      AM.el("span", { class: "muted" }, d ? `${d.artist || "?"} · ${d.album || "?"}` : ""),
      AM.el("span", { class: "muted" }, `${moods.names[moods.index[i]]} · ${genres.names[genres.index[i]]}`),
    );
    tip.dataset.itemId = id;
    tip.hidden = false;
    const left = Math.min(cx + 12, r.width - tip.offsetWidth - 4), top = cy + 14 + tip.offsetHeight > r.height ? cy - tip.offsetHeight - 8 : cy + 14;
    tip.style.left = `${Math.max(4, left)}px`;
    tip.style.top = `${Math.max(4, top)}px`;
  }

  async function showSelection() {
    const ids = [...state.selected].map((i) => state.ids[i]);
    document.getElementById("map-sel-count").textContent = AM.fmt.num(ids.length);
    document.getElementById("map-create").disabled = ids.length === 0;
    document.getElementById("map-clear").disabled = ids.length === 0;
    const path = document.getElementById("map-path");
    path.hidden = ids.length !== 2;
    path.setAttribute("aria-disabled", String(ids.length !== 2));
    if (ids.length === 2) path.href = `/path?${new URLSearchParams({ start_song_id: ids[0], end_song_id: ids[1] })}`;
    const list = document.getElementById("map-sel-list");
    const shown = ids.slice(0, MAX_LISTED);
    const rows = shown.length ? await details(shown) : [];
    list.replaceChildren(...rows.map((d) => AM.el("li", { "data-item-id": d.item_id }, `${d.title || "(untitled)"} — ${d.artist || "?"}`)));
    if (ids.length > MAX_LISTED) list.append(AM.el("li", { class: "muted" }, `… and ${AM.fmt.num(ids.length - MAX_LISTED)} more`));
  }

  function selectRect(d, add) {
    const x0 = Math.min(d.x0, d.x1), x1 = Math.max(d.x0, d.x1), y0 = Math.min(d.y0, d.y1), y1 = Math.max(d.y0, d.y1);
    if (!add) state.selected.clear();
    const index = state.labels[state.colourBy].index;
    for (let i = 0; i < state.n; i++) {
      if (state.sx[i] >= x0 && state.sx[i] <= x1 && state.sy[i] >= y0 && state.sy[i] <= y1 && !state.hidden.has(index[i])) {
        state.selected.add(i);
      }
    }
  }

  function local(ev) {
    const r = canvas.getBoundingClientRect();
    return [ev.clientX - r.left, ev.clientY - r.top];
  }

  canvas.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0) return;
    const [x, y] = local(ev);
    state.drag = { x0: x, y0: y, x1: x, y1: y, moved: false };
    canvas.setPointerCapture(ev.pointerId);
  });
  canvas.addEventListener("pointermove", (ev) => {
    if (state.drag) {
      const [x, y] = local(ev);
      state.drag.x1 = x; state.drag.y1 = y;
      if (Math.abs(x - state.drag.x0) + Math.abs(y - state.drag.y0) > 4) state.drag.moved = true;
      if (state.drag.moved) { tip.hidden = true; draw(); }
      return;
    }
    hover(ev);
  });
  canvas.addEventListener("pointerup", (ev) => {
    const d = state.drag;
    state.drag = null;
    if (!d) return;
    if (d.moved) {
      selectRect(d, ev.shiftKey || ev.ctrlKey || ev.metaKey || state.selected.size > 0 && ev.altKey);
    } else {
      const i = nearest(d.x0, d.y0);
      if (i >= 0) { state.selected.has(i) ? state.selected.delete(i) : state.selected.add(i); }
    }
    draw();
    showSelection();
  });
  canvas.addEventListener("pointerleave", () => { tip.hidden = true; });
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const r = canvas.getBoundingClientRect(), v = state.view;
    const fx = (ev.clientX - r.left) / r.width, fy = (ev.clientY - r.top) / r.height;
    const k = ev.deltaY > 0 ? 1.25 : 0.8;
    const w = Math.min(65535, Math.max(200, (v.x1 - v.x0) * k)), h = Math.min(65535, Math.max(200, (v.y1 - v.y0) * k));
    const cx = v.x0 + fx * (v.x1 - v.x0), cy = v.y0 + fy * (v.y1 - v.y0);
    state.view = { x0: cx - fx * w, x1: cx + (1 - fx) * w, y0: cy - fy * h, y1: cy + (1 - fy) * h };
    redraw(true);
  }, { passive: false });

  document.getElementById("map-reset").addEventListener("click", () => {
    state.view = { x0: 0, y0: 0, x1: 65535, y1: 65535 };
    redraw(true);
  });
  document.getElementById("map-colour").addEventListener("change", (ev) => {
    state.colourBy = ev.target.value;
    state.hidden.clear();
    legend();
    redraw(false);
  });
  document.getElementById("map-clear").addEventListener("click", () => {
    state.selected.clear();
    draw();
    showSelection();
  });
  document.getElementById("map-playlist").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.target, ids = [...state.selected].map((i) => state.ids[i]).slice(0, 5000);
    const name = form.playlist_name.value.trim() || "Map selection";
    try {
      await AM.createPlaylist(name, ids);
    } catch (err) {
      if (!AM.showFieldError(form, err)) AM.toast(err.message, "bad");
    }
  });
  window.addEventListener("resize", AM.debounce(() => { resize(); redraw(true); }, 150));

  function say(data) {
    const when = data.computed_at ? `computed ${AM.fmt.ago(data.computed_at)} (${data.method}, ${data.seconds} s)` : "";
    const text = {
      ready: `${AM.fmt.num(data.count)} songs · ${when}`,
      stale: `${AM.fmt.num(data.count)} songs · the library changed: a new map is being computed…`,
      computing: "Computing the map of your library… (a worker must be running)",
    }[data.status];
    statusBox.textContent = data.count === 0 && data.status === "ready" ? "No analysed songs yet: run an analysis first." : text;
  }

  resize();
  AM.poll(async () => {
    let data;
    if (state.timings.requested === undefined) state.timings.requested = performance.now();
    try {
      data = await AM.get("/api/map");
    } catch (err) {
      statusBox.textContent = `The map could not be loaded: ${err.message}`;
      return true;
    }
    say(data);
    if (data.status !== "computing" && data.computed_at !== state.computedAt) {
      const first = state.drawnAt === null, t = state.timings;
      if (first) t.received = performance.now();
      load(data);
      if (first) t.decoded = performance.now();
      layout();
      if (first) t.laidOut = performance.now();
      draw();
      if (first) t.drawn = performance.now();
      legend();
      showSelection();
    }
    return data.status !== "ready";
  }, 2000);
})();
