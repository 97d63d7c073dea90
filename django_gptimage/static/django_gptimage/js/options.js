/* django-gptimage option picker: offers only what the server would accept.
 *
 * Markup: a container with data-gptimage-options="<id of a json_script holding option_matrix()>"
 * and, inside it, the GenerationForm's inputs (names model, mode, ratio, tier, quality,
 * output_format, background, n, prompt, images; with data-gptimage-prefix="p-" they are
 * "p-model", ...). Optional outputs inside it: [data-gptimage-out="size"], [data-gptimage-out="cost"],
 * [data-gptimage-out="prompt-count"], [data-gptimage-why="ratio|tier|background|mode"], and
 * elements with data-gptimage-mode-only="image-to-image" (hidden in the other mode).
 *
 * Invalid choices are disabled, with their reason in the option's title and in the "why" line.
 * Each change dispatches "gptimage:options" on the container (detail: values, cell, estimate).
 * API: window.gptimage.initOptionPicker(container) -> {refresh, values, estimate}; containers
 * present at DOMContentLoaded are initialised automatically (once each).
 */
(function () {
  "use strict";
  var ns = (window.gptimage = window.gptimage || {});

  function formatCost(amount, currency) {
    if (amount === null || amount === undefined || isNaN(amount)) return "-";
    var places = amount >= 0.1 ? 2 : 4;
    return amount.toFixed(places) + " " + currency;
  }

  function roundHalfEven(x) {
    var r = Math.round(x);
    if (Math.abs(x % 1) === 0.5 && r % 2 !== 0) r -= 1;
    return r;
  }

  /* The same formula as django_gptimage.domain.pricing.estimate_cost. */
  function estimateCost(matrix, model, values, cell, inputPixels) {
    var m = matrix.models[model];
    if (!m || !cell || !cell.allowed) return null;
    var e = matrix.estimate;
    var perK = e.output_tokens_1024[values.quality] || e.output_tokens_1024[e.fallback_quality];
    var w = cell.width || e.auto_size[0];
    var h = cell.height || e.auto_size[1];
    var out = Math.max(1, roundHalfEven((perK * (w * h)) / (1024 * 1024)));
    var n = parseInt(values.n, 10) || 1;
    var text = Math.max(1, Math.floor((values.prompt || "").length / e.chars_per_text_token));
    var img = 0;
    (inputPixels || []).forEach(function (p) {
      img += Math.max(1, roundHalfEven((e.input_image_tokens_1024 * p) / (1024 * 1024)));
    });
    var p = m.prices;
    var total =
      (text * parseFloat(p.text_input) + img * parseFloat(p.image_input) + n * out * parseFloat(p.image_output)) /
      1e6;
    return Math.round(total * 1e6) / 1e6;
  }

  function OptionPicker(root) {
    this.root = root;
    var source = document.getElementById(root.getAttribute("data-gptimage-options"));
    this.matrix = JSON.parse(source.textContent);
    this.prefix = root.getAttribute("data-gptimage-prefix") || "";
    this.inputPixels = [];
    this.lastReason = {};
    var self = this;
    root.addEventListener("change", function (event) {
      if (event.target.name === self.prefix + "images") self.readImages(event.target);
      self.lastReason = {};
      self.refresh();
    });
    root.addEventListener("input", function (event) {
      if (event.target.name === self.prefix + "prompt" || event.target.name === self.prefix + "n") self.refresh();
    });
    // A disabled option cannot be focused or chosen: clicking or hovering it shows why instead.
    root.addEventListener("click", function (event) {
      var label = event.target.closest && event.target.closest("label.gptimage-disabled");
      if (label && root.contains(label)) self.explain(label);
    });
    root.addEventListener("mouseover", function (event) {
      var label = event.target.closest && event.target.closest("label.gptimage-disabled");
      if (label && root.contains(label)) self.explain(label);
    });
    this.refresh();
  }

  OptionPicker.prototype.inputs = function (name) {
    return Array.prototype.slice.call(this.root.querySelectorAll('[name="' + this.prefix + name + '"]'));
  };

  OptionPicker.prototype.value = function (name) {
    var els = this.inputs(name);
    if (!els.length) return this.matrix.defaults[name];
    if (els[0].type === "radio") {
      var checked = els.filter(function (el) { return el.checked; })[0];
      return checked ? checked.value : null;
    }
    return els[0].value;
  };

  OptionPicker.prototype.values = function () {
    var v = {};
    ["model", "mode", "ratio", "tier", "quality", "output_format", "background", "n", "prompt"].forEach(
      function (name) { v[name] = this.value(name); },
      this
    );
    if (!v.model || !this.matrix.models[v.model]) v.model = this.matrix.defaults.model;
    return v;
  };

  OptionPicker.prototype.cell = function (v, ratio, tier) {
    var m = this.matrix.models[v.model];
    var byMode = m && m.cells[v.mode];
    var byRatio = byMode && byMode[ratio || v.ratio];
    return (byRatio && byRatio[tier || v.tier]) || null;
  };

  /* Enable or disable one option (an <input> or <option>), with its reason. */
  OptionPicker.prototype.setOption = function (el, allowed, reason, locked) {
    el.disabled = !allowed;
    var label = el.closest ? el.closest("label") : null;
    var target = label || el;
    if (allowed) {
      target.removeAttribute("title");
      target.removeAttribute("data-gptimage-reason");
    } else {
      target.title = reason;
      target.setAttribute("data-gptimage-reason", reason);
    }
    if (label) {
      label.classList.toggle("gptimage-disabled", !allowed);
      label.classList.toggle("gptimage-locked", !!locked);
      var lock = label.querySelector(".gptimage-lock");
      if (lock) {
        if (locked) lock.removeAttribute("hidden");
        else lock.setAttribute("hidden", "");
      }
    }
  };

  OptionPicker.prototype.why = function (name, text) {
    var el = this.root.querySelector('[data-gptimage-why="' + name + '"]');
    if (el && el.textContent !== text) el.textContent = text;
  };

  OptionPicker.prototype.out = function (name, text) {
    var els = this.root.querySelectorAll('[data-gptimage-out="' + name + '"]');
    Array.prototype.forEach.call(els, function (el) { if (el.textContent !== text) el.textContent = text; });
  };

  OptionPicker.prototype.explain = function (label) {
    var group = label.closest("[data-gptimage-choice]");
    var value = label.getAttribute("data-gptimage-value");
    var reason = label.getAttribute("data-gptimage-reason");
    if (group && reason) {
      var name = group.getAttribute("data-gptimage-choice");
      var text = value + ": " + reason;
      if (this.lastReason[name] !== text) {
        this.lastReason[name] = text;
        this.refresh();
      }
    }
  };

  OptionPicker.prototype.readImages = function (input) {
    var self = this;
    self.inputPixels = [];
    Array.prototype.forEach.call(input.files || [], function (file) {
      var url = URL.createObjectURL(file);
      var img = new Image();
      img.onload = function () {
        self.inputPixels.push(img.naturalWidth * img.naturalHeight);
        URL.revokeObjectURL(url);
        self.refresh();
      };
      img.onerror = function () { URL.revokeObjectURL(url); };
      img.src = url;
    });
  };

  OptionPicker.prototype.refresh = function () {
    var self = this;
    var mx = this.matrix;
    var v = this.values();
    var m = mx.models[v.model];
    if (!m) return;

    // Mode: what the model and the site allow.
    this.inputs("mode").forEach(function (el) {
      var opts = el.tagName === "SELECT" ? Array.prototype.slice.call(el.options) : [el];
      opts.forEach(function (o) {
        var ok = m.modes.indexOf(o.value) !== -1;
        self.setOption(o, ok, ok ? "" : v.model + " or this site does not offer " + o.value + ".");
      });
    });
    Array.prototype.forEach.call(this.root.querySelectorAll("[data-gptimage-mode-only]"), function (el) {
      el.hidden = el.getAttribute("data-gptimage-mode-only") !== v.mode;
    });

    // Tiers for the chosen ratio; ratios for the chosen tier.
    var tierNotes = [];
    this.inputs("tier").forEach(function (el) {
      var c = self.cell(v, v.ratio, el.value);
      var ok = !!(c && c.allowed);
      var reason = c ? c.reason : "Not offered for this model.";
      self.setOption(el, ok, reason, c && c.locked);
      var hint = el.closest("label") && el.closest("label").querySelector(".gptimage-choice-hint");
      if (hint && c && c.width && c.height) hint.textContent = c.width + "\u00d7" + c.height;
      else if (hint && c && !c.width) hint.textContent = v.ratio === "auto" ? "auto" : "";
      if (!ok) tierNotes.push(el.value + (c && c.locked ? " (locked)" : "") + ": " + reason);
    });
    var locked = Object.keys(mx.access.locked || {});
    this.why("tier", tierNotes.join("\n"));

    var offRatios = [];
    this.inputs("ratio").forEach(function (el) {
      var c = self.cell(v, el.value, v.tier);
      var ok = !!(c && c.allowed);
      self.setOption(el, ok, c ? c.reason : "Not offered for this model.", c && c.locked);
      if (!ok && !(c && c.locked)) offRatios.push(el.value);
    });
    var ratioWhy = "";
    if (offRatios.length) {
      ratioWhy = "Not available at " + v.tier + ": " + offRatios.join(", ") + ".";
      var last = this.lastReason.ratio;
      ratioWhy += last ? "\n" + last : " Point at a greyed-out shape to see why.";
    }
    this.why("ratio", ratioWhy);

    // Quality, format, background from the model; transparent needs PNG or WebP.
    var lockedQ = m.locked_qualities || {};
    [["quality", m.qualities], ["output_format", m.formats]].forEach(function (pair) {
      self.inputs(pair[0]).forEach(function (el) {
        var opts = el.tagName === "SELECT" ? Array.prototype.slice.call(el.options) : [el];
        opts.forEach(function (o) {
          var ok = pair[1].indexOf(o.value) !== -1;
          var reason = ok ? "" : o.value + " is not offered for " + v.model + " on this site.";
          if (ok && pair[0] === "quality" && lockedQ[o.value]) {
            ok = false;
            reason = lockedQ[o.value];
          }
          self.setOption(o, ok, reason, pair[0] === "quality" && !!lockedQ[o.value]);
        });
      });
    });
    this.why("quality", lockedQ[v.quality] ? v.quality + ": " + lockedQ[v.quality] : "");
    var bgWhy = "";
    this.inputs("background").forEach(function (el) {
      var opts = el.tagName === "SELECT" ? Array.prototype.slice.call(el.options) : [el];
      opts.forEach(function (o) {
        var ok = m.backgrounds.indexOf(o.value) !== -1;
        var reason = "";
        if (ok && o.value === "transparent" && m.transparent_formats.indexOf(v.output_format) === -1) {
          ok = false;
          reason = "A transparent background needs " + m.transparent_formats.join(" or ") + ", not " + v.output_format + ".";
          if (v.background === "transparent") bgWhy = reason;
          else bgWhy = "Transparent: " + reason;
        }
        self.setOption(o, ok, reason);
      });
    });
    this.why("background", bgWhy);
    this.inputs("n").forEach(function (el) { el.max = m.max_n; });

    // What will be made and what it costs.
    var cell = this.cell(v);
    var size = "-";
    if (cell && cell.allowed) {
      size = cell.width ? cell.width + " \u00d7 " + cell.height + " px" : "auto (the model picks, about 1K)";
    } else if (cell) {
      size = "not available: " + cell.reason;
    }
    this.out("size", size);
    var amount = estimateCost(mx, v.model, v, cell, this.inputPixels);
    var cost = amount === null ? "-" : formatCost(amount, mx.estimate.currency);
    this.out("cost", cost);
    var len = (v.prompt || "").length;
    this.out("prompt-count", len.toLocaleString("en") + " / " + m.max_prompt_chars.toLocaleString("en") + " characters");
    this.root.classList.toggle("gptimage-prompt-too-long", len > m.max_prompt_chars);
    this.root.classList.toggle("gptimage-has-locked", locked.length > 0);

    this.root.dispatchEvent(
      new CustomEvent("gptimage:options", {
        bubbles: true,
        detail: { values: v, cell: cell, estimate: { amount: amount, currency: mx.estimate.currency, display: cost } },
      })
    );
  };

  OptionPicker.prototype.estimate = function () {
    var v = this.values();
    return estimateCost(this.matrix, v.model, v, this.cell(v), this.inputPixels);
  };

  ns.formatCost = formatCost;
  ns.estimateCost = estimateCost;
  ns.initOptionPicker = function (root) {
    if (!root.gptimageOptionPicker) root.gptimageOptionPicker = new OptionPicker(root);
    return root.gptimageOptionPicker;
  };

  function initAll() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-gptimage-options]"), ns.initOptionPicker);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", initAll);
  else initAll();
})();
