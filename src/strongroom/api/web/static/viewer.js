/* strongroom web workspace: the citation viewer (templates/_viewer.html), shared by the Ask
 * and Agent pages. ``page`` opens a cited page: its text with the span marked and, for a PDF
 * whose original was kept, the page image with pdfium's boxes over the cited characters;
 * ``detail`` shows what is not a page (a query's SQL, dataset versions and rows) from nodes
 * the caller built. Escape or Close hides it and gives the focus back. Uses common.js. */
"use strict";

window.strongroom.viewer = (function () {
  const { el, api, failure } = window.strongroom;
  const viewer = document.getElementById("viewer");
  if (!viewer) return null;
  const title = document.getElementById("viewer-title");
  const meta = document.getElementById("viewer-meta");
  const pagePart = document.getElementById("viewer-page");
  const text = document.getElementById("viewer-text");
  const figure = document.getElementById("viewer-figure");
  const detailPart = document.getElementById("viewer-detail");
  let opener = null;

  function close(restoreFocus) {
    viewer.hidden = true;
    if (restoreFocus && opener) opener.focus();
  }

  document.getElementById("viewer-close").addEventListener("click", () => close(true));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !viewer.hidden) {
      event.preventDefault();
      close(true);
    }
  });

  function clockQuery(at) {
    const s = new URLSearchParams(at || {}).toString();
    return s ? "?" + s : "";
  }

  function show(heading, about, from, asPage) {
    opener = from;
    title.textContent = heading;
    meta.textContent = about;
    pagePart.hidden = !asPage;
    detailPart.hidden = asPage;
    viewer.hidden = false;
    viewer.focus();
  }

  /* Citation ``n`` of page span ``c`` ({document_id, version_id, page, char_start, char_end,
   * label, title}), read at the clocks ``at`` ({as_of, known_at}, either may be absent). */
  async function page(n, c, from, at) {
    const base =
      "/v1/documents/" + encodeURIComponent(c.document_id) + "/versions/" + encodeURIComponent(c.version_id) +
      "/pages/" + encodeURIComponent(c.page);
    text.textContent = "Loading the page…";
    figure.hidden = true;
    show("[" + n + "] " + c.label, c.title + " · characters " + c.char_start + "–" + c.char_end, from, true);
    const response = await api("GET", base + clockQuery(at));
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
    // a PDF whose original was kept: the page image too (the text is shown: an image is a bonus)
    if (shown.has_image) showImage(c, base, at).catch(() => {});
  }

  /* The page as an image with the cited characters outlined. */
  async function showImage(c, base, at) {
    const holder = figure.querySelector(".page-image");
    const img = document.getElementById("viewer-image");
    for (const box of holder.querySelectorAll(".box")) box.remove();
    img.alt = "Page " + c.page + " of " + c.title;
    const loaded = new Promise((resolve) => {
      img.addEventListener("load", () => resolve(true), { once: true });
      img.addEventListener("error", () => resolve(false), { once: true });
    });
    img.src = base + "/image" + clockQuery(at);
    if (!(await loaded)) return;
    figure.hidden = false;
    const span = new URLSearchParams({ ...(at || {}), start: c.char_start, end: c.char_end });
    const hl = await api("GET", base + "/highlight?" + span.toString());
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

  /* Something cited that is not a page: ``nodes`` (built by the caller, text only) shown
   * under ``heading`` and ``about``. */
  function detail(heading, about, nodes, from) {
    detailPart.replaceChildren(...nodes);
    show(heading, about, from, false);
  }

  /* A failure while opening, said where the citation would be. */
  function failed(message) {
    text.textContent = "The page cannot be shown: " + message;
  }

  return { page, detail, close, failed };
})();
