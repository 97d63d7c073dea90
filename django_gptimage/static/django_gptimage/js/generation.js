/* The generation's page in the admin: live status without a reload.
 *
 * While the generation is queued or running, status.js fills the status slots (phase, attempt,
 * elapsed, partial preview) and the elapsed clock ticks every second. When the status changes
 * (finished, failed, retried, images arrived) the page's #gptimage-generation block is fetched
 * again and swapped in place, so the images, the buttons and the attempts appear as the server
 * renders them, without navigating away.
 */
(function () {
  "use strict";
  var ns = window.gptimage || {};
  var BLOCK = "gptimage-generation";

  function swap(done) {
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(BLOCK);
        var current = document.getElementById(BLOCK);
        if (fresh && current) {
          current.replaceWith(fresh);
          if (done) done(fresh);
        }
      })
      .catch(function () {
        // The status slots already say what happened; the next change tries again.
      });
  }

  function tick(root, status) {
    var slot = root.querySelector('[data-gptimage-slot="elapsed"]');
    var since = Date.parse(status.started_at || status.created_at);
    if (!slot || isNaN(since)) return;
    var seconds = Math.max(0, (Date.now() - since) / 1000);
    slot.textContent =
      seconds < 10 ? seconds.toFixed(1) + " s" : seconds < 60 ? Math.round(seconds) + " s"
        : Math.floor(seconds / 60) + " min " + String(Math.round(seconds % 60)).padStart(2, "0") + " s";
  }

  function watch(root) {
    if (!root || root.getAttribute("data-gptimage-final") === "true" || !ns.watchStatus) return;
    var rendered = root.getAttribute("data-gptimage-status");
    var last = null;
    var clock = setInterval(function () {
      var current = document.getElementById(BLOCK);
      if (last && current && !last.is_final) tick(current, last);
    }, 1000);
    var watcher = ns.watchStatus(root, {
      onUpdate: function (status) {
        last = status;
      },
      onChange: function (status) {
        if (status.status !== rendered || status.is_final) {
          watcher.stop();
          clearInterval(clock);
          swap(function (fresh) {
            watch(fresh);
          });
        }
      },
    });
  }

  function init() {
    watch(document.getElementById(BLOCK));
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
