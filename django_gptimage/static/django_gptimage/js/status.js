/* django-gptimage status poller: follows one generation until it is final.
 *
 * window.gptimage.pollStatus(url, handlers, options) -> {stop(), now()}
 *   url       the status endpoint, {% url "gptimage:generation-status" generation.pk %}
 *   handlers  onUpdate(status)  every answer (generation_status() as JSON)
 *             onChange(status)  only when something an editor sees changed
 *             onFinal(status)   once, at a final state (polling stops)
 *             onConnection(state) "ok" | "reconnecting" (network lost or server error)
 *             onRefused(httpStatus, message)  401/403/404: polling stops (retrying cannot help)
 *   options   minDelay (ms, 1000), maxDelay (ms, 10000: the backoff while nothing changes),
 *             offlineMaxDelay (ms, 30000: the backoff while the connection is down)
 *
 * window.gptimage.watchStatus(element, handlers) polls element's data-gptimage-status-url and
 * fills its [data-gptimage-slot] children: line, status, phase, attempt, elapsed, message,
 * next-step, connection (text), preview (an <img>, shown while a partial image exists).
 * Elements with data-gptimage-status-url present at DOMContentLoaded and marked
 * data-gptimage-autowatch are watched automatically.
 */
(function () {
  "use strict";
  var ns = (window.gptimage = window.gptimage || {});

  function visibleKey(s) {
    // What an editor sees, without the clock (elapsed changes on every answer).
    return JSON.stringify([s.status, s.phase, s.attempt, s.preview_url, s.images.length, s.error, s.line, s.next_attempt_at]);
  }

  ns.pollStatus = function (url, handlers, options) {
    handlers = handlers || {};
    options = options || {};
    var minDelay = options.minDelay || 1000;
    var maxDelay = options.maxDelay || 10000;
    var offlineMax = options.offlineMaxDelay || 30000;
    var delay = minDelay;
    var timer = null;
    var stopped = false;
    var inFlight = false;
    var reconnecting = false;
    var lastKey = null;

    function call(name) {
      var fn = handlers[name];
      if (fn) fn.apply(null, Array.prototype.slice.call(arguments, 1));
    }

    function schedule(ms) {
      if (stopped) return;
      clearTimeout(timer);
      timer = setTimeout(tick, ms);
    }

    function connection(ok) {
      if (ok && reconnecting) {
        reconnecting = false;
        call("onConnection", "ok");
      } else if (!ok && !reconnecting) {
        reconnecting = true;
        call("onConnection", "reconnecting");
      }
    }

    function tick() {
      if (stopped || inFlight) return;
      inFlight = true;
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (response.status === 401 || response.status === 403 || response.status === 404) {
            return response.json().then(
              function (body) { return { refused: response.status, message: body.error || "" }; },
              function () { return { refused: response.status, message: "" }; }
            );
          }
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (data) {
          inFlight = false;
          connection(true);
          if (data.refused) {
            stopped = true;
            call("onRefused", data.refused, data.message);
            return;
          }
          call("onUpdate", data);
          var key = visibleKey(data);
          if (key !== lastKey) {
            lastKey = key;
            call("onChange", data);
            delay = Math.max(minDelay, (data.poll_after || 0) * 1000);
          } else {
            delay = Math.min(maxDelay, Math.round(delay * 1.5));
          }
          if (data.is_final) {
            stopped = true;
            call("onFinal", data);
            return;
          }
          schedule(delay);
        })
        .catch(function () {
          inFlight = false;
          connection(false);
          delay = Math.min(offlineMax, Math.max(minDelay, delay * 2));
          schedule(delay);
        });
    }

    function onOnline() {
      if (!stopped) {
        delay = minDelay;
        schedule(0);
      }
    }
    window.addEventListener("online", onOnline);
    schedule(0);
    return {
      stop: function () {
        stopped = true;
        clearTimeout(timer);
        window.removeEventListener("online", onOnline);
      },
      now: function () {
        delay = minDelay;
        schedule(0);
      },
    };
  };

  function setSlot(root, name, text) {
    Array.prototype.forEach.call(root.querySelectorAll('[data-gptimage-slot="' + name + '"]'), function (el) {
      if (el.textContent !== text) el.textContent = text;
    });
  }

  ns.renderStatus = function (root, s) {
    root.setAttribute("data-gptimage-status", s.status);
    setSlot(root, "line", s.line);
    setSlot(root, "status", s.status_label);
    setSlot(root, "phase", s.phase_label);
    setSlot(root, "attempt", s.attempt ? s.attempt + " / " + s.max_attempts : "-");
    setSlot(root, "elapsed", s.elapsed_display);
    setSlot(root, "message", s.message);
    setSlot(root, "next-step", s.error ? s.error.next_step : "");
    Array.prototype.forEach.call(root.querySelectorAll('img[data-gptimage-slot="preview"]'), function (img) {
      if (s.preview_url) {
        if (img.getAttribute("src") !== s.preview_url) img.src = s.preview_url;
        img.hidden = false;
      } else {
        img.hidden = true;
      }
    });
  };

  ns.watchStatus = function (root, handlers) {
    handlers = handlers || {};
    var url = root.getAttribute("data-gptimage-status-url");
    return ns.pollStatus(url, {
      onUpdate: function (s) {
        ns.renderStatus(root, s);
        if (handlers.onUpdate) handlers.onUpdate(s);
      },
      onChange: handlers.onChange,
      onFinal: handlers.onFinal,
      onConnection: function (state) {
        root.classList.toggle("gptimage-reconnecting", state === "reconnecting");
        setSlot(root, "connection", state === "reconnecting" ? "Connection lost, reconnecting\u2026" : "");
        if (handlers.onConnection) handlers.onConnection(state);
      },
      onRefused: function (code, message) {
        setSlot(root, "connection", message || "This generation cannot be followed (HTTP " + code + ").");
        if (handlers.onRefused) handlers.onRefused(code, message);
      },
    });
  };

  function initAll() {
    Array.prototype.forEach.call(
      document.querySelectorAll("[data-gptimage-status-url][data-gptimage-autowatch]"),
      function (el) {
        if (!el.gptimageWatch) el.gptimageWatch = ns.watchStatus(el);
      }
    );
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", initAll);
  else initAll();
})();
