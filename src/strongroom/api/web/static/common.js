/* strongroom web workspace: what every page's script shares. Plain JavaScript, no build step,
 * no third-party code. Calls go to the same JSON API as any client, as the signed-in user
 * (session cookie); requests that change state carry the session's CSRF token in
 * X-CSRF-Token. Text from the server is only ever set as text. */
"use strict";

window.strongroom = (function () {
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const CSRF = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /* A JSON API call; ``body``: an object sent as JSON, or FormData sent as multipart. */
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = CSRF;
    const form = body instanceof FormData;
    if (body !== undefined && !form) headers["Content-Type"] = "application/json";
    return fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : form ? body : JSON.stringify(body),
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

  return { CSRF, el, api, failure, page };
})();
