/* The review grid: accept or reject candidates of many objects, by click or keyboard.
 *
 * Accept posts to the apply endpoint with fetch (JSON answer) and shows the applied image as
 * the row's current one; without JavaScript the same buttons submit normally. Reject hides a
 * candidate from the grid (nothing is applied; it stays in the history). Pending generations are
 * polled through the status endpoint; when one finishes the grid is fetched again in place.
 * Keys on a focused candidate: Left/Right (within a row), Up/Down (rows), Enter or A accepts,
 * R or Delete rejects.
 */
(function () {
  "use strict";
  var ns = window.gptimage || {};
  var GRID = "gptimage-review";

  function csrf(form) {
    var input = form && form.querySelector('input[name="csrfmiddlewaretoken"]');
    return input ? input.value : "";
  }

  function accept(candidate) {
    var form = candidate.querySelector("form");
    var state = candidate.querySelector(".gptimage-candidate-state");
    if (!form) return;
    state.textContent = "Applying\u2026";
    fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrf(form) },
      body: new FormData(form),
    })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        var row = candidate.closest("[data-gptimage-row]");
        if (!data.ok) {
          state.textContent = data.error;
          return;
        }
        Array.prototype.forEach.call(row.querySelectorAll("[data-gptimage-candidate]"), function (other) {
          other.classList.remove("gptimage-accepted");
        });
        candidate.classList.add("gptimage-accepted");
        state.textContent = data.message;
        var current = row.querySelector("[data-gptimage-current]");
        var empty = row.querySelector("[data-gptimage-current-empty]");
        if (data.url) {
          if (!current) {
            current = document.createElement("img");
            current.setAttribute("data-gptimage-current", "");
            current.alt = "The current image";
            if (empty) empty.replaceWith(current);
          }
          current.src = data.url;
        }
      })
      .catch(function () {
        state.textContent = "Not applied: the server could not be reached. Try again.";
      });
  }

  function reject(candidate) {
    candidate.classList.add("gptimage-rejected");
    candidate.setAttribute("aria-hidden", "true");
    var next = candidate.nextElementSibling;
    candidate.hidden = true;
    if (next && next.hasAttribute("data-gptimage-candidate")) next.focus();
  }

  function candidates(scope) {
    return Array.prototype.slice.call(scope.querySelectorAll("[data-gptimage-candidate]:not([hidden])"));
  }

  function onKey(event) {
    var candidate = event.target.closest && event.target.closest("[data-gptimage-candidate]");
    if (!candidate || event.target.tagName === "BUTTON") return;
    var row = candidate.closest("[data-gptimage-row]");
    var inRow = candidates(row);
    var i = inRow.indexOf(candidate);
    var key = event.key;
    if (key === "ArrowRight" || key === "ArrowLeft") {
      var to = inRow[i + (key === "ArrowRight" ? 1 : -1)];
      if (to) to.focus();
    } else if (key === "ArrowDown" || key === "ArrowUp") {
      var rows = Array.prototype.slice.call(document.querySelectorAll("[data-gptimage-row]"));
      var r = rows.indexOf(row) + (key === "ArrowDown" ? 1 : -1);
      var target = rows[r] && candidates(rows[r])[0];
      if (target) target.focus();
    } else if (key === "Enter" || key === "a" || key === "A") {
      accept(candidate);
    } else if (key === "r" || key === "R" || key === "Delete") {
      reject(candidate);
    } else {
      return;
    }
    event.preventDefault();
  }

  function swap() {
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(GRID);
        var current = document.getElementById(GRID);
        if (fresh && current) {
          current.replaceWith(fresh);
          init();
        }
      });
  }

  function init() {
    var grid = document.getElementById(GRID);
    if (!grid) return;
    grid.addEventListener("keydown", onKey);
    grid.addEventListener("click", function (event) {
      var button = event.target.closest("button");
      if (!button) return;
      var candidate = button.closest("[data-gptimage-candidate]");
      if (!candidate) return;
      if (button.classList.contains("gptimage-accept")) {
        event.preventDefault();
        accept(candidate);
      } else if (button.classList.contains("gptimage-reject")) {
        reject(candidate);
      }
    });
    var pending = grid.querySelectorAll("[data-gptimage-status-url]");
    var left = pending.length;
    Array.prototype.forEach.call(pending, function (el) {
      ns.watchStatus(el, {
        onFinal: function () {
          left -= 1;
          if (left === 0) swap();
        },
      });
    });
    var first = candidates(grid)[0];
    if (first && !document.activeElement.closest("form")) first.focus({ preventScroll: true });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
