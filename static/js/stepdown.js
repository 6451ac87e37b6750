// Stepdown: progressive enhancement only. Every page works without this file.
//
// Loaded as <script type="module"> from templates/base.html, so it runs after
// the document is parsed, only in browsers NHS.UK frontend supports, and with
// no inline script (the Content-Security-Policy forbids inline scripts).
import { initAll } from "../vendor/nhsuk-frontend/nhsuk-frontend.min.js";

// NHS.UK frontend expects the page template's inline snippet to add these
// classes; we add them here instead because inline scripts are not allowed.
document.body.classList.add("js-enabled", "nhsuk-frontend-supported");

initAll();

// <button data-stepdown-print> prints the page (e.g. a handover summary).
// Such buttons are rendered with the `hidden` attribute and revealed here,
// so they never appear when they cannot work.
for (const button of document.querySelectorAll("[data-stepdown-print]")) {
  button.hidden = false;
  button.addEventListener("click", (event) => {
    event.preventDefault();
    window.print();
  });
}
