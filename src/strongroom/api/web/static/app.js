/* strongroom web workspace: the Ask page (a conversation: follow-ups keep its context,
 * feedback on each answer, a share link); cited pages open in viewer.js. Uses common.js. */
"use strict";

(function () {
  const { el, api, failure, page } = window.strongroom;
  const EXTRACTIVE = "strongroom-rag";

  if (page() !== "ask") return;

  const form = document.getElementById("ask-form");
  const route = document.getElementById("route");
  const answer = document.getElementById("answer");
  const status = document.getElementById("answer-status");
  const body = document.getElementById("answer-body");
  const sources = document.getElementById("sources");
  const sourcesTitle = document.getElementById("sources-title");
  const button = document.getElementById("ask-button");
  const viewer = window.strongroom.viewer;
  let clocks = {};

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
    const tsField = String(data.get("ts_field") || "");
    const tsValue = String(data.get("ts_value") || "").trim();
    if (tsField && tsValue) q.filters["ts." + tsField] = tsValue;  // term-sheet fields are ts.* metadata
    for (const name of ["as_of", "known_at", "published_from"]) {
      const value = String(data.get(name) || "");
      if (value) q[name] = value;
    }
    return q;
  }

  function citationKey(c) {
    return [c.version_id, c.page, c.char_start, c.char_end].join("|");
  }

  function citeButton(n, c, at) {
    const b = el("button", { type: "button", class: "cite", "aria-label": "Citation " + n + ": " + c.label }, "[" + n + "]");
    const when = at || clocks;
    b.addEventListener("click", () => viewer.page(n, c, b, when).catch((e) => viewer.failed(e.message)));
    return b;
  }

  function fillSources(list, citations, at, prefix) {
    list.replaceChildren();
    citations.forEach((c, i) => {
      const item = el("li", prefix ? { id: prefix + (i + 1) } : {});
      item.appendChild(citeButton(i + 1, c, at));
      item.appendChild(document.createTextNode(" " + c.label + " — " + c.title + " "));
      item.appendChild(el("q", {}, c.quote));
      list.appendChild(item);
    });
  }

  function showSources(citations) {
    sourcesTitle.hidden = citations.length === 0;
    fillSources(sources, citations, clocks, "source-");
  }

  /* An answer's claims, each followed by the numbers of its citations, into ``into``. */
  function fillClaims(into, result, at) {
    const numbers = new Map(result.citations.map((c, i) => [citationKey(c), i + 1]));
    for (const claim of result.claims) {
      const p = el("p", { class: "claim" }, claim.text + " ");
      for (const c of claim.citations) p.appendChild(citeButton(numbers.get(citationKey(c)), c, at));
      into.appendChild(p);
    }
  }

  // -- the conversation ------------------------------------------------------------------
  let conversationId = new URLSearchParams(window.location.search).get("c") || "";
  let latest = null; // the turn shown in #answer, moved into the thread when the next is asked
  const thread = document.getElementById("thread");
  const shareButton = document.getElementById("share-button");
  const conversationTitle = document.getElementById("conversation-title");

  function turnClocks(turn) {
    const at = {};
    if (turn.as_of) at.as_of = turn.as_of;
    if (turn.known_at) at.known_at = turn.known_at;
    return at;
  }

  function feedbackWidget(turn) {
    const id = turn.turn_id;
    const box = el("fieldset", { class: "feedback", "data-turn": id });
    box.appendChild(el("legend", {}, "Was this answer useful?"));
    const given = turn.feedback ? turn.feedback.rating : "";
    const up = el("button", { type: "button", class: "rate", "data-rating": "up", "aria-pressed": String(given === "up") }, "Useful");
    const down = el("button", { type: "button", class: "rate", "data-rating": "down", "aria-pressed": String(given === "down") }, "Not useful");
    const label = el("label", { for: "comment-" + id }, "Comment (optional)");
    const comment = el("input", { id: "comment-" + id, type: "text", maxlength: "2000", class: "comment" });
    if (turn.feedback) comment.value = turn.feedback.comment || "";
    const said = el("p", { class: "help feedback-status", role: "status" }, given ? "Your rating: " + (given === "up" ? "useful" : "not useful") + "." : "");
    for (const b of [up, down]) {
      b.addEventListener("click", async () => {
        const rating = b.getAttribute("data-rating");
        const url = "/v1/conversations/" + encodeURIComponent(turn.conversation_id) + "/turns/" + encodeURIComponent(id) + "/feedback";
        const response = await api("POST", url, { rating, comment: comment.value.trim() });
        if (!response.ok) {
          said.textContent = "The feedback was not saved: " + (await failure(response));
          return;
        }
        up.setAttribute("aria-pressed", String(rating === "up"));
        down.setAttribute("aria-pressed", String(rating === "down"));
        said.textContent = "Thank you: feedback saved (" + (rating === "up" ? "useful" : "not useful") + ").";
      });
    }
    box.append(up, down, label, comment, said);
    return box;
  }

  /* An earlier turn, compact, in the thread above the question box. */
  function threadItem(turn) {
    const at = turnClocks(turn);
    const item = el("li", { class: "turn", "data-turn": turn.turn_id });
    item.appendChild(el("h2", { class: "question" }, turn.question));
    const a = turn.answer;
    if (!a.found) item.appendChild(el("p", { class: "status notfound" }, "Not found. " + a.answer));
    else {
      fillClaims(item, a, at);
      const list = el("ol", { class: "sources", "aria-label": "Sources of this answer" });
      fillSources(list, a.citations, at, "");
      item.appendChild(list);
    }
    item.appendChild(feedbackWidget(turn));
    return item;
  }

  function named(title) {
    conversationTitle.textContent = "Conversation: " + title;
    shareButton.hidden = false;
  }

  function showLatest(turn) {
    latest = turn;
    clocks = turnClocks(turn);
    answer.hidden = false;
    const a = turn.answer;
    if (!a.found) notFound(a.answer);
    else {
      fillClaims(body, a, clocks);
      showSources(a.citations);
      status.textContent = a.citations.length + " source(s) · " + a.generator;
      status.className = "status";
    }
    document.getElementById("answer-feedback").replaceChildren(feedbackWidget(turn));
  }

  function pushLatest() {
    if (latest) thread.appendChild(threadItem(latest));
    latest = null;
    document.getElementById("answer-feedback").replaceChildren();
  }

  (async function loadConversation() {
    if (!conversationId) return;
    const response = await api("GET", "/v1/conversations/" + encodeURIComponent(conversationId));
    if (!response.ok) {
      conversationId = "";
      conversationTitle.textContent = "That conversation was not found; asking starts a new one.";
      return;
    }
    const data = await response.json();
    named(data.title);
    const turns = data.turns || [];
    turns.slice(0, -1).forEach((t) => thread.appendChild(threadItem(t)));
    if (turns.length) showLatest(turns[turns.length - 1]);
  })().catch(() => {});

  shareButton.addEventListener("click", async () => {
    const response = await api("POST", "/v1/conversations/" + encodeURIComponent(conversationId) + "/share", {});
    const box = document.getElementById("share-box");
    const field = document.getElementById("share-url");
    box.hidden = false;
    if (!response.ok) {
      field.value = "";
      document.getElementById("share-help").textContent = "No link: " + (await failure(response));
      return;
    }
    const link = await response.json();
    field.value = window.location.origin + "/shared/" + link.token;
    field.focus();
    field.select();
  });

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
    viewer.close(false);
  }

  function end() {
    answer.setAttribute("aria-busy", "false");
    button.disabled = false;
  }

  /* Asked in the conversation (a new one for the first question): kept in the history. */
  async function askInConversation(q) {
    if (!conversationId) {
      const created = await api("POST", "/v1/conversations", {});
      if (!created.ok) throw new Error(await failure(created));
      conversationId = (await created.json()).conversation_id;
      window.history.replaceState(null, "", "/ui/ask?c=" + encodeURIComponent(conversationId));
    }
    const response = await api("POST", "/v1/conversations/" + encodeURIComponent(conversationId) + "/ask", q);
    if (!response.ok) throw new Error(await failure(response));
    const turn = await response.json();
    if (conversationTitle.textContent.indexOf("Conversation: ") !== 0) named(q.question);
    showLatest(turn);
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
    if (q.published_from) request.published_from = q.published_from;
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
    status.textContent = citations.length + " source(s) · " + q.model + " (streamed; not kept in the conversation)";
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
    pushLatest();
    begin();
    try {
      // chat completions take no document-type filter: with one, the model route answers whole
      if (q.model !== EXTRACTIVE && q.doc_types.length === 0) await askStreaming(q);
      else await askInConversation(q);
      document.getElementById("question").value = "";
    } catch (e) {
      status.textContent = "The question failed: " + e.message;
      status.className = "status error";
    } finally {
      end();
    }
  });
})();
