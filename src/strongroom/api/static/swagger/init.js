// Starts Swagger UI on /docs. A file rather than an inline <script>, so that the page needs no
// Content-Security-Policy exception; the page hands over the spec's URL in a data attribute.
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    // the default sends the spec's URL to validator.swagger.io and loads a badge from there
    validatorUrl: null,
    deepLinking: true,
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis],
  });
});
