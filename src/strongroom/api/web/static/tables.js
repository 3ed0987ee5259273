/* strongroom web workspace, a document's tables (document.html only): "Read page N" opens that
 * page in the page reader (workspace.js draws it) and moves the focus there. Without this
 * script the link still goes to the reader. */
"use strict";

(function () {
  const reader = document.getElementById("doc-pages");
  if (!reader) return;
  for (const link of document.querySelectorAll("a.table-page")) {
    link.addEventListener("click", (event) => {
      const page = CSS.escape(link.getAttribute("data-page") || "");
      const button = reader.querySelector('button.page-button[data-page="' + page + '"]');
      if (!button) return;
      event.preventDefault();
      button.click();
      button.focus();
    });
  }
})();
