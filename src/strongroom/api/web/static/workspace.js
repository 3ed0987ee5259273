/* strongroom web workspace: the pages besides Ask. History (delete a conversation), a
 * document's pages, uploads (the job followed to its end), and the administration pages
 * (verify the audit log, create and revoke API keys). Uses common.js. */
"use strict";

(function () {
  const { el, api, failure, page } = window.strongroom;
  const here = page();

  // -- history ---------------------------------------------------------------------------
  if (here === "history") {
    const said = document.getElementById("history-status");
    for (const button of document.querySelectorAll("button.delete-conversation")) {
      button.addEventListener("click", async () => {
        const id = button.getAttribute("data-id");
        const response = await api("DELETE", "/v1/conversations/" + encodeURIComponent(id));
        if (!response.ok) {
          said.textContent = "Not deleted: " + (await failure(response));
          return;
        }
        const row = button.closest("li");
        const next = row.nextElementSibling || row.previousElementSibling;
        row.remove();
        said.textContent = "The conversation was deleted.";
        const focus = next ? next.querySelector("a") : document.querySelector("main a.button");
        if (focus) focus.focus();
      });
    }
  }

  // -- a document's pages ----------------------------------------------------------------
  if (here === "document") {
    const panel = document.getElementById("doc-pages");
    const base =
      "/v1/documents/" + encodeURIComponent(panel.getAttribute("data-document")) + "/versions/" +
      encodeURIComponent(panel.getAttribute("data-version")) + "/pages/";
    const text = document.getElementById("doc-text");
    const figure = document.getElementById("doc-figure");
    const img = document.getElementById("doc-image");
    for (const button of panel.querySelectorAll("button.page-button")) {
      button.addEventListener("click", async () => {
        const n = button.getAttribute("data-page");
        for (const b of panel.querySelectorAll("button.page-button")) b.setAttribute("aria-pressed", String(b === button));
        figure.hidden = true;
        text.textContent = "Loading page " + n + "…";
        const response = await api("GET", base + encodeURIComponent(n));
        if (!response.ok) {
          text.textContent = "The page cannot be shown: " + (await failure(response));
          return;
        }
        const shown = await response.json();
        text.textContent = shown.text;
        if (shown.has_image) {
          img.alt = "Page " + n + " as printed";
          img.src = base + encodeURIComponent(n) + "/image";
          img.addEventListener("load", () => (figure.hidden = false), { once: true });
        }
      });
    }
  }

  // -- uploads ---------------------------------------------------------------------------
  const SETTLED = ["done", "failed", "interrupted"];

  function showJob(job) {
    const files = document.getElementById("job-files");
    const progress = document.getElementById("job-progress");
    const said = document.getElementById("job-status");
    const settled = SETTLED.includes(job.status);
    if (settled) {
      progress.max = 1;
      progress.value = 1;
    } else progress.removeAttribute("value");
    said.textContent = "Job " + job.job_id.slice(0, 8) + ": " + job.status + (settled ? "." : "…");
    said.className = "status" + (job.status === "done" ? " ok" : job.status === "failed" ? " error" : "");
    files.replaceChildren();
    for (const f of job.files || []) {
      const item = el("li", { class: "job-file job-file-" + f.status }, f.name + ": " + f.status);
      if (f.error) item.appendChild(el("span", { class: "error reason" }, " — " + f.error));
      if (f.document_id) {
        item.appendChild(document.createTextNode(" · "));
        item.appendChild(el("a", { href: "/ui/documents/" + encodeURIComponent(f.document_id) }, "open the document"));
      }
      files.appendChild(item);
    }
    return settled;
  }

  if (here === "upload") {
    const form = document.getElementById("upload-form");
    const button = document.getElementById("upload-button");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = document.getElementById("upload-file");
      if (!input.files.length) {
        input.focus();
        return;
      }
      const data = new FormData();
      data.append("file", input.files[0]);
      for (const name of ["acl", "doc_type", "published"]) {
        const value = String(new FormData(form).get(name) || "").trim();
        if (value) data.append(name, value);
      }
      document.getElementById("job").hidden = false;
      document.getElementById("job-status").textContent = "Uploading…";
      document.getElementById("job-files").replaceChildren();
      button.disabled = true;
      try {
        const response = await api("POST", "/v1/documents", data);
        if (!response.ok) {
          document.getElementById("job-status").textContent = "The upload was refused: " + (await failure(response));
          document.getElementById("job-status").className = "status error";
          return;
        }
        let job = await response.json();
        while (!showJob(job)) {
          await new Promise((resolve) => setTimeout(resolve, 400));
          const polled = await api("GET", "/v1/jobs/" + encodeURIComponent(job.job_id));
          if (!polled.ok) throw new Error(await failure(polled));
          job = await polled.json();
        }
      } catch (e) {
        document.getElementById("job-status").textContent = "The job cannot be followed: " + e.message;
      } finally {
        button.disabled = false;
      }
    });
  }

  // -- administration: the audit log -----------------------------------------------------
  if (here === "admin-audit") {
    const button = document.getElementById("verify-button");
    button.addEventListener("click", async () => {
      const said = document.getElementById("verify-status");
      const problems = document.getElementById("verify-problems");
      said.textContent = "Verifying…";
      said.className = "status";
      problems.replaceChildren();
      button.disabled = true;
      try {
        const response = await api("GET", "/v1/admin/audit/verify");
        if (!response.ok) {
          said.textContent = "Not verified: " + (await failure(response));
          said.className = "status error";
          return;
        }
        const report = await response.json();
        const anchored = report.anchored === null ? "no signed checkpoint consulted" : "signed checkpoints vouch up to seq " + report.anchored;
        said.textContent = (report.ok ? "OK: " : "BROKEN: ") + report.records + " records checked, head seq " + report.head_seq + "; " + anchored + ".";
        said.className = "status " + (report.ok ? "ok" : "error");
        for (const p of report.problems) problems.appendChild(el("li", { class: "error" }, "seq " + p.seq + " (" + p.kind + "): " + p.message));
      } finally {
        button.disabled = false;
      }
    });
  }

  // -- administration: API keys ----------------------------------------------------------
  if (here === "admin-keys") {
    const said = document.getElementById("key-status");
    const form = document.getElementById("key-form");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const owner = String(data.get("owner") || "").trim();
      const groups = String(data.get("groups") || "").split(",").map((g) => g.trim()).filter((g) => g);
      const days = Number(data.get("days") || 0);
      if (!owner || !groups.length) {
        said.textContent = "Give an owner and at least one group.";
        said.className = "status error";
        return;
      }
      const body = { owner, groups };
      if (days > 0) body.days = days;
      const response = await api("POST", "/v1/keys", body);
      if (!response.ok) {
        said.textContent = "No key was created: " + (await failure(response));
        said.className = "status error";
        return;
      }
      const created = await response.json();
      said.textContent = "Key " + created.id + " created for " + created.owner + ".";
      said.className = "status ok";
      const box = document.getElementById("key-secret");
      const field = document.getElementById("secret-value");
      field.value = created.key;
      box.hidden = false;
      field.focus();
      field.select();
      form.reset();
      const row = el("tr", { "data-key": created.id });
      const expires = created.expires_at ? created.expires_at.slice(0, 10) : "never";
      for (const text of [created.id, created.owner, created.groups.join(", "), new Date().toISOString().slice(0, 10), expires]) {
        row.appendChild(el("td", {}, text));
      }
      row.appendChild(el("td", { class: "key-status" }, "active"));
      const cell = el("td");
      cell.appendChild(revokeButton(created.id, created.owner));
      row.appendChild(cell);
      document.querySelector("#keys tbody").prepend(row);
    });
    document.getElementById("secret-done").addEventListener("click", () => {
      document.getElementById("secret-value").value = ""; // the secret leaves the page
      document.getElementById("key-secret").hidden = true;
      document.getElementById("key-owner").focus();
    });

    function revokeButton(id, owner) {
      const b = el("button", { type: "button", class: "revoke-key", "data-id": id, "aria-label": "Revoke the key " + id + " of " + owner }, "Revoke");
      wire(b);
      return b;
    }

    function wire(button) {
      button.addEventListener("click", async () => {
        const id = button.getAttribute("data-id");
        const response = await api("DELETE", "/v1/keys/" + encodeURIComponent(id));
        if (!response.ok) {
          said.textContent = "Not revoked: " + (await failure(response));
          said.className = "status error";
          return;
        }
        const row = button.closest("tr");
        row.querySelector(".key-status").textContent = "revoked";
        said.textContent = "Key " + id + " revoked.";
        said.className = "status ok";
        button.remove();
      });
    }
    for (const b of document.querySelectorAll("button.revoke-key")) wire(b);
  }
})();
