/* The API docs (/apidocs): the operations of /openapi.json grouped by tag, each with its
 * parameters (type, default, bounds, description), body and answers, and a form that sends the
 * request from this page (same session and CSRF header as AM.api) and shows the answer.
 * A small viewer of our own instead of swagger-ui (1.5 MB, not needed for one flat API). */
(function () {
  "use strict";
  const el = AM.el;
  const root = document.getElementById("apidocs");

  function typeText(schema) {
    if (!schema) return "";
    const parts = [schema.type === "array" ? `array of ${(schema.items || {}).type || "any"}` : schema.type || "any"];
    if (schema.minimum !== undefined || schema.maximum !== undefined) {
      parts.push(`${schema.minimum ?? "…"}–${schema.maximum ?? "…"}`);
    }
    if (schema.maxLength !== undefined) parts.push(`≤ ${schema.maxLength} chars`);
    if (schema.default !== undefined) parts.push(`default ${JSON.stringify(schema.default)}`);
    return parts.join(", ");
  }

  function bodySkeleton(schema) {
    const out = {};
    for (const [k, s] of Object.entries((schema && schema.properties) || {})) {
      out[k] = s.default !== undefined ? s.default : s.type === "array" ? [] : s.type === "integer" ? 0 : s.type === "string" ? "" : null;
    }
    return JSON.stringify(out, null, 2);
  }

  async function send(method, path, op, form, out) {
    let url = path;
    const query = new URLSearchParams();
    for (const p of op.parameters || []) {
      const input = form.querySelector(`[data-param="${p.in}:${CSS.escape(p.name)}"]`);
      const value = input ? input.value.trim() : "";
      if (p.in === "path") url = url.replace(`{${p.name}}`, encodeURIComponent(value));
      else if (value !== "") query.set(p.name, value);
    }
    if ([...query].length) url += `?${query}`;
    const headers = { Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin" };
    if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = AM.csrf();
    const bodyBox = form.querySelector("textarea");
    if (bodyBox && bodyBox.value.trim()) {
      try { JSON.parse(bodyBox.value); } catch (e) { AM.toast(`The body is not JSON: ${e.message}`, "bad"); return; }
      headers["Content-Type"] = "application/json";
      init.body = bodyBox.value;
    }
    const started = performance.now();
    out.replaceChildren(el("p", { class: "muted" }, `${method} ${url} …`));
    try {
      const resp = await fetch(url, init);
      const ms = Math.round(performance.now() - started);
      const type = resp.headers.get("Content-Type") || "";
      let text = await resp.text();
      if (type.includes("json")) { try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* as sent */ } }
      if (text.length > 200000) text = text.slice(0, 200000) + "\n… (cut)";
      out.replaceChildren(
        el("p", {}, el("span", { class: `badge ${resp.ok ? "ok" : "bad"}`, "data-status": resp.status }, `${resp.status} ${resp.statusText}`),
          " ", el("span", { class: "muted small" }, `${method} ${url} · ${ms} ms · ${type || "no content type"}`)),
        el("pre", { class: "response" }, text),
      );
    } catch (err) {
      out.replaceChildren(el("p", { class: "error" }, `The request failed: ${err.message}`));
    }
  }

  function operation(method, path, op) {
    const params = op.parameters || [];
    const json = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
    const success = Object.entries(op.responses || {}).find(([code]) => code < "400");
    const isPage = success && success[1].content && success[1].content["text/html"];
    const out = el("div", { class: "response-box" });
    const form = el("form", { class: "try", novalidate: true }); // the API answers bad values itself
    if (params.length) {
      form.append(el("table", {},
        el("thead", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "type"), el("th", {}, "description"), el("th", {}, "value"))),
        el("tbody", {}, params.map((p) => el("tr", {},
          el("td", {}, el("code", {}, p.name), p.required ? " *" : "", el("div", { class: "muted small" }, p.in)),
          el("td", { class: "small" }, typeText(p.schema)),
          el("td", { class: "small" }, p.description || ""),
          el("td", {}, el("input", {
            "data-param": `${p.in}:${p.name}`, "aria-label": p.name,
            placeholder: p.schema && p.schema.default !== undefined ? String(p.schema.default) : "",
            type: p.schema && p.schema.type === "integer" ? "number" : "text",
            min: p.schema && p.schema.minimum, max: p.schema && p.schema.maximum,
          })),
        ))),
      ));
    }
    if (json) {
      const schema = json.schema || {};
      form.append(el("label", {}, "JSON body", schema.description ? el("span", { class: "help" }, ` (${schema.description})`) : ""),
        el("textarea", { "aria-label": "JSON body", spellcheck: "false" }, bodySkeleton(schema)));
    }
    const responses = el("ul", { class: "small" }, Object.entries(op.responses || {}).map(([code, r]) =>
      el("li", {}, el("code", {}, code), " ", r.description || "")));
    const actions = el("div", { class: "row" });
    if (isPage) {
      if (!path.includes("{")) actions.append(el("a", { class: "button secondary", href: path }, "Open the page"));
    } else if (!(op.requestBody && op.requestBody.content && op.requestBody.content["application/x-www-form-urlencoded"])) {
      actions.append(el("button", { type: "submit" }, "Send"));
    }
    form.append(actions);
    form.addEventListener("submit", (ev) => { ev.preventDefault(); send(method.toUpperCase(), path, op, form, out); });
    const details = el("details", { class: "api-op", "data-op": `${method.toUpperCase()} ${path}` },
      el("summary", {}, el("span", { class: `method ${method}` }, method.toUpperCase()), el("code", { class: "path" }, path),
        el("span", { class: "muted" }, op.summary || ""), op.security ? el("span", { class: "badge", title: "needs the API token or a signed-in session when API_TOKEN is set" }, "token") : ""),
      el("div", { class: "body" }, form, el("h4", {}, "Answers"), responses, out),
    );
    return details;
  }

  function render(doc, filter) {
    const groups = new Map();
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const tag = (op.tags || ["other"])[0];
        const hay = `${method} ${path} ${op.summary || ""} ${tag}`.toLowerCase();
        if (filter && !hay.includes(filter)) continue;
        if (!groups.has(tag)) groups.set(tag, []);
        groups.get(tag).push(operation(method, path, op));
      }
    }
    const order = (doc.tags || []).map((t) => t.name);
    const tags = [...groups.keys()].sort((a, b) => (a === "pages") - (b === "pages") || order.indexOf(a) - order.indexOf(b));
    root.replaceChildren(...tags.map((tag) => el("section", { class: "api-tag" }, el("h2", {}, tag), groups.get(tag))));
    if (!tags.length) root.replaceChildren(el("p", { class: "muted" }, "No operation matches."));
  }

  (async () => {
    let doc;
    try {
      doc = await AM.get("/openapi.json");
    } catch (err) {
      root.replaceChildren(el("p", { class: "error" }, `The API document could not be loaded: ${err.message}`));
      return;
    }
    const count = Object.values(doc.paths).reduce((n, ops) => n + Object.keys(ops).length, 0);
    document.getElementById("apidocs-info").textContent = `${count} operations · OpenAPI ${doc.openapi} · ${doc.info.title} ${doc.info.version}`;
    render(doc, "");
    document.getElementById("apidocs-filter").addEventListener("input", AM.debounce((ev) => render(doc, ev.target.value.trim().toLowerCase()), 150));
  })();
})();
