/* strongroom web workspace: the research agent's page (agent.html). Starts a run
 * (POST /v1/agent/runs), follows its events (GET .../events, Server-Sent Events read from a
 * fetch stream: replayed, then live; a dropped stream resumes after the last seq), shows each
 * step (a model turn, a tool call with its arguments and outcome, refusals as refusals), the
 * answer with numbered citations (a page opens in viewer.js; a query shows its SQL, dataset
 * versions and rows), and cancels or resumes the run. Everything the model, a tool or a
 * document wrote is set as text, never as markup. Uses common.js and viewer.js. */
"use strict";

(function () {
  const { el, api, failure, page } = window.strongroom;
  if (page() !== "agent") return;
  const viewer = window.strongroom.viewer;
  const EXTRACTIVE = "strongroom-rag"; // answers without a model: it cannot call tools
  const STATUS = {
    queued: "Queued: it starts when the service has room.",
    running: "Running…",
    answered: "Answered.",
    limit: "Stopped at a limit",
    cancelled: "Cancelled.",
    error: "Failed",
    interrupted: "Interrupted: the service stopped during the run. Resume it to continue from its last step.",
  };
  const ENDED = ["answered", "limit", "cancelled", "error"];
  const CITE = "(?:(?:sources?|src|refs?|evidence)\\s*)?";
  const MARKER = new RegExp("\\[\\s*" + CITE + "(\\d+(?:\\s*[,;]\\s*" + CITE + "\\d+)*)\\s*\\]", "gi");

  const form = document.getElementById("agent-form");
  const route = document.getElementById("agent-route");
  const start = document.getElementById("agent-start");
  const formStatus = document.getElementById("agent-form-status");
  const box = document.getElementById("run");
  const steps = document.getElementById("steps");
  const status = document.getElementById("run-status");
  const cancel = document.getElementById("run-cancel");
  const resume = document.getElementById("run-resume");
  const answer = document.getElementById("run-answer");
  const answerBody = document.getElementById("run-answer-body");
  const sources = document.getElementById("run-sources");
  const unsupported = document.getElementById("run-unsupported");

  let run = null; // the run shown, as GET /v1/agent/runs/{id} returns it
  let lastSeq = 0;
  let evidence = new Map(); // n -> {n, kind, ref, text, numbers}
  let stream = null; // the AbortController of the event stream being read

  // -- the routes the user may use ------------------------------------------------------
  (async function loadRoutes() {
    const response = await api("GET", "/v1/models");
    if (!response.ok) throw new Error(await failure(response));
    const data = await response.json();
    for (const model of data.data || []) {
      if (model.id === EXTRACTIVE) continue;
      const label = model.description ? model.id + " (" + model.description + ")" : model.id;
      route.appendChild(el("option", { value: model.id }, label));
    }
    if (!route.options.length) {
      start.disabled = true;
      formStatus.textContent = "No model route that you may use can drive the agent; ask an administrator to grant you one.";
    }
  })().catch((e) => {
    formStatus.textContent = "The model routes cannot be listed: " + e.message;
  });

  // -- evidence and citations -----------------------------------------------------------
  function clocks() {
    return run ? { as_of: run.as_of, known_at: run.known_at } : {};
  }

  function when(iso) {
    return String(iso || "").slice(0, 19).replace("T", " ") + " UTC";
  }

  function named(ref) {
    return String(ref.source || "document").split("/").pop(); // the file's name; the viewer shows the whole source
  }

  function label(item) {
    const ref = item.ref || {};
    const where = named(ref) + " p." + ref.page;
    if (item.kind === "page") return where;
    if (item.kind === "table") return where + ", table " + (Number(ref.table) + 1);
    if (item.kind === "query") {
      const used = (ref.datasets || []).map((d) => d[0] + " version " + d[1]).join(", ");
      return "query over " + (used || "no dataset") + " · " + ref.rows + (ref.truncated ? "+" : "") + " row(s)";
    }
    if (item.kind === "calculation") return "calculation: " + (ref.formula || ref.expression || "");
    if (item.kind === "term_sheet") return "term sheet, " + (ref.field || "field");
    return item.kind;
  }

  function excerpt(text) {
    const t = String(text || "");
    return t.length > 240 ? t.slice(0, 240) + "…" : t;
  }

  function onPage(item) {
    const ref = item.ref || {};
    return ref.document_id && ref.version_id && ref.page !== undefined && Number.isFinite(ref.start) && Number.isFinite(ref.end);
  }

  function citeButton(n) {
    const item = evidence.get(n);
    const b = el("button", { type: "button", class: "cite", "aria-label": "Citation " + n + ": " + label(item) }, "[" + n + "]");
    b.addEventListener("click", () => openCitation(n, item, b).catch((e) => viewer.failed(e.message)));
    return b;
  }

  async function openCitation(n, item, from) {
    const ref = item.ref || {};
    if (onPage(item)) {
      const cited = {
        document_id: ref.document_id,
        version_id: ref.version_id,
        page: ref.page,
        char_start: ref.start,
        char_end: ref.end,
        label: label(item),
        title: ref.source || "document",
      };
      return viewer.page(n, cited, from, clocks());
    }
    const nodes = [];
    if (item.kind === "query") {
      nodes.push(el("h3", {}, "SQL"), el("pre", { class: "sql", id: "cited-sql" }, String(ref.sql || "")));
      if (ref.executed_sql && ref.executed_sql !== ref.sql) {
        const more = el("details", {});
        more.append(el("summary", {}, "As executed (at both clocks)"), el("pre", { class: "sql" }, String(ref.executed_sql)));
        nodes.push(more);
      }
      nodes.push(el("h3", {}, "Dataset versions"));
      const table = el("table", { class: "grid", id: "cited-datasets" });
      const head = el("tr");
      for (const h of ["Dataset", "Version", "Content SHA-256"]) head.appendChild(el("th", { scope: "col" }, h));
      table.appendChild(el("thead")).appendChild(head);
      const body = table.appendChild(el("tbody"));
      for (const d of ref.datasets || []) {
        const row = body.appendChild(el("tr"));
        for (const cell of d) row.appendChild(el("td", {}, String(cell)));
      }
      nodes.push(table, el("h3", {}, "Rows"), el("pre", { class: "page-text", id: "cited-rows" }, String(item.text || "")));
      const about = "valid as of " + when(ref.as_of) + " · known at " + when(ref.known_at) + " · " + ref.rows + " row(s)" + (ref.truncated ? ", cut" : "");
      viewer.detail("[" + n + "] " + label(item), about, nodes, from);
      return;
    }
    nodes.push(el("pre", { class: "page-text" }, String(item.text || "")));
    const facts = el("dl", { class: "facts" });
    for (const [k, v] of Object.entries(ref)) facts.append(el("dt", {}, k), el("dd", {}, typeof v === "string" ? v : JSON.stringify(v)));
    nodes.push(facts);
    if (ref.document_id) nodes.push(el("a", { href: "/ui/documents/" + encodeURIComponent(ref.document_id) }, "Open the document"));
    viewer.detail("[" + n + "] " + label(item), item.kind, nodes, from);
  }

  /* ``text`` into ``node``: [n] markers of known evidence become citation buttons. */
  function fillMarked(node, text) {
    let at = 0;
    for (const m of text.matchAll(MARKER)) {
      const numbers = m[1].split(/[,;]/).map((s) => Number(s.replace(/\D/g, "")));
      if (!numbers.every((n) => evidence.has(n))) continue;
      node.appendChild(document.createTextNode(text.slice(at, m.index)));
      for (const n of numbers) node.appendChild(citeButton(n));
      at = m.index + m[0].length;
    }
    node.appendChild(document.createTextNode(text.slice(at)));
  }

  function showAnswer(data) {
    const text = String(data.answer || "");
    answer.hidden = !text.trim();
    document.getElementById("run-answer-title").textContent = data.status === "answered" ? "Answer" : "Draft answer (the run stopped before it finished)";
    answerBody.replaceChildren();
    for (const para of text.split(/\n+/)) {
      if (!para.trim()) continue;
      const p = el("p", { class: "claim" });
      fillMarked(p, para);
      answerBody.appendChild(p);
    }
    sources.replaceChildren();
    for (const n of [...new Set(data.cited || [])]) {
      const item = evidence.get(n);
      if (!item) continue;
      const li = el("li", { id: "run-source-" + n });
      li.append(citeButton(n), document.createTextNode(" " + label(item) + " "), el("q", {}, excerpt(item.text)));
      sources.appendChild(li);
    }
    const missing = data.unsupported || [];
    unsupported.hidden = missing.length === 0;
    unsupported.textContent = missing.length ? "Numbers the cited evidence does not state: " + missing.join(", ") : "";
  }

  // -- the steps ------------------------------------------------------------------------
  function args(raw) {
    if (typeof raw !== "string") return JSON.stringify(raw, null, 2);
    try {
      return JSON.stringify(JSON.parse(raw), null, 2);
    } catch (e) {
      return raw; // malformed arguments are shown as the model sent them
    }
  }

  const TITLES = { answer: "Answer", limit: "Stopped at a limit", cancelled: "Cancelled", error: "Failed" };

  function stepItem(kind, seq, data) {
    const li = el("li", { class: "step step-" + kind, "data-seq": String(seq), "data-kind": kind });
    const head = (text) => li.appendChild(el("h4", { class: "step-head" }, text));
    if (kind === "started") {
      head("Started");
      li.appendChild(el("p", { class: "help" }, "Prompt " + (data.prompt_version || "") + "."));
    } else if (kind === "model") {
      head("Model turn " + data.step);
      if (data.text) li.appendChild(el("p", { class: "step-text" }, data.text));
      const calls = data.tool_calls || [];
      if (calls.length) li.appendChild(el("p", {}, "Calls: " + calls.map((c) => c.name).join(", ")));
      else if (!data.text) li.appendChild(el("p", { class: "help" }, "No text and no tool call."));
      const u = data.usage || {};
      li.appendChild(el("p", { class: "help" }, "Tokens: " + u.prompt + " in, " + u.completion + " out" + (u.estimated ? " (estimated)" : "") + "."));
    } else if (kind === "tool") {
      head("Tool call: " + data.name);
      li.appendChild(el("p", { class: "help" }, "Arguments"));
      li.appendChild(el("pre", { class: "args" }, args(data.arguments)));
      if (data.ok) {
        const found = data.evidence || [];
        li.appendChild(el("p", { class: "outcome ok" }, "Returned " + found.length + " evidence item(s) in " + data.elapsed_ms + " ms."));
        const list = li.appendChild(el("ol", { class: "evidence" }));
        for (const item of found) {
          const row = el("li", { value: String(item.n) });
          row.append(citeButton(item.n), document.createTextNode(" " + label(item) + " "), el("q", {}, excerpt(item.text)));
          list.appendChild(row);
        }
      } else {
        li.classList.add("step-refused");
        li.appendChild(el("p", { class: "outcome refused" }, "Refused: " + data.error));
      }
    } else if (kind === "check") {
      head("Citation check");
      const missing = (data.unsupported || []).concat(data.unknown || []);
      li.appendChild(el("p", {}, "Numbers the cited evidence does not state, sent back to the model once: " + missing.join(", ")));
    } else if (kind === "resumed") {
      head("Resumed");
      li.appendChild(el("p", {}, "From its checkpoint, after " + data.steps + " model turn(s) and " + data.tool_calls + " tool call(s)."));
    } else {
      head(TITLES[kind] || kind);
      const why = [data.limit, data.reason].filter((s) => s).join(": ");
      if (why) li.appendChild(el("p", { class: kind === "answer" ? "help" : "outcome refused" }, why));
      if (kind === "answer") li.appendChild(el("p", { class: "help" }, "The answer and its sources are below."));
    }
    return li;
  }

  function onEvent(kind, seq, data) {
    lastSeq = Math.max(lastSeq, seq);
    if (kind === "tool") for (const item of data.evidence || []) evidence.set(item.n, item);
    const li = stepItem(kind, seq, data);
    const old = steps.querySelector('li[data-seq="' + seq + '"]');
    if (old) old.replaceWith(li); // a step sent again after a resume replaces the first
    else {
      const later = [...steps.children].find((s) => Number(s.getAttribute("data-seq")) > seq);
      steps.insertBefore(li, later || null);
    }
    if (kind in TITLES) showAnswer(data);
    else if (run && run.status === "queued") showRun({ ...run, status: "running" });
  }

  // -- the run --------------------------------------------------------------------------
  function listRow(r) {
    let row = document.querySelector('#runs li[data-run="' + CSS.escape(r.run_id) + '"]');
    if (!row) {
      row = el("li", { class: "row", "data-run": r.run_id });
      row.append(
        el("a", { href: "/ui/agent/runs/" + encodeURIComponent(r.run_id), class: "row-title" }, r.question),
        el("span", { class: "badge run-status" }),
        el("span", { class: "help" }, r.route + " · " + r.created_at.slice(0, 16).replace("T", " ") + " UTC")
      );
      document.getElementById("runs").prepend(row);
      document.getElementById("no-runs").hidden = true;
    }
    const badge = row.querySelector(".run-status");
    badge.textContent = r.status;
    badge.className = "badge run-status badge-run-" + r.status;
  }

  function showRun(r) {
    run = r;
    box.hidden = false;
    document.getElementById("run-question").textContent = r.question;
    document.getElementById("run-meta").textContent =
      "Route " + r.route + " · valid as of " + when(r.as_of) + " · known at " + when(r.known_at) + " · started " + when(r.created_at);
    let said = STATUS[r.status] || r.status;
    if (r.reason && ["limit", "error", "cancelled"].includes(r.status)) said = said.replace(/\.$/, "") + ": " + r.reason;
    if (r.cancel_requested && r.status === "running") said = "Cancel requested: the run stops after its current step.";
    status.textContent = said;
    status.className = "status" + (r.status === "answered" ? " ok" : r.status === "error" ? " error" : "");
    box.setAttribute("data-status", r.status);
    cancel.hidden = !["queued", "running", "interrupted"].includes(r.status) || r.cancel_requested;
    resume.hidden = r.status !== "interrupted";
    listRow(r);
  }

  async function refresh(id) {
    const response = await api("GET", "/v1/agent/runs/" + encodeURIComponent(id));
    if (!response.ok) throw new Error(await failure(response));
    const r = await response.json();
    if (r.result) {
      for (const item of r.result.evidence || []) evidence.set(item.n, item);
      if (ENDED.includes(r.status)) showAnswer(r.result);
    }
    showRun(r);
    return r;
  }

  /* The run's events after ``lastSeq``, as they come, until the stream says the run ended. */
  async function follow(id) {
    if (stream) stream.abort();
    const mine = new AbortController();
    stream = mine;
    for (let tries = 0; tries < 6 && !mine.signal.aborted; tries++) {
      if (tries) await new Promise((resolve) => setTimeout(resolve, 500 * tries));
      let ended = false;
      try {
        const url = "/v1/agent/runs/" + encodeURIComponent(id) + "/events?after=" + lastSeq;
        const response = await fetch(url, { headers: { Accept: "text/event-stream" }, credentials: "same-origin", signal: mine.signal });
        if (!response.ok) {
          status.textContent = "The run's steps cannot be followed: " + (await failure(response));
          status.className = "status error";
          return;
        }
        ended = await read(response, () => (tries = 0));
      } catch (e) {
        if (mine.signal.aborted) return;
      }
      if (ended) {
        if (stream === mine) stream = null;
        await refresh(id);
        return;
      }
    }
    if (!mine.signal.aborted) {
      status.textContent = "The run's steps stopped arriving; reload the page to follow it again.";
      status.className = "status error";
    }
  }

  /* Server-Sent Events from ``response``: each event handed to onEvent; true at ``end``. */
  async function read(response, alive) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      alive();
      buffered += decoder.decode(value, { stream: true }).replace(/\r/g, "");
      let cut;
      while ((cut = buffered.indexOf("\n\n")) >= 0) {
        const block = buffered.slice(0, cut);
        buffered = buffered.slice(cut + 2);
        let kind = "message";
        let seq = 0;
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue; // a heartbeat
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") kind = text;
          else if (field === "id") seq = Number(text);
          else if (field === "data") data.push(text);
        }
        if (kind === "end") return true;
        if (data.length) onEvent(kind, seq, JSON.parse(data.join("\n")));
      }
    }
  }

  function reset() {
    lastSeq = 0;
    evidence = new Map();
    steps.replaceChildren();
    answer.hidden = true;
    answerBody.replaceChildren();
    sources.replaceChildren();
    unsupported.hidden = true;
    viewer.close(false);
  }

  async function open(id) {
    reset();
    await refresh(id);
    await follow(id); // its steps, replayed; live while it runs
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const asked = { question: String(data.get("question") || "").trim(), route: String(data.get("route") || "") };
    if (!asked.question) {
      document.getElementById("agent-question").focus();
      return;
    }
    for (const name of ["as_of", "known_at"]) {
      const value = String(data.get(name) || "");
      if (value) asked[name] = value;
    }
    start.disabled = true;
    formStatus.textContent = "Starting the run…";
    formStatus.className = "status";
    try {
      const response = await api("POST", "/v1/agent/runs", asked);
      if (!response.ok) throw new Error(await failure(response));
      const r = await response.json();
      formStatus.textContent = "";
      document.getElementById("agent-question").value = "";
      window.history.pushState(null, "", "/ui/agent/runs/" + encodeURIComponent(r.run_id));
      reset();
      showRun(r);
      follow(r.run_id);
    } catch (e) {
      formStatus.textContent = "The run was not started: " + e.message;
      formStatus.className = "status error";
    } finally {
      start.disabled = route.options.length === 0;
    }
  });

  cancel.addEventListener("click", async () => {
    if (!run) return;
    cancel.disabled = true;
    try {
      const response = await api("POST", "/v1/agent/runs/" + encodeURIComponent(run.run_id) + "/cancel", {});
      if (!response.ok) {
        status.textContent = "Not cancelled: " + (await failure(response));
        status.className = "status error";
        return;
      }
      showRun(await response.json());
    } finally {
      cancel.disabled = false;
    }
  });

  resume.addEventListener("click", async () => {
    if (!run) return;
    resume.disabled = true;
    try {
      const response = await api("POST", "/v1/agent/runs/" + encodeURIComponent(run.run_id) + "/resume", {});
      if (!response.ok) {
        status.textContent = "Not resumed: " + (await failure(response));
        status.className = "status error";
        return;
      }
      const r = await response.json();
      reset(); // steps not checkpointed are sent again under the same numbers: replay them all
      showRun(r);
      follow(r.run_id);
    } finally {
      resume.disabled = false;
    }
  });

  window.addEventListener("popstate", () => window.location.reload());
  const shown = box.getAttribute("data-run");
  if (shown) open(shown).catch((e) => {
    status.textContent = "The run cannot be shown: " + e.message;
    status.className = "status error";
  });
})();
