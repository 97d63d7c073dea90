/* The generate page's credit line: what the current choices would reserve, and the balance.
 *
 * The server renders the line for the form's first values; this keeps it in step with the
 * option picker, from its "gptimage:options" event (detail.estimate.amount, in USD) and the
 * element's data-per-usd (CREDITS_PER_USD) and data-available (the balance, in credits).
 * The same rounding as the server: reservations round up to 0.0001 credit.
 */
(function () {
  "use strict";

  function formatCredits(value) {
    var two = Math.round(value * 100) / 100;
    if (Math.abs(value) >= 1 || Math.abs(two - value) < 1e-9) return two.toFixed(2);
    return value.toFixed(4);
  }

  function reserveFor(amount, perUsd) {
    return Math.ceil(amount * perUsd * 10000 - 1e-6) / 10000;
  }

  document.addEventListener("gptimage:options", function (event) {
    var scope = (event.target.closest && event.target.closest("form")) || document;
    var box = scope.querySelector("[data-gptimage-credits]");
    var estimate = event.detail && event.detail.estimate;
    if (!box || !estimate || estimate.amount === null || estimate.amount === undefined) return;
    var perUsd = parseFloat(box.dataset.perUsd);
    var available = parseFloat(box.dataset.available);
    if (!(perUsd > 0) || isNaN(available)) return;
    var reserve = reserveFor(estimate.amount, perUsd);
    var out = box.querySelector("[data-gptimage-out='credits']");
    var enough = reserve <= available + 1e-9;
    box.classList.toggle("gptimage-credits-short", !enough);
    out.textContent = enough
      ? "Reserves " + formatCredits(reserve) + " credits of your " + formatCredits(available) +
        "; you are charged the actual cost when it succeeds, and refunded if it fails."
      : "This generation reserves " + formatCredits(reserve) + " credits and your balance is " +
        formatCredits(available) + " credits. Ask an administrator for more credits, or choose a smaller or cheaper image.";
  });

  window.gptimage = window.gptimage || {};
  window.gptimage.formatCredits = formatCredits;
  window.gptimage.reserveCredits = reserveFor;
})();
