/* strongroom web workspace: the Ask page and the citation viewer.
 * Plain JavaScript, no build step, no third-party code. It calls the same JSON API as any
 * client, as the signed-in user (session cookie); requests that change state carry the
 * session's CSRF token in X-CSRF-Token. Text from the server is only ever set as text. */
"use strict";

(function () {
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const CSRF = csrfMeta ? csrfMeta.getAttribute("content") : "";
  const EXTRACTIVE = "strongroom-rag";

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = CSRF;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async function failure(response) {
    if (response.status === 401) {
      window.location.assign("/ui/signin?next=" + encodeURIComponent(window.location.pathname));
      return "your session has ended; signing in again";
    }
    try {
      const data = await response.json();
      return (data.error && data.error.message) || "HTTP " + response.status;
    } catch (e) {
      return "HTTP " + response.status;
    }
  }

  function page() {
    return document.body.getAttribute("data-page");
  }

  if (page() !== "ask") return;

  const form = document.getElementById("ask-form");
  const route = document.getElementById("route");
  const answer = document.getElementById("answer");
  const status = document.getElementById("answer-status");
  const body = document.getElementById("answer-body");
  const sources = document.getElementById("sources");
  const sourcesTitle = document.getElementById("sources-title");
  const button = document.getElementById("ask-button");
  const viewer = document.getElementById("viewer");
  let clocks = {};
  let opener = null;

  // -- the routes the user may use ------------------------------------------------------
  (async function loadRoutes() {
    const response = await api("GET", "/v1/models");
    if (!response.ok) return;
    const data = await response.json();
    for (const model of data.data || []) {
      if (model.id === EXTRACTIVE) continue;
      const label = model.description ? model.id + " (" + model.description + ")" : model.id;
      route.appendChild(el("option", { value: model.id }, label));
    }
  })().catch(() => {});

  // -- asking --------------------------------------------------------------------------
  function query() {
    const data = new FormData(form);
    const q = {
      question: String(data.get("question") || "").trim(),
      model: String(data.get("route") || EXTRACTIVE),
      doc_types: [],
      filters: {},
    };
    const docType = String(data.get("doc_type") || "").trim();
    const source = String(data.get("source") || "").trim();
    if (docType) q.doc_types = [docType];
    if (source) q.filters.source = source;
    for (const clock of ["as_of", "known_at"]) {
      const value = String(data.get(clock) || "");
      if (value) q[clock] = value;
    }
    return q;
  }

  function citationKey(c) {
    return [c.version_id, c.page, c.char_start, c.char_end].join("|");
  }

  function citeButton(n, c) {
    const b = el("button", { type: "button", class: "cite", "aria-label": "Citation " + n + ": " + c.label }, "[" + n + "]");
    b.addEventListener("click", () =>
      openViewer(n, c, b).catch((e) => {
        document.getElementById("viewer-text").textContent = "The page cannot be shown: " + e.message;
      })
    );
    return b;
  }

  function showSources(citations) {
    sources.replaceChildren();
    sourcesTitle.hidden = citations.length === 0;
    citations.forEach((c, i) => {
      const item = el("li", { id: "source-" + (i + 1) });
      item.appendChild(citeButton(i + 1, c));
      item.appendChild(document.createTextNode(" " + c.label + " — " + c.title + " "));
      item.appendChild(el("q", {}, c.quote));
      sources.appendChild(item);
    });
  }

  function notFound(message) {
    status.textContent = "Not found. " + (message || "Nothing you may read answers this question.");
    status.className = "status notfound";
  }

  function begin() {
    answer.hidden = false;
    answer.setAttribute("aria-busy", "true");
    status.textContent = "Working…";
    status.className = "status";
    body.replaceChildren();
    sources.replaceChildren();
    sourcesTitle.hidden = true;
    button.disabled = true;
    closeViewer(false);
  }

  function end() {
    answer.setAttribute("aria-busy", "false");
    button.disabled = false;
  }

  async function askExtractive(q) {
    const response = await api("POST", "/v1/ask", q);
    if (!response.ok) throw new Error(await failure(response));
    const result = await response.json();
    if (!result.found) return notFound(result.answer);
    const numbers = new Map(result.citations.map((c, i) => [citationKey(c), i + 1]));
    for (const claim of result.claims) {
      const p = el("p", { class: "claim" }, claim.text + " ");
      for (const c of claim.citations) p.appendChild(citeButton(numbers.get(citationKey(c)), c));
      body.appendChild(p);
    }
    showSources(result.citations);
    status.textContent = result.citations.length + " source(s) · " + result.generator;
  }

  /* A model route streams (Server-Sent Events from /v1/chat/completions): text as it comes,
   * then the [n] marks become buttons once the last event brings the citations. */
  async function askStreaming(q) {
    const request = {
      model: q.model,
      stream: true,
      messages: [{ role: "user", content: q.question }],
      filters: q.filters,
    };
    if (q.as_of) request.as_of = q.as_of;
    if (q.known_at) request.known_at = q.known_at;
    const response = await api("POST", "/v1/chat/completions", request);
    if (!response.ok) throw new Error(await failure(response));
    const live = el("p", { class: "streaming" });
    body.appendChild(live);
    status.textContent = "Streaming from " + q.model + "…";
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    let text = "";
    let citations = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffered.indexOf("\n\n")) >= 0) {
        const event = buffered.slice(0, cut);
        buffered = buffered.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          const delta = (chunk.choices && chunk.choices[0] && chunk.choices[0].delta) || {};
          if (delta.content) {
            text += delta.content;
            live.textContent = text;
          }
          if (chunk.citations) citations = chunk.citations;
        }
      }
    }
    body.replaceChildren();
    if (citations.length === 0) return notFound(text.trim());
    const claims = text.split("\nSources:\n")[0].trim().split("\n");
    for (const claim of claims) {
      if (!claim.trim()) continue;
      const p = el("p", { class: "claim" });
      for (const part of claim.split(/(\[\d+\])/)) {
        const mark = /^\[(\d+)\]$/.exec(part);
        const c = mark ? citations[Number(mark[1]) - 1] : undefined;
        p.appendChild(c ? citeButton(Number(mark[1]), c) : document.createTextNode(part));
      }
      body.appendChild(p);
    }
    showSources(citations);
    status.textContent = citations.length + " source(s) · " + q.model;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const q = query();
    if (!q.question) {
      document.getElementById("question").focus();
      return;
    }
    clocks = {};
    if (q.as_of) clocks.as_of = q.as_of;
    if (q.known_at) clocks.known_at = q.known_at;
    begin();
    try {
      // chat completions take no document-type filter: with one, the model route answers whole
      if (q.model !== EXTRACTIVE && q.doc_types.length === 0) await askStreaming(q);
      else await askExtractive(q);
    } catch (e) {
      status.textContent = "The question failed: " + e.message;
      status.className = "status error";
    } finally {
      end();
    }
  });

  // -- the citation viewer ---------------------------------------------------------------
  function closeViewer(restoreFocus) {
    viewer.hidden = true;
    if (restoreFocus && opener) opener.focus();
  }

  document.getElementById("viewer-close").addEventListener("click", () => closeViewer(true));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !viewer.hidden) {
      event.preventDefault();
      closeViewer(true);
    }
  });

  function clockQuery() {
    const params = new URLSearchParams(clocks);
    const s = params.toString();
    return s ? "?" + s : "";
  }

  async function openViewer(n, c, from) {
    opener = from;
    const base =
      "/v1/documents/" + encodeURIComponent(c.document_id) + "/versions/" + encodeURIComponent(c.version_id) +
      "/pages/" + encodeURIComponent(c.page);
    const text = document.getElementById("viewer-text");
    const figure = document.getElementById("viewer-figure");
    document.getElementById("viewer-title").textContent = "[" + n + "] " + c.label;
    document.getElementById("viewer-meta").textContent =
      c.title + " · characters " + c.char_start + "–" + c.char_end;
    text.textContent = "Loading the page…";
    figure.hidden = true;
    viewer.hidden = false;
    viewer.focus();
    const response = await api("GET", base + clockQuery());
    if (!response.ok) {
      text.textContent = "The page cannot be shown: " + (await failure(response));
      return;
    }
    const shown = await response.json();
    const pageText = shown.text;
    const start = Math.max(0, Math.min(c.char_start, pageText.length));
    const stop = Math.max(start, Math.min(c.char_end, pageText.length));
    const mark = el("mark", { id: "cited-span" }, pageText.slice(start, stop));
    text.replaceChildren(document.createTextNode(pageText.slice(0, start)), mark, document.createTextNode(pageText.slice(stop)));
    mark.scrollIntoView({ block: "center" });
    showImage(c, base).catch(() => {}); // the text is shown: an image is a bonus
  }

  /* PDFs: the page as an image with the cited characters outlined. Other pages (and a PDF
   * whose original is not kept: the image is a 404) show the text alone. */
  async function showImage(c, base) {
    const meta = await api("GET", "/v1/documents/" + encodeURIComponent(c.document_id) + clockQuery());
    if (!meta.ok) return;
    const doc = await meta.json();
    const version = [doc.current, ...(doc.versions || [])].find((v) => v && v.version_id === c.version_id);
    if (!version || version.media_type !== "application/pdf") return;
    const figure = document.getElementById("viewer-figure");
    const holder = figure.querySelector(".page-image");
    const img = document.getElementById("viewer-image");
    for (const box of holder.querySelectorAll(".box")) box.remove();
    img.alt = "Page " + c.page + " of " + c.title;
    const loaded = new Promise((resolve) => {
      img.addEventListener("load", () => resolve(true), { once: true });
      img.addEventListener("error", () => resolve(false), { once: true });
    });
    img.src = base + "/image";
    if (!(await loaded)) return;
    figure.hidden = false;
    const hl = await api("GET", base + "/highlight?start=" + c.char_start + "&end=" + c.char_end);
    if (!hl.ok) return;
    const boxes = (await hl.json()).boxes || [];
    for (const [x0, y0, x1, y1] of boxes) {
      const box = el("div", { class: "box" });
      box.style.left = x0 * 100 + "%";
      box.style.top = y0 * 100 + "%";
      box.style.width = (x1 - x0) * 100 + "%";
      box.style.height = (y1 - y0) * 100 + "%";
      holder.appendChild(box);
    }
  }
})();
