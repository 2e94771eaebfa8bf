/* AudioMuse web admin: small helpers every page uses (window.AM). No framework, no build step.
 *   AM.api(method, path, body?)  JSON request; adds the CSRF header; throws AM.ApiError on 4xx/5xx
 *   AM.get(path, params?)        GET with query parameters
 *   AM.toast(text, kind?)        kind: "ok" | "bad" | "warn" | "info"
 *   AM.poll(fn, ms)              calls fn now and every ms until the returned stop() (or fn returns false)
 *   AM.el(tag, attrs, ...kids)   builds DOM nodes; strings become text (never HTML)
 *   AM.debounce(fn, ms), AM.fmt.*  small utilities
 */
(function () {
  "use strict";
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  class ApiError extends Error {
    constructor(status, body) {
      const error = body && body.error ? body.error : `HTTP ${status}`;
      super(body && body.detail && typeof body.detail === "string" ? `${error}: ${body.detail}` : error);
      this.status = status;
      this.error = error;
      this.detail = body ? body.detail : null;
      this.body = body;
    }
    /** the request field the API named as wrong ({detail: {field}} or "<field>: problem") */
    get field() {
      if (this.detail && typeof this.detail === "object" && this.detail.field) return this.detail.field;
      const m = /^([a-z_0-9]+): /.exec(this.error || "");
      return m ? m[1] : null;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin" };
    if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrf();
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    if (resp.status === 401 && document.body.dataset.page !== "login") {
      window.location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new ApiError(401, { error: "sign in again" });
    }
    const type = resp.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await resp.json() : await resp.text();
    if (!resp.ok) throw new ApiError(resp.status, typeof data === "object" ? data : { error: String(data) });
    return data;
  }

  function get(path, params) {
    const q = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "")) : null;
    return api("GET", q && [...q].length ? `${path}?${q}` : path);
  }

  function toast(text, kind = "info", ms = 5000) {
    const box = document.getElementById("toasts");
    const t = el("div", { class: `toast ${kind}`, role: kind === "bad" ? "alert" : "status" }, text);
    box.append(t);
    setTimeout(() => t.remove(), ms);
    return t;
  }

  function poll(fn, ms) {
    let stopped = false, timer = null;
    const tick = async () => {
      if (stopped) return;
      let again = true;
      try { again = (await fn()) !== false; } catch (e) { console.warn("poll:", e); }
      if (!stopped && again) timer = setTimeout(tick, ms);
    };
    tick();
    return () => { stopped = true; clearTimeout(timer); };
  }

  function el(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === undefined || kid === null || kid === false) continue;
      node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return node;
  }

  function debounce(fn, ms) {
    let t = null;
    return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
  }

  const fmt = {
    num: (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString()),
    pct: (x) => (x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`),
    dist: (d) => (d === null || d === undefined ? "–" : Number(d).toFixed(4)),
    when: (iso) => {
      if (!iso) return "–";
      const d = new Date(iso);
      return isNaN(d) ? String(iso) : d.toLocaleString();
    },
    ago: (iso) => {
      if (!iso) return "–";
      const s = Math.round((Date.now() - new Date(iso)) / 1000);
      if (s < 60) return `${Math.max(s, 0)} s ago`;
      if (s < 3600) return `${Math.round(s / 60)} min ago`;
      if (s < 86400) return `${Math.round(s / 3600)} h ago`;
      return `${Math.round(s / 86400)} d ago`;
    },
  };

  /** show the API's validation message next to the field it names (inputs with name=<field>) */
  function showFieldError(form, err) {
    clearFieldErrors(form);
    const field = err instanceof ApiError ? err.field : null;
    const input = field ? form.querySelector(`[name="${CSS.escape(field)}"]`) : null;
    if (!input) return false;
    const box = input.closest(".field") || input.parentElement;
    box.classList.add("invalid");
    box.append(el("div", { class: "error", role: "alert" }, err.message));
    const details = input.closest("details");
    if (details) details.open = true;
    input.focus();
    return true;
  }
  function clearFieldErrors(form) {
    form.querySelectorAll(".field.invalid").forEach((f) => f.classList.remove("invalid"));
    form.querySelectorAll(".field .error").forEach((e) => e.remove());
  }

  /** create a playlist on the media server from item ids; returns the API's answer */
  async function createPlaylist(name, ids) {
    const out = await api("POST", "/api/create_playlist", { playlist_name: name, track_ids: ids });
    toast(`Playlist “${out.name}” created with ${out.track_count} songs`, "ok");
    return out;
  }

  // navigation toggle (phones) and sign-out
  document.addEventListener("DOMContentLoaded", () => {
    const toggle = document.querySelector(".nav-toggle");
    const nav = document.getElementById("main-nav");
    if (toggle && nav) {
      toggle.addEventListener("click", () => {
        const open = nav.classList.toggle("open");
        toggle.setAttribute("aria-expanded", String(open));
      });
    }
    const logout = document.getElementById("logout");
    if (logout) {
      logout.addEventListener("click", async () => {
        await fetch("/logout", { method: "POST", headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" });
        window.location.href = "/login";
      });
    }
  });

  window.AM = { api, get, toast, poll, el, debounce, fmt, ApiError, csrf, showFieldError, clearFieldErrors, createPlaylist };
})();
